/*
 * Helpers shared by the unit tests (include after <cmocka.h>): a temporary
 * directory with files written into it and removed at the end, JSON
 * literals written with ' for ", and substring and JSON assertions. Each test
 * is its own binary, so the state below is per test.
 */
#ifndef RELAY_TESTS_UNIT_H
#define RELAY_TESTS_UNIT_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define assert_contains(hay, needle)                                           \
        do {                                                                   \
                if (!strstr((hay), (needle)))                                  \
                        fail_msg("\"%s\"\n  does not contain \"%s\"", (hay),   \
                                 (needle));                                    \
        } while (0)

static char tmpdir[256];
static char made[64][512]; /* files and directories made in tmpdir */
static int nmade;

/* Make tmpdir as /tmp/relay-test-<name>-XXXXXX: 0, or -1. */
static inline int unit_tmpdir_make(const char *name)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/relay-test-%s-XXXXXX", name);
        return mkdtemp(tmpdir) ? 0 : -1;
}

/* Remove what was made in tmpdir, newest first, then tmpdir itself. */
static inline int unit_tmpdir_remove(void)
{
        for (int i = nmade - 1; i >= 0; i--)
                remove(made[i]);
        return rmdir(tmpdir);
}

static inline const char *unit_path(const char *name)
{
        assert_true(nmade < 64);
        char *path = made[nmade++];
        snprintf(path, sizeof(made[0]), "%s/%s", tmpdir, name);
        return path;
}

/* Write text into tmpdir/name; returns the path. */
static inline const char *write_file(const char *name, const char *text)
{
        const char *path = unit_path(name);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(text, fp);
        fclose(fp);
        return path;
}

static inline const char *make_dir(const char *name)
{
        const char *path = unit_path(name);
        assert_int_equal(mkdir(path, 0700), 0);
        return path;
}

/* Parse JSON written with ' for " (none of the texts here needs a '). */
static inline json_t *js(const char *text)
{
        char *t = strdup(text);
        for (char *p = t; *p; p++)
                if (*p == '\'')
                        *p = '"';
        json_error_t jerr;
        json_t *j = json_loads(t, JSON_DECODE_ANY, &jerr);
        if (!j)
                fail_msg("bad test JSON (%s): %s", jerr.text, t);
        free(t);
        return j;
}

/* got (a new reference, released here) must equal the JSON literal want
 * (written as for js()); else fail showing both. */
static inline void assert_json_text(json_t *got, const char *want_text)
{
        json_t *want = js(want_text);
        if (!json_equal(want, got)) {
                char *a = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);
                char *b = json_dumps(want, JSON_SORT_KEYS | JSON_ENCODE_ANY);
                fail_msg("got  %s\nwant %s", a, b);
        }
        json_decref(want);
        json_decref(got);
}

#endif
