/*
 * The fixture of the delivery adapters' unit tests (test_<adapter>.c):
 * the schemas, an Avro writer and the compiled slot reader of the
 * adapter's out.<adapter>-value, the adapter, its conf and state, and
 * optionally a local httpd.h server to send requests to. Around it, what
 * every such test does: a conf from the adapter's own table, a record
 * through the writer and the reader into an item (as the deliver worker
 * hands it over), an answer classified, a request sent and captured, and
 * the "no allocation per record once warm" loop of alloc_count.h.
 *
 * Include after <cmocka.h>. It brings alloc_count.h, whose counters the
 * steady loop reads (after <stdlib.h>, which declares what it
 * interposes): main() calls count_init() first. Like unit.h and httpd.h
 * everything is static, so each test binary has its own copy. The
 * functions assert what must hold for the test to mean anything, and
 * return what the test itself checks.
 */
#ifndef RELAY_TESTS_ADAPTER_FIXTURE_H
#define RELAY_TESTS_ADAPTER_FIXTURE_H

#include "relay/adapter.h"
#include "relay/avro.h"
#include "httpd.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc_count.h"

struct fixture {
        relay_schemas_t *schemas;
        relay_avro_writer_t *writer;
        relay_avro_reader_t *reader;
        relay_conf_t *conf;
        const struct relay_adapter *a;
        void *st;
        struct server *srv; /* NULL unless fx_setup was given a path */
        char url[128];      /* the server's URL at that path */
        struct reply reply; /* fx_send's answer, alive while the server is */
};

/* A cmocka setup: the fixture of adapter name in *state, and with
 * url_path a server on a free port whose URL at that path is f->url.
 * Returns 0; the fixture is fx_teardown's to free. */
static inline int fx_setup(void **state, const char *name,
                           const char *url_path)
{
        char errstr[512], path[1024], schema[128];
        struct fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        const char *src = getenv("RELAY_SOURCE_DIR");
        snprintf(path, sizeof(path), "%s/schemas/manifest.cfg",
                 src ? src : ".");
        snprintf(schema, sizeof(schema), "out.%s-value", name);
        f->schemas = relay_schemas_load(path, errstr, sizeof(errstr));
        if (!f->schemas)
                fail_msg("schemas: %s", errstr);
        f->writer =
            relay_avro_writer_new(f->schemas, schema, errstr, sizeof(errstr));
        if (!f->writer)
                fail_msg("writer: %s", errstr);
        f->reader = relay_avro_reader_new(f->schemas, schema, 0, errstr,
                                          sizeof(errstr));
        if (!f->reader)
                fail_msg("reader: %s", errstr);
        f->a = relay_adapter_find(name);
        assert_non_null(f->a);
        if (url_path) {
                void *srv = NULL;
                assert_int_equal(httpd_setup(&srv), 0);
                f->srv = srv;
                make_url(f->url, sizeof(f->url), f->srv->port, url_path);
        }
        *state = f;
        return 0;
}

/* A cmocka teardown: ends the adapter state, the conf, the server and
 * the fixture fx_setup made. Returns 0. */
static inline int fx_teardown(void **state)
{
        struct fixture *f = *state;
        if (f->a && f->st)
                relay_adapter_term(f->a, f->st);
        relay_conf_destroy(f->conf);
        relay_avro_writer_destroy(f->writer);
        relay_avro_reader_destroy(f->reader);
        relay_schemas_destroy(f->schemas);
        if (f->srv) {
                void *srv = f->srv;
                httpd_teardown(&srv);
        }
        free(f);
        return 0;
}

/* A new f->conf over the adapter's key table, after ending the state and
 * the conf of an earlier one (so a test may set up again). The secrets
 * are the test's to put in the environment before fx_init. */
static inline void fx_conf_new(struct fixture *f)
{
        const relay_conf_prop_t *tables[] = {f->a->props};
        if (f->st)
                relay_adapter_term(f->a, f->st);
        f->st = NULL;
        relay_conf_destroy(f->conf);
        f->conf = relay_conf_new(tables, 1);
        assert_non_null(f->conf);
}

/* Set the n name/value pairs of kv in f->conf, each of which must be
 * accepted; a pair with a NULL name is skipped (an optional key). */
static inline void fx_conf_set(struct fixture *f, const char *const (*kv)[2],
                               size_t n, char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < n; i++)
                if (kv[i][0] && relay_conf_set(f->conf, kv[i][0], kv[i][1],
                                               errstr, errstr_size))
                        fail_msg("%s = %s: %s", kv[i][0], kv[i][1], errstr);
}

/* Finish f->conf (which must pass its checks) and init the adapter on
 * it into f->st. Returns init's 0 or -1 (errstr says why). */
static inline int fx_init(struct fixture *f, char *errstr,
                          size_t errstr_size)
{
        if (relay_conf_finish(f->conf, errstr, errstr_size))
                fail_msg("conf: %s", errstr);
        return relay_adapter_init(f->a, &f->st, f->conf, errstr, errstr_size);
}

/* fx_conf_new, fx_conf_set and fx_init in one. Returns init's result. */
static inline int fx_conf(struct fixture *f, const char *const (*kv)[2],
                          size_t n, char *errstr, size_t errstr_size)
{
        fx_conf_new(f);
        fx_conf_set(f, kv, n, errstr, errstr_size);
        return fx_init(f, errstr, errstr_size);
}

/* A restart on the same conf (as deliver does after re-reading the
 * secrets): the state ended and init again, which must succeed. */
static inline void fx_reinit(struct fixture *f)
{
        char errstr[512];
        relay_adapter_term(f->a, f->st);
        f->st = NULL;
        if (relay_adapter_init(f->a, &f->st, f->conf, errstr, sizeof(errstr)))
                fail_msg("init again: %s", errstr);
}

/* The writer's value as the deliver worker hands it over: framed, decoded
 * into slots by the compiled path, then encoded by the adapter into item
 * (emptied first). errstr is emptied first too, so a message is this
 * record's. Returns the adapter's result. */
static inline enum relay_result fx_encode_value(struct fixture *f,
                                                relay_buf_t *item,
                                                char *errstr,
                                                size_t errstr_size)
{
        const void *buf;
        size_t len;
        assert_int_equal(relay_avro_writer_encode(f->writer, &buf, &len, errstr,
                                                  errstr_size),
                         RELAY_OK);
        const relay_slots_t *slots;
        assert_int_equal(relay_avro_reader_decode_slots(f->reader, buf, len,
                                                        &slots, NULL, errstr,
                                                        errstr_size),
                         RELAY_OK);
        relay_buf_reset(item);
        errstr[0] = '\0';
        return relay_adapter_encode(f->a, f->st, slots, item, errstr,
                                    errstr_size);
}

/* rec (borrowed) into the writer's value, then fx_encode_value. */
static inline enum relay_result fx_encode(struct fixture *f, json_t *rec,
                                          relay_buf_t *item, char *errstr,
                                          size_t errstr_size)
{
        avro_value_t *v = relay_avro_writer_value(f->writer);
        if (relay_avro_from_json(v, rec, errstr, errstr_size))
                fail_msg("record does not fit the schema: %s", errstr);
        return fx_encode_value(f, item, errstr, errstr_size);
}

/* The record of the JSON text, with field set to the JSON value val (a
 * field "map.key" is the key in that map; a NULL val removes it). A new
 * reference, the caller's. */
static inline json_t *fx_record(const char *json, const char *field,
                                const char *val)
{
        json_t *rec = json_loads(json, 0, NULL);
        assert_non_null(rec);
        if (!field)
                return rec;
        const char *dot = strchr(field, '.');
        json_t *obj = rec;
        if (dot) {
                char map[64];
                snprintf(map, sizeof(map), "%.*s", (int)(dot - field), field);
                obj = json_object_get(rec, map);
                assert_non_null(obj);
                field = dot + 1;
        }
        if (val) {
                json_t *v = json_loads(val, JSON_DECODE_ANY, NULL);
                if (!v)
                        fail_msg("bad test JSON: %s", val);
                json_object_set_new(obj, field, v);
        } else {
                json_object_del(obj, field);
        }
        return rec;
}

/* The request of the n records (at most 8), each of which must encode;
 * body holds what req points into. */
static inline void fx_request_of(struct fixture *f, json_t **recs, size_t n,
                                 relay_buf_t *body, relay_http_request_t *req)
{
        char errstr[512];
        relay_buf_t items[8];
        assert_true(n <= 8);
        for (size_t i = 0; i < n; i++) {
                relay_buf_init(&items[i]);
                if (fx_encode(f, recs[i], &items[i], errstr, sizeof(errstr)) !=
                    RELAY_OK)
                        fail_msg("record %zu refused: %s", i, errstr);
        }
        relay_adapter_request(f->a, f->st, items, n, body, req);
        for (size_t i = 0; i < n; i++)
                relay_buf_free(&items[i]);
}

/* req's body is want, byte for byte. */
static inline void fx_assert_body(const relay_http_request_t *req,
                                  const char *want)
{
        if (req->body_len != strlen(want) ||
            memcmp(req->body, want, req->body_len))
                fail_msg("body differs:\n got %.*s\nwant %s",
                         (int)req->body_len, req->body, want);
}

/* The request of the n records has the body want, byte for byte, and
 * that body is JSON. */
static inline void fx_assert_records_body(struct fixture *f, json_t **recs,
                                          size_t n, const char *want)
{
        relay_buf_t body;
        relay_http_request_t req;
        relay_buf_init(&body);
        fx_request_of(f, recs, n, &body, &req);
        fx_assert_body(&req, want);
        json_error_t jerr;
        json_t *j = json_loadb(req.body, req.body_len, 0, &jerr);
        if (!j)
                fail_msg("body is not JSON: %s", jerr.text);
        json_decref(j);
        relay_buf_free(&body);
}

/* The adapter's reading of an answer: status and body (NULL: none), or
 * with transport a transport error "Timeout was reached". errstr is
 * emptied first. Returns the adapter's result. */
static inline enum relay_result fx_classify(struct fixture *f, long status,
                                            const char *body, int transport,
                                            char *errstr, size_t errstr_size)
{
        relay_http_response_t r;
        relay_http_response_init(&r);
        r.status = status;
        r.transport_error = transport;
        if (transport)
                snprintf(r.error, sizeof(r.error), "Timeout was reached");
        if (body)
                relay_buf_puts(&r.body, body);
        errstr[0] = '\0';
        enum relay_result res =
            relay_adapter_classify(f->a, f->st, &r, errstr, errstr_size);
        relay_http_response_reset(&r);
        return res;
}

/* The adapter's per-item reading of an answer of status with body to a
 * request of the n items; out gets n results. Returns the adapter's
 * partial result (nonzero: out was filled). */
static inline int fx_partial(struct fixture *f, long status, const char *body,
                             const relay_buf_t *items, size_t n,
                             relay_item_result_t *out)
{
        relay_http_response_t r;
        relay_http_response_init(&r);
        r.status = status;
        relay_buf_puts(&r.body, body);
        int rc = relay_adapter_partial(f->a, f->st, &r, items, n, out);
        relay_http_response_reset(&r);
        return rc;
}

/* Send req to the fixture's server, which answers status with body
 * (NULL: none); the answer must arrive with that status. Returns the
 * request as the server received it (its body is the caller's to leave:
 * the server frees it at teardown). */
static inline struct request fx_send(struct fixture *f,
                                     const relay_http_request_t *req,
                                     int status, const char *body)
{
        assert_non_null(f->srv);
        f->reply = (struct reply){.status = status, .body = body};
        server_script(f->srv, &f->reply, 1);
        int before = server_nreq(f->srv);
        relay_http_t *h = relay_http_new(5000, 2000);
        relay_http_response_t resp;
        relay_http_response_init(&resp);
        assert_int_equal(relay_http_perform(h, req, &resp), 0);
        assert_int_equal(resp.status, status);
        relay_http_response_reset(&resp);
        relay_http_destroy(h);
        assert_int_equal(server_nreq(f->srv), before + 1);
        return server_request(f->srv, before);
}

/* The value of header name in the request received; fails if absent. */
static inline void fx_header(const struct request *rq, const char *name,
                             char *v, size_t size)
{
        if (!find_header(rq->head, name, v, size))
                fail_msg("no %s header in:\n%s", name, rq->head);
}

/* A new file from the template path (mkstemp's XXXXXX, replaced) holding
 * text; the caller unlinks it. */
static inline void fx_temp_file(char *path, const char *text)
{
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
}

/* Replace the content of the file at path with text. */
static inline void fx_rewrite(const char *path, const char *text)
{
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(text, fp);
        assert_int_equal(fclose(fp), 0);
}

/* What the steady loop sent, summed over its counted round. */
struct fx_steady {
        size_t item_bytes; /* the items' bytes */
        size_t body_bytes; /* the requests' bodies' bytes (with requests) */
};

/* deliver's per-record work once warm: the records of the njson JSON texts
 * framed once, then `batches` times `batch` items decoded into slots and
 * encoded into reused buffers (item i from text i % njson), each batch
 * made a request into a reused body when requests is set. A first round
 * warms the buffers; in the second every allocation of the process is
 * counted, and any fails the test, as does a refused record. Returns the
 * second round's bytes for the test's own check. */
static inline struct fx_steady fx_steady_state(struct fixture *f,
                                               const char *const *jsons,
                                               size_t njson, size_t batch,
                                               size_t batches, int requests)
{
        char errstr[512];
        unsigned char frames[4][4096];
        size_t lens[4];
        struct fx_steady got = {0, 0};
        assert_true(njson >= 1 && njson <= 4);
        for (size_t k = 0; k < njson; k++) {
                json_t *rec = fx_record(jsons[k], NULL, NULL);
                avro_value_t *v = relay_avro_writer_value(f->writer);
                if (relay_avro_from_json(v, rec, errstr, sizeof(errstr)))
                        fail_msg("record does not fit the schema: %s", errstr);
                json_decref(rec);
                const void *buf;
                assert_int_equal(relay_avro_writer_encode(f->writer, &buf,
                                                          &lens[k], errstr,
                                                          sizeof(errstr)),
                                 RELAY_OK);
                assert_true(lens[k] <= sizeof(frames[k]));
                memcpy(frames[k], buf, lens[k]);
        }
        relay_buf_t *items = calloc(batch, sizeof(*items)), body;
        assert_non_null(items);
        for (size_t i = 0; i < batch; i++)
                relay_buf_init(&items[i]);
        relay_buf_init(&body);
        int failed = 0;
        for (int round = 0; round < 2 && !failed; round++) {
                allocations = 0;
                counting = round;
                for (size_t r = 0; r < batches && !failed; r++) {
                        for (size_t i = 0; i < batch; i++) {
                                const relay_slots_t *slots;
                                relay_buf_reset(&items[i]);
                                if (relay_avro_reader_decode_slots(
                                        f->reader, frames[i % njson],
                                        lens[i % njson], &slots, NULL, errstr,
                                        sizeof(errstr)) != RELAY_OK ||
                                    relay_adapter_encode(
                                        f->a, f->st, slots, &items[i], errstr,
                                        sizeof(errstr)) != RELAY_OK) {
                                        failed = 1;
                                        break;
                                }
                                got.item_bytes += round ? items[i].len : 0;
                        }
                        if (requests && !failed) {
                                relay_http_request_t req;
                                relay_adapter_request(f->a, f->st, items, batch,
                                                      &body, &req);
                                got.body_bytes += round ? req.body_len : 0;
                        }
                }
                counting = 0;
        }
        if (failed)
                fail_msg("a record refused in the steady state: %s", errstr);
        if (allocations)
                fail_msg("%zu allocation(s) in %zu records of the steady "
                         "state",
                         (size_t)allocations, batch * batches);
        for (size_t i = 0; i < batch; i++)
                relay_buf_free(&items[i]);
        relay_buf_free(&body);
        free(items);
        return got;
}

#endif
