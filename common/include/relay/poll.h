/*
 * Polling sources: an HTTP source read on an interval, one time window at
 * a time, each record of its answers mapped to a loyalty.events-shaped
 * record and produced as Avro.
 *
 * The pieces, each testable alone:
 * - a source (one libconfig file each, keys under `source`, checked by the
 *   conf module, so an error names file, line and key): URL, token, the
 *   window's query parameters, pagination, and how a record maps: the
 *   keys topic, tenant, event_id, key and fields, which are the JSON
 *   mapping's (relay/json_map.h), the one relay-ingest's sources use;
 * - the window arithmetic: the next window [from, to) after a checkpoint,
 *   never reaching into the last delay_ms (events the source may still be
 *   writing), at most max_window_ms long, cut to the resolution of the
 *   query's time format so that windows tile the time line exactly;
 * - the answer parser: the records array and the next page;
 * - the record mapping: the source's JSON mapping (relay/json_map.h),
 *   with poll's event ids: the record's own id as a UUID v5 in RFC 4122's
 *   URL namespace of "relay-poll:<tenant>/<platform>/<id>", so the same
 *   event polled twice has the same id; a record without an id is named
 *   by its content (its canonical JSON text in place of the id);
 * - the checkpoint: the last window end, one JSON record per source in a
 *   compacted topic, keyed by the source's name.
 *
 * The worker (relay_poll_t) runs them: see common/poll/poll.c for the
 * ownership of sources (a consumer group on the checkpoint topic) and
 * when a checkpoint is written.
 */
#ifndef RELAY_POLL_H
#define RELAY_POLL_H

#include "relay/avro.h"
#include "relay/common.h"
#include "relay/conf.h"
#include "relay/json_map.h"

#include <jansson.h>
#include <stdint.h>

/* How the window's bounds are written in the query. */
enum relay_poll_time_format {
        RELAY_POLL_ISO8601 = 0, /* 2026-11-25T10:00:00.000Z */
        RELAY_POLL_EPOCH_S,     /* Unix seconds */
        RELAY_POLL_EPOCH_MS     /* Unix milliseconds */
};

enum relay_poll_paging {
        RELAY_POLL_PAGING_NONE = 0, /* one answer is the whole window */
        RELAY_POLL_PAGING_CURSOR,   /* the answer names the next page's cursor */
        RELAY_POLL_PAGING_PAGE      /* numbered pages of a fixed size */
};

/* One source: the values of its file (strings owned by its conf). */
typedef struct relay_poll_source {
        const char *name, *url, *platform;
        long long interval_ms, delay_ms, max_window_ms, lookback_ms;
        const char *start;
        const char *from_param, *to_param, *time_format;
        const char *auth_in, *auth_name, *auth_prefix, *auth_env;
        const char *paging, *cursor_param, *next, *page_param, *size_param;
        long long first_page, page_size, max_pages;
        const char *records;

        /* Derived at load. */
        enum relay_poll_time_format query_format;
        enum relay_poll_paging paging_kind;
        int auth_query;    /* the token goes in the query, not a header */
        int64_t start_ms;  /* source.start, or -1 */
        char *file;        /* the file it came from, owned */
        relay_conf_t *conf;
        relay_json_map_t *map; /* topic, tenant, event_id, key, fields */
} relay_poll_source_t;

/* The source.* keys, for relay_conf_new. */
extern const relay_conf_prop_t relay_poll_source_props[];

/* Load one source file, or every *.cfg of a directory in name order
 * (names must be unique), each mapping checked against its topic's schema
 * in schemas (borrowed: it must outlive the sources, whose maps encode
 * with it). On success *out is an array of *n sources owned by the caller
 * (relay_poll_sources_free). -1 with errstr ("file:line: key 'source.x':
 * ..." or the mapping's "file:line: ...") on the first bad one. */
int relay_poll_sources_load(const char *path, relay_schemas_t *schemas,
                            relay_poll_source_t ***out, size_t *n,
                            char *errstr, size_t errstr_size);
void relay_poll_source_free(relay_poll_source_t *s);
void relay_poll_sources_free(relay_poll_source_t **s, size_t n);

/* ---- windows ---------------------------------------------------------- */

typedef struct relay_poll_window {
        int64_t from, to; /* ms since the epoch, [from, to) */
} relay_poll_window_t;

/* The first window's start without a checkpoint: source.start, or now
 * less source.lookback_ms, cut to the query's resolution. */
int64_t relay_poll_window_origin(const relay_poll_source_t *s, int64_t now);

/* The window after checkpoint ckpt (the last window's end) at wall time
 * now: 0 with *w when one is due (a full interval, or max_window_ms,
 * has passed beyond ckpt + delay_ms), else the ms until one is. */
int64_t relay_poll_window_next(const relay_poll_source_t *s, int64_t ckpt,
                               int64_t now, relay_poll_window_t *w);

/* Append the query value of time ms in format f to b. */
void relay_poll_time_put(relay_buf_t *b, enum relay_poll_time_format f,
                         int64_t ms);

/* The URL of one page of window w: source.url, then the window's bounds,
 * the page (page number, or cursor when not NULL) and its size, and the
 * token when it goes in the query; every value percent-encoded. Into out
 * (reset first). */
void relay_poll_request_url(const relay_poll_source_t *s,
                            const relay_poll_window_t *w, long long page,
                            const char *cursor, const char *token,
                            relay_buf_t *out);

/* ---- answers ---------------------------------------------------------- */

typedef struct relay_poll_answer {
        json_t *root;    /* the parsed answer, owned */
        json_t *records; /* the records array, borrowed from root */
        char *cursor;    /* the next page's cursor (owned), NULL: none */
        int more;        /* another page follows */
} relay_poll_answer_t;

/* Parse one answer body: the records at source.records (an array of
 * objects; "" the answer itself), and whether another page follows (a
 * cursor at source.paging.next that is a non-empty string or a number;
 * for numbered pages, a full page). RELAY_OK with *a filled (release with
 * relay_poll_answer_free), or RELAY_RETRY with errstr when the answer is
 * not what the source promises (not JSON, no records array, an item not
 * an object): the source's trouble, not a record's. */
enum relay_result relay_poll_answer_parse(const relay_poll_source_t *s,
                                          const char *body, size_t len,
                                          relay_poll_answer_t *a, char *errstr,
                                          size_t errstr_size);
void relay_poll_answer_free(relay_poll_answer_t *a);

/* Map one record of answer a (its JSON mapping; batch.x paths read the
 * whole answer) into its topic's Avro record: the key, the value (owned
 * by the source's map until its next call) and the event id. 0, or -1
 * with errstr when the record lacks what it must carry or has it in
 * another form: the record's fault. */
int relay_poll_record_map(const relay_poll_source_t *s,
                          const relay_poll_answer_t *a, json_t *rec,
                          relay_buf_t *key, const void **value,
                          size_t *value_len, char event_id[RELAY_UUID_SIZE],
                          char *errstr, size_t errstr_size);

/* ---- checkpoints ------------------------------------------------------ */

typedef struct relay_poll_checkpoint {
        int64_t window_start, window_end; /* the window done, [start, end) */
        int64_t records;                  /* records it held */
        int64_t written_at;               /* wall time of the write */
} relay_poll_checkpoint_t;

/* The checkpoint record's value (JSON) for source name, into out (reset
 * first). */
void relay_poll_checkpoint_encode(const char *name,
                                  const relay_poll_checkpoint_t *c,
                                  relay_buf_t *out);
/* Parse a checkpoint value of source name: 0 with *c, or -1 with errstr
 * (not JSON, another source's, no window_end). */
int relay_poll_checkpoint_decode(const char *name, const void *buf,
                                 size_t len, relay_poll_checkpoint_t *c,
                                 char *errstr, size_t errstr_size);

/* ---- the worker ------------------------------------------------------- */

/* The poll.* keys, for relay_worker_conf. */
extern const relay_conf_prop_t relay_poll_props[];

typedef struct relay_poll relay_poll_t;

/* Load the sources and schemas of conf, make the checkpoint topic if it
 * is missing, and join the group. NULL with errstr. conf is borrowed and
 * must outlive the worker. */
relay_poll_t *relay_poll_new(const relay_conf_t *conf, char *errstr,
                             size_t errstr_size);
/* Run until relay_run is cleared; 0, or -1 on a fatal producer error. */
int relay_poll_run(relay_poll_t *p);
void relay_poll_destroy(relay_poll_t *p);

#endif
