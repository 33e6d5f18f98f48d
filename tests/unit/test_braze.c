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

#include "relay/adapter.h"
#include "relay/avro.h"
#include "alloc_count.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fixture {
        relay_schemas_t *schemas;
        relay_avro_writer_t *writer;
        relay_avro_reader_t *reader;
        relay_conf_t *conf;
        const struct relay_adapter *a;
        void *st;
};

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

static int setup_conf(struct fixture *f, const char *extra_key,
                      const char *extra_val)
{
        char errstr[512];
        const relay_conf_prop_t *tables[] = {f->a->props};
        f->conf = relay_conf_new(tables, 1);
        unsetenv("RELAY_BRAZE_API_KEY_FILE");
        setenv("RELAY_BRAZE_API_KEY", "rest-key", 1);
        assert_int_equal(relay_conf_set(f->conf, "braze.url",
                                        "http://127.0.0.1:1/", errstr,
                                        sizeof(errstr)),
                         0);
        assert_int_equal(relay_conf_set(f->conf, "braze.alias_label", "crm",
                                        errstr, sizeof(errstr)),
                         0);
        if (extra_key)
                assert_int_equal(relay_conf_set(f->conf, extra_key, extra_val,
                                                errstr, sizeof(errstr)),
                                 0);
        assert_int_equal(relay_conf_finish(f->conf, errstr, sizeof(errstr)), 0);
        return relay_adapter_init(f->a, &f->st, f->conf, errstr,
                                  sizeof(errstr));
}

static int setup(void **state)
{
        char errstr[512], path[1024];
        struct fixture *f = calloc(1, sizeof(*f));
        const char *src = getenv("RELAY_SOURCE_DIR");
        snprintf(path, sizeof(path), "%s/schemas/manifest.cfg",
                 src ? src : ".");
        f->schemas = relay_schemas_load(path, errstr, sizeof(errstr));
        assert_non_null(f->schemas);
        f->writer = relay_avro_writer_new(f->schemas, "out.braze-value", errstr,
                                          sizeof(errstr));
        assert_non_null(f->writer);
        f->reader = relay_avro_reader_new(f->schemas, "out.braze-value", 0,
                                          errstr, sizeof(errstr));
        assert_non_null(f->reader);
        f->a = relay_adapter_find("braze");
        assert_non_null(f->a);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        if (f->a && f->st)
                relay_adapter_term(f->a, f->st);
        relay_conf_destroy(f->conf);
        relay_avro_writer_destroy(f->writer);
        relay_avro_reader_destroy(f->reader);
        relay_schemas_destroy(f->schemas);
        free(f);
        return 0;
}

/* rec as deliver hands it over (framed Avro, decoded into slots), encoded
 * by the adapter into item. */
static enum relay_result encode(struct fixture *f, json_t *rec,
                                relay_buf_t *item, char *errstr,
                                size_t errstr_size)
{
        avro_value_t *v = relay_avro_writer_value(f->writer);
        assert_int_equal(relay_avro_from_json(v, rec, errstr, errstr_size), 0);
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

/* The JSON text as a record, with field set to the JSON value text (NULL:
 * field removed from the attributes map named by field "attributes.x"). */
static json_t *patched(const char *json, const char *field, const char *val)
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
                field = dot + 1;
        }
        if (val)
                json_object_set_new(obj, field,
                                    json_loads(val, JSON_DECODE_ANY, NULL));
        else
                json_object_del(obj, field);
        return rec;
}

/* The body of a request of the n records, exactly. */
static void body_of(struct fixture *f, json_t **recs, size_t n,
                    relay_buf_t *body, relay_http_request_t *req)
{
        char errstr[512];
        relay_buf_t items[8];
        assert_true(n <= 8);
        for (size_t i = 0; i < n; i++) {
                relay_buf_init(&items[i]);
                if (encode(f, recs[i], &items[i], errstr, sizeof(errstr)) !=
                    RELAY_OK)
                        fail_msg("record %zu refused: %s", i, errstr);
        }
        relay_adapter_request(f->a, f->st, items, n, body, req);
        for (size_t i = 0; i < n; i++)
                relay_buf_free(&items[i]);
}

static void assert_body(struct fixture *f, json_t **recs, size_t n,
                        const char *want)
{
        relay_buf_t body;
        relay_http_request_t req;
        relay_buf_init(&body);
        body_of(f, recs, n, &body, &req);
        if (req.body_len != strlen(want) ||
            memcmp(req.body, want, req.body_len))
                fail_msg("body differs:\n got %.*s\nwant %s", (int)req.body_len,
                         req.body, want);
        json_error_t jerr;
        json_t *j = json_loadb(req.body, req.body_len, 0, &jerr);
        if (!j)
                fail_msg("body is not JSON: %s", jerr.text);
        json_decref(j);
        relay_buf_free(&body);
}

static void test_attributes_and_event(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        json_t *rec = patched(record_json, NULL, NULL);
        assert_body(
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
        rec = patched(record_json, "event_category", "\"custom_event\"");
        json_object_set_new(rec, "user_attributes", json_object());
        json_object_set_new(rec, "attributes", json_object());
        json_object_set_new(rec, "identity_type", json_string("braze_id"));
        assert_body(f, &rec, 1,
                    "{\"events\":[{\"braze_id\":\"cust-\\\"1\","
                    "\"name\":\"Coupon Issued\","
                    "\"time\":\"2025-11-25T10:01:00.123Z\","
                    "\"properties\":{}}]}");
        json_decref(rec);

        /* A profile-only update: attributes, no event. */
        rec = patched(record_json, "event_name", "null");
        assert_body(f, &rec, 1,
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
        json_t *rec = patched(purchase_json, NULL, NULL);
        assert_body(f, &rec, 1,
                    "{\"purchases\":[{\"email\":\"ann@example.com\","
                    "\"product_id\":\"sku-9\",\"currency\":\"EUR\","
                    "\"price\":12.5,\"quantity\":3,"
                    "\"time\":\"2000-02-29T23:59:59.999Z\","
                    "\"properties\":{\"store\":\"Utrecht\"}}]}");
        json_decref(rec);

        /* No product_id: the event name; no quantity: 1; a whole price. */
        rec = patched(purchase_json, "attributes.product_id", NULL);
        json_object_del(json_object_get(rec, "attributes"), "quantity");
        json_object_set_new(json_object_get(rec, "attributes"), "price",
                            json_integer(12));
        json_object_set_new(rec, "user_attributes",
                            json_pack("{s:s}", "city", "Utrecht"));
        assert_body(f, &rec, 1,
                    "{\"attributes\":[{\"email\":\"ann@example.com\","
                    "\"city\":\"Utrecht\"}],"
                    "\"purchases\":[{\"email\":\"ann@example.com\","
                    "\"product_id\":\"Order\",\"currency\":\"EUR\","
                    "\"price\":12,\"quantity\":1,"
                    "\"time\":\"2000-02-29T23:59:59.999Z\","
                    "\"properties\":{\"store\":\"Utrecht\"}}]}");
        json_decref(rec);

        /* A purchase without currency or price is refused, naming it. */
        rec = patched(purchase_json, "attributes.currency", NULL);
        assert_int_equal(encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(
            errstr,
            "purchase without currency: attributes.currency is missing");
        assert_int_equal(item.len, 0);
        json_decref(rec);
        rec = patched(purchase_json, "attributes.currency", "null");
        assert_int_equal(encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "without currency"));
        json_decref(rec);
        rec = patched(purchase_json, "attributes.price", NULL);
        assert_int_equal(encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(
            errstr, "purchase without price: attributes.price is missing");
        json_decref(rec);
        rec = patched(purchase_json, "attributes.price", "\"12.50\"");
        assert_int_equal(encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "price is not a number"));
        json_decref(rec);
        rec = patched(purchase_json, "attributes.currency", "\"EURO\"");
        assert_int_equal(encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr, "purchase currency 'EURO' is not a "
                                    "three-letter ISO 4217 code");
        json_decref(rec);
        rec = patched(purchase_json, "attributes.product_id", NULL);
        json_object_set_new(rec, "event_name", json_null());
        assert_int_equal(encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "purchase without product_id"));
        json_decref(rec);
        relay_buf_free(&item);
}

static void test_user_alias(void **state)
{
        struct fixture *f = *state;
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        json_t *rec = patched(record_json, "identity_type", "\"user_alias\"");
        json_object_set_new(rec, "identity_value", json_string("crm-42"));
        json_object_set_new(rec, "attributes", json_object());
        assert_body(
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
        json_t *rec = patched(record_json, "event_name", "null");
        json_object_set_new(rec, "user_attributes", json_object());
        assert_int_equal(encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr,
                            "nothing to send: no user_attributes, no "
                            "event_name");
        json_decref(rec);
        rec = patched(record_json, "identity_type", "\"customer_id\"");
        assert_int_equal(encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr,
                            "identity type 'customer_id' is not one Braze "
                            "accepts (external_id, braze_id, email, "
                            "user_alias)");
        json_decref(rec);
        rec = patched(record_json, "event_category", "\"transaction\"");
        assert_int_equal(encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "event category 'transaction'"));
        json_decref(rec);
        rec = patched(record_json, "user_attributes.braze_id", "\"x\"");
        assert_int_equal(encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(
            errstr, "user attribute 'braze_id' would be a second identifier");
        json_decref(rec);
        relay_buf_free(&item);

        /* user_alias without braze.alias_label: refused, naming it. */
        relay_adapter_term(f->a, f->st);
        relay_conf_destroy(f->conf);
        const relay_conf_prop_t *tables[] = {f->a->props};
        f->conf = relay_conf_new(tables, 1);
        assert_int_equal(relay_conf_finish(f->conf, errstr, sizeof(errstr)), 0);
        assert_int_equal(
            relay_adapter_init(f->a, &f->st, f->conf, errstr, sizeof(errstr)),
            0);
        rec = patched(record_json, "identity_type", "\"user_alias\"");
        assert_int_equal(encode(f, rec, &item, errstr, sizeof(errstr)),
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
        recs[0] = patched(record_json, "event_name", "null");
        json_object_set_new(recs[0], "identity_value", json_string("a"));
        recs[1] = patched(purchase_json, NULL, NULL);
        recs[2] = patched(record_json, NULL, NULL);
        json_object_set_new(recs[2], "identity_value", json_string("c"));
        json_object_set_new(recs[2], "attributes", json_object());
        relay_buf_t body;
        relay_http_request_t req;
        relay_buf_init(&body);
        body_of(f, recs, 3, &body, &req);
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
        json_t *rec = patched(record_json, NULL, NULL);
        relay_buf_t items[75], body;
        size_t counted = 0;
        for (int i = 0; i < 75; i++) {
                relay_buf_init(&items[i]);
                assert_int_equal(encode(f, rec, &items[i], errstr,
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
        relay_adapter_term(f->a, f->st);
        f->st = NULL;
        relay_conf_destroy(f->conf);
        assert_int_equal(setup_conf(f, "braze.max_request_bytes", "1024"), 0);
        relay_adapter_limits(f->a, f->st, &max_items, &max_bytes);
        assert_int_equal(max_bytes, 1024 - 64);
        rec = patched(record_json, NULL, NULL);
        char big[1100];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        json_object_set_new(json_object_get(rec, "attributes"), "big",
                            json_string(big));
        relay_buf_init(&body);
        assert_int_equal(encode(f, rec, &body, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "exceeds the request limit of 1024"));
        relay_buf_free(&body);
        json_decref(rec);
}

static enum relay_result classify(struct fixture *f, long status,
                                  const char *body, int transport, char *errstr,
                                  size_t errstr_size)
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

static void test_classify(void **state)
{
        struct fixture *f = *state;
        char e[512];
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        assert_int_equal(
            classify(f, 201, "{\"message\":\"success\"}", 0, e, sizeof(e)),
            RELAY_OK);
        assert_int_equal(
            classify(f, 202, "{\"message\":\"queued\"}", 0, e, sizeof(e)),
            RELAY_OK);
        assert_int_equal(classify(f, 201, "<html>", 0, e, sizeof(e)), RELAY_OK);
        assert_int_equal(classify(f, 400,
                                  "{\"message\":\"Max Input Length "
                                  "Exceeded\",\"errors\":[]}",
                                  0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 400: Max Input Length Exceeded");
        assert_int_equal(classify(f, 413, NULL, 0, e, sizeof(e)), RELAY_FATAL);
        assert_string_equal(e, "HTTP 413: (no body)");
        assert_int_equal(
            classify(f, 422, "{\"message\":\"bad\"}", 0, e, sizeof(e)),
            RELAY_FATAL);
        assert_string_equal(e, "HTTP 422: bad");
        /* The engine reads these statuses as a refused key (a pause). */
        assert_int_equal(classify(f, 401,
                                  "{\"message\":\"Invalid API key: unknown "
                                  "key\"}",
                                  0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 401: Invalid API key: unknown key");
        assert_int_equal(classify(f, 403, NULL, 0, e, sizeof(e)), RELAY_FATAL);
        assert_int_equal(classify(f, 404, NULL, 0, e, sizeof(e)), RELAY_FATAL);
        assert_int_equal(classify(f, 429, NULL, 0, e, sizeof(e)), RELAY_RETRY);
        assert_int_equal(classify(f, 500, NULL, 0, e, sizeof(e)), RELAY_RETRY);
        assert_int_equal(classify(f, 503, "down", 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "HTTP 503: down");
        assert_int_equal(classify(f, 0, NULL, 28, e, sizeof(e)), RELAY_RETRY);
        assert_string_equal(e, "Timeout was reached");
}

static int partial(struct fixture *f, const char *body,
                   const relay_buf_t *items, size_t n,
                   relay_item_result_t *out)
{
        relay_http_response_t r;
        relay_http_response_init(&r);
        r.status = 201;
        relay_buf_puts(&r.body, body);
        int rc = relay_adapter_partial(f->a, f->st, &r, items, n, out);
        relay_http_response_reset(&r);
        return rc;
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
        recs[0] = patched(record_json, "event_name", "null");
        recs[1] = patched(record_json, NULL, NULL);
        recs[2] = patched(record_json, NULL, NULL);
        json_object_set_new(recs[2], "user_attributes", json_object());
        recs[3] = patched(purchase_json, NULL, NULL);
        recs[4] = patched(purchase_json, "user_attributes.city",
                          "\"Utrecht\"");
        relay_buf_t items[5];
        for (int i = 0; i < 5; i++) {
                relay_buf_init(&items[i]);
                assert_int_equal(encode(f, recs[i], &items[i], errstr,
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
        const relay_conf_prop_t *tables[] = {f->a->props};
        f->conf = relay_conf_new(tables, 1);
        unsetenv("RELAY_BRAZE_API_KEY");
        unsetenv("RELAY_BRAZE_API_KEY_FILE");
        assert_int_equal(relay_conf_finish(f->conf, errstr, sizeof(errstr)), 0);
        assert_int_equal(
            relay_adapter_init(f->a, &f->st, f->conf, errstr, sizeof(errstr)),
            -1);
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
        char errstr[512];
        assert_int_equal(setup_conf(f, NULL, NULL), 0);
        unsigned char frames[2][4096];
        size_t lens[2];
        const char *jsons[2] = {record_json, purchase_json};
        for (int k = 0; k < 2; k++) {
                json_t *rec = json_loads(jsons[k], 0, NULL);
                avro_value_t *v = relay_avro_writer_value(f->writer);
                assert_int_equal(
                    relay_avro_from_json(v, rec, errstr, sizeof(errstr)), 0);
                json_decref(rec);
                const void *buf;
                assert_int_equal(relay_avro_writer_encode(f->writer, &buf,
                                                          &lens[k], errstr,
                                                          sizeof(errstr)),
                                 RELAY_OK);
                assert_true(lens[k] <= sizeof(frames[k]));
                memcpy(frames[k], buf, lens[k]);
        }
        relay_buf_t items[75], body;
        for (int i = 0; i < 75; i++)
                relay_buf_init(&items[i]);
        relay_buf_init(&body);
        size_t bytes = 0;
        int failed = 0;
        for (int round = 0; round < 2; round++) {
                allocations = 0;
                counting = round;
                for (int r = 0; r < 20 && !failed; r++) {
                        for (int i = 0; i < 75; i++) {
                                const relay_slots_t *slots;
                                relay_buf_reset(&items[i]);
                                if (relay_avro_reader_decode_slots(
                                        f->reader, frames[i % 2], lens[i % 2],
                                        &slots, NULL, errstr,
                                        sizeof(errstr)) != RELAY_OK ||
                                    relay_adapter_encode(
                                        f->a, f->st, slots, &items[i], errstr,
                                        sizeof(errstr)) != RELAY_OK) {
                                        failed = 1;
                                        break;
                                }
                        }
                        relay_http_request_t req;
                        relay_adapter_request(f->a, f->st, items, 75, &body,
                                              &req);
                        bytes += round ? req.body_len : 0;
                }
                counting = 0;
        }
        assert_false(failed);
        assert_true(bytes > 20 * 75 * 100);
        if (allocations)
                fail_msg("%zu allocation(s) in 1500 records of the steady "
                         "state",
                         (size_t)allocations);
        for (int i = 0; i < 75; i++)
                relay_buf_free(&items[i]);
        relay_buf_free(&body);
}

int main(void)
{
        count_init();
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_attributes_and_event, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_purchase, setup, teardown),
            cmocka_unit_test_setup_teardown(test_user_alias, setup, teardown),
            cmocka_unit_test_setup_teardown(test_refused_records, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_request, setup, teardown),
            cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
            cmocka_unit_test_setup_teardown(test_classify, setup, teardown),
            cmocka_unit_test_setup_teardown(test_partial, setup, teardown),
            cmocka_unit_test_setup_teardown(test_missing_secret, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_steady_state_allocates_nothing,
                                            setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
