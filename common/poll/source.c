/*
 * A polled source: its file (the conf module checks every key against
 * relay_poll_source_props, so a typo names file, line and key; the checks
 * between keys below name the file and line of the key at fault too), the
 * window arithmetic and the request URL of one page.
 */
#include "relay/poll.h"
#include "relay/log.h"

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S(f) offsetof(relay_poll_source_t, f)
#define B RELAY_CONF_BIND
#define REQ (RELAY_CONF_BIND | RELAY_CONF_REQUIRED)

const relay_conf_prop_t relay_poll_source_props[] = {
    {"source.name", RELAY_CONF_STRING, NULL, 0, -1, REQ,
     "the source's name, unique: its checkpoint's key and its metrics' label",
     S(name)},
    {"source.url", RELAY_CONF_STRING, NULL, 0, -1, REQ,
     "the URL GET asks (may hold a query of its own)", S(url)},
    {"source.topic", RELAY_CONF_STRING, "loyalty.events", 0, -1, B,
     "where the records go (a topic of the loyalty.events schema)", S(topic)},
    {"source.tenant", RELAY_CONF_STRING, NULL, 0, -1, REQ,
     "the records' tenant", S(tenant)},
    {"source.platform", RELAY_CONF_STRING, NULL, 0, -1, REQ,
     "the records' source field: the platform, lower case (antavo)",
     S(platform)},
    {"source.interval_ms", RELAY_CONF_INT, "60000", 100, 86400000, B,
     "how often a window is asked for (the shortest window)", S(interval_ms)},
    {"source.delay_ms", RELAY_CONF_INT, "10000", 0, 86400000, B,
     "a window ends this long before now: events the source may still be "
     "writing wait for the next one",
     S(delay_ms)},
    {"source.max_window_ms", RELAY_CONF_INT, "3600000", 1000, 2678400000LL, B,
     "the longest window (catching up goes window after window)",
     S(max_window_ms)},
    {"source.start", RELAY_CONF_STRING, NULL, 0, -1, B,
     "ISO-8601 start of the first window when there is no checkpoint "
     "(unset: now less lookback_ms)",
     S(start)},
    {"source.lookback_ms", RELAY_CONF_INT, "0", 0, 31622400000LL, B,
     "without a checkpoint or start, the first window starts this long ago",
     S(lookback_ms)},
    {"source.window.from_param", RELAY_CONF_STRING, "from", 0, -1, B,
     "query parameter of the window's start (inclusive)", S(from_param)},
    {"source.window.to_param", RELAY_CONF_STRING, "to", 0, -1, B,
     "query parameter of the window's end (exclusive)", S(to_param)},
    {"source.window.format", RELAY_CONF_STRING, "iso8601", 0, -1, B,
     "how the bounds are written: iso8601, epoch_s or epoch_ms",
     S(time_format)},
    {"source.auth.in", RELAY_CONF_STRING, "header", 0, -1, B,
     "where the static token goes: header or query", S(auth_in)},
    {"source.auth.name", RELAY_CONF_STRING, "Authorization", 0, -1, B,
     "the header's or query parameter's name", S(auth_name)},
    {"source.auth.prefix", RELAY_CONF_STRING, "", 0, -1, B,
     "text before the token (\"Bearer \")", S(auth_prefix)},
    {"source.auth.env", RELAY_CONF_STRING, NULL, 0, -1, B,
     "the environment variable holding the token (or <it>_FILE a file "
     "holding it); default RELAY_POLL_<NAME>_TOKEN",
     S(auth_env)},
    {"source.paging.kind", RELAY_CONF_STRING, "cursor", 0, -1, B,
     "cursor (the answer names the next page), page (numbered pages) or "
     "none",
     S(paging)},
    {"source.paging.cursor_param", RELAY_CONF_STRING, "cursor", 0, -1, B,
     "query parameter carrying the cursor", S(cursor_param)},
    {"source.paging.next", RELAY_CONF_STRING, "next_cursor", 0, -1, B,
     "dotted path of the next page's cursor in the answer (absent, null or "
     "\"\": the last page)",
     S(next)},
    {"source.paging.page_param", RELAY_CONF_STRING, "page", 0, -1, B,
     "query parameter of the page number", S(page_param)},
    {"source.paging.first_page", RELAY_CONF_INT, "1", 0, 1, B,
     "the first page's number", S(first_page)},
    {"source.paging.size_param", RELAY_CONF_STRING, "limit", 0, -1, B,
     "query parameter of the page size (\"\": not sent)", S(size_param)},
    {"source.paging.size", RELAY_CONF_INT, "100", 1, 100000, B,
     "records a page; a numbered page holding fewer is the last", S(page_size)},
    {"source.paging.max_pages", RELAY_CONF_INT, "10000", 1, 10000000, B,
     "pages a window may have: past them the window is failed (a cursor "
     "that never ends), never cut short",
     S(max_pages)},
    {"source.records", RELAY_CONF_STRING, "data", 0, -1, B,
     "dotted path of the records array in an answer (\"\": the answer is "
     "the array)",
     S(records)},
    {"source.map.event_id", RELAY_CONF_STRING, "id", 0, -1, B,
     "the record's own event id (\"\": none, the id is made from the "
     "record's content)",
     S(map_event_id)},
    {"source.map.occurred_at", RELAY_CONF_STRING, "created_at", 0, -1, B,
     "the record's time", S(map_occurred_at)},
    {"source.map.time_format", RELAY_CONF_STRING, "iso8601", 0, -1, B,
     "how the record's time is written: iso8601, epoch_s or epoch_ms",
     S(map_time_format)},
    {"source.map.event_type", RELAY_CONF_STRING, "action", 0, -1, B,
     "the record's event type (the source's own name)", S(map_event_type)},
    {"source.map.identities", RELAY_CONF_STRING, "", 0, -1, B,
     "kind=path pairs, comma-separated: customer_id=customer,email=email",
     S(map_identities)},
    {"source.map.data", RELAY_CONF_STRING, "data", 0, -1, B,
     "the payload object, flattened into data (\"\": the whole record)",
     S(map_data)},
    {"source.map.key", RELAY_CONF_STRING, "", 0, -1, B,
     "the identity kind that keys the records (\"\": the first of "
     "identities), so one person's events share a partition",
     S(map_key)},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

/* A checked key's value did not fit: "file:line: key 'name': why". */
static int bad(const relay_poll_source_t *s, const char *key, char *errstr,
               size_t errstr_size, const char *why)
{
        relay_seterr(errstr, errstr_size, "%s: key '%s': %s",
                     relay_conf_origin(s->conf, key), key, why);
        return -1;
}

static int time_format(const char *text, enum relay_poll_time_format *f)
{
        static const char *const names[] = {"iso8601", "epoch_s", "epoch_ms"};
        for (int i = 0; i < 3; i++)
                if (!strcmp(text, names[i])) {
                        *f = (enum relay_poll_time_format)i;
                        return 0;
                }
        return -1;
}

/* source.map.identities into id_kind / id_path. */
static int split_identities(relay_poll_source_t *s, char *errstr,
                            size_t errstr_size)
{
        const char *key = "source.map.identities";
        char *text = relay_strdup(s->map_identities), *save = NULL;
        int rc = 0;
        for (char *e = strtok_r(text, ",", &save); e && !rc;
             e = strtok_r(NULL, ",", &save)) {
                e += strspn(e, " \t");
                char *eq = strchr(e, '=');
                size_t kn = eq ? strcspn(e, " \t=") : 0;
                char *path = eq ? eq + 1 + strspn(eq + 1, " \t") : NULL;
                size_t pn = path ? strcspn(path, " \t") : 0;
                if (!kn || !pn) {
                        rc = bad(s, key, errstr, errstr_size,
                                 "each entry must be kind=path");
                        break;
                }
                s->id_kind = relay_realloc(s->id_kind,
                                           (s->nids + 1) * sizeof(char *));
                s->id_path = relay_realloc(s->id_path,
                                           (s->nids + 1) * sizeof(char *));
                s->id_kind[s->nids] = relay_strndup(e, kn);
                s->id_path[s->nids++] = relay_strndup(path, pn);
        }
        free(text);
        return rc;
}

/* The checks between keys, and what is derived from them. */
static int check(relay_poll_source_t *s, char *errstr, size_t errstr_size)
{
        if (strncmp(s->url, "http://", 7) && strncmp(s->url, "https://", 8))
                return bad(s, "source.url", errstr, errstr_size,
                           "must be an http:// or https:// URL");
        if (!*s->name || strspn(s->name, "abcdefghijklmnopqrstuvwxyz"
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789-_.") != strlen(s->name))
                return bad(s, "source.name", errstr, errstr_size,
                           "must be letters, digits, '-', '_' or '.'");
        if (time_format(s->time_format, &s->query_format))
                return bad(s, "source.window.format", errstr, errstr_size,
                           "must be iso8601, epoch_s or epoch_ms");
        if (time_format(s->map_time_format, &s->record_format))
                return bad(s, "source.map.time_format", errstr, errstr_size,
                           "must be iso8601, epoch_s or epoch_ms");
        if (!strcmp(s->auth_in, "query"))
                s->auth_query = 1;
        else if (strcmp(s->auth_in, "header"))
                return bad(s, "source.auth.in", errstr, errstr_size,
                           "must be header or query");
        if (!*s->auth_name)
                return bad(s, "source.auth.name", errstr, errstr_size,
                           "must not be empty");
        if (!strcmp(s->paging, "cursor"))
                s->paging_kind = RELAY_POLL_PAGING_CURSOR;
        else if (!strcmp(s->paging, "page"))
                s->paging_kind = RELAY_POLL_PAGING_PAGE;
        else if (!strcmp(s->paging, "none"))
                s->paging_kind = RELAY_POLL_PAGING_NONE;
        else
                return bad(s, "source.paging.kind", errstr, errstr_size,
                           "must be cursor, page or none");
        if (!*s->from_param || !*s->to_param ||
            !strcmp(s->from_param, s->to_param))
                return bad(s, "source.window.to_param", errstr, errstr_size,
                           "the window's parameters must be two names");
        if (!*s->map_occurred_at)
                return bad(s, "source.map.occurred_at", errstr, errstr_size,
                           "must name the record's time");
        if (!*s->map_event_type)
                return bad(s, "source.map.event_type", errstr, errstr_size,
                           "must name the record's event type");
        s->start_ms = -1;
        if (s->start && relay_iso_ms_parse(s->start, strlen(s->start),
                                           &s->start_ms))
                return bad(s, "source.start", errstr, errstr_size,
                           "not an ISO-8601 time (2026-11-25T10:00:00Z)");
        if (split_identities(s, errstr, errstr_size))
                return -1;
        if (*s->map_key) {
                size_t i = 0;
                while (i < s->nids && strcmp(s->id_kind[i], s->map_key))
                        i++;
                if (i == s->nids)
                        return bad(s, "source.map.key", errstr, errstr_size,
                                   "is not a kind of source.map.identities");
        }
        return 0;
}

static relay_poll_source_t *source_load(const char *path, char *errstr,
                                        size_t errstr_size)
{
        const relay_conf_prop_t *tables[] = {relay_poll_source_props};
        relay_poll_source_t *s = relay_calloc(1, sizeof(*s));
        s->file = relay_strdup(path);
        s->conf = relay_conf_new(tables, 1);
        if (relay_conf_load_file(s->conf, path, errstr, errstr_size) ||
            relay_conf_finish(s->conf, errstr, errstr_size))
                goto fail;
        if (relay_conf_kafka_count(s->conf)) {
                relay_seterr(errstr, errstr_size,
                             "%s: kafka keys belong in the worker's file, "
                             "not a source's",
                             relay_conf_kafka_origin(s->conf, 0));
                goto fail;
        }
        relay_conf_bind(s->conf, relay_poll_source_props, s);
        if (check(s, errstr, errstr_size))
                goto fail;
        return s;
fail:
        relay_poll_source_free(s);
        return NULL;
}

void relay_poll_source_free(relay_poll_source_t *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->nids; i++) {
                free(s->id_kind[i]);
                free(s->id_path[i]);
        }
        free(s->id_kind);
        free(s->id_path);
        relay_conf_destroy(s->conf);
        free(s->file);
        free(s);
}

void relay_poll_sources_free(relay_poll_source_t **s, size_t n)
{
        for (size_t i = 0; s && i < n; i++)
                relay_poll_source_free(s[i]);
        free(s);
}

static int by_name(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.cfg files of dir, sorted, as full paths (owned); their count. */
static size_t list_cfg(const char *dir, char ***out)
{
        DIR *d = opendir(dir);
        size_t n = 0;
        *out = NULL;
        for (struct dirent *e; d && (e = readdir(d));) {
                size_t len = strlen(e->d_name);
                if (len < 5 || strcmp(e->d_name + len - 4, ".cfg"))
                        continue;
                *out = relay_realloc(*out, (n + 1) * sizeof(char *));
                relay_buf_t b;
                relay_buf_init(&b);
                relay_buf_printf(&b, "%s/%s", dir, e->d_name);
                (*out)[n++] = b.data;
        }
        if (d)
                closedir(d);
        if (n)
                qsort(*out, n, sizeof(char *), by_name);
        return n;
}

int relay_poll_sources_load(const char *path, relay_poll_source_t ***out,
                            size_t *n, char *errstr, size_t errstr_size)
{
        struct stat st;
        char **files = NULL;
        size_t nfiles = 0, k = 0;
        relay_poll_source_t **all = NULL;
        int rc = -1;

        if (stat(path, &st)) {
                relay_seterr(errstr, errstr_size, "%s: cannot read", path);
                return -1;
        }
        if (S_ISDIR(st.st_mode)) {
                nfiles = list_cfg(path, &files);
        } else {
                files = relay_calloc(1, sizeof(char *));
                files[nfiles++] = relay_strdup(path);
        }
        if (!nfiles) {
                relay_seterr(errstr, errstr_size, "%s: no source (*.cfg)",
                             path);
                goto done;
        }
        all = relay_calloc(nfiles, sizeof(*all));
        for (; k < nfiles; k++) {
                if (!(all[k] = source_load(files[k], errstr, errstr_size)))
                        goto done;
                for (size_t j = 0; j < k; j++)
                        if (!strcmp(all[j]->name, all[k]->name)) {
                                relay_seterr(
                                    errstr, errstr_size,
                                    "%s: key 'source.name': '%s' is also the "
                                    "name of the source in %s",
                                    relay_conf_origin(all[k]->conf,
                                                      "source.name"),
                                    all[k]->name, all[j]->file);
                                k++;
                                goto done;
                        }
        }
        rc = 0;
done:
        for (size_t i = 0; i < nfiles; i++)
                free(files[i]);
        free(files);
        if (rc) {
                relay_poll_sources_free(all, k);
                all = NULL;
                k = 0;
        }
        *out = all;
        *n = k;
        return rc;
}

/* ---- windows ---------------------------------------------------------- */

/* The query format's resolution: bounds are cut to it, so that a window's
 * end as written is exactly the next one's start. */
static int64_t resolution(const relay_poll_source_t *s)
{
        return s->query_format == RELAY_POLL_EPOCH_MS ? 1 : 1000;
}

static int64_t floor_to(int64_t t, int64_t r)
{
        int64_t q = t / r;
        if (t % r && t < 0)
                q--;
        return q * r;
}

int64_t relay_poll_window_origin(const relay_poll_source_t *s, int64_t now)
{
        int64_t at = s->start_ms >= 0 ? s->start_ms : now - s->lookback_ms;
        return floor_to(at, resolution(s));
}

int64_t relay_poll_window_next(const relay_poll_source_t *s, int64_t ckpt,
                               int64_t now, relay_poll_window_t *w)
{
        int64_t r = resolution(s);
        int64_t shortest = s->interval_ms < s->max_window_ms
                               ? s->interval_ms
                               : s->max_window_ms;
        int64_t end = floor_to(now - s->delay_ms, r);
        if (end - ckpt < shortest || end - ckpt < r) {
                /* Due once now - delay reaches ckpt + shortest (and at
                 * least a resolution step past ckpt). */
                int64_t step = shortest > r ? shortest : r;
                int64_t due = ckpt + step + s->delay_ms - now;
                return due > 0 ? due : 1;
        }
        w->from = ckpt;
        w->to = end - ckpt > s->max_window_ms
                    ? ckpt + floor_to(s->max_window_ms, r)
                    : end;
        return 0;
}

void relay_poll_time_put(relay_buf_t *b, enum relay_poll_time_format f,
                         int64_t ms)
{
        if (f == RELAY_POLL_EPOCH_S) {
                relay_buf_long(b, floor_to(ms, 1000) / 1000);
        } else if (f == RELAY_POLL_EPOCH_MS) {
                relay_buf_long(b, ms);
        } else {
                /* relay_buf_iso_ms writes a JSON string: drop the quotes. */
                size_t at = b->len;
                if (relay_buf_iso_ms(b, ms) == 0) {
                        memmove(b->data + at, b->data + at + 1,
                                b->len - at - 2);
                        b->len -= 2;
                        b->data[b->len] = '\0';
                }
        }
}

/* "&name=" or "?name=" (the first parameter), name encoded. */
static void param(relay_buf_t *b, const char *name)
{
        relay_buf_append(b, strchr(b->data, '?') ? "&" : "?", 1);
        relay_buf_url_encode(b, name, strlen(name));
        relay_buf_append(b, "=", 1);
}

void relay_poll_request_url(const relay_poll_source_t *s,
                            const relay_poll_window_t *w, long long page,
                            const char *cursor, const char *token,
                            relay_buf_t *out)
{
        relay_buf_t t;
        relay_buf_init(&t);
        relay_buf_reset(out);
        relay_buf_puts(out, s->url);
        const char *names[] = {s->from_param, s->to_param};
        int64_t bounds[] = {w->from, w->to};
        for (int i = 0; i < 2; i++) {
                param(out, names[i]);
                relay_buf_reset(&t);
                relay_poll_time_put(&t, s->query_format, bounds[i]);
                relay_buf_url_encode(out, t.data, t.len);
        }
        if (s->paging_kind == RELAY_POLL_PAGING_CURSOR && cursor) {
                param(out, s->cursor_param);
                relay_buf_url_encode(out, cursor, strlen(cursor));
        } else if (s->paging_kind == RELAY_POLL_PAGING_PAGE) {
                param(out, s->page_param);
                relay_buf_long(out, page);
        }
        if (s->paging_kind != RELAY_POLL_PAGING_NONE && *s->size_param) {
                param(out, s->size_param);
                relay_buf_long(out, s->page_size);
        }
        if (s->auth_query && token) {
                param(out, s->auth_name);
                relay_buf_reset(&t);
                relay_buf_puts(&t, s->auth_prefix);
                relay_buf_puts(&t, token);
                relay_buf_url_encode(out, t.data, t.len);
        }
        relay_buf_free(&t);
}
