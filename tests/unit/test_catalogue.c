/*
 * Unit tests for the schema catalogue in registry mode (relay/avro.h): the
 * repository's manifest with relay_schemas_use_registry() pointed at the
 * scripted HTTP/1.1 server of httpd.h, which answers like a Confluent
 * Schema Registry. What a user would check: which wire id readers and
 * writers end up with (the writer's frame carries it), what is asked of
 * the registry and how often (every request is counted and named), which
 * records decode and which are refused with what reason, how long a bind
 * waits for an unreachable registry, and that a decode never waits.
 *
 * The server answers requests in order, from one script per test that
 * grows as the test goes (queue()); a request the test did not expect gets
 * the last answer again and shows up in the request count.
 */
#include "relay/avro.h"
#include "relay/common.h"
#include "relay/http.h"
#include "relay/registry.h"

#include <avro.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "httpd.h"
#include "unit.h"

#define LOYALTY "loyalty.events-value"
#define CT      "application/vnd.schemaregistry.v1+json"

/* The id the registry gives the local loyalty schema: four different
 * bytes, so the frame test sees their order. */
#define BOUND_ID 0x01020304

static char srcdir[1024];
static char manifest[1200]; /* the repository's schemas/manifest.cfg */
static char v2_manifest[300];
static char err[1024];

/* Schema texts the scripted registry answers with (group setup). */
static char *v1_text;       /* schemas/loyalty.events.avsc as parsed */
static char *v2_text;       /* v1 + an optional "channel" */
static char *other_name;    /* v1 fields, record name OtherEvent */
static char *other_ns_text; /* v1 fields, namespace other.loyalty */

/* One loyalty event; v2 adds the channel. JSON texts use ' for ". */
#define SAMPLE_FIELDS                                                          \
        "{'event_id': '6f1c2d3e-0000-4000-8000-000000000001',"                 \
        " 'occurred_at': 1700000000123, 'tenant': 'acme',"                     \
        " 'source': 'antavo', 'event_type': 'coupon_issued',"                  \
        " 'identities': {'customer_id': 'c-1', 'email': 'ada@example.com'},"   \
        " 'data': {'coupon_code': 'WELCOME10', 'opted_in': true,"              \
        " 'points': 250, 'total': 19.99, 'note': null}"
static const char sample[] = SAMPLE_FIELDS "}";
static const char sample_v2[] = SAMPLE_FIELDS ", 'channel': 'web'}";

/* ---- the scripted registry ------------------------------------------ */

static struct reply replies[MAX_REQUESTS];
static int nreplies;
static char *owned[64]; /* answer bodies, freed after the server stopped */
static int nowned;
static volatile sig_atomic_t running = 1;
static long reg_timeout_ms = 2000; /* the registry client's, catalogue() */

static const char *own(char *p)
{
        assert_true(nowned < (int)(sizeof(owned) / sizeof(owned[0])));
        owned[nowned++] = p;
        return p;
}

/* Answer the next request not yet scripted with status and body. The
 * requests made past the end of the script so far were answered with the
 * last reply; they are written into the script as such first. */
static void queue(struct server *srv, int status, const char *body)
{
        int n = server_nreq(srv);

        assert_true(n < MAX_REQUESTS);
        while (nreplies > 0 && nreplies < n) {
                replies[nreplies] = replies[nreplies - 1];
                nreplies++;
        }
        assert_true(nreplies < MAX_REQUESTS);
        replies[nreplies++] = (struct reply){
            .status = status,
            .headers = "Content-Type: " CT "\r\n",
            .body = body,
        };
        server_script(srv, replies, nreplies);
}

static char *dump(json_t *j)
{
        char *text = json_dumps(j, JSON_COMPACT);

        json_decref(j);
        return text;
}

/* POST /subjects/{s}: the schema is registered there. */
static const char *lookup_answer(const char *subject, int32_t id, int version,
                                 const char *schema)
{
        return own(dump(json_pack("{s:s,s:I,s:i,s:s}", "subject", subject, "id",
                                  (json_int_t)id, "version", version, "schema",
                                  schema)));
}

/* GET /schemas/ids/{id}. */
static const char *schema_answer(const char *schema)
{
        return own(dump(json_pack("{s:s}", "schema", schema)));
}

/* GET /schemas/ids/{id}/versions naming one subject. */
static const char *versions_answer(const char *subject, int version)
{
        return own(dump(
            json_pack("[{s:s,s:i}]", "subject", subject, "version", version)));
}

#define SCHEMA_NOT_FOUND                                                       \
        "{\"error_code\":40403,\"message\":\"Schema not found\"}"
#define SUBJECT_NOT_FOUND                                                      \
        "{\"error_code\":40401,\"message\":\"Subject 'loyalty.events-value' "  \
        "not found.\"}"
#define UNAVAILABLE "{\"error_code\":50302,\"message\":\"Leader not known\"}"

/* Assert that request i was "method target" and return it. */
static struct request sent(struct server *srv, int i, const char *method,
                           const char *target)
{
        struct request got = server_request(srv, i);
        char line[512];

        snprintf(line, sizeof(line), "%s %s HTTP/1.1\r\n", method, target);
        if (strncmp(got.head, line, strlen(line)) != 0)
                fail_msg("request %d was\n%.200s\nwanted %s", i, got.head,
                         line);
        return got;
}

/* The "schema" member of a request's JSON body, which must be text. */
static void assert_sent_schema(const struct request *got, const char *schema)
{
        json_t *j = json_loadb(got->body.data, got->body.len, 0, NULL);

        assert_non_null(j);
        assert_true(json_is_string(json_object_get(j, "schema")));
        assert_string_equal(json_string_value(json_object_get(j, "schema")),
                            schema);
        json_decref(j);
}

static int setup(void **state)
{
        nreplies = 0;
        running = 1;
        reg_timeout_ms = 2000;
        return httpd_setup(state);
}

static int teardown(void **state)
{
        int rc = httpd_teardown(state);

        for (int i = 0; i < nowned; i++)
                free(owned[i]);
        nowned = 0;
        return rc;
}

/* ---- catalogues, records --------------------------------------------- */

static relay_schemas_registry_conf_t conf_default(void)
{
        return (relay_schemas_registry_conf_t){
            .auto_register = 0,
            .cache_max = 16,
            .negative_ttl_ms = 60000,
            .bind_wait_ms = 300,
            .running = &running,
        };
}

/* The repository's catalogue taking ids from the registry at port. */
static relay_schemas_t *catalogue(int port,
                                  const relay_schemas_registry_conf_t *conf)
{
        char url[64];
        relay_registry_conf_t rc = {.url = url, .timeout_ms = reg_timeout_ms};
        relay_schemas_t *s = relay_schemas_load(manifest, err, sizeof(err));
        relay_registry_t *reg;

        if (!s)
                fail_msg("%s", err);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
        reg = relay_registry_new(&rc, err, sizeof(err));
        if (!reg)
                fail_msg("%s", err);
        relay_schemas_use_registry(s, reg, conf);
        return s;
}

/* A reader of LOYALTY bound to BOUND_ID: one lookup request. */
static relay_avro_reader_t *bound_reader(struct server *srv, relay_schemas_t *s)
{
        relay_avro_reader_t *r;
        int n = server_nreq(srv);

        queue(srv, 200, lookup_answer(LOYALTY, BOUND_ID, 1, v1_text));
        r = relay_avro_reader_new(s, LOYALTY, 1 << 20, err, sizeof(err));
        if (!r)
                fail_msg("relay_avro_reader_new: %s", err);
        assert_int_equal(server_nreq(srv), n + 1);
        sent(srv, n, "POST", "/subjects/" LOYALTY);
        return r;
}

static void put_id(relay_buf_t *frame, int32_t id)
{
        unsigned char *p = (unsigned char *)frame->data;

        p[1] = (unsigned char)((uint32_t)id >> 24);
        p[2] = (unsigned char)((uint32_t)id >> 16);
        p[3] = (unsigned char)((uint32_t)id >> 8);
        p[4] = (unsigned char)id;
}

/* The framed record json written by a catalogue without a registry
 * (manifest path) for LOYALTY, into frame (initialised by the caller). */
static void encode(const char *manifest_path, const char *json,
                   relay_buf_t *frame)
{
        relay_schemas_t *s =
            relay_schemas_load(manifest_path, err, sizeof(err));
        relay_avro_writer_t *w;
        const void *buf;
        size_t len;
        json_t *j = js(json);

        if (!s)
                fail_msg("%s", err);
        w = relay_avro_writer_new(s, LOYALTY, err, sizeof(err));
        if (!w)
                fail_msg("%s", err);
        if (relay_avro_from_json(relay_avro_writer_value(w), j, err,
                                 sizeof(err)))
                fail_msg("%s", err);
        assert_int_equal(
            relay_avro_writer_encode(w, &buf, &len, err, sizeof(err)),
            RELAY_OK);
        relay_buf_reset(frame);
        relay_buf_append(frame, buf, len);
        json_decref(j);
        relay_avro_writer_destroy(w);
        relay_schemas_destroy(s);
}

static void assert_json_is(const avro_value_t *v, const char *text)
{
        assert_json_text(relay_avro_to_json(v), text);
}

/* Decode frame under id; returns the result, *out set on RELAY_OK. */
static enum relay_result decode(relay_avro_reader_t *r, relay_buf_t *frame,
                                int32_t id, avro_value_t **out)
{
        int32_t writer_id = -1;
        enum relay_result rc;

        put_id(frame, id);
        err[0] = '\0';
        rc = relay_avro_reader_decode(r, frame->data, frame->len, out,
                                      &writer_id, err, sizeof(err));
        assert_int_equal(writer_id, id);
        return rc;
}

/* Decode must succeed and give the v1 fields of the sample. */
static void decodes(relay_avro_reader_t *r, relay_buf_t *frame, int32_t id)
{
        avro_value_t *out = NULL;

        if (decode(r, frame, id, &out) != RELAY_OK)
                fail_msg("decode of id %d: %s", (int)id, err);
        assert_json_is(out, sample);
}

/* ---- bind ------------------------------------------------------------- */

/* The registry knows the local schema: reader and writer take its id, one
 * lookup serves both, and the writer's frames carry the id. */
static void test_bind_lookup(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s = catalogue(srv->port, &conf);
        relay_avro_reader_t *r = bound_reader(srv, s);
        relay_avro_writer_t *w;
        struct request got = server_request(srv, 0);
        json_t *j = js(sample);
        avro_value_t *out;
        relay_buf_t frame;
        const void *buf;
        size_t len;
        int32_t id = -1;

        /* The lookup sent the manifest's text of the subject's schema. */
        assert_sent_schema(&got, relay_schemas_local_text(s, LOYALTY));

        w = relay_avro_writer_new(s, LOYALTY, err, sizeof(err));
        if (!w)
                fail_msg("relay_avro_writer_new: %s", err);
        assert_int_equal(relay_schemas_bind(s, LOYALTY, &id, err, sizeof(err)),
                         RELAY_OK);
        assert_int_equal(id, BOUND_ID);
        assert_int_equal(server_nreq(srv), 1);
        assert_non_null(relay_schemas_get(s, BOUND_ID));
        assert_true(relay_schemas_in_subject(s, BOUND_ID, LOYALTY));

        if (relay_avro_from_json(relay_avro_writer_value(w), j, err,
                                 sizeof(err)))
                fail_msg("%s", err);
        assert_int_equal(
            relay_avro_writer_encode(w, &buf, &len, err, sizeof(err)),
            RELAY_OK);
        assert_true(len > RELAY_AVRO_HEADER_LEN);
        assert_memory_equal(buf, "\x00\x01\x02\x03\x04", 5);

        /* The reader reads it back as its own id, asking nothing. */
        relay_buf_init(&frame);
        relay_buf_append(&frame, buf, len);
        decodes(r, &frame, BOUND_ID);
        assert_int_equal(server_nreq(srv), 1);

        /* The manifest's id 1 is no wire id any more: the registry is
         * asked about it, and it has no such id. */
        queue(srv, 404, SCHEMA_NOT_FOUND);
        assert_int_equal(decode(r, &frame, 1, &out), RELAY_FATAL);
        assert_contains(err, "unknown schema id 1 (the registry has no such "
                             "id)");
        sent(srv, 1, "GET", "/schemas/ids/1");
        assert_int_equal(server_nreq(srv), 2);
        /* One keep-alive connection did it all. */
        assert_int_equal(server_accepts(srv), 1);

        json_decref(j);
        relay_buf_free(&frame);
        relay_avro_writer_destroy(w);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* Not registered, auto_register on: the local text is registered under
 * the subject and the id it gets is used, for either 404 a registry gives
 * (no such subject, or no such schema in it). */
static void test_bind_auto_register(void **state)
{
        struct server *srv = *state;
        static const char *const not_found[] = {SUBJECT_NOT_FOUND,
                                                SCHEMA_NOT_FOUND};
        int n = 0;

        for (int i = 0; i < 2; i++) {
                relay_schemas_registry_conf_t conf = conf_default();
                relay_schemas_t *s;
                relay_avro_writer_t *w;
                relay_avro_reader_t *r;
                struct request got;
                const void *buf;
                size_t len;
                int32_t id = 42 + i;
                char answer[32];
                json_t *j;

                conf.auto_register = 1;
                s = catalogue(srv->port, &conf);
                snprintf(answer, sizeof(answer), "{\"id\":%d}", (int)id);
                queue(srv, 404, not_found[i]);
                queue(srv, 200, own(relay_strdup(answer)));
                w = relay_avro_writer_new(s, LOYALTY, err, sizeof(err));
                if (!w)
                        fail_msg("relay_avro_writer_new: %s", err);
                assert_int_equal(server_nreq(srv), n + 2);
                got = sent(srv, n, "POST", "/subjects/" LOYALTY);
                assert_sent_schema(&got, relay_schemas_local_text(s, LOYALTY));
                got =
                    sent(srv, n + 1, "POST", "/subjects/" LOYALTY "/versions");
                assert_sent_schema(&got, relay_schemas_local_text(s, LOYALTY));
                n += 2;

                j = js(sample);
                if (relay_avro_from_json(relay_avro_writer_value(w), j, err,
                                         sizeof(err)))
                        fail_msg("%s", err);
                json_decref(j);
                assert_int_equal(
                    relay_avro_writer_encode(w, &buf, &len, err, sizeof(err)),
                    RELAY_OK);
                assert_int_equal(((const unsigned char *)buf)[4], 42 + i);
                assert_memory_equal(buf, "\x00\x00\x00\x00", 4);

                /* A reader of the same subject needs no second request. */
                r = relay_avro_reader_new(s, LOYALTY, 0, err, sizeof(err));
                assert_non_null(r);
                assert_int_equal(server_nreq(srv), n);

                relay_avro_reader_destroy(r);
                relay_avro_writer_destroy(w);
                relay_schemas_destroy(s);
        }
}

/* Not registered and auto_register off: no writer, and the reason says
 * what to do; nothing is registered behind the operator's back. A
 * registry that refuses the registration is named too. */
static void test_bind_not_registered(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s = catalogue(srv->port, &conf);
        int32_t id = -1;

        queue(srv, 404, SCHEMA_NOT_FOUND);
        strcpy(err, "untouched");
        assert_null(relay_avro_writer_new(s, LOYALTY, err, sizeof(err)));
        assert_contains(err, "relayctl schemas register");
        assert_contains(err, LOYALTY);
        assert_int_equal(server_nreq(srv), 1);
        assert_int_equal(relay_schemas_bind(s, LOYALTY, &id, err, sizeof(err)),
                         RELAY_FATAL);
        assert_contains(err, "relayctl schemas register");
        assert_int_equal(server_nreq(srv), 2);
        sent(srv, 1, "POST", "/subjects/" LOYALTY);
        relay_schemas_destroy(s);

        /* auto_register, but the registry says the schema is incompatible. */
        conf.auto_register = 1;
        s = catalogue(srv->port, &conf);
        queue(srv, 404, SUBJECT_NOT_FOUND);
        queue(srv, 409,
              "{\"error_code\":409,\"message\":\"Schema being registered is "
              "incompatible with an earlier schema\"}");
        assert_int_equal(relay_schemas_bind(s, LOYALTY, &id, err, sizeof(err)),
                         RELAY_FATAL);
        assert_contains(err, "subject '" LOYALTY "': ");
        assert_contains(err, "HTTP 409 error_code 409: Schema being registered "
                             "is incompatible");
        assert_int_equal(server_nreq(srv), 4);
        sent(srv, 3, "POST", "/subjects/" LOYALTY "/versions");

        /* A subject the manifest does not have: nothing is asked. */
        assert_int_equal(
            relay_schemas_bind(s, "nosuch-value", &id, err, sizeof(err)),
            RELAY_FATAL);
        assert_contains(err, "no schema for subject 'nosuch-value'");
        assert_int_equal(server_nreq(srv), 4);
        relay_schemas_destroy(s);
}

static void *clear_running_later(void *arg)
{
        relay_sleep_ms(*(long *)arg, NULL);
        running = 0;
        return NULL;
}

/* A registry that cannot be reached or keeps answering 503 at bind: the
 * bind waits bind_wait_ms with retries, then RELAY_RETRY with the last
 * reason; a cleared running flag ends the wait at once. */
static void test_bind_unavailable(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s;
        int64_t t0, took;
        int32_t id = -1;
        pthread_t th;
        long after = 200;
        int n;

        /* Refused. */
        s = catalogue(httpd_closed_port(), &conf);
        t0 = relay_mono_ms();
        assert_int_equal(relay_schemas_bind(s, LOYALTY, &id, err, sizeof(err)),
                         RELAY_RETRY);
        took = relay_mono_ms() - t0;
        assert_true(took >= 290);
        assert_true(took < 1800);
        assert_contains(err,
                        "subject '" LOYALTY
                        "': registry POST /subjects/" LOYALTY ": no answer: ");
        t0 = relay_mono_ms();
        assert_null(relay_avro_writer_new(s, LOYALTY, err, sizeof(err)));
        assert_true(relay_mono_ms() - t0 >= 290);
        assert_contains(err, "no answer");
        relay_schemas_destroy(s);

        /* Answering, but 503 every time. */
        s = catalogue(srv->port, &conf);
        queue(srv, 503, UNAVAILABLE);
        t0 = relay_mono_ms();
        assert_int_equal(relay_schemas_bind(s, LOYALTY, &id, err, sizeof(err)),
                         RELAY_RETRY);
        took = relay_mono_ms() - t0;
        assert_true(took >= 290);
        assert_true(took < 1800);
        assert_contains(err, "HTTP 503 error_code 50302: Leader not known");
        /* It retried, and each try was the lookup. */
        assert_true(server_nreq(srv) >= 2);
        for (int i = 0; i < server_nreq(srv); i++)
                sent(srv, i, "POST", "/subjects/" LOYALTY);
        relay_schemas_destroy(s);

        /* bind_wait_ms 0 (a reload): one try, no wait. */
        conf.bind_wait_ms = 0;
        s = catalogue(srv->port, &conf);
        n = server_nreq(srv);
        t0 = relay_mono_ms();
        assert_int_equal(relay_schemas_bind(s, LOYALTY, &id, err, sizeof(err)),
                         RELAY_RETRY);
        assert_true(relay_mono_ms() - t0 < 150);
        assert_int_equal(server_nreq(srv), n + 1);
        assert_contains(err, "HTTP 503 error_code 50302: Leader not known");

        /* Stopping, with a bind that would otherwise wait forever. */
        relay_schemas_destroy(s);
        conf.bind_wait_ms = -1;
        running = 0;
        s = catalogue(srv->port, &conf);
        t0 = relay_mono_ms();
        assert_int_equal(relay_schemas_bind(s, LOYALTY, &id, err, sizeof(err)),
                         RELAY_RETRY);
        assert_true(relay_mono_ms() - t0 < 150);
        assert_contains(err, "HTTP 503");

        /* Stopped while waiting. */
        running = 1;
        assert_int_equal(pthread_create(&th, NULL, clear_running_later, &after),
                         0);
        t0 = relay_mono_ms();
        assert_int_equal(relay_schemas_bind(s, LOYALTY, &id, err, sizeof(err)),
                         RELAY_RETRY);
        took = relay_mono_ms() - t0;
        pthread_join(th, NULL);
        assert_true(took >= 190);
        assert_true(took < 1000);
        relay_schemas_destroy(s);
}

/* A registry that comes back within bind_wait_ms: the bind succeeds. */
static void test_bind_waits_out_outage(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s;
        int32_t id = -1;

        conf.bind_wait_ms = 10000;
        s = catalogue(srv->port, &conf);
        queue(srv, 503, UNAVAILABLE);
        queue(srv, 200, lookup_answer(LOYALTY, 77, 2, v1_text));
        assert_int_equal(relay_schemas_bind(s, LOYALTY, &id, err, sizeof(err)),
                         RELAY_OK);
        assert_int_equal(id, 77);
        assert_int_equal(server_nreq(srv), 2);
        relay_schemas_destroy(s);
}

/* ---- decode of ids the catalogue does not have ------------------------- */

/* A record written with a newer version of the subject (an optional field
 * added) under an id the catalogue has not seen: the id's schema and
 * subjects are fetched once, and the v1 reader reads every v1 field. */
static void test_decode_fetches_new_version(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s = catalogue(srv->port, &conf);
        relay_avro_reader_t *r = bound_reader(srv, s);
        relay_buf_t v1, v2;
        avro_schema_t schema = NULL;
        const char *subject = NULL;

        relay_buf_init(&v1);
        relay_buf_init(&v2);
        encode(manifest, sample, &v1);
        encode(v2_manifest, sample_v2, &v2);
        /* v2 bytes carry the channel: union branch 1, length 3, "web". */
        assert_int_equal(v2.len, v1.len + 5);
        assert_memory_equal(v2.data + v2.len - 5, "\x02\x06web", 5);

        queue(srv, 200, schema_answer(v2_text));
        queue(srv, 200, versions_answer(LOYALTY, 2));
        decodes(r, &v2, 1002);
        assert_int_equal(server_nreq(srv), 3);
        sent(srv, 1, "GET", "/schemas/ids/1002");
        sent(srv, 2, "GET", "/schemas/ids/1002/versions");

        /* Known from now on: no request, for records of either version. */
        decodes(r, &v2, 1002);
        decodes(r, &v1, BOUND_ID);
        decodes(r, &v2, 1002);
        assert_int_equal(
            relay_schemas_resolve(s, 1002, &schema, &subject, err, sizeof(err)),
            RELAY_OK);
        assert_non_null(schema);
        assert_string_equal(subject, LOYALTY);
        assert_true(relay_schemas_in_subject(s, 1002, LOYALTY));
        assert_int_equal(server_nreq(srv), 3);

        relay_buf_free(&v1);
        relay_buf_free(&v2);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* An id the registry lists under other subjects only is refused, and the
 * refusal is remembered without asking again. One that lists ours among
 * others is read. */
static void test_decode_other_subject(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s = catalogue(srv->port, &conf);
        relay_avro_reader_t *r = bound_reader(srv, s);
        avro_value_t *out;
        relay_buf_t v1;

        relay_buf_init(&v1);
        encode(manifest, sample, &v1);

        queue(srv, 200, schema_answer(v1_text));
        queue(srv, 200, versions_answer("crm.records-value", 1));
        assert_int_equal(decode(r, &v1, 12, &out), RELAY_FATAL);
        assert_string_equal(
            err, "schema id 12 does not belong to subject '" LOYALTY "'");
        assert_int_equal(server_nreq(srv), 3);
        assert_int_equal(decode(r, &v1, 12, &out), RELAY_FATAL);
        assert_contains(err, "does not belong to subject");
        assert_int_equal(server_nreq(srv), 3);

        queue(srv, 200, schema_answer(v1_text));
        queue(srv, 200,
              "[{\"subject\":\"crm.records-value\",\"version\":1},"
              "{\"subject\":\"" LOYALTY "\",\"version\":4}]");
        decodes(r, &v1, 13);
        assert_int_equal(server_nreq(srv), 5);

        relay_buf_free(&v1);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* A schema shared by many subjects (21), ours listed last: it still
 * belongs to our subject. */
static void test_decode_id_of_many_subjects(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s = catalogue(srv->port, &conf);
        relay_avro_reader_t *r = bound_reader(srv, s);
        json_t *list = json_array();
        relay_buf_t v1;

        for (int i = 0; i < 20; i++) {
                char subject[64];

                snprintf(subject, sizeof(subject), "topic%02d-value", i);
                json_array_append_new(list, json_pack("{s:s,s:i}", "subject",
                                                      subject, "version", 1));
        }
        json_array_append_new(
            list, json_pack("{s:s,s:i}", "subject", LOYALTY, "version", 3));
        relay_buf_init(&v1);
        encode(manifest, sample, &v1);
        queue(srv, 200, schema_answer(v1_text));
        queue(srv, 200, own(dump(list)));
        decodes(r, &v1, 14);
        assert_int_equal(server_nreq(srv), 3);

        relay_buf_free(&v1);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* A registry without GET /schemas/ids/{id}/versions (404): the record
 * name decides. The same full name fits; another name or namespace does
 * not. */
static void test_decode_without_versions_call(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s = catalogue(srv->port, &conf);
        relay_avro_reader_t *r = bound_reader(srv, s);
        static const char no_route[] =
            "{\"error_code\":404,\"message\":\"HTTP 404 Not Found\"}";
        avro_value_t *out;
        relay_buf_t v1, v2;

        relay_buf_init(&v1);
        relay_buf_init(&v2);
        encode(manifest, sample, &v1);
        encode(v2_manifest, sample_v2, &v2);

        queue(srv, 200, schema_answer(v2_text));
        queue(srv, 404, no_route);
        decodes(r, &v2, 20);
        assert_int_equal(server_nreq(srv), 3);
        sent(srv, 2, "GET", "/schemas/ids/20/versions");
        decodes(r, &v2, 20);
        assert_int_equal(server_nreq(srv), 3);

        queue(srv, 200, schema_answer(other_name));
        queue(srv, 404, no_route);
        assert_int_equal(decode(r, &v1, 21, &out), RELAY_FATAL);
        assert_contains(err, "schema id 21 does not belong to subject");
        assert_int_equal(server_nreq(srv), 5);

        queue(srv, 200, schema_answer(other_ns_text));
        queue(srv, 404, no_route);
        assert_int_equal(decode(r, &v1, 22, &out), RELAY_FATAL);
        assert_contains(err, "schema id 22 does not belong to subject");
        assert_int_equal(server_nreq(srv), 7);

        relay_buf_free(&v1);
        relay_buf_free(&v2);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* Ids the registry does not have, or answers with something that is not
 * an Avro schema: RELAY_FATAL at once, without the /versions call. */
static void test_decode_unknown_id(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s = catalogue(srv->port, &conf);
        relay_avro_reader_t *r = bound_reader(srv, s);
        avro_value_t *out;
        relay_buf_t v1;
        int64_t t0;

        relay_buf_init(&v1);
        encode(manifest, sample, &v1);

        queue(srv, 404, SCHEMA_NOT_FOUND);
        t0 = relay_mono_ms();
        assert_int_equal(decode(r, &v1, 99, &out), RELAY_FATAL);
        assert_true(relay_mono_ms() - t0 < 150);
        assert_string_equal(
            err, "unknown schema id 99 (the registry has no such id)");
        assert_int_equal(server_nreq(srv), 2);
        sent(srv, 1, "GET", "/schemas/ids/99");

        /* Ids past INT32_MAX (the top bit set) are no registry ids: the
         * registry is not asked. */
        assert_int_equal(decode(r, &v1, (int32_t)0xffffffffu, &out),
                         RELAY_FATAL);
        assert_contains(err, "schema id -1 is negative");
        assert_int_equal(server_nreq(srv), 2);

        queue(srv, 200, schema_answer("{\"type\":\"nosuchtype\"}"));
        queue(srv, 200, versions_answer(LOYALTY, 5));
        assert_int_equal(decode(r, &v1, 98, &out), RELAY_FATAL);
        assert_contains(err, "schema id 98 from the registry is not an Avro "
                             "schema");

        relay_buf_free(&v1);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* ---- the registry goes down -------------------------------------------- */

/* Decode frame under id, which must be RELAY_RETRY after exactly one
 * registry request (GET /schemas/ids/{id}) and no wait: returns how long
 * the decode took. */
static int64_t retries_once(struct server *srv, relay_avro_reader_t *r,
                            relay_buf_t *frame, int32_t id)
{
        int n = server_nreq(srv);
        avro_value_t *out;
        char path[64];
        int64_t t0 = relay_mono_ms(), took;

        if (decode(r, frame, id, &out) != RELAY_RETRY)
                fail_msg("decode of id %d was not RELAY_RETRY: %s", (int)id,
                         err);
        took = relay_mono_ms() - t0;
        assert_int_equal(server_nreq(srv), n + 1);
        snprintf(path, sizeof(path), "/schemas/ids/%d", (int)id);
        sent(srv, n, "GET", path);
        assert_contains(err, "schema registry unavailable: ");
        return took;
}

/* Ids already known keep decoding without a request. A new id is
 * RELAY_RETRY at once after one request, every time it is decoded (an
 * outage is not remembered as "unknown"), and decodes once the registry
 * is back. Nothing waits, whatever the running flag says. */
static void test_registry_down_later(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s = catalogue(srv->port, &conf);
        relay_avro_reader_t *r = bound_reader(srv, s);
        relay_buf_t v1, v2;
        int n;

        relay_buf_init(&v1);
        relay_buf_init(&v2);
        encode(manifest, sample, &v1);
        encode(v2_manifest, sample_v2, &v2);
        queue(srv, 200, schema_answer(v2_text));
        queue(srv, 200, versions_answer(LOYALTY, 2));
        decodes(r, &v2, 11);
        assert_int_equal(server_nreq(srv), 3);

        /* Down: every answer from now on is 503. */
        queue(srv, 503, UNAVAILABLE);
        for (int i = 0; i < 3; i++) {
                decodes(r, &v1, BOUND_ID);
                decodes(r, &v2, 11);
        }
        assert_int_equal(server_nreq(srv), 3);

        for (int i = 0; i < 3; i++) {
                assert_true(retries_once(srv, r, &v2, 12) < 150);
                assert_contains(err,
                                "schema id 12: schema registry unavailable: "
                                "registry GET /schemas/ids/12: HTTP 503 "
                                "error_code 50302: Leader not known");
        }
        /* Stopping changes nothing: there is no wait to cut short. */
        running = 0;
        assert_true(retries_once(srv, r, &v2, 12) < 150);
        running = 1;

        /* Back. */
        n = server_nreq(srv);
        queue(srv, 200, schema_answer(v2_text));
        queue(srv, 200, versions_answer(LOYALTY, 2));
        decodes(r, &v2, 12);
        assert_int_equal(server_nreq(srv), n + 2);
        sent(srv, n, "GET", "/schemas/ids/12");
        sent(srv, n + 1, "GET", "/schemas/ids/12/versions");

        relay_buf_free(&v1);
        relay_buf_free(&v2);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* The schema came but the subjects call failed (503): RELAY_RETRY, and the
 * next decode asks for both again rather than keep a half-known id. */
static void test_registry_down_between_calls(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s = catalogue(srv->port, &conf);
        relay_avro_reader_t *r = bound_reader(srv, s);
        avro_value_t *out;
        relay_buf_t v2;

        relay_buf_init(&v2);
        encode(v2_manifest, sample_v2, &v2);
        queue(srv, 200, schema_answer(v2_text));
        queue(srv, 503, UNAVAILABLE);
        assert_int_equal(decode(r, &v2, 15, &out), RELAY_RETRY);
        assert_contains(err, "schema id 15: schema registry unavailable: "
                             "registry GET /schemas/ids/15/versions: HTTP 503");
        assert_int_equal(server_nreq(srv), 3);
        assert_null(relay_schemas_get(s, 15));

        queue(srv, 200, schema_answer(v2_text));
        queue(srv, 200, versions_answer(LOYALTY, 2));
        decodes(r, &v2, 15);
        assert_int_equal(server_nreq(srv), 5);
        sent(srv, 3, "GET", "/schemas/ids/15");
        sent(srv, 4, "GET", "/schemas/ids/15/versions");

        relay_buf_free(&v2);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* No registry listening at all (connection refused): a new id is
 * RELAY_RETRY at once, for readers' lookups and tools' decodes alike. */
static void test_registry_unreachable(void **state)
{
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s;
        avro_schema_t schema = NULL;
        relay_buf_t v1;
        json_t *j = NULL;
        int64_t t0;

        (void)state;
        relay_buf_init(&v1);
        encode(manifest, sample, &v1);
        put_id(&v1, 16);
        s = catalogue(httpd_closed_port(), &conf);

        t0 = relay_mono_ms();
        assert_int_equal(
            relay_schemas_resolve(s, 16, &schema, NULL, err, sizeof(err)),
            RELAY_RETRY);
        assert_true(relay_mono_ms() - t0 < 150);
        assert_null(schema);
        assert_contains(err, "schema id 16: schema registry unavailable: "
                             "registry GET /schemas/ids/16: no answer: ");

        t0 = relay_mono_ms();
        assert_int_equal(
            relay_avro_decode_written(s, v1.data, v1.len, &j, err, sizeof(err)),
            RELAY_RETRY);
        assert_true(relay_mono_ms() - t0 < 150);
        assert_null(j);
        assert_contains(err, "schema registry unavailable");

        relay_buf_free(&v1);
        relay_schemas_destroy(s);
}

/* A registry that does not answer: the decode gives up after the
 * client's timeout_ms (one request), not after any longer wait. */
static void test_registry_timeout(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s;
        relay_avro_reader_t *r;
        relay_buf_t v1;
        int64_t took;

        reg_timeout_ms = 300;
        s = catalogue(srv->port, &conf);
        r = bound_reader(srv, s);
        relay_buf_init(&v1);
        encode(manifest, sample, &v1);

        queue(srv, 200, schema_answer(v1_text));
        replies[nreplies - 1].delay_ms = 1500;
        server_script(srv, replies, nreplies);
        took = retries_once(srv, r, &v1, 17);
        assert_true(took >= 280);
        assert_true(took < 1000);
        assert_contains(err, "schema id 17: schema registry unavailable: "
                             "registry GET /schemas/ids/17: no answer within "
                             "300 ms");

        relay_buf_free(&v1);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* 401 and 403 say the registry refuses this client, which no record can
 * fix: RELAY_RETRY at once with a hint at the setup, asked again on the
 * next decode (not remembered as unknown), read once the key is right. */
static void test_registry_refuses_credentials(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s = catalogue(srv->port, &conf);
        relay_avro_reader_t *r = bound_reader(srv, s);
        relay_buf_t v1;
        int n;

        relay_buf_init(&v1);
        encode(manifest, sample, &v1);

        queue(srv, 401, "{\"error_code\":40101,\"message\":\"Unauthorized\"}");
        for (int i = 0; i < 2; i++) {
                assert_true(retries_once(srv, r, &v1, 18) < 150);
                assert_contains(err, "schema id 18: schema registry "
                                     "unavailable: registry GET "
                                     "/schemas/ids/18: HTTP 401 error_code "
                                     "40101: Unauthorized");
                assert_contains(err, "check schema_registry.url and "
                                     "schema_registry.basic_auth");
        }
        queue(srv, 403, "{\"error_code\":40301,\"message\":\"Forbidden\"}");
        assert_true(retries_once(srv, r, &v1, 18) < 150);
        assert_contains(err, "HTTP 403 error_code 40301: Forbidden");
        assert_contains(err, "schema_registry.basic_auth");

        n = server_nreq(srv);
        queue(srv, 200, schema_answer(v1_text));
        queue(srv, 200, versions_answer(LOYALTY, 1));
        decodes(r, &v1, 18);
        assert_int_equal(server_nreq(srv), n + 2);

        relay_buf_free(&v1);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* ---- ids the registry does not know ------------------------------------ */

/* Decode frame under id: RELAY_FATAL as unknown, with or without a
 * request (asked). */
static void refused_unknown(struct server *srv, relay_avro_reader_t *r,
                            relay_buf_t *frame, int32_t id, int asked)
{
        int n = server_nreq(srv);
        avro_value_t *out;
        char want[128];

        if (asked)
                queue(srv, 404, SCHEMA_NOT_FOUND);
        assert_int_equal(decode(r, frame, id, &out), RELAY_FATAL);
        snprintf(want, sizeof(want),
                 "unknown schema id %d (the registry has no such id)", (int)id);
        assert_string_equal(err, want);
        assert_int_equal(server_nreq(srv), n + asked);
}

/* A 404 is remembered for negative_ttl_ms: the same id is refused again
 * with the same reason and no request; another id is still asked about;
 * after the TTL the id is asked about again, and read if the registry has
 * it by then. */
static void test_unknown_id_cached_negatively(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s;
        relay_avro_reader_t *r;
        relay_buf_t v1;
        int n;

        conf.negative_ttl_ms = 300;
        s = catalogue(srv->port, &conf);
        r = bound_reader(srv, s);
        relay_buf_init(&v1);
        encode(manifest, sample, &v1);

        refused_unknown(srv, r, &v1, 99, 1);
        for (int i = 0; i < 5; i++)
                refused_unknown(srv, r, &v1, 99, 0);
        refused_unknown(srv, r, &v1, 98, 1);
        refused_unknown(srv, r, &v1, 98, 0);
        refused_unknown(srv, r, &v1, 99, 0);

        relay_sleep_ms(350, NULL);
        refused_unknown(srv, r, &v1, 99, 1);
        refused_unknown(srv, r, &v1, 99, 0);

        /* Registered meanwhile: read once the TTL is over. */
        relay_sleep_ms(350, NULL);
        n = server_nreq(srv);
        queue(srv, 200, schema_answer(v1_text));
        queue(srv, 200, versions_answer(LOYALTY, 1));
        decodes(r, &v1, 99);
        assert_int_equal(server_nreq(srv), n + 2);
        sent(srv, n, "GET", "/schemas/ids/99");

        relay_buf_free(&v1);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* negative_ttl_ms 0: an unknown id is asked about every time. */
static void test_unknown_id_ttl_zero(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s;
        relay_avro_reader_t *r;
        relay_buf_t v1;

        conf.negative_ttl_ms = 0;
        s = catalogue(srv->port, &conf);
        r = bound_reader(srv, s);
        relay_buf_init(&v1);
        encode(manifest, sample, &v1);
        for (int i = 0; i < 3; i++)
                refused_unknown(srv, r, &v1, 97, 1);

        relay_buf_free(&v1);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* At most cache_max unknown ids are remembered: a new one replaces the
 * one that expires first, which is then asked about again. */
static void test_unknown_ids_bounded(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s;
        relay_avro_reader_t *r;
        relay_buf_t v1;

        conf.cache_max = 2;
        s = catalogue(srv->port, &conf);
        r = bound_reader(srv, s);
        relay_buf_init(&v1);
        encode(manifest, sample, &v1);

        refused_unknown(srv, r, &v1, 91, 1);
        relay_sleep_ms(5, NULL);
        refused_unknown(srv, r, &v1, 92, 1);
        relay_sleep_ms(5, NULL);
        refused_unknown(srv, r, &v1, 93, 1); /* replaces 91 */
        refused_unknown(srv, r, &v1, 92, 0);
        refused_unknown(srv, r, &v1, 93, 0);
        refused_unknown(srv, r, &v1, 91, 1);

        relay_buf_free(&v1);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* ---- the bounded cache -------------------------------------------------- */

/* Fetch id (not cached): its two requests. */
static void fetch(struct server *srv, relay_avro_reader_t *r,
                  relay_buf_t *frame, int32_t id)
{
        int n = server_nreq(srv);
        char path[64];

        queue(srv, 200, schema_answer(v1_text));
        queue(srv, 200, versions_answer(LOYALTY, 1));
        decodes(r, frame, id);
        assert_int_equal(server_nreq(srv), n + 2);
        snprintf(path, sizeof(path), "/schemas/ids/%d", (int)id);
        sent(srv, n, "GET", path);
}

/* Decode id, which must be cached: no request. */
static void cached(struct server *srv, relay_avro_reader_t *r,
                   relay_buf_t *frame, int32_t id)
{
        int n = server_nreq(srv);

        decodes(r, frame, id);
        assert_int_equal(server_nreq(srv), n);
}

/* cache_max 2 with the bound id pinned: fetched ids are evicted to make
 * room, the pinned one never is. */
static void test_cache_evicts_fetched_not_pinned(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s;
        relay_avro_reader_t *r;
        relay_buf_t v1;

        conf.cache_max = 2;
        s = catalogue(srv->port, &conf);
        r = bound_reader(srv, s);
        relay_buf_init(&v1);
        encode(manifest, sample, &v1);

        fetch(srv, r, &v1, 31);
        fetch(srv, r, &v1, 32);
        fetch(srv, r, &v1, 33);
        cached(srv, r, &v1, BOUND_ID);
        fetch(srv, r, &v1, 31); /* evicted: asked again */
        cached(srv, r, &v1, 31);
        cached(srv, r, &v1, BOUND_ID);
        assert_int_equal(server_nreq(srv), 9);

        relay_buf_free(&v1);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* cache_max 3: the least recently used fetched id goes, not the oldest. */
static void test_cache_is_lru(void **state)
{
        struct server *srv = *state;
        relay_schemas_registry_conf_t conf = conf_default();
        relay_schemas_t *s;
        relay_avro_reader_t *r;
        relay_buf_t v1;

        conf.cache_max = 3;
        s = catalogue(srv->port, &conf);
        r = bound_reader(srv, s);
        relay_buf_init(&v1);
        encode(manifest, sample, &v1);

        fetch(srv, r, &v1, 41);
        fetch(srv, r, &v1, 42);
        cached(srv, r, &v1, 41); /* 42 is now the least recently used */
        fetch(srv, r, &v1, 43);  /* evicts 42 */
        cached(srv, r, &v1, 41);
        cached(srv, r, &v1, 43);
        fetch(srv, r, &v1, 42); /* evicts 41 */
        cached(srv, r, &v1, 43);
        cached(srv, r, &v1, BOUND_ID);
        fetch(srv, r, &v1, 41); /* evicts 42 */
        cached(srv, r, &v1, 43);
        assert_int_equal(server_nreq(srv), 11);

        relay_buf_free(&v1);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* ---- main ---------------------------------------------------------------- */

/* The repository's loyalty schema as JSON text, with an extra field
 * appended and the record's name or namespace replaced when not NULL. */
static char *loyalty_schema(const char *extra_field, const char *name,
                            const char *ns)
{
        char path[1200];
        json_error_t jerr;
        json_t *s;

        snprintf(path, sizeof(path), "%s/schemas/loyalty.events.avsc", srcdir);
        s = json_load_file(path, 0, &jerr);
        if (!s) {
                fprintf(stderr, "%s: %s\n", path, jerr.text);
                return NULL;
        }
        if (extra_field)
                json_array_append_new(json_object_get(s, "fields"),
                                      json_loads(extra_field, 0, NULL));
        if (name)
                json_object_set_new(s, "name", json_string(name));
        if (ns)
                json_object_set_new(s, "namespace", json_string(ns));
        return dump(s);
}

static int group_setup(void **state)
{
        const char *src = getenv("RELAY_SOURCE_DIR");
        FILE *fp;

        snprintf(srcdir, sizeof(srcdir), "%s", src ? src : ".");
        snprintf(manifest, sizeof(manifest), "%s/schemas/manifest.cfg", srcdir);
        if (unit_tmpdir_make("catalogue"))
                return -1;
        v1_text = loyalty_schema(NULL, NULL, NULL);
        v2_text = loyalty_schema("{\"name\": \"channel\", \"type\": [\"null\", "
                                 "\"string\"], \"default\": null}",
                                 NULL, NULL);
        other_name = loyalty_schema(NULL, "OtherEvent", NULL);
        other_ns_text = loyalty_schema(NULL, NULL, "other.loyalty");
        if (!v1_text || !v2_text || !other_name || !other_ns_text)
                return -1;
        /* unit.h's write_file asserts, which a group setup cannot. */
        snprintf(made[nmade], sizeof(made[0]), "%s/v2.avsc", tmpdir);
        fp = fopen(made[nmade++], "w");
        if (!fp)
                return -1;
        fputs(v2_text, fp);
        fclose(fp);
        snprintf(v2_manifest, sizeof(v2_manifest), "%s/v2.cfg", tmpdir);
        snprintf(made[nmade++], sizeof(made[0]), "%s", v2_manifest);
        fp = fopen(v2_manifest, "w");
        if (!fp)
                return -1;
        fputs("schemas = ({ id = 2; version = 2; subject = \"" LOYALTY
              "\"; file = \"v2.avsc\"; });\n",
              fp);
        fclose(fp);
        return 0;
}

static int group_teardown(void **state)
{
        free(v1_text);
        free(v2_text);
        free(other_name);
        free(other_ns_text);
        return unit_tmpdir_remove();
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        const struct CMUnitTest tests[] = {
            T(test_bind_lookup),
            T(test_bind_auto_register),
            T(test_bind_not_registered),
            T(test_bind_unavailable),
            T(test_bind_waits_out_outage),
            T(test_decode_fetches_new_version),
            T(test_decode_other_subject),
            T(test_decode_id_of_many_subjects),
            T(test_decode_without_versions_call),
            T(test_decode_unknown_id),
            T(test_registry_down_later),
            T(test_registry_down_between_calls),
            T(test_registry_unreachable),
            T(test_registry_timeout),
            T(test_registry_refuses_credentials),
            T(test_unknown_id_cached_negatively),
            T(test_unknown_id_ttl_zero),
            T(test_unknown_ids_bounded),
            T(test_cache_evicts_fetched_not_pinned),
            T(test_cache_is_lru),
        };
#undef T
        int failed;

        /* Every wait here is bounded; this is the last line of defence. */
        alarm(120);
        if (relay_http_global_init() != 0)
                return 1;
        failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
        relay_http_global_cleanup();
        return failed;
}
