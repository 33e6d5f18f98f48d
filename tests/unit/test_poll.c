/*
 * The poll worker's pieces: source files and their errors, the window
 * arithmetic, request URLs, answers and their pages, record mapping (the
 * JSON mapping relay-ingest uses, with poll's event ids; the records
 * decoded back with avro-c's generic path), and checkpoint encode/decode;
 * plus the common helpers it brought (relay_iso_ms_parse,
 * relay_sign_uuid5, relay_kafka_key_partition).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "relay/avro.h"
#include "relay/kafka.h"
#include "relay/poll.h"
#include "relay/sign.h"
#include "unit.h"

static relay_schemas_t *schemas;

static int setup(void **state)
{
        (void)state;
        const char *src = getenv("RELAY_SOURCE_DIR");
        char path[1200], err[512];
        snprintf(path, sizeof(path), "%s/schemas/manifest.cfg",
                 src ? src : ".");
        if (!(schemas = relay_schemas_load(path, err, sizeof(err)))) {
                fprintf(stderr, "%s\n", err);
                return -1;
        }
        return unit_tmpdir_make("poll");
}

static int teardown(void **state)
{
        (void)state;
        relay_schemas_destroy(schemas);
        return unit_tmpdir_remove();
}

/* A source from the file text; NULL with err filled when it is refused. */
static relay_poll_source_t *load(const char *name, const char *text, char *err,
                                 size_t n)
{
        relay_poll_source_t **all = NULL;
        size_t k = 0;
        if (relay_poll_sources_load(write_file(name, text), schemas, &all, &k,
                                    err, n))
                return NULL;
        assert_int_equal(k, 1);
        relay_poll_source_t *s = all[0];
        free(all);
        return s;
}

#define HEAD                                                                   \
        "source = { name = \"s1\"; url = \"http://h/ev?x=1\"; tenant = "      \
        "\"acme\"; platform = \"antavo\";\n"

static relay_poll_source_t *good(const char *more)
{
        char text[2048], err[512] = "";
        snprintf(text, sizeof(text), "%s%s };\n", HEAD, more);
        relay_poll_source_t *s = load("good.cfg", text, err, sizeof(err));
        if (!s)
                fail_msg("refused: %s", err);
        return s;
}

static void test_source_errors(void **state)
{
        (void)state;
        char err[512];
        assert_null(load("a.cfg", HEAD "\n paging = { kind = \"pages\"; }; };\n",
                         err, sizeof(err)));
        assert_contains(err, "a.cfg:3: key 'source.paging.kind': must be "
                             "cursor, page or none");
        assert_null(load("b.cfg", HEAD " paging = { knd = \"page\"; }; };\n",
                         err, sizeof(err)));
        assert_contains(err, "b.cfg:2: unknown key 'source.paging.knd' (did "
                             "you mean 'source.paging.kind'?)");
        assert_null(load("c.cfg", HEAD "\n\n start = \"yesterday\"; };\n", err,
                         sizeof(err)));
        assert_contains(err, "c.cfg:4: key 'source.start': not an ISO-8601");
        /* The mapping's own errors name file and line as well. */
        assert_null(load("d.cfg",
                         HEAD "\n fields = ( { to = \"nope\"; from = "
                              "\"a\"; } ); };\n",
                         err, sizeof(err)));
        assert_contains(err, "d.cfg:3: to 'nope': the record has no field");
        assert_null(load("d.cfg",
                         HEAD " fields = ( { to = \"tenant\"; from = "
                              "\"a\"; type = \"flatten\"; } ); };\n",
                         err, sizeof(err)));
        assert_contains(err, "flatten copies a field ('from') into a map");
        assert_null(load("d.cfg", HEAD " key = \"{tenant/\"; };\n", err,
                         sizeof(err)));
        assert_contains(err, "d.cfg:2: template \"{tenant/\" has an unclosed");
        assert_null(load("d.cfg", HEAD " topic = \"nosuch\"; };\n", err,
                         sizeof(err)));
        assert_contains(err, "d.cfg:2: topic 'nosuch'");
        /* The old map group says where the mapping went. */
        assert_null(load("d.cfg",
                         HEAD "\n map = { identities = \"a=b\"; }; };\n",
                         err, sizeof(err)));
        assert_contains(err, "d.cfg:3: key 'source.map': retired");
        assert_null(load("e.cfg",
                         "source = { url = \"http://h\"; tenant = \"t\"; "
                         "platform = \"p\"; };\n",
                         err, sizeof(err)));
        assert_contains(err, "missing required key 'source.name'");
        assert_null(load("f.cfg",
                         "source = { name = \"a b\"; url = \"http://h\"; "
                         "tenant = \"t\"; platform = \"p\"; };\n",
                         err, sizeof(err)));
        assert_contains(err, "f.cfg:1: key 'source.name': must be letters");
}

static void test_sources_unique(void **state)
{
        (void)state;
        char err[512];
        relay_poll_source_t **all;
        size_t n;
        mkdir(unit_path("dir"), 0700);
        write_file("dir/1.cfg", HEAD "};\n");
        write_file("dir/2.cfg", HEAD "};\n");
        char dir[600];
        snprintf(dir, sizeof(dir), "%s/dir", tmpdir);
        assert_int_equal(relay_poll_sources_load(dir, schemas, &all, &n, err,
                                                 sizeof(err)),
                         -1);
        assert_contains(err, "2.cfg:1: key 'source.name': 's1' is also the "
                             "name of the source in");
}

static void test_window_next(void **state)
{
        (void)state;
        relay_poll_source_t *s = good("interval_ms = 60000; delay_ms = 10000; "
                                      "max_window_ms = 3600000;");
        relay_poll_window_t w;
        int64_t t = 1764064800000LL; /* 2025-11-25T10:00:00Z */
        /* Not due until ckpt + interval + delay. */
        assert_int_equal(relay_poll_window_next(s, t, t + 30000, &w), 40000);
        assert_int_equal(relay_poll_window_next(s, t, t + 69999, &w), 1);
        assert_int_equal(relay_poll_window_next(s, t, t + 70000, &w), 0);
        assert_int_equal(w.from, t);
        assert_int_equal(w.to, t + 60000);
        /* Later: up to now - delay, cut to whole seconds (iso8601). */
        assert_int_equal(relay_poll_window_next(s, t, t + 95432, &w), 0);
        assert_int_equal(w.to, t + 85000);
        /* Catching up: max_window_ms at a time, windows back to back. */
        assert_int_equal(relay_poll_window_next(s, t, t + 86400000, &w), 0);
        assert_int_equal(w.to, t + 3600000);
        assert_int_equal(relay_poll_window_next(s, w.to, t + 86400000, &w), 0);
        assert_int_equal(w.from, t + 3600000);
        assert_int_equal(w.to, t + 7200000);
        relay_poll_source_free(s);

        /* epoch_ms windows end to the millisecond; the origin. */
        s = good("interval_ms = 1000; delay_ms = 0; lookback_ms = 5000; "
                 "window = { format = \"epoch_ms\"; };");
        assert_int_equal(relay_poll_window_next(s, t, t + 1234, &w), 0);
        assert_int_equal(w.to, t + 1234);
        assert_int_equal(relay_poll_window_origin(s, t + 1234), t - 3766);
        relay_poll_source_free(s);
        s = good("start = \"2025-11-25T10:00:00.700Z\";");
        assert_int_equal(relay_poll_window_origin(s, 0), t); /* whole s */
        relay_poll_source_free(s);
}

static void test_request_url(void **state)
{
        (void)state;
        relay_poll_source_t *s = good(
            "auth = { in = \"query\"; name = \"api_key\"; }; "
            "paging = { kind = \"cursor\"; size = 25; };");
        relay_poll_window_t w = {1764064800000LL, 1764064860500LL};
        relay_buf_t b;
        relay_buf_init(&b);
        relay_poll_request_url(s, &w, 1, NULL, "k+y", &b);
        assert_string_equal(b.data, "http://h/ev?x=1&from=2025-11-25T10%3A00"
                                    "%3A00.000Z&to=2025-11-25T10%3A01%3A00."
                                    "500Z&limit=25&api_key=k%2By");
        relay_poll_request_url(s, &w, 2, "c/1=", "k", &b);
        assert_contains(b.data, "&cursor=c%2F1%3D&limit=25&api_key=k");
        relay_poll_source_free(s);
        char err[512];
        s = load("url.cfg",
                 "source = { name = \"s\"; url = \"http://h/ev\"; tenant = "
                 "\"t\"; platform = \"p\"; window = { from_param = "
                 "\"since\"; to_param = \"until\"; format = \"epoch_s\"; "
                 "}; paging = { kind = \"page\"; size_param = \"\"; }; };",
                 err, sizeof(err));
        assert_non_null(s);
        relay_poll_request_url(s, &w, 3, "ignored", "tok", &b);
        /* The header carries the token here. */
        assert_string_equal(b.data, "http://h/ev?since=1764064800&until="
                                    "1764064860&page=3");
        relay_buf_free(&b);
        relay_poll_source_free(s);
}

static void test_answer_pages(void **state)
{
        (void)state;
        char err[256];
        relay_poll_answer_t a;
        relay_poll_source_t *s = good("paging = { next = \"meta.next\"; };");
        const char *body = "{\"data\":[{\"id\":1},{\"id\":2}],"
                           "\"meta\":{\"next\":\"abc\"}}";
        assert_int_equal(relay_poll_answer_parse(s, body, strlen(body), &a, err,
                                                 sizeof(err)),
                         RELAY_OK);
        assert_int_equal(json_array_size(a.records), 2);
        assert_string_equal(a.cursor, "abc");
        assert_true(a.more);
        relay_poll_answer_free(&a);
        body = "{\"data\":[],\"meta\":{\"next\":null}}";
        assert_int_equal(relay_poll_answer_parse(s, body, strlen(body), &a, err,
                                                 sizeof(err)),
                         RELAY_OK);
        assert_null(a.cursor);
        assert_false(a.more);
        relay_poll_answer_free(&a);
        /* Not what the source promises: retried, never a record's fault. */
        const char *bad[] = {"<html>", "{\"data\":{}}", "{\"data\":[1]}",
                             "{\"data\":[],\"meta\":{\"next\":[1]}}"};
        const char *why[] = {"not JSON", "no records array at 'data'",
                             "record 0 is not an object",
                             "neither a cursor nor null"};
        for (size_t i = 0; i < 4; i++) {
                assert_int_equal(relay_poll_answer_parse(s, bad[i],
                                                         strlen(bad[i]), &a,
                                                         err, sizeof(err)),
                                 RELAY_RETRY);
                assert_contains(err, why[i]);
                assert_null(a.root);
        }
        relay_poll_source_free(s);
        /* Numbered pages: a full page means another follows. */
        s = good("records = \"\"; paging = { kind = \"page\"; size = 2; };");
        body = "[{},{}]";
        assert_int_equal(relay_poll_answer_parse(s, body, 7, &a, err,
                                                 sizeof(err)),
                         RELAY_OK);
        assert_true(a.more);
        relay_poll_answer_free(&a);
        assert_int_equal(relay_poll_answer_parse(s, "[{}]", 4, &a, err,
                                                 sizeof(err)),
                         RELAY_OK);
        assert_false(a.more);
        relay_poll_answer_free(&a);
        relay_poll_source_free(s);
}

/* Map rec as the worker does; decode the record back with avro-c. NULL
 * with err when the record is refused. */
static json_t *map(relay_poll_source_t *s, const char *rec, relay_buf_t *key,
                   char *err, size_t n)
{
        json_t *in = json_loads(rec, 0, NULL), *out = NULL;
        const void *val;
        size_t len;
        char id[RELAY_UUID_SIZE], why[512];
        assert_non_null(in);
        if (!relay_poll_record_map(s, NULL, in, key, &val, &len, id, err, n)) {
                assert_int_equal(relay_avro_decode_written(schemas, val, len,
                                                           &out, why,
                                                           sizeof(why)),
                                 RELAY_OK);
                assert_string_equal(
                    json_string_value(json_object_get(out, "event_id")), id);
        }
        json_decref(in);
        return out;
}

/* What acme-antavo.cfg says, the e-mail one level down. */
#define ANTAVO_MAP                                                             \
        "event_id = \"id\"; key = [ \"{tenant}/{identities.customer_id}\", "   \
        "\"{tenant}/{identities.email}\" ]; fields = ( "                       \
        "{ to = \"occurred_at\"; from = \"created_at\"; type = \"iso8601\"; "  \
        "required = true; }, "                                                 \
        "{ to = \"event_type\"; from = \"action\"; type = \"string\"; "        \
        "required = true; }, "                                                 \
        "{ to = \"identities.customer_id\"; from = \"customer\"; "             \
        "type = \"string\"; }, "                                               \
        "{ to = \"identities.email\"; from = \"profile.email\"; "              \
        "type = \"string\"; }, "                                               \
        "{ to = \"data\"; from = \"data\"; type = \"flatten\"; } );"

static void test_record_map(void **state)
{
        (void)state;
        char err[256];
        relay_buf_t key;
        relay_buf_init(&key);
        relay_poll_source_t *s = good(ANTAVO_MAP);
        json_t *out = map(s,
                          "{\"id\":\"e1\",\"customer\":\"c1\",\"action\":"
                          "\"checkout\",\"created_at\":\"2025-11-25T11:00:00."
                          "250+01:00\",\"profile\":{\"email\":\"a@x\"},"
                          "\"data\":{\"total\":12.5,\"n\":3,\"ok\":true,"
                          "\"no\":null,\"items\":[{\"sku\":\"s\"}],\"o\":{}}}",
                          &key, err, sizeof(err));
        assert_non_null(out);
        /* uuid.uuid5(uuid.NAMESPACE_URL, "relay-poll:acme/antavo/e1"): the
         * ids relay-poll made before it took the shared mapping. */
        char *text = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
        assert_string_equal(
            text,
            "{\"data\":{\"items.0.sku\":\"s\",\"n\":3,\"no\":null,\"ok\":true,"
            "\"total\":12.5},\"event_id\":"
            "\"b95c0658-fe03-5d40-9da3-e8448f521526\","
            "\"event_type\":\"checkout\",\"identities\":{\"customer_id\":"
            "\"c1\",\"email\":\"a@x\"},\"occurred_at\":1764064800250,"
            "\"source\":\"antavo\",\"tenant\":\"acme\"}");
        free(text);
        assert_string_equal(key.data, "acme/c1");
        json_decref(out);
        /* The second key when the first has no field to fill it. */
        out = map(s,
                  "{\"id\":\"e2\",\"action\":\"x\",\"created_at\":"
                  "\"2025-11-25T10:00:00Z\",\"profile\":{\"email\":\"a@x\"}}",
                  &key, err, sizeof(err));
        assert_string_equal(key.data, "acme/a@x");
        json_decref(out);
        /* A UUID of its own is kept (lower case); no identity: keyed by it. */
        out = map(s,
                  "{\"id\":\"0F8FAD5B-D9CB-469F-A165-70867728950E\",\"action\":"
                  "\"x\",\"created_at\":\"2025-11-25T10:00:00Z\"}",
                  &key, err, sizeof(err));
        assert_string_equal(json_string_value(json_object_get(out, "event_id")),
                            "0f8fad5b-d9cb-469f-a165-70867728950e");
        assert_string_equal(key.data, "0f8fad5b-d9cb-469f-a165-70867728950e");
        json_decref(out);
        /* No id: the same content, the same id (and not a random one). */
        json_t *o1 = map(s, "{\"action\":\"x\",\"created_at\":\"2025-11-25T10:00:00Z\",\"b\":1,\"a\":2}",
                         &key, err, sizeof(err));
        json_t *o2 = map(s, "{\"a\":2,\"b\":1,\"created_at\":\"2025-11-25T10:00:00Z\",\"action\":\"x\"}",
                         &key, err, sizeof(err));
        json_t *o3 = map(s, "{\"a\":3,\"b\":1,\"created_at\":\"2025-11-25T10:00:00Z\",\"action\":\"x\"}",
                         &key, err, sizeof(err));
        const char *id1 = json_string_value(json_object_get(o1, "event_id"));
        assert_string_equal(id1,
                            json_string_value(json_object_get(o2, "event_id")));
        assert_string_not_equal(
            id1, json_string_value(json_object_get(o3, "event_id")));
        assert_int_equal(id1[14], '5');
        json_decref(o1);
        json_decref(o2);
        json_decref(o3);
        /* The record's fault. */
        assert_null(map(s, "{\"created_at\":\"2025-11-25T10:00:00Z\"}", &key,
                        err, sizeof(err)));
        assert_contains(err, "required field 'action' (to event_type) is "
                             "missing");
        assert_null(map(s, "{\"action\":\"x\",\"created_at\":\"soon\"}", &key,
                        err, sizeof(err)));
        assert_contains(err, "field 'created_at' (to occurred_at) is not a "
                             "time (ISO 8601)");
        assert_null(map(s,
                        "{\"action\":\"x\",\"created_at\":\"2025-11-25T10:00:"
                        "00Z\",\"data\":\"flat\"}",
                        &key, err, sizeof(err)));
        assert_contains(err, "field 'data' (to data) is not an object or "
                             "array");
        relay_poll_source_free(s);
        s = good("fields = ( { to = \"occurred_at\"; from = \"ts\"; "
                 "type = \"epoch_s\"; }, { to = \"event_type\"; from = "
                 "\"action\"; }, { to = \"data\"; from = \"\"; type = "
                 "\"flatten\"; } );");
        out = map(s, "{\"action\":\"x\",\"ts\":\"1764064800\"}", &key, err,
                  sizeof(err));
        assert_int_equal(json_integer_value(json_object_get(out, "occurred_at")),
                         1764064800000LL);
        /* The whole record is the payload. */
        assert_non_null(json_object_get(json_object_get(out, "data"), "ts"));
        json_decref(out);
        assert_null(map(s, "{\"action\":\"x\",\"ts\":\"17640648001764064800\"}",
                        &key, err, sizeof(err)));
        assert_contains(err, "is not a time (epoch seconds)");
        relay_poll_source_free(s);
        relay_buf_free(&key);
}

static void test_checkpoint(void **state)
{
        (void)state;
        relay_poll_checkpoint_t c = {1000, 61000, 42, 62000}, d;
        relay_buf_t b;
        char err[256];
        relay_buf_init(&b);
        relay_poll_checkpoint_encode("s\"1", &c, &b);
        assert_string_equal(b.data, "{\"source\":\"s\\\"1\",\"window_start\":"
                                    "1000,\"window_end\":61000,\"records\":42,"
                                    "\"written_at\":62000}");
        assert_int_equal(relay_poll_checkpoint_decode("s\"1", b.data, b.len, &d,
                                                      err, sizeof(err)),
                         0);
        assert_memory_equal(&c, &d, sizeof(c));
        assert_int_equal(relay_poll_checkpoint_decode("other", b.data, b.len,
                                                      &d, err, sizeof(err)),
                         -1);
        assert_contains(err, "the checkpoint of 's\"1', not of 'other'");
        assert_int_equal(relay_poll_checkpoint_decode("x", "{\"source\":\"x\"}",
                                                      14, &d, err,
                                                      sizeof(err)),
                         -1);
        assert_contains(err, "no window_end");
        assert_int_equal(relay_poll_checkpoint_decode("x", "nope", 4, &d, err,
                                                      sizeof(err)),
                         -1);
        relay_buf_free(&b);
}

static void test_helpers(void **state)
{
        (void)state;
        int64_t ms;
        assert_int_equal(relay_iso_ms_parse("2025-11-25T10:00:00Z", 20, &ms), 0);
        assert_int_equal(ms, 1764064800000LL);
        const char *t = "2024-02-29T23:59:59.9999-02:30";
        assert_int_equal(relay_iso_ms_parse(t, strlen(t), &ms), 0);
        assert_int_equal(ms, 1709260199999LL);
        assert_int_equal(relay_iso_ms_parse("1969-12-31T23:59:59.5Z", 22, &ms),
                         0);
        assert_int_equal(ms, -500);
        const char *bad[] = {"2025-02-29T00:00:00Z", "2025-11-25", "2025-11-25T10:00:00Zx",
                             "2025-13-01T00:00:00Z", "2025-11-25T10:00:00.Z",
                             "2025-11-25T10:00:00+1:00"};
        for (size_t i = 0; i < 6; i++)
                assert_int_equal(relay_iso_ms_parse(bad[i], strlen(bad[i]), &ms),
                                 -1);
        /* uuid.uuid5(uuid.NAMESPACE_DNS, "python.org") */
        static const unsigned char dns[16] = {0x6b, 0xa7, 0xb8, 0x10, 0x9d,
                                              0xad, 0x11, 0xd1, 0x80, 0xb4,
                                              0x00, 0xc0, 0x4f, 0xd4, 0x30,
                                              0xc8};
        char u[RELAY_UUID_SIZE];
        assert_int_equal(relay_sign_uuid5(dns, "python.org", 10, u), 0);
        assert_string_equal(u, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
        /* The Java client's partitions (kafka-python's murmur2). */
        assert_int_equal(relay_kafka_key_partition("it-a", 4, 12), 0);
        relay_buf_t b;
        relay_buf_init(&b);
        relay_buf_url_encode(&b, "a b/ü~", 7);
        assert_string_equal(b.data, "a%20b%2F%C3%BC~");
        relay_buf_free(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_source_errors),
            cmocka_unit_test(test_sources_unique),
            cmocka_unit_test(test_window_next),
            cmocka_unit_test(test_request_url),
            cmocka_unit_test(test_answer_pages),
            cmocka_unit_test(test_record_map),
            cmocka_unit_test(test_checkpoint),
            cmocka_unit_test(test_helpers),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
