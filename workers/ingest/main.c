/*
 * relay-ingest: the HTTP ways into relay, on libmicrohttpd.
 *
 *   POST /v1/events/{source}/{event_type}   a platform's webhook: a JSON
 *   POST /{tenant}/{event_type}             record (or an array, or a batch)
 *                                           mapped by the source's file and
 *                                           produced as Avro to its topic
 *   GET  /c/{token}                         signed click redirect (302)
 *   GET  /r/{token}                         read-online tracker (1x1 GIF)
 *   GET  /sync?site=&partner=&cookieid=     cookie-sync pixel (1x1 GIF)
 *
 * A webhook is answered 2xx only once Kafka has acknowledged every record
 * it accepted: the request is suspended after the produce and resumed by
 * the main thread when the delivery reports are in (the producer's
 * message.timeout.ms bounds the wait; a record that timed out or could
 * not be queued is answered 503 with Retry-After, so the platform sends
 * it again, and its event_id makes the second copy the same event).
 *
 * Clicks and pixels answer at once and do not wait for Kafka: a person
 * clicking a link must never be left on a blank page because a broker is
 * slow. A record Kafka would not queue is counted
 * (relay_ingest_records_total{result="unrecorded"}), one it refused later
 * is logged by the producer's report, and a crash loses at most the
 * records of the last linger.ms.
 *
 * Threads: libmicrohttpd's one polling thread runs every handler (so the
 * sources' writers and the metrics' series are used from one thread); the
 * main thread serves the producer's delivery reports and resumes
 * suspended requests; the pending list between them is under a lock.
 */
#include "relay/admin.h"
#include "relay/ingest.h"
#include "relay/kafka.h"
#include "relay/link.h"
#include "relay/log.h"
#include "relay/metrics.h"
#include "relay/pixel.h"
#include "relay/sign.h"
#include "relay/worker.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const relay_conf_prop_t ingest_props[] = {
    {"ingest.address", RELAY_CONF_STRING, "0.0.0.0", 0, -1, 0,
     "IPv4 address to listen on", 0},
    {"ingest.port", RELAY_CONF_INT, "8080", -1, 65535, 0,
     "port to listen on (-1: any free port, logged and written to "
     "ingest.port_file)",
     0},
    {"ingest.port_file", RELAY_CONF_STRING, "", 0, -1, 0,
     "where to write the port served, once listening (empty: nowhere)", 0},
    {"ingest.sources", RELAY_CONF_STRING, NULL, 0, -1, RELAY_CONF_REQUIRED,
     "directory of source files (*.cfg), or one file", 0},
    {"ingest.max_body_bytes", RELAY_CONF_INT, "1048576", 1, 104857600, 0,
     "larger request bodies are answered 413", 0},
    {"ingest.max_records", RELAY_CONF_INT, "1000", 1, 100000, 0,
     "most records one request may carry (more: 413)", 0},
    {"ingest.max_connections", RELAY_CONF_INT, "1024", 1, 65536, 0,
     "connections served at once", 0},
    {"ingest.max_header_bytes", RELAY_CONF_INT, "32768", 4096, 1048576, 0,
     "memory for one request's line and headers (larger: 431)", 0},
    {"ingest.timeout_s", RELAY_CONF_INT, "30", 1, 3600, 0,
     "an idle connection is closed after this long", 0},
    {"ingest.ack_timeout_ms", RELAY_CONF_INT, "5000", 100, 300000, 0,
     "longest a webhook waits for Kafka's acknowledgement before 503 (the "
     "producer's message.timeout.ms unless kafka sets it)",
     0},
    {"ingest.retry_after_s", RELAY_CONF_INT, "5", 1, 3600, 0,
     "the Retry-After of a 503", 0},
    {"ingest.access_log", RELAY_CONF_BOOL, "true", 0, -1, 0,
     "one JSON line per request on stdout (no tokens, no cookie values)", 0},
    {"ingest.link_keys", RELAY_CONF_STRING, NULL, 0, -1, RELAY_CONF_SECRET,
     "the keys signed links are checked with, id:secret[,id:secret] "
     "(RELAY_INGEST_LINK_KEYS; unset: /c and /r answer 404)",
     0},
    {"ingest.link_source", RELAY_CONF_STRING, "mapp_engage", 0, -1, 0,
     "source of a click record when the link names none", 0},
    {"ingest.clicks_topic", RELAY_CONF_STRING, "link.clicks", 0, -1, 0,
     "topic of clicks and read-online views", 0},
    {"ingest.syncs_topic", RELAY_CONF_STRING, "cookie.syncs", 0, -1, 0,
     "topic of cookie syncs", 0},
    {"ingest.sync_tenant", RELAY_CONF_STRING, "", 0, -1, 0,
     "the client whose match table a sync feeds (empty: /sync answers 404)",
     0},
    {"ingest.sync_source", RELAY_CONF_STRING, "digitalaudience", 0, -1, 0,
     "source of a sync record", 0},
    {"ingest.cookie_name", RELAY_CONF_STRING, "relay_dmp", 0, -1, 0,
     "the first-party DMP cookie", 0},
    {"ingest.cookie_domain", RELAY_CONF_STRING, "", 0, -1, 0,
     "its Domain attribute, the DMP cookie domain (empty: host-only)", 0},
    {"ingest.cookie_max_age_s", RELAY_CONF_INT, "34128000", 0, 315360000, 0,
     "its Max-Age (default 395 days)", 0},
    {"ingest.trusted_proxies", RELAY_CONF_STRING, "", 0, -1, 0,
     "IPv4 addresses or a.b.c.d/bits blocks of the proxies in front (a "
     "load balancer, an ingress): from them the visitor's address is taken "
     "from X-Forwarded-For for the click's ip_hash (empty: the peer's)",
     0},
    {"ingest.ip_salt", RELAY_CONF_STRING, NULL, 0, -1, RELAY_CONF_SECRET,
     "salt of the visitor's IP hash on clicks (RELAY_INGEST_IP_SALT; unset: "
     "no ip_hash)",
     0},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

enum route { R_EVENTS, R_TENANT, R_CLICK, R_READ, R_SYNC, R_OTHER, NROUTES };
static const char *const route_names[NROUTES] = {
    "events", "tenant", "click", "read", "sync", "other"};

/* One record of a webhook. */
struct item {
        unsigned status; /* 0: produced, waiting for its report */
        char event_id[RELAY_UUID_SIZE];
        char *error;
        relay_kafka_ack_t ack;
};

struct req {
        enum route route;
        int64_t t0;
        char id[RELAY_UUID_SIZE];
        const relay_ingest_source_t *src;
        char *tenant, *event_type;
        relay_buf_t body;
        int too_large;
        int resumed; /* the reports are in: answer */
        unsigned status;
        struct item *items;
        size_t nitems;
        int single;
        struct MHD_Connection *con;
        struct req *next; /* pending list */
};

static struct {
        const relay_conf_t *conf;
        rd_kafka_t *rk;
        relay_schemas_t *schemas;
        relay_ingest_t *sources;
        relay_link_keys_t *keys;
        relay_proxies_t *proxies;
        relay_avro_writer_t *clicks, *syncs;
        struct MHD_Daemon *mhd;
        pthread_mutex_t lock;
        struct req *pending;
        volatile size_t npending; /* read without the lock as a hint */
        int stopping; /* under lock: answer 503, suspend nothing */
        long long max_body, max_records, retry_after;
        int access_log;
        const char *cookie_name, *cookie_domain;
        long long cookie_max_age;
        const char *ip_salt;
        relay_buf_t key, scratch;
        relay_series_t *requests[NROUTES][6]; /* by status class, see cls */
        relay_series_t *unrecorded;
        relay_metric_t *records;
        /* relay_ingest_records_total's series by source (in load order)
         * and result (enum result), made on first use and kept, so that a
         * request does not look its label values up. */
        relay_series_t *(*rec)[3];
        relay_series_t *latency;
        /* relay_mono_ms of the last webhook Kafka did not acknowledge in
         * time (0: none since the last success), see output_lapse(). */
        _Atomic int_least64_t unacked_at;
} G;

static int status_cls(unsigned s)
{
        return s >= 200 && s < 600 ? (int)(s / 100) : 0;
}

static void count_request(enum route r, unsigned status, int64_t t0)
{
        relay_series_t **s = &G.requests[r][status_cls(status)];
        if (!*s) {
                static const char *const cls[] = {"other", "1xx", "2xx",
                                                  "3xx",   "4xx", "5xx"};
                *s = relay_series(
                    relay_metric(RELAY_METRIC_COUNTER,
                                 "relay_ingest_requests_total",
                                 "requests answered, by route and status "
                                 "class",
                                 "route,status", NULL, 0),
                    route_names[r], cls[status_cls(status)]);
        }
        relay_metric_add(*s, 1);
        relay_metric_observe(G.latency,
                             (double)(relay_mono_ms() - t0) / 1000.0);
}

enum result { RES_ACCEPTED, RES_REJECTED, RES_UNAVAILABLE };

static void count_records(const relay_ingest_source_t *s, enum result r,
                          double n)
{
        static const char *const names[] = {"accepted", "rejected",
                                            "unavailable"};
        if (n <= 0)
                return;
        size_t i = 0;
        while (relay_ingest_get(G.sources, i) != s)
                i++;
        if (!G.rec[i][r])
                G.rec[i][r] = relay_series(G.records, relay_ingest_name(s),
                                           names[r]);
        relay_metric_add(G.rec[i][r], n);
}

/* The access log: one JSON line, the path without its query (a token
 * may be there) and without the token of /c and /r. */
static void access_log(const struct req *q, const char *method,
                       const char *url, unsigned status)
{
        if (!G.access_log)
                return;
        relay_buf_t *b = &G.scratch;
        relay_buf_reset(b);
        relay_buf_puts(b, "{\"ts\":");
        relay_buf_iso_ms(b, relay_now_ms());
        relay_buf_puts(b, ",\"request_id\":\"");
        relay_buf_puts(b, q->id);
        relay_buf_puts(b, "\",\"method\":");
        relay_buf_json_str(b, method, strlen(method));
        relay_buf_puts(b, ",\"path\":");
        if (q->route == R_CLICK || q->route == R_READ)
                relay_buf_puts(b, q->route == R_CLICK ? "\"/c/…\"" : "\"/r/…\"");
        else
                relay_buf_json_str(b, url, strnlen(url, 512));
        relay_buf_printf(b, ",\"route\":\"%s\",\"status\":%u,\"ms\":%lld",
                         route_names[q->route], status,
                         (long long)(relay_mono_ms() - q->t0));
        if (q->src) {
                relay_buf_puts(b, ",\"source\":");
                relay_buf_json_str(b, relay_ingest_name(q->src),
                                   strlen(relay_ingest_name(q->src)));
                relay_buf_printf(b, ",\"records\":%zu", q->nitems);
        }
        relay_buf_puts(b, "}\n");
        fwrite(b->data, 1, b->len, stdout);
        fflush(stdout);
}

static enum MHD_Result respond(struct MHD_Connection *con, struct req *q,
                               unsigned status, const char *type,
                               const void *body, size_t len,
                               const char *const *headers)
{
        struct MHD_Response *r = MHD_create_response_from_buffer(
            len, (void *)body, MHD_RESPMEM_MUST_COPY);
        if (!r)
                return MHD_NO;
        if (type)
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(r, "X-Request-Id", q->id);
        for (size_t i = 0; headers && headers[i]; i += 2)
                MHD_add_response_header(r, headers[i], headers[i + 1]);
        if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
                char ra[32];
                snprintf(ra, sizeof(ra), "%lld", G.retry_after);
                MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
        }
        enum MHD_Result ret = MHD_queue_response(con, status, r);
        MHD_destroy_response(r);
        q->status = status;
        return ret;
}

/* {"error": msg} with status. */
static enum MHD_Result error_json(struct MHD_Connection *con, struct req *q,
                                  unsigned status, const char *msg)
{
        relay_buf_t b;
        relay_buf_init(&b);
        relay_buf_puts(&b, "{\"error\":");
        relay_buf_json_str(&b, msg, strlen(msg));
        relay_buf_puts(&b, ",\"request_id\":\"");
        relay_buf_puts(&b, q->id);
        relay_buf_puts(&b, "\"}\n");
        enum MHD_Result r =
            respond(con, q, status, "application/json", b.data, b.len, NULL);
        relay_buf_free(&b);
        return r;
}

static void req_free(struct req *q)
{
        for (size_t i = 0; i < q->nitems; i++) {
                free(q->items[i].error);
                relay_kafka_ack_release(&q->items[i].ack);
        }
        free(q->items);
        free(q->tenant);
        free(q->event_type);
        relay_buf_free(&q->body);
        free(q);
}

static void completed(void *cls, struct MHD_Connection *con, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
        (void)cls;
        (void)con;
        (void)toe;
        struct req *q = *con_cls;
        if (q)
                req_free(q);
        *con_cls = NULL;
}

/* The token of a webhook, from the source's header or query parameter. */
static const char *token_of(struct MHD_Connection *con,
                            const relay_ingest_source_t *s)
{
        const char *h = relay_ingest_token_header(s),
                   *qp = relay_ingest_token_query(s), *t = NULL;
        if (h)
                t = MHD_lookup_connection_value(con, MHD_HEADER_KIND, h);
        if (!t && qp)
                t = MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, qp);
        /* "Bearer <token>" in Authorization is the token. */
        if (t && h && !strcasecmp(h, "Authorization") &&
            !strncasecmp(t, "Bearer ", 7))
                t += 7;
        return t;
}

/* Split "/a/b" (exactly two non-empty segments after prefix) into a, b. */
static int two_segments(const char *url, char **a, char **b)
{
        const char *p = url + 1, *slash = strchr(p, '/');
        if (!slash || slash == p || !slash[1] || strchr(slash + 1, '/'))
                return -1;
        *a = relay_strndup(p, (size_t)(slash - p));
        *b = relay_strdup(slash + 1);
        return 0;
}

/* Route a webhook and check what can be checked before the body: the
 * source, the event type, the token, the declared length. 0 to read the
 * body, or a status to answer at once (with msg). */
static unsigned webhook_start(struct MHD_Connection *con, struct req *q,
                              const char *url, const char **msg)
{
        char *a = NULL, *b = NULL;
        if (!strncmp(url, "/v1/events/", 11)) {
                q->route = R_EVENTS;
                if (two_segments(url + 10, &a, &b)) {
                        *msg = "want POST /v1/events/{source}/{event_type}";
                        return MHD_HTTP_NOT_FOUND;
                }
                q->src = relay_ingest_find(G.sources, a, strlen(a));
                free(a);
                if (!q->src) {
                        free(b);
                        *msg = "unknown source";
                        return MHD_HTTP_NOT_FOUND;
                }
        } else {
                q->route = R_TENANT;
                /* /v1/... is never a tenant: a wrong /v1 path is 404. */
                q->src = strncmp(url, "/v1/", 4)
                             ? relay_ingest_tenant_route(G.sources)
                             : NULL;
                if (!q->src || two_segments(url, &a, &b)) {
                        q->src = NULL;
                        *msg = "not found";
                        return MHD_HTTP_NOT_FOUND;
                }
                q->tenant = a;
        }
        q->event_type = b;
        if (!relay_ingest_event_type_ok(q->src, b, strlen(b))) {
                *msg = "unknown event type for this source";
                return MHD_HTTP_NOT_FOUND;
        }
        if (!relay_ingest_token_ok(q->src, token_of(con, q->src))) {
                *msg = "missing or wrong token";
                return MHD_HTTP_UNAUTHORIZED;
        }
        const char *cl = MHD_lookup_connection_value(
            con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)G.max_body) {
                *msg = "body too large";
                return MHD_HTTP_CONTENT_TOO_LARGE;
        }
        return 0;
}

/* Map and produce every record of a complete body. Returns 1 when some
 * record waits for its report (the caller suspends), 0 when every item
 * has its status, or a status for the whole request (with msg). */
static unsigned webhook_body(struct req *q, relay_buf_t *msg)
{
        json_error_t jerr;
        json_t *body = json_loadb(q->body.data ? q->body.data : "",
                                  q->body.len, 0, &jerr);
        if (!body) {
                relay_buf_printf(msg, "malformed JSON at line %d, column %d: %s",
                                 jerr.line, jerr.column, jerr.text);
                return MHD_HTTP_BAD_REQUEST;
        }
        char why[768];
        json_t *recs = relay_ingest_records(q->src, body, &q->single, why,
                                            sizeof(why));
        size_t n = q->single ? 1 : json_array_size(recs);
        if (!recs || n == 0) {
                relay_buf_puts(msg, recs ? "no records in the body" : why);
                json_decref(body);
                return MHD_HTTP_BAD_REQUEST;
        }
        if (n > (size_t)G.max_records) {
                relay_buf_printf(msg, "%zu records, more than the %lld a "
                                 "request may carry", n, G.max_records);
                json_decref(body);
                return MHD_HTTP_CONTENT_TOO_LARGE;
        }
        q->items = relay_calloc(n, sizeof(*q->items));
        q->nitems = n;
        relay_ingest_req_t rq = {q->tenant, q->event_type, body};
        const char *topic = relay_ingest_topic(q->src);
        int waiting = 0;
        for (size_t i = 0; i < n; i++) {
                struct item *it = &q->items[i];
                const void *val;
                size_t len;
                json_t *rec = q->single ? recs : json_array_get(recs, i);
                if (relay_ingest_map(q->src, &rq, rec, &G.key, &val, &len,
                                     it->event_id, why, sizeof(why))) {
                        it->status = MHD_HTTP_BAD_REQUEST;
                        it->error = relay_strdup(why);
                        continue;
                }
                rd_kafka_resp_err_t err = relay_kafka_produce_once(
                    G.rk, topic, G.key.data, G.key.len, val, len, NULL,
                    &it->ack, 0);
                if (err) {
                        enum relay_kafka_class c = relay_kafka_err_class(err);
                        it->status = c == RELAY_KAFKA_RECORD
                                         ? MHD_HTTP_CONTENT_TOO_LARGE
                                         : MHD_HTTP_SERVICE_UNAVAILABLE;
                        it->error = relay_strdup(rd_kafka_err2str(err));
                        continue;
                }
                waiting = 1;
        }
        json_decref(body);
        return (unsigned)waiting;
}

/* After the reports: each waiting item's status from its ack. */
static void settle(struct req *q)
{
        size_t ok = 0, bad = 0, down = 0;
        for (size_t i = 0; i < q->nitems; i++) {
                struct item *it = &q->items[i];
                if (!it->status) {
                        if (!it->ack.err) {
                                it->status = MHD_HTTP_ACCEPTED;
                        } else {
                                enum relay_kafka_class c =
                                    relay_kafka_err_class(it->ack.err);
                                it->status = c == RELAY_KAFKA_RECORD
                                                 ? MHD_HTTP_CONTENT_TOO_LARGE
                                                 : MHD_HTTP_SERVICE_UNAVAILABLE;
                                it->error =
                                    relay_strdup(rd_kafka_err2str(it->ack.err));
                        }
                }
                ok += it->status == MHD_HTTP_ACCEPTED;
                down += it->status == MHD_HTTP_SERVICE_UNAVAILABLE;
                bad += it->status != MHD_HTTP_ACCEPTED &&
                       it->status != MHD_HTTP_SERVICE_UNAVAILABLE;
        }
        count_records(q->src, RES_ACCEPTED, (double)ok);
        count_records(q->src, RES_REJECTED, (double)bad);
        count_records(q->src, RES_UNAVAILABLE, (double)down);
        if (down) {
                relay_ready_set(RELAY_READY_OUTPUT,
                                "Kafka did not acknowledge records of %s in "
                                "time",
                                relay_ingest_topic(q->src));
                atomic_store(&G.unacked_at, relay_mono_ms());
        } else if (ok && atomic_exchange(&G.unacked_at, 0)) {
                /* Only a mark that is set is cleared: relay_ready_set
                 * takes the admin lock, not something every webhook
                 * should do. */
                relay_ready_set(RELAY_READY_OUTPUT, NULL);
        }
}

/* A replica marked not ready is sent no webhooks (a load balancer
 * drops it), so no success would ever clear the mark: it lapses
 * ingest.retry_after_s after the last webhook that timed out. While no
 * broker is up the kafka condition keeps the replica not ready anyway. */
static void output_lapse(void)
{
        int_least64_t at = atomic_load(&G.unacked_at);
        if (at && relay_mono_ms() - at >= G.retry_after * 1000 &&
            atomic_compare_exchange_strong(&G.unacked_at, &at, 0))
                relay_ready_set(RELAY_READY_OUTPUT, NULL);
}

static enum MHD_Result webhook_answer(struct MHD_Connection *con,
                                      struct req *q)
{
        settle(q);
        relay_buf_t b;
        relay_buf_init(&b);
        unsigned status;
        if (q->single) {
                struct item *it = &q->items[0];
                status = it->status;
                if (status == MHD_HTTP_ACCEPTED) {
                        relay_buf_printf(&b, "{\"event_id\":\"%s\"",
                                         it->event_id);
                } else {
                        relay_buf_puts(&b, "{\"error\":");
                        relay_buf_json_str(&b, it->error, strlen(it->error));
                }
        } else {
                /* One status when every record has it; 207 when mixed. */
                status = q->items[0].status;
                relay_buf_puts(&b, "{\"results\":[");
                for (size_t i = 0; i < q->nitems; i++) {
                        struct item *it = &q->items[i];
                        if (it->status != status)
                                status = 207;
                        relay_buf_printf(&b, "%s{\"index\":%zu,\"status\":%u,",
                                         i ? "," : "", i, it->status);
                        if (it->status == MHD_HTTP_ACCEPTED) {
                                relay_buf_printf(&b, "\"event_id\":\"%s\"}",
                                                 it->event_id);
                        } else {
                                relay_buf_puts(&b, "\"error\":");
                                relay_buf_json_str(&b, it->error,
                                                   strlen(it->error));
                                relay_buf_puts(&b, "}");
                        }
                }
                relay_buf_puts(&b, "]");
        }
        relay_buf_printf(&b, ",\"request_id\":\"%s\"}\n", q->id);
        enum MHD_Result r =
            respond(con, q, status, "application/json", b.data, b.len, NULL);
        relay_buf_free(&b);
        return r;
}

/* The DMP cookie of the request, or a new one (then *set is 1). */
static void dmp_cookie(struct MHD_Connection *con, char out[RELAY_UUID_SIZE],
                       int *set)
{
        const char *c = MHD_lookup_connection_value(con, MHD_COOKIE_KIND,
                                                    G.cookie_name);
        *set = !relay_pixel_cookie_ok(c);
        if (*set)
                relay_uuid4(out);
        else
                snprintf(out, RELAY_UUID_SIZE, "%s", c);
}

static void set_cookie_header(const char *value, char *out, size_t n)
{
        snprintf(out, n, "%s=%s; Max-Age=%lld; Path=/%s%s; Secure; HttpOnly; "
                 "SameSite=Lax",
                 G.cookie_name, value, G.cookie_max_age,
                 *G.cookie_domain ? "; Domain=" : "", G.cookie_domain);
}

/* Produce a record built as natural JSON, without waiting (see the top). */
static int fire(relay_avro_writer_t *w, const char *topic, json_t *rec,
                const char *key, char *errstr, size_t errstr_size)
{
        const void *val;
        size_t len;
        if (relay_avro_from_json(relay_avro_writer_value(w), rec, errstr,
                                 errstr_size) ||
            relay_avro_writer_encode(w, &val, &len, errstr, errstr_size))
                return -1;
        rd_kafka_resp_err_t err = relay_kafka_produce_once(
            G.rk, topic, key, strlen(key), val, len, NULL, NULL, 0);
        if (err) {
                relay_metric_add(G.unrecorded, 1);
                relay_seterr(errstr, errstr_size, "%s", rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

static const char *client_ip(struct MHD_Connection *con, char *buf, size_t n)
{
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        buf[0] = '\0';
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
                inet_ntop(AF_INET,
                          &((const struct sockaddr_in *)ci->client_addr)
                               ->sin_addr,
                          buf, (socklen_t)n);
        return buf;
}

/* GET /c/{token} (302) and /r/{token} (a GIF). A HEAD is answered alike
 * but records nothing: link checkers and mail scanners send HEADs, and a
 * person's browser never does. */
static enum MHD_Result click(struct MHD_Connection *con, struct req *q,
                             const char *token, int head)
{
        char why[512], cookie[RELAY_UUID_SIZE], eid[RELAY_UUID_SIZE];
        relay_link_t l;
        if (!G.keys)
                return error_json(con, q, MHD_HTTP_NOT_FOUND, "not found");
        if (relay_link_verify(token, strlen(token), G.keys, &l, why,
                              sizeof(why)))
                return error_json(con, q, MHD_HTTP_BAD_REQUEST, why);
        int set;
        dmp_cookie(con, cookie, &set);
        relay_uuid4(eid);
        json_t *ids = json_object();
        json_object_set_new(ids, "dmp_cookie_id", json_string(cookie));
        if (l.contact)
                json_object_set_new(ids, "engage_user_id",
                                    json_string(l.contact));
        if (l.email_sha256)
                json_object_set_new(ids, "email_sha256",
                                    json_string(l.email_sha256));
        const char *ua =
            MHD_lookup_connection_value(con, MHD_HEADER_KIND, "User-Agent");
        json_t *rec = json_pack(
            "{s:s, s:I, s:s, s:s, s:s, s:o, s:s, s:s}", "event_id", eid,
            "occurred_at", (json_int_t)relay_now_ms(), "tenant", l.tenant,
            "source", l.source ? l.source : relay_conf_str(G.conf,
                                                           "ingest.link_source"),
            "kind", q->route == R_CLICK ? "LINK" : "READ_ONLINE", "identities",
            ids, "message_id", l.message_id, "url", l.url);
        json_object_set_new(rec, "campaign",
                            l.campaign ? json_string(l.campaign) : json_null());
        json_object_set_new(rec, "link_id",
                            l.link_id && q->route == R_CLICK
                                ? json_string(l.link_id)
                                : json_null());
        json_object_set_new(rec, "user_agent",
                            ua ? relay_json_text(ua, strnlen(ua, 1024))
                               : json_null());
        if (G.ip_salt) {
                char peer[64], ip[16], hex[2 * RELAY_SIGN_SHA256_LEN + 1];
                relay_client_ip(G.proxies, client_ip(con, peer, sizeof(peer)),
                                MHD_lookup_connection_value(
                                    con, MHD_HEADER_KIND, "X-Forwarded-For"),
                                ip);
                relay_sign_part_t parts[] = {{G.ip_salt, strlen(G.ip_salt)},
                                             {ip, strlen(ip)}};
                relay_sign_sha256_hex(parts, 2, hex);
                json_object_set_new(rec, "ip_hash", json_string(hex));
        }
        if (!head && fire(G.clicks,
                          relay_conf_str(G.conf, "ingest.clicks_topic"), rec,
                          cookie, why, sizeof(why)))
                relay_log(LOG_WARNING, "ingest", "click not recorded: %s",
                          why);
        json_decref(rec);
        char sc[512];
        set_cookie_header(cookie, sc, sizeof(sc));
        const char *hdrs[] = {MHD_HTTP_HEADER_LOCATION, l.url,
                              set ? MHD_HTTP_HEADER_SET_COOKIE : NULL, sc,
                              NULL};
        enum MHD_Result r;
        if (q->route == R_CLICK)
                r = respond(con, q, MHD_HTTP_FOUND, NULL, "", 0, hdrs);
        else
                r = respond(con, q, MHD_HTTP_OK, "image/gif", relay_pixel_gif,
                            relay_pixel_gif_len, hdrs + 2);
        relay_link_free(&l);
        return r;
}

static enum MHD_Result sync_pixel(struct MHD_Connection *con, struct req *q,
                                  int head)
{
        const char *tenant = relay_conf_str(G.conf, "ingest.sync_tenant");
        if (!*tenant)
                return error_json(con, q, MHD_HTTP_NOT_FOUND, "not found");
        relay_sync_params_t p = {
            MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "site"),
            MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "partner"),
            MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND,
                                        "cookieid"),
            MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "gdpr"),
            MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND,
                                        "gdpr_consent")};
        char why[512], cookie[RELAY_UUID_SIZE], eid[RELAY_UUID_SIZE];
        enum relay_sync_check c = relay_sync_check(&p, why, sizeof(why));
        if (c == RELAY_SYNC_BAD)
                return error_json(con, q, MHD_HTTP_BAD_REQUEST, why);
        const char *have = MHD_lookup_connection_value(con, MHD_COOKIE_KIND,
                                                       G.cookie_name);
        if (c == RELAY_SYNC_NO_ID || head) {
                /* Nothing to pair (or a HEAD, see click()): answered and
                 * counted, not produced. */
                relay_metric_add(
                    relay_series(G.records, "sync",
                                 head ? "head"
                                 : relay_pixel_cookie_ok(have)
                                     ? "no_partner_id"
                                     : "no_ids"),
                    1);
                return respond(con, q, MHD_HTTP_OK, "image/gif",
                               relay_pixel_gif, relay_pixel_gif_len, NULL);
        }
        int set;
        dmp_cookie(con, cookie, &set);
        relay_uuid4(eid);
        json_t *rec = json_pack(
            "{s:s, s:I, s:s, s:s, s:s, s:s, s:s}", "event_id", eid,
            "occurred_at", (json_int_t)relay_now_ms(), "tenant", tenant,
            "source", relay_conf_str(G.conf, "ingest.sync_source"), "partner",
            p.partner, "partner_user_id", p.partner_uid, "cookie_id", cookie);
        json_object_set_new(rec, "site",
                            p.site && *p.site ? json_string(p.site)
                                              : json_null());
        if (p.gdpr)
                json_object_set_new(
                    rec, "consent",
                    json_pack("{s:b, s:o}", "gdpr_applies", p.gdpr[0] == '1',
                              "tcf_string",
                              p.gdpr_consent && *p.gdpr_consent
                                  ? json_string(p.gdpr_consent)
                                  : json_null()));
        if (fire(G.syncs, relay_conf_str(G.conf, "ingest.syncs_topic"), rec,
                 cookie, why, sizeof(why)))
                relay_log(LOG_WARNING, "ingest", "sync not recorded: %s", why);
        else
                relay_metric_add(relay_series(G.records, "sync", "produced"),
                                 1);
        json_decref(rec);
        char sc[512];
        set_cookie_header(cookie, sc, sizeof(sc));
        const char *hdrs[] = {MHD_HTTP_HEADER_SET_COOKIE, sc, NULL};
        return respond(con, q, MHD_HTTP_OK, "image/gif", relay_pixel_gif,
                       relay_pixel_gif_len, set ? hdrs : NULL);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *con,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
        (void)cls;
        (void)version;
        struct req *q = *con_cls;
        if (!q) {
                q = relay_calloc(1, sizeof(*q));
                q->t0 = relay_mono_ms();
                q->con = con;
                relay_uuid4(q->id);
                relay_buf_init(&q->body);
                *con_cls = q;
                q->route = R_OTHER;
                enum MHD_Result r;
                int head = !strcmp(method, "HEAD");
                if (!strcmp(method, "GET") || head) {
                        if (!strncmp(url, "/c/", 3)) {
                                q->route = R_CLICK;
                                r = click(con, q, url + 3, head);
                        } else if (!strncmp(url, "/r/", 3)) {
                                q->route = R_READ;
                                r = click(con, q, url + 3, head);
                        } else if (!strcmp(url, "/sync")) {
                                q->route = R_SYNC;
                                r = sync_pixel(con, q, head);
                        } else {
                                r = error_json(con, q, MHD_HTTP_NOT_FOUND,
                                               "not found");
                        }
                } else if (!strcmp(method, "POST")) {
                        const char *msg = NULL;
                        unsigned st = webhook_start(con, q, url, &msg);
                        if (!st)
                                return MHD_YES; /* read the body */
                        r = error_json(con, q, st, msg);
                } else {
                        r = error_json(con, q, MHD_HTTP_METHOD_NOT_ALLOWED,
                                       "method not allowed");
                }
                count_request(q->route, q->status, q->t0);
                access_log(q, method, url, q->status);
                return r;
        }
        if (*upload_size) {
                if (!q->too_large &&
                    q->body.len + *upload_size > (size_t)G.max_body) {
                        q->too_large = 1;
                        relay_buf_free(&q->body);
                        relay_buf_init(&q->body);
                }
                if (!q->too_large)
                        relay_buf_append(&q->body, upload, *upload_size);
                *upload_size = 0;
                return MHD_YES;
        }
        enum MHD_Result r;
        if (q->resumed) {
                r = webhook_answer(con, q);
        } else if (q->too_large) {
                r = error_json(con, q, MHD_HTTP_CONTENT_TOO_LARGE,
                               "body too large");
        } else {
                relay_buf_t msg;
                relay_buf_init(&msg);
                /* Produce, list and suspend under the lock, so that the
                 * main thread, which resumes what the reports finished,
                 * cannot look at the list between a record's report and
                 * its request's listing (it would not look again). */
                pthread_mutex_lock(&G.lock);
                unsigned st = MHD_HTTP_SERVICE_UNAVAILABLE;
                if (G.stopping) /* nothing may be suspended any more */
                        relay_buf_puts(&msg, "shutting down");
                else
                        st = webhook_body(q, &msg);
                if (st == 1) {
                        q->next = G.pending;
                        G.pending = q;
                        G.npending++;
                        MHD_suspend_connection(con);
                        pthread_mutex_unlock(&G.lock);
                        relay_buf_free(&msg);
                        return MHD_YES;
                }
                pthread_mutex_unlock(&G.lock);
                r = st ? error_json(con, q, st, msg.data)
                       : webhook_answer(con, q);
                relay_buf_free(&msg);
        }
        count_request(q->route, q->status, q->t0);
        access_log(q, method, url, q->status);
        return r;
}

/* Resume every pending request whose records all have their reports. */
static void resume_ready(int all)
{
        pthread_mutex_lock(&G.lock);
        for (struct req **pp = &G.pending; *pp;) {
                struct req *q = *pp;
                int done = 1;
                for (size_t i = 0; i < q->nitems && done; i++)
                        done = q->items[i].status || q->items[i].ack.done;
                if (!done && !all) {
                        pp = &q->next;
                        continue;
                }
                for (size_t i = 0; i < q->nitems; i++)
                        if (!q->items[i].status && !q->items[i].ack.done) {
                                /* Stopping with a record in the air: its
                                 * fate is unknown, so the platform must
                                 * send it again. */
                                q->items[i].status =
                                    MHD_HTTP_SERVICE_UNAVAILABLE;
                                q->items[i].error =
                                    relay_strdup("shutting down");
                        }
                *pp = q->next;
                G.npending--;
                q->resumed = 1;
                MHD_resume_connection(q->con);
        }
        pthread_mutex_unlock(&G.lock);
}

static void port_file(int port)
{
        const char *f = relay_conf_str(G.conf, "ingest.port_file");
        if (!*f)
                return;
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", f);
        FILE *fp = fopen(tmp, "w");
        if (fp) {
                fprintf(fp, "%d\n", port);
                fclose(fp);
                rename(tmp, f);
        }
}

/* poll(), not epoll: with libmicrohttpd 0.9.75's epoll (MHD_USE_AUTO
 * picks it) and suspend/resume, one run in five of wrk's 256 connections
 * for 2 s stalled after a few hundred requests (519 requests, against
 * 51,000-79,000 in the others), the connections idle and nothing
 * pending; with poll() five runs of five did 86,000-92,000 each. poll()
 * is linear in the connections, and ingest.max_connections bounds them. */
static int start(char *errstr, size_t errstr_size)
{
        char why[1024];
        if (!(G.sources = relay_ingest_load(
                  relay_conf_str(G.conf, "ingest.sources"), G.schemas, why,
                  sizeof(why)))) {
                relay_seterr(errstr, errstr_size, "%s", why);
                return -1;
        }
        if (!(G.proxies = relay_proxies_parse(
                  relay_conf_str(G.conf, "ingest.trusted_proxies"), why,
                  sizeof(why)))) {
                relay_seterr(errstr, errstr_size, "ingest.trusted_proxies: %s",
                             why);
                return -1;
        }
        G.rec = relay_calloc(relay_ingest_count(G.sources), sizeof(*G.rec));
        const char *keys = relay_conf_str(G.conf, "ingest.link_keys");
        if (keys && !(G.keys = relay_link_keys_parse(keys, why, sizeof(why)))) {
                relay_seterr(errstr, errstr_size, "ingest.link_keys: %s", why);
                return -1;
        }
        char cs[300], ss[300];
        snprintf(cs, sizeof(cs), "%s-value",
                 relay_conf_str(G.conf, "ingest.clicks_topic"));
        snprintf(ss, sizeof(ss), "%s-value",
                 relay_conf_str(G.conf, "ingest.syncs_topic"));
        if (!(G.clicks = relay_avro_writer_new(G.schemas, cs, why,
                                               sizeof(why))) ||
            !(G.syncs = relay_avro_writer_new(G.schemas, ss, why,
                                              sizeof(why)))) {
                relay_seterr(errstr, errstr_size, "%s", why);
                return -1;
        }
        if (!(G.rk = relay_kafka_producer_new(G.conf, errstr, errstr_size)))
                return -1;
        /* Before the first record to each topic (relay/kafka.h says why). */
        for (size_t i = 0; i < relay_ingest_count(G.sources); i++)
                relay_kafka_topic_warm(
                    G.rk, relay_ingest_topic(relay_ingest_get(G.sources, i)),
                    2000);
        relay_kafka_topic_warm(G.rk,
                               relay_conf_str(G.conf, "ingest.clicks_topic"),
                               2000);
        relay_kafka_topic_warm(G.rk,
                               relay_conf_str(G.conf, "ingest.syncs_topic"),
                               2000);

        long long port = relay_conf_int(G.conf, "ingest.port");
        const char *addr = relay_conf_str(G.conf, "ingest.address");
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)(port < 0 ? 0 : port));
        if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
                relay_seterr(errstr, errstr_size,
                             "ingest.address '%s' is not an IPv4 address",
                             addr);
                return -1;
        }
        G.mhd = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                MHD_ALLOW_SUSPEND_RESUME,
            0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, completed,
            NULL, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)relay_conf_int(G.conf, "ingest.timeout_s"),
            MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)relay_conf_int(G.conf, "ingest.max_connections"),
            MHD_OPTION_CONNECTION_MEMORY_LIMIT,
            (size_t)relay_conf_int(G.conf, "ingest.max_header_bytes"),
            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
        if (!G.mhd) {
                relay_seterr(errstr, errstr_size,
                             "cannot listen on %s:%lld (in use by another "
                             "process?)",
                             addr, port);
                return -1;
        }
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(G.mhd, MHD_DAEMON_INFO_BIND_PORT);
        int bound = di ? di->port : (int)port;
        relay_log(LOG_INFO, "ingest",
                  "listening on %s:%d: %zu source(s), links %s, sync %s", addr,
                  bound, relay_ingest_count(G.sources),
                  G.keys ? "on" : "off (no ingest.link_keys)",
                  *relay_conf_str(G.conf, "ingest.sync_tenant") ? "on"
                                                                : "off");
        port_file(bound);
        return 0;
}

int main(int argc, char **argv)
{
        char errstr[1024];
        const relay_conf_prop_t *tables[] = {ingest_props};
        relay_conf_t *conf = relay_worker_conf(argc, argv, "ingest", tables, 1);
        G.conf = conf;
        /* The wait for an acknowledgement is the producer's message
         * timeout, unless kafka.message_timeout_ms says otherwise. */
        int has_timeout = 0;
        for (size_t i = 0; i < relay_conf_kafka_count(conf); i++)
                has_timeout |= !strcmp(relay_conf_kafka_name(conf, i),
                                       "message.timeout.ms");
        if (!has_timeout) {
                char v[32];
                snprintf(v, sizeof(v), "%lld",
                         relay_conf_int(conf, "ingest.ack_timeout_ms"));
                relay_conf_set(conf, "kafka.message.timeout.ms", v, errstr,
                               sizeof(errstr));
        }
        relay_worker_signals();
        relay_worker_admin(conf, "ingest");
        relay_ready_set(RELAY_READY_ASSIGNED, NULL); /* no consumer here */
        relay_kafka_producer_readiness();
        pthread_mutex_init(&G.lock, NULL);
        relay_buf_init(&G.key);
        relay_buf_init(&G.scratch);
        G.max_body = relay_conf_int(conf, "ingest.max_body_bytes");
        G.max_records = relay_conf_int(conf, "ingest.max_records");
        G.retry_after = relay_conf_int(conf, "ingest.retry_after_s");
        G.access_log = relay_conf_bool(conf, "ingest.access_log");
        G.cookie_name = relay_conf_str(conf, "ingest.cookie_name");
        G.cookie_domain = relay_conf_str(conf, "ingest.cookie_domain");
        G.cookie_max_age = relay_conf_int(conf, "ingest.cookie_max_age_s");
        G.ip_salt = relay_conf_str(conf, "ingest.ip_salt");
        G.records = relay_metric(RELAY_METRIC_COUNTER,
                                 "relay_ingest_records_total",
                                 "records by source and result (accepted: "
                                 "Kafka acknowledged them before the 2xx)",
                                 "source,result", NULL, 0);
        G.unrecorded = relay_series(G.records, "link", "unrecorded");
        static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                         0.05,  0.1,    0.25,  0.5,  1,
                                         2.5,   5};
        G.latency = relay_metric_series(relay_metric(
            RELAY_METRIC_HISTOGRAM, "relay_ingest_request_seconds",
            "time from a request's headers to its answer", NULL, buckets,
            sizeof(buckets) / sizeof(buckets[0])));

        int rc = 0;
        char why[1024];
        G.schemas = relay_worker_schemas(conf, -1, why, sizeof(why));
        if (!G.schemas || start(errstr, sizeof(errstr))) {
                fprintf(stderr, "relay-ingest: %s\n",
                        G.schemas ? errstr : why);
                relay_log(LOG_ERR, "ingest", "%s", G.schemas ? errstr : why);
                rc = 1;
        }
        unsigned long seen = 0;
        while (!rc && relay_run) {
                rd_kafka_poll(G.rk, 5);
                relay_heartbeat();
                output_lapse();
                /* Also while anything is pending, not only when the
                 * reports moved: cheap, and no request can wait for ever
                 * on a report that was served before it was listed. */
                unsigned long now = relay_kafka_reports();
                if (now != seen || G.npending) {
                        seen = now;
                        resume_ready(0);
                }
        }
        if (G.mhd) {
                /* Stop taking connections, let what was produced be
                 * answered (the acks come within message.timeout.ms), then
                 * answer the rest 503 and stop. */
                MHD_quiesce_daemon(G.mhd);
                int64_t until = relay_mono_ms() +
                                relay_conf_int(conf, "ingest.ack_timeout_ms") +
                                1000;
                while (G.npending && relay_mono_ms() < until) {
                        rd_kafka_poll(G.rk, 10);
                        resume_ready(0);
                }
                pthread_mutex_lock(&G.lock);
                G.stopping = 1;
                pthread_mutex_unlock(&G.lock);
                resume_ready(1);
                /* The resumed ones are answered by libmicrohttpd's thread;
                 * stopping with one still suspended would abort. */
                while (G.npending && relay_mono_ms() < until + 1000)
                        relay_sleep_ms(10, NULL);
                relay_sleep_ms(200, NULL);
                MHD_stop_daemon(G.mhd);
        }
        if (G.rk)
                relay_kafka_producer_close(G.rk, 5000);
        relay_ingest_destroy(G.sources);
        relay_link_keys_destroy(G.keys);
        relay_proxies_destroy(G.proxies);
        free(G.rec);
        relay_avro_writer_destroy(G.clicks);
        relay_avro_writer_destroy(G.syncs);
        relay_schemas_destroy(G.schemas);
        relay_buf_free(&G.key);
        relay_buf_free(&G.scratch);
        relay_worker_end();
        relay_conf_destroy(conf);
        return rc;
}
