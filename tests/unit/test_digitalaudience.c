/*
 * Unit tests of the digitalAudience adapter
 * (common/adapters/digitalaudience.c): how a match.upload or crm.upload
 * record becomes one upload of {"uploads":[...]}, that a hashed identity
 * that is not a SHA-256 never reaches a body, how per-upload rejections of
 * a 2xx map back to their records, the limits, what each answer means,
 * and that nothing is allocated per record once warm.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapter_fixture.h"

#define H_EMAIL                                                                \
        "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514"
#define H_MOBILE                                                               \
        "0d5ff8d5f4d3b8d1e51a3c6a0a5ab3f2d7c8e0b1a2c3d4e5f60718293a4b5c6d"

/* occurred_at 1764064860123 is 2025-11-25T10:01:00.123Z. */
static const char *match_json =
    "{\"event_id\":\"6f1c2a10-0002-4000-8000-000000000002\","
    "\"occurred_at\":1764064860123,\"tenant\":\"acme\",\"source\":\"dmp\","
    "\"connection\":\"c1\",\"destination\":\"digitalaudience\","
    "\"environment\":\"production\",\"identity_type\":\"dmp_cookie_id\","
    "\"identity_value\":\"ck-1\",\"event_name\":null,"
    "\"event_category\":null,\"attributes\":{},\"user_attributes\":{},"
    "\"identities\":{\"dmp_cookie_id\":\"ck-\\\"1\","
    "\"partner_user_id\":\"tl-9\",\"email\":\"ann@example.com\"},"
    "\"operations\":[{\"op\":\"match.upload\",\"target\":\"tealium\","
    "\"attributes\":{}}]}";

static const char *crm_json =
    "{\"event_id\":\"6f1c2a10-0003-4000-8000-000000000003\","
    "\"occurred_at\":951868799999,\"tenant\":\"acme\",\"source\":\"crm\","
    "\"connection\":\"c1\",\"destination\":\"digitalaudience\","
    "\"environment\":\"production\",\"identity_type\":\"customer_id\","
    "\"identity_value\":\"crm-42\",\"event_name\":null,"
    "\"event_category\":null,\"attributes\":{\"tier\":\"gold\"},"
    "\"user_attributes\":{\"city\":\"Utrecht\"},"
    "\"identities\":{\"customer_id\":\"crm-42\","
    "\"email_sha256\":\"" H_EMAIL "\",\"email\":\"ann@example.com\","
    "\"mobile_sha256\":\"" H_MOBILE "\"},"
    "\"operations\":[{\"op\":\"crm.upload\",\"target\":\"crm-42\","
    "\"attributes\":{}}]}";

/* A conf with the URL, the token, the client id and one more key; init's
 * result. */
static int setup_conf(struct fixture *f, const char *extra_key,
                      const char *extra_val)
{
        char errstr[512];
        const char *const kv[][2] = {
            {"digitalaudience.url", "http://127.0.0.1:1/"},
            {"digitalaudience.client_id", "acme-nl"},
            {extra_key, extra_val}};
        unsetenv("RELAY_DIGITALAUDIENCE_API_TOKEN_FILE");
        setenv("RELAY_DIGITALAUDIENCE_API_TOKEN", "da-token", 1);
        return fx_conf(f, kv, 3, errstr, sizeof(errstr));
}

static int setup(void **state)
{
        return fx_setup(state, "digitalaudience", NULL);
}

/* A new state on a new conf with key = val, which must init. */
static void restart(struct fixture *f, const char *key, const char *val)
{
        assert_int_equal(setup_conf(f, key, val), 0);
}

#define MATCH_UPLOAD                                                           \
        "{\"type\":\"match\",\"partner\":\"tealium\","                         \
        "\"dmp_id\":\"ck-\\\"1\",\"partner_id\":\"tl-9\","                     \
        "\"seen_at\":\"2025-11-25T10:01:00.123Z\","                            \
        "\"upload_id\":\"6f1c2a10-0002-4000-8000-000000000002\"}"
#define CRM_UPLOAD                                                             \
        "{\"type\":\"crm\",\"record_id\":\"crm-42\",\"hashes\":{"              \
        "\"email_sha256\":\"" H_EMAIL "\",\"mobile_sha256\":\"" H_MOBILE       \
        "\"},\"upload_id\":\"6f1c2a10-0003-4000-8000-000000000003\"}"

static void test_bodies(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        json_t *recs[3] = {fx_record(match_json, NULL, NULL),
                           fx_record(crm_json, NULL, NULL),
                           fx_record(match_json, NULL, NULL)};
        /* The second pair: another partner, named by a setting's kind. */
        json_t *op0 = json_array_get(json_object_get(recs[2], "operations"), 0);
        json_object_set_new(op0, "target", json_string("relay42"));
        json_object_set_new(recs[2], "occurred_at", json_integer(0));
        fx_assert_records_body(f, recs, 1,
                               "{\"uploads\":[" MATCH_UPLOAD "]}");
        fx_assert_records_body(f, recs + 1, 1,
                               "{\"uploads\":[" CRM_UPLOAD "]}");
        fx_assert_records_body(
            f, recs, 3,
            "{\"uploads\":[" MATCH_UPLOAD "," CRM_UPLOAD
            ",{\"type\":\"match\",\"partner\":\"relay42\","
            "\"dmp_id\":\"ck-\\\"1\",\"partner_id\":\"tl-9\","
            "\"seen_at\":\"1970-01-01T00:00:00.000Z\","
            "\"upload_id\":\"6f1c2a10-0002-4000-8000-000000000002\"}]}");

        /* The request: POST to the uploads path of the client, bearer
         * token, JSON. */
        relay_buf_t body;
        relay_http_request_t req;
        relay_buf_init(&body);
        fx_request_of(f, recs, 1, &body, &req);
        assert_string_equal(req.method, "POST");
        assert_string_equal(req.url,
                            "http://127.0.0.1:1/v1/clients/acme-nl/uploads");
        assert_string_equal(req.headers[0], "Content-Type: application/json");
        assert_string_equal(req.headers[1], "Authorization: Bearer da-token");
        assert_null(req.headers[2]);
        relay_buf_free(&body);

        /* Another path and partner id kind, as settings. */
        char errstr[512];
        const char *const kv[][2] = {
            {"digitalaudience.url", "https://api.example"},
            {"digitalaudience.client_id", "c7"},
            {"digitalaudience.upload_path", "/api/{client}/x/{client}"},
            {"digitalaudience.partner_id_kind", "email"}};
        assert_int_equal(fx_conf(f, kv, 4, errstr, sizeof(errstr)), 0);
        relay_buf_init(&body);
        fx_request_of(f, recs, 1, &body, &req);
        assert_string_equal(req.url, "https://api.example/api/c7/x/c7");
        assert_non_null(strstr(req.body, "\"partner_id\":\"ann@example.com\""));
        relay_buf_free(&body);
        for (int i = 0; i < 3; i++)
                json_decref(recs[i]);
}

/* A hashed kind holding anything but 64 lowercase hex digits is refused
 * before a byte of it is written, and the reason does not quote it. */
static void test_unhashed_refused(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item;
        relay_buf_init(&item);
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        const char *bad[] = {"ann@example.com",
                             /* SHA-1: 40 characters */
                             "a9993e364706816aba3e25717850c26c9cd0d89d",
                             /* upper case */
                             "B4C9A289323B21A01C3E940F150EB9B8C542587F1ABFD8F0"
                             "E1CC1FFC5E475514",
                             /* 64 characters, one not hex */
                             "g4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0"
                             "e1cc1ffc5e475514",
                             ""};
        for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
                json_t *rec = fx_record(crm_json, NULL, NULL);
                json_object_set_new(json_object_get(rec, "identities"),
                                    "mobile_sha256", json_string(bad[k]));
                /* Something already in the buffer stays as it was. */
                relay_buf_reset(&item);
                relay_buf_puts(&item, "x");
                avro_value_t *v = relay_avro_writer_value(f->writer);
                assert_int_equal(
                    relay_avro_from_json(v, rec, errstr, sizeof(errstr)), 0);
                const void *buf;
                size_t len;
                assert_int_equal(relay_avro_writer_encode(f->writer, &buf, &len,
                                                          errstr,
                                                          sizeof(errstr)),
                                 RELAY_OK);
                const relay_slots_t *slots;
                assert_int_equal(relay_avro_reader_decode_slots(
                                     f->reader, buf, len, &slots, NULL, errstr,
                                     sizeof(errstr)),
                                 RELAY_OK);
                assert_int_equal(relay_adapter_encode(f->a, f->st, slots, &item,
                                                      errstr, sizeof(errstr)),
                                 RELAY_FATAL);
                assert_int_equal(item.len, 1);
                assert_non_null(strstr(errstr, "identities.mobile_sha256 is "
                                               "not a SHA-256 in lowercase "
                                               "hex"));
                assert_non_null(strstr(errstr, "must never leave the client"));
                if (bad[k][0])
                        assert_null(strstr(errstr, bad[k]));
                json_decref(rec);
        }
        /* A clear e-mail under a hashed kind, the first of the map: the
         * record is refused, not sent without it. */
        json_t *rec = fx_record(crm_json, NULL, NULL);
        json_object_set_new(json_object_get(rec, "identities"), "email_sha256",
                            json_string("ann@example.com"));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr,
                            "identities.email_sha256 is not a SHA-256 in "
                            "lowercase hex (64 characters; got 15 "
                            "characters): an unhashed or malformed value "
                            "must never leave the client, so the record is "
                            "not sent");
        assert_int_equal(item.len, 0);
        json_decref(rec);

        /* The clear "email" kind is never sent (and is no reason to refuse
         * a record whose hashes are good). */
        rec = fx_record(crm_json, NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_null(memmem(item.data, item.len, "example.com", 11));
        assert_null(memmem(item.data, item.len, "Utrecht", 7));
        assert_null(memmem(item.data, item.len, "gold", 4));
        json_decref(rec);

        /* No hashed identity at all. */
        rec = fx_record(crm_json, NULL, NULL);
        json_object_set_new(rec, "identities",
                            json_pack("{s:s}", "email", "ann@example.com"));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr, "crm.upload without a hashed identity: no "
                                    "identity kind ending in _sha256");
        json_decref(rec);
        relay_buf_free(&item);
}

static void test_refused_records(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item;
        relay_buf_init(&item);
        assert_int_equal(setup_conf(f, NULL, NULL), 0);

        /* None, or two operations. */
        json_t *rec = fx_record(match_json, NULL, NULL);
        json_object_set_new(rec, "operations", json_null());
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr, "0 operations: a digitalaudience record "
                                    "carries exactly one (match.upload or "
                                    "crm.upload)");
        json_decref(rec);
        rec = fx_record(match_json, NULL, NULL);
        json_array_append(json_object_get(rec, "operations"),
                          json_array_get(json_object_get(rec, "operations"), 0));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "2 operations"));
        json_decref(rec);

        /* An operation it does not perform. */
        rec = fx_record(match_json, NULL, NULL);
        json_object_set_new(
            json_array_get(json_object_get(rec, "operations"), 0), "op",
            json_string("membership.add"));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr,
                            "operation 'membership.add' is not one "
                            "digitalaudience performs (match.upload, "
                            "crm.upload)");
        json_decref(rec);

        /* A pair without its partner id, or without a partner. */
        rec = fx_record(match_json, NULL, NULL);
        json_object_del(json_object_get(rec, "identities"), "partner_user_id");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr,
                            "match.upload without a pair: "
                            "identities.dmp_cookie_id and "
                            "identities.partner_user_id are both needed (the "
                            "partner id is missing)");
        json_decref(rec);
        rec = fx_record(match_json, NULL, NULL);
        json_object_set_new(rec, "identities", json_null());
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "(the DMP id is missing)"));
        json_decref(rec);
        rec = fx_record(match_json, NULL, NULL);
        json_object_set_new(
            json_array_get(json_object_get(rec, "operations"), 0), "target",
            json_null());
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr, "match.upload without a partner: the "
                                    "operation's target names the partner "
                                    "DMP");
        json_decref(rec);
        rec = fx_record(crm_json, NULL, NULL);
        json_object_set_new(
            json_array_get(json_object_get(rec, "operations"), 0), "target",
            json_string(""));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr, "crm.upload without a record id: the "
                                    "operation's target is the CRM record "
                                    "id");
        json_decref(rec);
        /* A time the format cannot hold. */
        rec = fx_record(match_json, NULL, NULL);
        json_object_set_new(rec, "occurred_at", json_integer(-1));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "occurred_at -1 ms"));
        assert_int_equal(item.len, 0);
        json_decref(rec);
        relay_buf_free(&item);
}

static void test_bad_settings(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(
            setup_conf(f, "digitalaudience.client_id", "acme/../x"), -1);
        assert_int_equal(setup_conf(f, "digitalaudience.url", "ftp://x"), -1);
        assert_int_equal(
            setup_conf(f, "digitalaudience.partner_id_kind", "dmp_cookie_id"),
            -1);

        /* No token: the error names the variables. */
        char errstr[512];
        const char *const kv[][2] = {
            {"digitalaudience.url", "http://127.0.0.1:1"},
            {"digitalaudience.client_id", "acme"}};
        unsetenv("RELAY_DIGITALAUDIENCE_API_TOKEN");
        unsetenv("RELAY_DIGITALAUDIENCE_API_TOKEN_FILE");
        assert_int_equal(fx_conf(f, kv, 2, errstr, sizeof(errstr)), -1);
        assert_null(f->st);
        if (!strstr(errstr, "'digitalaudience.api_token'") ||
            !strstr(errstr, "RELAY_DIGITALAUDIENCE_API_TOKEN_FILE"))
                fail_msg("%s", errstr);
}

static void test_limits(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        size_t max_items, max_bytes;
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        relay_adapter_limits(f->a, f->st, &max_items, &max_bytes);
        assert_int_equal(max_items, 1000);
        assert_int_equal(max_bytes, 4194304 - strlen("{\"uploads\":[]}"));

        /* A body of items as the engine counts them (item + 1 each) fits
         * the byte limit: 1000 uploads. */
        json_t *rec = fx_record(crm_json, NULL, NULL);
        static relay_buf_t items[1000];
        relay_buf_t body;
        size_t counted = 0;
        for (int i = 0; i < 1000; i++) {
                relay_buf_init(&items[i]);
                assert_int_equal(fx_encode(f, rec, &items[i], errstr,
                                           sizeof(errstr)),
                                 RELAY_OK);
                counted += items[i].len + 1;
        }
        relay_http_request_t req;
        relay_buf_init(&body);
        relay_adapter_request(f->a, f->st, items, 1000, &body, &req);
        assert_true(req.body_len <= counted + strlen("{\"uploads\":[]}"));
        json_t *j = json_loadb(req.body, req.body_len, 0, NULL);
        assert_int_equal(json_array_size(json_object_get(j, "uploads")), 1000);
        json_decref(j);
        for (int i = 0; i < 1000; i++)
                relay_buf_free(&items[i]);
        relay_buf_free(&body);

        /* Smaller settings; an upload larger than a request is refused. */
        restart(f, "digitalaudience.max_request_bytes", "1024");
        relay_adapter_limits(f->a, f->st, &max_items, &max_bytes);
        assert_int_equal(max_bytes, 1024 - 14);
        char big[1100];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        json_object_set_new(
            json_array_get(json_object_get(rec, "operations"), 0), "target",
            json_string(big));
        relay_buf_init(&body);
        assert_int_equal(fx_encode(f, rec, &body, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "does not fit in a request of "
                                       "digitalaudience.max_request_bytes "
                                       "1024"));
        assert_int_equal(body.len, 0);
        relay_buf_free(&body);
        json_decref(rec);
        restart(f, "digitalaudience.max_items_per_request", "7");
        relay_adapter_limits(f->a, f->st, &max_items, &max_bytes);
        assert_int_equal(max_items, 7);
        assert_int_not_equal(
            relay_conf_set(f->conf, "digitalaudience.max_items_per_request",
                           "0", errstr, sizeof(errstr)),
            0);
}

static void test_classify(void **state)
{
        struct fixture *f = *state;
        char e[512];
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        assert_int_equal(
            fx_classify(f, 200, "{\"accepted\":3}", 0, e, sizeof(e)),
            RELAY_OK);
        assert_int_equal(fx_classify(f, 204, NULL, 0, e, sizeof(e)), RELAY_OK);
        assert_int_equal(
            fx_classify(f, 207, "{\"rejected\":[]}", 0, e, sizeof(e)),
            RELAY_OK);
        assert_int_equal(fx_classify(f, 400, "{\"message\":\"bad uploads\"}",
                                     0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 400: bad uploads");
        assert_int_equal(fx_classify(f, 413, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 413: (no body)");
        assert_int_equal(
            fx_classify(f, 422, "{\"error\":\"no such partner\"}", 0, e,
                        sizeof(e)),
            RELAY_FATAL);
        assert_string_equal(e, "HTTP 422: no such partner");
        /* The engine reads these as a refused token or endpoint (pause). */
        assert_int_equal(fx_classify(f, 401, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_int_equal(fx_classify(f, 403, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_int_equal(fx_classify(f, 404, "no\nsuch", 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 404: no such");
        assert_int_equal(fx_classify(f, 429, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 500, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 503, "down", 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "HTTP 503: down");
        assert_int_equal(fx_classify(f, 302, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 0, NULL, 28, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "Timeout was reached");
}

/* A rejection names the upload's index in the request: its item. */
static void test_partial(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        const char *jsons[4] = {match_json, crm_json, match_json, crm_json};
        relay_buf_t items[4];
        for (int i = 0; i < 4; i++) {
                json_t *rec = fx_record(jsons[i], NULL, NULL);
                relay_buf_init(&items[i]);
                assert_int_equal(fx_encode(f, rec, &items[i], errstr,
                                           sizeof(errstr)),
                                 RELAY_OK);
                json_decref(rec);
        }
        relay_item_result_t out[4];
        assert_int_equal(
            fx_partial(f, 207,
                       "{\"accepted\":2,\"rejected\":["
                       "{\"index\":3,\"reason\":\"hash is not SHA-256\"},"
                       "{\"index\":2,\"reason\":\"unknown partner\"},"
                       "{\"index\":2,\"reason\":\"second\"},"
                       "{\"index\":9,\"reason\":\"out of range\"},"
                       "{\"reason\":\"no index\"}]}",
                       items, 4, out),
            1);
        assert_int_equal(out[0].result, RELAY_OK);
        assert_string_equal(out[0].why, "");
        assert_int_equal(out[1].result, RELAY_OK);
        assert_int_equal(out[2].result, RELAY_FATAL);
        assert_string_equal(out[2].why,
                            "HTTP 207: digitalAudience rejected uploads[2] "
                            "(match): unknown partner");
        assert_int_equal(out[3].result, RELAY_FATAL);
        assert_string_equal(out[3].why,
                            "HTTP 207: digitalAudience rejected uploads[3] "
                            "(crm): hash is not SHA-256");
        assert_int_equal(
            fx_partial(f, 200,
                       "{\"rejected\":[{\"index\":0,\"reason\":\"x\"}]}",
                       items, 4, out),
            1);
        assert_int_equal(out[0].result, RELAY_FATAL);
        assert_int_equal(out[1].result, RELAY_OK);
        assert_int_equal(out[3].result, RELAY_OK);

        /* The whole request's answer. */
        assert_int_equal(fx_partial(f, 200, "{\"accepted\":4}", items, 4, out),
                         0);
        assert_int_equal(fx_partial(f, 200, "{\"accepted\":4,\"rejected\":[]}",
                                    items, 4, out),
                         0);
        assert_int_equal(fx_partial(f, 207, "{\"rejected\":[{\"index\":4}]}",
                                    items, 4, out),
                         0);
        assert_int_equal(fx_partial(f, 200, "not json \"rejected\"", items, 4,
                                    out),
                         0);
        for (int i = 0; i < 4; i++)
                relay_buf_free(&items[i]);
}

/* deliver's per-record work (decode into slots, encode the item into a
 * reused buffer) and the request built from 100 items allocate nothing
 * once warm. */
static void test_steady_state_allocates_nothing(void **state)
{
        struct fixture *f = *state;
        const char *jsons[2] = {match_json, crm_json};
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        struct fx_steady got = fx_steady_state(f, jsons, 2, 100, 20, 1);
        assert_true(got.body_bytes > 20 * 100 * 150);
}

int main(void)
{
        count_init();
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_bodies, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_unhashed_refused, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_refused_records, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_bad_settings, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_limits, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_classify, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_partial, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_steady_state_allocates_nothing,
                                            setup, fx_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
