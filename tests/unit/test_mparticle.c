/*
 * Unit tests of the mParticle adapter (common/adapters/mparticle.c): how an
 * out.mparticle record becomes a batch, how batches become a /bulkevents
 * request, and what each answer means.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapter_fixture.h"

static const char *record_json =
    "{\"event_id\":\"6f1c2a10-0002-4000-8000-000000000002\","
    "\"occurred_at\":1764064860000,\"tenant\":\"acme\",\"source\":\"antavo\","
    "\"connection\":\"c1\",\"destination\":\"mparticle\","
    "\"environment\":\"development\",\"identity_type\":\"customer_id\","
    "\"identity_value\":\"cust-\\\"1\","
    "\"event_name\":\"Coupon Issued\",\"event_category\":\"other\","
    "\"attributes\":{\"code\":\"W10\",\"points\":5,\"ratio\":0.5,"
    "\"vip\":true,\"none\":null},"
    "\"user_attributes\":{\"$firstname\":\"Ann\"}}";

/* A conf with the URL, the key and secret, and one more key; init's
 * result. */
static int setup_conf(struct fixture *f, const char *extra_key,
                      const char *extra_val)
{
        char errstr[512];
        const char *const kv[][2] = {
            {"mparticle.url", "http://127.0.0.1:1/v2/"},
            {extra_key, extra_val}};
        setenv("RELAY_MPARTICLE_API_KEY", "key", 1);
        setenv("RELAY_MPARTICLE_API_SECRET", "secret", 1);
        return fx_conf(f, kv, 2, errstr, sizeof(errstr));
}

static int setup(void **state)
{
        return fx_setup(state, "mparticle", NULL);
}

static void test_encode_batch(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item;
        relay_buf_init(&item);
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        json_t *rec = json_loads(record_json, 0, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        json_t *want = json_loads(
            "{\"schema_version\":2,\"environment\":\"development\","
            "\"source_request_id\":\"6f1c2a10-0002-4000-8000-000000000002\","
            "\"timestamp_unixtime_ms\":1764064860000,"
            "\"user_identities\":{\"customer_id\":\"cust-\\\"1\"},"
            "\"user_attributes\":{\"$firstname\":\"Ann\"},"
            "\"events\":[{\"event_type\":\"custom_event\",\"data\":{"
            "\"event_name\":\"Coupon Issued\",\"custom_event_type\":\"other\","
            "\"source_message_id\":\"6f1c2a10-0002-4000-8000-000000000002\","
            "\"timestamp_unixtime_ms\":1764064860000,"
            "\"custom_attributes\":{\"code\":\"W10\",\"points\":5,"
            "\"ratio\":0.5,\"vip\":true,\"none\":null}}}]}",
            0, NULL);
        json_error_t jerr;
        json_t *got = json_loadb(item.data, item.len, 0, &jerr);
        assert_non_null(got);
        if (!json_equal(got, want))
                fail_msg("batch differs: %s", item.data);
        /* And byte for byte, with integers of each size and sign and
         * every kind of escape in a key and a value: what was sent before
         * the encoder wrote strings and integers itself. */
        json_t *ints = json_deep_copy(rec);
        json_t *attrs = json_object_get(ints, "attributes");
        json_object_set_new(attrs, "neg", json_integer(-1234567890123LL));
        json_object_set_new(attrs, "zero", json_integer(0));
        json_object_set_new(attrs, "big", json_integer(INT64_MAX));
        json_object_set_new(attrs, "min", json_integer(INT64_MIN));
        json_object_set_new(attrs, "k\"\\\n\x01\u00e9",
                            json_string("v\t\r\x1f\x7f\u20ac/"));
        relay_buf_reset(&item);
        assert_int_equal(fx_encode(f, ints, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_string_equal(
            item.data,
            "{\"schema_version\":2,\"environment\":\"development\","
            "\"source_request_id\":\"6f1c2a10-0002-4000-8000-000000000002\","
            "\"timestamp_unixtime_ms\":1764064860000,"
            "\"user_identities\":{\"customer_id\":\"cust-\\\"1\"},"
            "\"user_attributes\":{\"$firstname\":\"Ann\"},"
            "\"events\":[{\"event_type\":\"custom_event\","
            "\"data\":{\"event_name\":\"Coupon Issued\","
            "\"custom_event_type\":\"other\","
            "\"source_message_id\":\"6f1c2a10-0002-4000-8000-000000000002\","
            "\"timestamp_unixtime_ms\":1764064860000,"
            "\"custom_attributes\":{\"code\":\"W10\",\"points\":5,"
            "\"ratio\":0.5,\"vip\":true,\"none\":null,"
            "\"neg\":-1234567890123,\"zero\":0,\"big\":9223372036854775807,"
            "\"min\":-9223372036854775808,"
            "\"k\\\"\\\\\\n\\u0001\xc3\xa9\":"
            "\"v\\t\\r\\u001f\x7f\xe2\x82\xac/\"}}}]}");
        json_decref(ints);

        /* Bytes that are not UTF-8 become U+FFFD: the body stays JSON. */
        json_t *bad = json_deep_copy(rec);
        avro_value_t *v = relay_avro_writer_value(f->writer);
        assert_int_equal(relay_avro_from_json(v, bad, errstr, sizeof(errstr)),
                         0);
        avro_value_t idv;
        avro_value_get_by_name(v, "identity_value", &idv, NULL);
        avro_value_set_string(&idv, "x\xff\xc3\x28y\xc3\xa9");
        relay_buf_reset(&item);
        assert_int_equal(fx_encode_value(f, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        json_t *bj = json_loadb(item.data, item.len, 0, &jerr);
        assert_non_null(bj);
        assert_string_equal(
            json_string_value(json_object_get(
                json_object_get(bj, "user_identities"), "customer_id")),
            "x\xef\xbf\xbd\xef\xbf\xbd(y\xc3\xa9");
        json_decref(bj);
        json_decref(bad);

        /* Production environment and a profile-only update (no event). */
        json_object_set_new(rec, "environment", json_string("production"));
        json_object_set_new(rec, "event_name", json_null());
        relay_buf_reset(&item);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        json_decref(got);
        got = json_loadb(item.data, item.len, 0, &jerr);
        assert_string_equal(
            json_string_value(json_object_get(got, "environment")),
            "production");
        assert_int_equal(json_array_size(json_object_get(got, "events")), 0);
        json_decref(got);
        json_decref(want);
        json_decref(rec);
        relay_buf_free(&item);
}

static void test_encode_limits(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item;
        relay_buf_init(&item);
        assert_int_equal(setup_conf(f, "mparticle.max_batch_bytes", "300"), 0);
        json_t *rec = json_loads(record_json, 0, NULL);
        /* A long attribute value: over 4096 characters is refused. */
        char *big = malloc(5000);
        memset(big, 'x', 4999);
        big[4999] = '\0';
        json_object_set_new(json_object_get(rec, "attributes"), "big",
                            json_string(big));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(
            strstr(errstr, "'big' is longer than mParticle's 4096"));
        /* An identity type mParticle does not know is refused alone. */
        json_t *odd = json_deep_copy(rec);
        json_object_set_new(odd, "identity_type", json_string("emial"));
        relay_buf_reset(&item);
        assert_int_equal(fx_encode(f, odd, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(
            errstr, "identity type 'emial' is not one mParticle accepts");
        json_decref(odd);
        /* Without it the batch is still larger than the 300-byte limit. */
        json_object_del(json_object_get(rec, "attributes"), "big");
        relay_buf_reset(&item);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(
            strstr(errstr, "exceeds mParticle's batch limit of 300"));
        free(big);
        json_decref(rec);
        relay_buf_free(&item);
}

static void test_request_and_limits(void **state)
{
        struct fixture *f = *state;
        relay_buf_t items[2], body;
        relay_http_request_t req;
        size_t max_items, max_bytes;
        assert_int_equal(
            setup_conf(f, "mparticle.max_batches_per_request", "20"), 0);
        relay_adapter_limits(f->a, f->st, &max_items, &max_bytes);
        assert_int_equal(max_items, 20);
        assert_int_equal(max_bytes, 262144 - 2);
        relay_buf_init(&items[0]);
        relay_buf_init(&items[1]);
        relay_buf_init(&body);
        relay_buf_puts(&items[0], "{\"a\":1}");
        relay_buf_puts(&items[1], "{\"b\":2}");
        relay_adapter_request(f->a, f->st, items, 2, &body, &req);
        assert_string_equal(req.url, "http://127.0.0.1:1/v2/bulkevents");
        assert_string_equal(req.method, "POST");
        assert_string_equal(req.userpwd, "key:secret");
        assert_string_equal(req.headers[0], "Content-Type: application/json");
        assert_null(req.headers[1]);
        assert_int_equal(req.body_len, strlen("[{\"a\":1},{\"b\":2}]"));
        assert_memory_equal(req.body, "[{\"a\":1},{\"b\":2}]", req.body_len);
        relay_buf_free(&items[0]);
        relay_buf_free(&items[1]);
        relay_buf_free(&body);
}

static void test_classify(void **state)
{
        struct fixture *f = *state;
        char e[512];
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        assert_int_equal(fx_classify(f, 202, NULL, 0, e, sizeof(e)), RELAY_OK);
        /* A garbage 2xx body is logged, still delivered. */
        assert_int_equal(fx_classify(f, 202, "<html>", 0, e, sizeof(e)),
                         RELAY_OK);
        assert_int_equal(
            fx_classify(f, 400,
                        "{\"errors\":[{\"code\":\"BAD_REQUEST\",\"message\":"
                        "\"Required event field \\\"event_type\\\" is "
                        "missing\"}]}",
                        0, e, sizeof(e)),
            RELAY_FATAL);
        assert_string_equal(
            e, "HTTP 400: Required event field \"event_type\" is missing");
        assert_int_equal(fx_classify(f, 401, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 401: (no body)");
        assert_int_equal(fx_classify(f, 403, "denied", 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 403: denied");
        assert_int_equal(fx_classify(f, 429, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 503, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        /* A redirect: the endpoint is misconfigured, not the record. */
        assert_int_equal(fx_classify(f, 302, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 0, NULL, 28, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "Timeout was reached");
}

static void test_missing_secret(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        fx_conf_new(f);
        unsetenv("RELAY_MPARTICLE_API_KEY");
        unsetenv("RELAY_MPARTICLE_API_KEY_FILE");
        setenv("RELAY_MPARTICLE_API_SECRET", "secret", 1);
        assert_int_equal(fx_init(f, errstr, sizeof(errstr)), -1);
        assert_null(f->st);
        assert_string_equal(errstr,
                            "missing required key 'mparticle.api_key' (input "
                            "feed API key): set RELAY_MPARTICLE_API_KEY or "
                            "RELAY_MPARTICLE_API_KEY_FILE");
}

/* A key rotated in its *_FILE reaches the requests once deliver has
 * re-read the secrets and re-run init (what it does before a probe). */
static void test_rotated_secret(void **state)
{
        struct fixture *f = *state;
        char errstr[512], path[] = "/tmp/relay-test-mp-secret-XXXXXX";
        fx_temp_file(path, "old-secret\n");
        fx_conf_new(f);
        setenv("RELAY_MPARTICLE_API_KEY", "key", 1);
        unsetenv("RELAY_MPARTICLE_API_SECRET");
        setenv("RELAY_MPARTICLE_API_SECRET_FILE", path, 1);
        assert_int_equal(fx_init(f, errstr, sizeof(errstr)), 0);
        relay_buf_t item, body;
        relay_http_request_t req;
        relay_buf_init(&item);
        relay_buf_init(&body);
        relay_buf_puts(&item, "{}");
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_string_equal(req.userpwd, "key:old-secret");
        assert_string_equal(req.url, "https://s2s.mparticle.com/v2/bulkevents");

        fx_rewrite(path, "new-secret\n");
        assert_int_equal(
            relay_conf_reload_secrets(f->conf, errstr, sizeof(errstr)), 1);
        fx_reinit(f);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_string_equal(req.userpwd, "key:new-secret");

        unsetenv("RELAY_MPARTICLE_API_SECRET_FILE");
        unlink(path);
        relay_buf_free(&item);
        relay_buf_free(&body);
}

/* deliver's per-record work (decode the envelope into slots, encode the
 * request item into a reused buffer) allocates nothing once warm. */
static void test_steady_state_allocates_nothing(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        struct fx_steady got = fx_steady_state(f, &record_json, 1, 1, 1000, 0);
        assert_true(got.item_bytes > 1000 * 100);
}

int main(void)
{
        count_init();
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_encode_batch, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_steady_state_allocates_nothing,
                                            setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_encode_limits, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_request_and_limits, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_classify, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_missing_secret, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_rotated_secret, setup,
                                            fx_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
