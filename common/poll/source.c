/*
 * A polled source: its file (the conf module checks every key against
 * relay_poll_source_props, so a typo names file, line and key; the checks
 * between keys below name the file and line of the key at fault too), the
 * window arithmetic and the request URL of one page. How a record maps
 * (topic, tenant, event_id, key, fields) is not poll's own: those keys
 * are the JSON mapping's (relay/json_map.h), as in an ingest source, read
 * from the same group once the conf module has checked the rest.
 */
#include "relay/conf.h"
#include "relay/json_map.h"
#include "relay/log.h"
#include "relay/poll.h"

#include <libconfig.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(f) offsetof(relay_poll_source_t, f)
#define B RELAY_CONF_BIND
#define REQ (RELAY_CONF_BIND | RELAY_CONF_REQUIRED)
/* The JSON mapping's keys: declared here, parsed by relay_json_map_load. */
#define MAP RELAY_CONF_OPAQUE

const relay_conf_prop_t relay_poll_source_props[] = {
    {"source.name", RELAY_CONF_STRING, NULL, 0, -1, REQ,
     "the source's name, unique: its checkpoint's key and its metrics' label",
     S(name)},
    {"source.url", RELAY_CONF_STRING, NULL, 0, -1, REQ,
     "the URL GET asks (may hold a query of its own)", S(url)},
    {"source.topic", RELAY_CONF_STRING, NULL, 0, -1, MAP,
     "where the records go (default loyalty.events): the mapping checks "
     "the fields against its schema",
     0},
    {"source.tenant", RELAY_CONF_STRING, NULL, 0, -1,
     MAP | RELAY_CONF_REQUIRED,
     "the records' tenant: literal or {field} template", 0},
    {"source.platform", RELAY_CONF_STRING, NULL, 0, -1, REQ,
     "the records' source field: the platform, lower case (antavo); in "
     "their derived event ids",
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
    {"source.event_id", RELAY_CONF_STRING, NULL, 0, -1, MAP,
     "dotted path of the record's own event id (unset or absent: the id "
     "is made from the record's content)",
     0},
    {"source.key", RELAY_CONF_STRING, NULL, 0, -1, MAP,
     "the Kafka key: a field of the output, a template over its fields "
     "(\"{tenant}/{identities.customer_id}\") or a list of those, the "
     "first that has them all (none: the event id)",
     0},
    {"source.fields", RELAY_CONF_STRING, NULL, 0, -1, MAP,
     "the field rules ( { to = ...; from = ... | value = ...; type = ...; "
     "required = ...; default = ...; }, ... ), as an ingest source's",
     0},
    {"source.map", RELAY_CONF_STRING, NULL, 0, -1, MAP,
     "retired: the record mapping is event_id, key and fields now", 0},
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
        s->start_ms = -1;
        if (s->start && relay_iso_ms_parse(s->start, strlen(s->start),
                                           &s->start_ms))
                return bad(s, "source.start", errstr, errstr_size,
                           "not an ISO-8601 time (2026-11-25T10:00:00Z)");
        if (strcmp(relay_conf_origin(s->conf, "source.map"), "unset"))
                return bad(s, "source.map", errstr, errstr_size,
                           "retired: a record maps by event_id, key and "
                           "fields now, as in an ingest source (README, "
                           "relay-poll)");
        return 0;
}

/* The source's JSON mapping, from its file's `source` group (read again:
 * the conf module keeps values, not the libconfig tree). Poll's event ids
 * are UUID v5 in RFC 4122's URL namespace of
 * "relay-poll:<tenant>/<platform>/<id>", or of the record's content in
 * place of <id> when it has none, so that a window read again (a crash, a
 * new owner) gives its events the ids they had. */
static int map_load(relay_poll_source_t *s, relay_schemas_t *schemas,
                    char *errstr, size_t errstr_size)
{
        /* 6ba7b811-9dad-11d1-80b4-00c04fd430c8 */
        static const unsigned char url_ns[16] = {0x6b, 0xa7, 0xb8, 0x11,
                                                 0x9d, 0xad, 0x11, 0xd1,
                                                 0x80, 0xb4, 0x00, 0xc0,
                                                 0x4f, 0xd4, 0x30, 0xc8};
        static const char prefix[] = "relay-poll:";
        config_t cfg;
        relay_buf_t infix;
        int rc = -1;
        config_init(&cfg);
        relay_buf_init(&infix);
        relay_buf_printf(&infix, "/%s/", s->platform);
        if (!config_read_file(&cfg, s->file) ||
            !config_lookup(&cfg, "source")) { /* read by the conf a moment
                                                 ago: changed since */
                relay_seterr(errstr, errstr_size, "%s:%d: %s", s->file,
                             config_error_line(&cfg),
                             config_error_text(&cfg)
                                 ? config_error_text(&cfg)
                                 : "no source group");
        } else {
                relay_json_map_opts_t o = {
                    .source = s->platform,
                    .default_topic = "loyalty.events",
                    .id_ns = url_ns,
                    .id_prefix = prefix,
                    .id_prefix_len = sizeof(prefix) - 1,
                    .id_infix = infix.data,
                    .id_infix_len = infix.len,
                    .id_from_content = 1};
                s->map = relay_json_map_load(s->file,
                                             config_lookup(&cfg, "source"),
                                             schemas, &o, errstr, errstr_size);
                rc = s->map ? 0 : -1;
        }
        relay_buf_free(&infix);
        config_destroy(&cfg);
        return rc;
}

static relay_poll_source_t *source_load(const char *path,
                                        relay_schemas_t *schemas, char *errstr,
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
        if (check(s, errstr, errstr_size) ||
            map_load(s, schemas, errstr, errstr_size))
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
        relay_json_map_destroy(s->map);
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

int relay_poll_sources_load(const char *path, relay_schemas_t *schemas,
                            relay_poll_source_t ***out, size_t *n,
                            char *errstr, size_t errstr_size)
{
        char **files = NULL;
        size_t nfiles = 0, k = 0;
        relay_poll_source_t **all = NULL;
        int rc = -1;

        if (relay_cfg_files(path, &files, &nfiles, errstr, errstr_size))
                return -1;
        if (!nfiles) {
                relay_seterr(errstr, errstr_size, "%s: no source (*.cfg)",
                             path);
                goto done;
        }
        all = relay_calloc(nfiles, sizeof(*all));
        for (; k < nfiles; k++) {
                if (!(all[k] = source_load(files[k], schemas, errstr,
                                           errstr_size)))
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
        relay_cfg_files_free(files, nfiles);
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
