/*
 * The delta state of relay/crm.h: record id -> content hash of every row a
 * run of relayctl onboard sent (and Kafka acknowledged), so that the next
 * run with --delta sends only rows that are new or changed.
 *
 * In memory an open-addressing hash table (FNV-1a, linear probing, grown
 * at half full). On disk a text file, one record a line after a header:
 *
 *   relay-onboard-state 1
 *   <64 hex content hash> <record id>
 *
 * the record id with '%', CR, LF and NUL written as %25, %0D, %0A, %00.
 */
#include "relay/crm.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATE_MAGIC "relay-onboard-state 1"

struct entry {
        char *id; /* NULL: a free slot */
        size_t n;
        char hash[65];
        uint64_t line;
};

struct relay_crm_state {
        struct entry *slots;
        size_t cap, count; /* cap a power of two */
};

relay_crm_state_t *relay_crm_state_new(void)
{
        relay_crm_state_t *s = relay_calloc(1, sizeof(*s));
        s->cap = 64;
        s->slots = relay_calloc(s->cap, sizeof(*s->slots));
        return s;
}

void relay_crm_state_destroy(relay_crm_state_t *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->cap; i++)
                free(s->slots[i].id);
        free(s->slots);
        free(s);
}

static uint64_t fnv1a(const char *p, size_t n)
{
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = 0; i < n; i++) {
                h ^= (unsigned char)p[i];
                h *= 0x100000001b3ull;
        }
        return h;
}

/* The slot of id, or the free slot where it would go. */
static struct entry *slot(const relay_crm_state_t *s, const char *id, size_t n)
{
        size_t i = (size_t)fnv1a(id, n) & (s->cap - 1);
        for (;;) {
                struct entry *e = &s->slots[i];
                if (!e->id || (e->n == n && !memcmp(e->id, id, n)))
                        return e;
                i = (i + 1) & (s->cap - 1);
        }
}

static void grow(relay_crm_state_t *s)
{
        struct entry *old = s->slots;
        size_t cap = s->cap;
        s->cap *= 2;
        s->slots = relay_calloc(s->cap, sizeof(*s->slots));
        for (size_t i = 0; i < cap; i++)
                if (old[i].id)
                        *slot(s, old[i].id, old[i].n) = old[i];
        free(old);
}

const char *relay_crm_state_get(const relay_crm_state_t *s, const char *id,
                                size_t n)
{
        const struct entry *e = slot(s, id, n);
        return e->id ? e->hash : NULL;
}

uint64_t relay_crm_state_line(const relay_crm_state_t *s, const char *id,
                              size_t n)
{
        const struct entry *e = slot(s, id, n);
        return e->id ? e->line : 0;
}

void relay_crm_state_put(relay_crm_state_t *s, const char *id, size_t n,
                         const char *content_hash, uint64_t line)
{
        if (2 * (s->count + 1) > s->cap)
                grow(s);
        struct entry *e = slot(s, id, n);
        if (!e->id) {
                e->id = relay_strndup(id, n);
                e->n = n;
                s->count++;
        }
        snprintf(e->hash, sizeof(e->hash), "%s", content_hash);
        e->line = line;
}

size_t relay_crm_state_count(const relay_crm_state_t *s)
{
        return s->count;
}

size_t relay_crm_state_missing(const relay_crm_state_t *s,
                               const relay_crm_state_t *a,
                               const relay_crm_state_t *b)
{
        size_t n = 0;
        for (size_t i = 0; i < s->cap; i++) {
                const struct entry *e = &s->slots[i];
                if (e->id && !relay_crm_state_get(a, e->id, e->n) &&
                    (!b || !relay_crm_state_get(b, e->id, e->n)))
                        n++;
        }
        return n;
}

static int unhex(char c)
{
        return c >= '0' && c <= '9'   ? c - '0'
               : c >= 'A' && c <= 'F' ? c - 'A' + 10
               : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                      : -1;
}

int relay_crm_state_load(relay_crm_state_t *s, const char *path, char *errstr,
                         size_t errstr_size)
{
        FILE *f = fopen(path, "r");
        if (!f) {
                if (errno == ENOENT)
                        return 1;
                relay_seterr(errstr, errstr_size, "%s: %s", path,
                             strerror(errno));
                return -1;
        }
        char *line = NULL;
        size_t cap = 0, lineno = 0;
        ssize_t len;
        int rc = 0;
        relay_buf_t id;
        relay_buf_init(&id);
        while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
                lineno++;
                if (len && line[len - 1] == '\n')
                        line[--len] = '\0';
                if (lineno == 1) {
                        if (strcmp(line, STATE_MAGIC))
                                rc = -1;
                        continue;
                }
                if (len < 66 || line[64] != ' ' ||
                    strspn(line, "0123456789abcdef") != 64) {
                        rc = -1;
                        break;
                }
                line[64] = '\0';
                relay_buf_reset(&id);
                for (ssize_t i = 65; i < len; i++) {
                        if (line[i] == '%') {
                                int hi = i + 2 < len ? unhex(line[i + 1]) : -1;
                                int lo = i + 2 < len ? unhex(line[i + 2]) : -1;
                                if (hi < 0 || lo < 0) {
                                        rc = -1;
                                        break;
                                }
                                char ch = (char)(hi << 4 | lo);
                                relay_buf_append(&id, &ch, 1);
                                i += 2;
                        } else {
                                relay_buf_append(&id, line + i, 1);
                        }
                }
                if (rc == 0)
                        relay_crm_state_put(s, id.data, id.len, line, 0);
        }
        if (rc == 0 && ferror(f)) {
                relay_seterr(errstr, errstr_size, "%s: %s", path,
                             strerror(errno));
        } else if (rc) {
                relay_seterr(errstr, errstr_size,
                             "%s:%zu: not a relayctl onboard state file "
                             "(\"" STATE_MAGIC "\", then \"<sha256 hex> "
                             "<record id>\" lines)",
                             path, lineno);
        } else if (lineno == 0) {
                relay_seterr(errstr, errstr_size, "%s: empty, not a state file",
                             path);
                rc = -1;
        }
        free(line);
        relay_buf_free(&id);
        fclose(f);
        return rc;
}

int relay_crm_state_save(const relay_crm_state_t *s, const char *path,
                         char *errstr, size_t errstr_size)
{
        relay_buf_t tmp, out;
        relay_buf_init(&tmp);
        relay_buf_init(&out);
        relay_buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
        relay_buf_puts(&out, STATE_MAGIC "\n");
        for (size_t i = 0; i < s->cap; i++) {
                const struct entry *e = &s->slots[i];
                if (!e->id)
                        continue;
                relay_buf_puts(&out, e->hash);
                relay_buf_append(&out, " ", 1);
                for (size_t k = 0; k < e->n; k++) {
                        char ch = e->id[k];
                        if (ch == '%' || ch == '\r' || ch == '\n' || !ch)
                                relay_buf_printf(&out, "%%%02X",
                                                 (unsigned char)ch);
                        else
                                relay_buf_append(&out, &ch, 1);
                }
                relay_buf_append(&out, "\n", 1);
        }
        int rc = -1;
        int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) {
                relay_seterr(errstr, errstr_size, "%s: %s", tmp.data,
                             strerror(errno));
                goto out;
        }
        size_t off = 0;
        while (off < out.len) {
                ssize_t w = write(fd, out.data + off, out.len - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        break;
                off += (size_t)w;
        }
        if (off < out.len || fsync(fd)) {
                relay_seterr(errstr, errstr_size, "%s: %s", tmp.data,
                             strerror(errno));
                close(fd);
                unlink(tmp.data);
                goto out;
        }
        close(fd);
        if (rename(tmp.data, path)) {
                relay_seterr(errstr, errstr_size, "%s: %s", path,
                             strerror(errno));
                unlink(tmp.data);
                goto out;
        }
        /* The rename is durable once the directory is. */
        char *dup = relay_strdup(path);
        int dfd = open(dirname(dup), O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
        }
        free(dup);
        rc = 0;
out:
        relay_buf_free(&tmp);
        relay_buf_free(&out);
        return rc;
}
