/*
 * Unit tests of the Braze adapter (common/adapters/braze.c): how an
 * out.braze record becomes attributes, event and purchase objects, how
 * items become a /users/track request, what each answer means, and how
 * "minor errors" of a 2xx are mapped back to the records that gave the
 * refused objects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapter_fixture.h"

/* occurred_at 1764064860123 is 2025-11-25T10:01:00.123Z. */
static const char *record_json =
    "{\"event_id\":\"6f1c2a10-0002-4000-8000-000000000002\","
    "\"occurred_at\":1764064860123,\"tenant\":\"acme\",\"source\":\"antavo\","
    "\"connection\":\"c1\",\"destination\":\"braze\","
    "\"environment\":\"production\",\"identity_type\":\"external_id\","
    "\"identity_value\":\"cust-\\\"1\",\"event_name\":\"Coupon Issued\","
    "\"event_category\":null,"
    "\"attributes\":{\"code\":\"W10\",\"points\":5,\"ratio\":0.5,"
    "\"vip\":true,\"none\":null},"
    "\"user_attributes\":{\"tier\":\"gold\",\"points_balance\":120}}";

static const char *purchase_json =
    "{\"event_id\":\"6f1c2a10-0003-4000-8000-000000000003\","
    "\"occurred_at\":951868799999,\"tenant\":\"acme\",\"source\":\"antavo\","
    "\"connection\":\"c1\",\"destination\":\"braze\","
    "\"environment\":\"production\",\"identity_type\":\"email\","
    "\"identity_value\":\"ann@example.com\",\"event_name\":\"Order\","
    "\"event_category\":\"purchase\","
    "\"attributes\":{\"product_id\":\"sku-9\",\"currency\":\"EUR\","
    "\"price\":12.5,\"quantity\":3,\"store\":\"Utrecht\"},"
    "\"user_attributes\":{}}";

/* A conf with the URL, the key, the alias label and one more key; init's
 * result. */
static int setup_conf(struct fixture *f, const char *extra_key,
                      const char *extra_val)
{
        char errstr[512];
        const char *const kv[][2] = {{"braze.url", "http://127.0.0.1:1/"},
                                     {"braze.alias_label", "crm"},
                                     {extra_key, extra_val}};
        unsetenv("RELAY_BRAZE_API_KEY_FILE");
        setenv("RELAY_BRAZE_API_KEY", "rest-key", 1);
        return fx_conf(f, kv, 3, errstr, sizeof(errstr));
}

static int setup(void **state)
{
        return fx_setup(state, "braze", NULL);
}

static void test_attributes_and_event(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        json_t *rec = fx_record(record_json, NULL, NULL);
        fx_assert_records_body(
            f, &rec, 1,
            "{\"attributes\":[{\"external_id\":\"cust-\\\"1\","
            "\"tier\":\"gold\",\"points_balance\":120}],"
            "\"events\":[{\"external_id\":\"cust-\\\"1\","
            "\"name\":\"Coupon Issued\",\"time\":\"2025-11-25T10:01:00.123Z\","
            "\"properties\":{\"code\":\"W10\",\"points\":5,\"ratio\":0.5,"
            "\"vip\":true,\"none\":null}}]}");
        json_decref(rec);

        /* "custom_event" is the same as null; no user attributes: no
         * attributes object. */
        rec = fx_record(record_json, "event_category", "\"custom_event\"");
        json_object_set_new(rec, "user_attributes", json_object());
        json_object_set_new(rec, "attributes", json_object());
        json_object_set_new(rec, "identity_type", json_string("braze_id"));
        fx_assert_records_body(
            f, &rec, 1,
            "{\"events\":[{\"braze_id\":\"cust-\\\"1\","
            "\"name\":\"Coupon Issued\","
            "\"time\":\"2025-11-25T10:01:00.123Z\","
            "\"properties\":{}}]}");
        json_decref(rec);

        /* A profile-only update: attributes, no event. */
        rec = fx_record(record_json, "event_name", "null");
        fx_assert_records_body(
            f, &rec, 1,
            "{\"attributes\":[{\"external_id\":\"cust-\\\"1\","
            "\"tier\":\"gold\",\"points_balance\":120}]}");
        json_decref(rec);
}

static void test_purchase(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item;
        relay_buf_init(&item);
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        json_t *rec = fx_record(purchase_json, NULL, NULL);
        fx_assert_records_body(
            f, &rec, 1,
            "{\"purchases\":[{\"email\":\"ann@example.com\","
            "\"product_id\":\"sku-9\",\"currency\":\"EUR\","
            "\"price\":12.5,\"quantity\":3,"
            "\"time\":\"2000-02-29T23:59:59.999Z\","
            "\"properties\":{\"store\":\"Utrecht\"}}]}");
        json_decref(rec);

        /* No product_id: the event name; no quantity: 1; a whole price. */
        rec = fx_record(purchase_json, "attributes.product_id", NULL);
        json_object_del(json_object_get(rec, "attributes"), "quantity");
        json_object_set_new(json_object_get(rec, "attributes"), "price",
                            json_integer(12));
        json_object_set_new(rec, "user_attributes",
                            json_pack("{s:s}", "city", "Utrecht"));
        fx_assert_records_body(
            f, &rec, 1,
            "{\"attributes\":[{\"email\":\"ann@example.com\","
            "\"city\":\"Utrecht\"}],"
            "\"purchases\":[{\"email\":\"ann@example.com\","
            "\"product_id\":\"Order\",\"currency\":\"EUR\","
            "\"price\":12,\"quantity\":1,"
            "\"time\":\"2000-02-29T23:59:59.999Z\","
            "\"properties\":{\"store\":\"Utrecht\"}}]}");
        json_decref(rec);

        /* A purchase without currency or price is refused, naming it. */
        rec = fx_record(purchase_json, "attributes.currency", NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(
            errstr,
            "purchase without currency: attributes.currency is missing");
        assert_int_equal(item.len, 0);
        json_decref(rec);
        rec = fx_record(purchase_json, "attributes.currency", "null");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "without currency"));
        json_decref(rec);
        rec = fx_record(purchase_json, "attributes.price", NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(
            errstr, "purchase without price: attributes.price is missing");
        json_decref(rec);
        rec = fx_record(purchase_json, "attributes.price", "\"12.50\"");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "price is not a number"));
        json_decref(rec);
        rec = fx_record(purchase_json, "attributes.currency", "\"EURO\"");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr, "purchase currency 'EURO' is not a "
                                    "three-letter ISO 4217 code");
        json_decref(rec);
        rec = fx_record(purchase_json, "attributes.product_id", NULL);
        json_object_set_new(rec, "event_name", json_null());
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "purchase without product_id"));
        json_decref(rec);
        relay_buf_free(&item);
}

static void test_user_alias(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        json_t *rec = fx_record(record_json, "identity_type", "\"user_alias\"");
        json_object_set_new(rec, "identity_value", json_string("crm-42"));
        json_object_set_new(rec, "attributes", json_object());
        fx_assert_records_body(
            f, &rec, 1,
            "{\"attributes\":[{\"user_alias\":{\"alias_name\":\"crm-42\","
            "\"alias_label\":\"crm\"},\"tier\":\"gold\","
            "\"points_balance\":120}],"
            "\"events\":[{\"user_alias\":{\"alias_name\":\"crm-42\","
            "\"alias_label\":\"crm\"},\"name\":\"Coupon Issued\","
            "\"time\":\"2025-11-25T10:01:00.123Z\",\"properties\":{}}]}");
        json_decref(rec);
}

static void test_refused_records(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item;
        relay_buf_init(&item);
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        json_t *rec = fx_record(record_json, "event_name", "null");
        json_object_set_new(rec, "user_attributes", json_object());
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr,
                            "nothing to send: no user_attributes, no "
                            "event_name");
        json_decref(rec);
        rec = fx_record(record_json, "identity_type", "\"customer_id\"");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr,
                            "identity type 'customer_id' is not one Braze "
                            "accepts (external_id, braze_id, email, "
                            "user_alias)");
        json_decref(rec);
        rec = fx_record(record_json, "event_category", "\"transaction\"");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "event category 'transaction'"));
        json_decref(rec);
        rec = fx_record(record_json, "user_attributes.braze_id", "\"x\"");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(
            errstr, "user attribute 'braze_id' would be a second identifier");
        json_decref(rec);
        relay_buf_free(&item);

        /* user_alias without braze.alias_label: refused, naming it. */
        fx_conf_new(f);
        assert_int_equal(fx_init(f, errstr, sizeof(errstr)), 0);
        rec = fx_record(record_json, "identity_type", "\"user_alias\"");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr, "identity type user_alias needs "
                                    "braze.alias_label to be set");
        json_decref(rec);
        relay_buf_free(&item);
}

/* Items of different shapes: each object in its array, in item order. */
static void test_request(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        json_t *recs[3];
        recs[0] = fx_record(record_json, "event_name", "null");
        json_object_set_new(recs[0], "identity_value", json_string("a"));
        recs[1] = fx_record(purchase_json, NULL, NULL);
        recs[2] = fx_record(record_json, NULL, NULL);
        json_object_set_new(recs[2], "identity_value", json_string("c"));
        json_object_set_new(recs[2], "attributes", json_object());
        relay_buf_t body;
        relay_http_request_t req;
        relay_buf_init(&body);
        fx_request_of(f, recs, 3, &body, &req);
        assert_string_equal(req.method, "POST");
        assert_string_equal(req.url, "http://127.0.0.1:1/users/track");
        assert_string_equal(req.headers[0], "Content-Type: application/json");
        assert_string_equal(req.headers[1], "Authorization: Bearer rest-key");
        assert_null(req.headers[2]);
        assert_null(req.userpwd);
        const char *want =
            "{\"attributes\":[{\"external_id\":\"a\",\"tier\":\"gold\","
            "\"points_balance\":120},{\"external_id\":\"c\",\"tier\":\"gold\","
            "\"points_balance\":120}],"
            "\"events\":[{\"external_id\":\"c\",\"name\":\"Coupon Issued\","
            "\"time\":\"2025-11-25T10:01:00.123Z\",\"properties\":{}}],"
            "\"purchases\":[{\"email\":\"ann@example.com\","
            "\"product_id\":\"sku-9\",\"currency\":\"EUR\",\"price\":12.5,"
            "\"quantity\":3,\"time\":\"2000-02-29T23:59:59.999Z\","
            "\"properties\":{\"store\":\"Utrecht\"}}]}";
        assert_int_equal(req.body_len, strlen(want));
        assert_memory_equal(req.body, want, req.body_len);
        for (int i = 0; i < 3; i++)
                json_decref(recs[i]);
        relay_buf_free(&body);
}

/* At most 75 records a request, so no array can pass 75 objects. */
static void test_limits(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        size_t max_items, max_bytes;
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        relay_adapter_limits(f->a, f->st, &max_items, &max_bytes);
        assert_int_equal(max_items, 75);
        assert_int_equal(max_bytes, 4194304 - 64);
        /* 76 is out of the setting's range. */
        assert_int_not_equal(relay_conf_set(f->conf,
                                            "braze.max_objects_per_request",
                                            "76", errstr, sizeof(errstr)),
                             0);

        /* 75 records, each with attributes and an event: two arrays of
         * 75, and the body fits within the bytes limit counted as the
         * engine counts (item + 1 each). */
        json_t *rec = fx_record(record_json, NULL, NULL);
        relay_buf_t items[75], body;
        size_t counted = 0;
        for (int i = 0; i < 75; i++) {
                relay_buf_init(&items[i]);
                assert_int_equal(fx_encode(f, rec, &items[i], errstr,
                                           sizeof(errstr)),
                                 RELAY_OK);
                counted += items[i].len + 1;
        }
        relay_http_request_t req;
        relay_buf_init(&body);
        relay_adapter_request(f->a, f->st, items, 75, &body, &req);
        assert_true(req.body_len <= counted + 64);
        json_t *j = json_loadb(req.body, req.body_len, 0, NULL);
        assert_non_null(j);
        assert_int_equal(json_array_size(json_object_get(j, "attributes")), 75);
        assert_int_equal(json_array_size(json_object_get(j, "events")), 75);
        assert_null(json_object_get(j, "purchases"));
        json_decref(j);
        for (int i = 0; i < 75; i++)
                relay_buf_free(&items[i]);
        relay_buf_free(&body);
        json_decref(rec);

        /* A smaller setting, and a record larger than the request limit. */
        assert_int_equal(setup_conf(f, "braze.max_request_bytes", "1024"), 0);
        relay_adapter_limits(f->a, f->st, &max_items, &max_bytes);
        assert_int_equal(max_bytes, 1024 - 64);
        rec = fx_record(record_json, NULL, NULL);
        char big[1100];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        json_object_set_new(json_object_get(rec, "attributes"), "big",
                            json_string(big));
        relay_buf_init(&body);
        assert_int_equal(fx_encode(f, rec, &body, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "exceeds the request limit of 1024"));
        relay_buf_free(&body);
        json_decref(rec);
}

static void test_classify(void **state)
{
        struct fixture *f = *state;
        char e[512];
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        assert_int_equal(
            fx_classify(f, 201, "{\"message\":\"success\"}", 0, e, sizeof(e)),
            RELAY_OK);
        assert_int_equal(
            fx_classify(f, 202, "{\"message\":\"queued\"}", 0, e, sizeof(e)),
            RELAY_OK);
        assert_int_equal(fx_classify(f, 201, "<html>", 0, e, sizeof(e)),
                         RELAY_OK);
        assert_int_equal(fx_classify(f, 400,
                                     "{\"message\":\"Max Input Length "
                                     "Exceeded\",\"errors\":[]}",
                                     0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 400: Max Input Length Exceeded");
        assert_int_equal(fx_classify(f, 413, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 413: (no body)");
        assert_int_equal(
            fx_classify(f, 422, "{\"message\":\"bad\"}", 0, e, sizeof(e)),
            RELAY_FATAL);
        assert_string_equal(e, "HTTP 422: bad");
        /* The engine reads these statuses as a refused key (a pause). */
        assert_int_equal(fx_classify(f, 401,
                                     "{\"message\":\"Invalid API key: unknown "
                                     "key\"}",
                                     0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 401: Invalid API key: unknown key");
        assert_int_equal(fx_classify(f, 403, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_int_equal(fx_classify(f, 404, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_int_equal(fx_classify(f, 429, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 500, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 503, "down", 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "HTTP 503: down");
        /* A redirect: the endpoint is misconfigured, not the record. */
        assert_int_equal(fx_classify(f, 301, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 0, NULL, 28, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "Timeout was reached");
}

/* The per-item reading of a 201 with body to a request of the n items. */
static int partial(struct fixture *f, const char *body,
                   const relay_buf_t *items, size_t n,
                   relay_item_result_t *out)
{
        return fx_partial(f, 201, body, items, n, out);
}

/* Minor errors name an array and an index there: each maps back to the
 * item that gave that object, however the items split into arrays. */
static void test_partial(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        /* attributes: [0, 1, 4]; events: [1, 2]; purchases: [3, 4] */
        json_t *recs[5];
        recs[0] = fx_record(record_json, "event_name", "null");
        recs[1] = fx_record(record_json, NULL, NULL);
        recs[2] = fx_record(record_json, NULL, NULL);
        json_object_set_new(recs[2], "user_attributes", json_object());
        recs[3] = fx_record(purchase_json, NULL, NULL);
        recs[4] = fx_record(purchase_json, "user_attributes.city",
                            "\"Utrecht\"");
        relay_buf_t items[5];
        for (int i = 0; i < 5; i++) {
                relay_buf_init(&items[i]);
                assert_int_equal(fx_encode(f, recs[i], &items[i], errstr,
                                           sizeof(errstr)),
                                 RELAY_OK);
                json_decref(recs[i]);
        }
        relay_item_result_t out[5];
        const char *minor =
            "{\"message\":\"success\",\"events_processed\":1,\"errors\":["
            "{\"type\":\"invalid name\",\"input_array\":\"events\","
            "\"index\":1},"
            "{\"type\":\"malformed attribute\",\"input_array\":"
            "\"attributes\",\"index\":2},"
            "{\"type\":\"internal error, try again\",\"input_array\":"
            "\"purchases\",\"index\":0}]}";
        assert_int_equal(partial(f, minor, items, 5, out), 1);
        assert_int_equal(out[0].result, RELAY_OK);
        assert_string_equal(out[0].why, "");
        assert_int_equal(out[1].result, RELAY_OK);
        assert_int_equal(out[2].result, RELAY_FATAL);
        assert_string_equal(out[2].why,
                            "HTTP 201: Braze refused events[1]: invalid name");
        assert_int_equal(out[3].result, RELAY_RETRY);
        assert_int_equal(out[4].result, RELAY_FATAL);
        assert_string_equal(
            out[4].why,
            "HTTP 201: Braze refused attributes[2]: malformed attribute");

        /* A refusal outweighs a retry for the same item. */
        assert_int_equal(
            partial(f,
                    "{\"message\":\"success\",\"errors\":["
                    "{\"type\":\"timeout\",\"input_array\":\"purchases\","
                    "\"index\":1},{\"type\":\"invalid currency\","
                    "\"input_array\":\"attributes\",\"index\":2}]}",
                    items, 5, out),
            1);
        assert_int_equal(out[4].result, RELAY_FATAL);
        assert_non_null(strstr(out[4].why, "invalid currency"));
        assert_int_equal(out[3].result, RELAY_OK);

        /* The whole request's answer: no errors, or none we can place. */
        assert_int_equal(partial(f, "{\"message\":\"success\"}", items, 5, out),
                         0);
        assert_int_equal(
            partial(f, "{\"message\":\"success\",\"errors\":[]}", items, 5,
                    out),
            0);
        assert_int_equal(
            partial(f,
                    "{\"message\":\"success\",\"errors\":[{\"type\":\"x\","
                    "\"input_array\":\"events\",\"index\":2},"
                    "\"free text\"]}",
                    items, 5, out),
            0);
        assert_int_equal(partial(f, "not json \"errors\"", items, 5, out), 0);
        for (int i = 0; i < 5; i++)
                relay_buf_free(&items[i]);
}

static void test_missing_secret(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        fx_conf_new(f);
        unsetenv("RELAY_BRAZE_API_KEY");
        unsetenv("RELAY_BRAZE_API_KEY_FILE");
        assert_int_equal(fx_init(f, errstr, sizeof(errstr)), -1);
        assert_null(f->st);
        assert_non_null(strstr(errstr, "'braze.api_key'"));
        assert_non_null(strstr(errstr, "RELAY_BRAZE_API_KEY_FILE"));
}

/* deliver's per-record work (decode into slots, encode the item into a
 * reused buffer) and the request built from 75 items allocate nothing
 * once warm. */
static void test_steady_state_allocates_nothing(void **state)
{
        struct fixture *f = *state;
        const char *jsons[2] = {record_json, purchase_json};
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        struct fx_steady got = fx_steady_state(f, jsons, 2, 75, 20, 1);
        assert_true(got.body_bytes > 20 * 75 * 100);
}

int main(void)
{
        count_init();
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_attributes_and_event, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_purchase, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_user_alias, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_refused_records, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_request, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_limits, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_classify, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_partial, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_missing_secret, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_steady_state_allocates_nothing,
                                            setup, fx_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
