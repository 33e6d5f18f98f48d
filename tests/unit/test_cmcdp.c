/*
 * Unit tests of the CM.com CDP adapter (common/adapters/cmcdp.c): the
 * body a record becomes, the path and the product token as they arrive at
 * a server (header, or query parameter), records it refuses (an event
 * name without an event type), settings refused at init with the key
 * named, the request limits, what each answer means, and no allocation
 * per record once warm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapter_fixture.h"

#define TENANT   "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
#define TOKEN    "6C4B1E0A-2D3F-4A5B-8C9D-0E1F2A3B4C5D"
#define PURCHASE "0f8fad5b-d9cb-469f-a165-70867728950e"
#define POINTS   "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define TYPES    "Purchase=" PURCHASE ", Points Added = " POINTS

static const char *record_json =
    "{\"event_id\":\"6f1c2a10-0002-4000-8000-000000000002\","
    "\"occurred_at\":1764064860123,\"tenant\":\"acme\",\"source\":\"antavo\","
    "\"connection\":\"c1\",\"destination\":\"cmcdp\","
    "\"environment\":\"development\",\"identity_type\":\"email\","
    "\"identity_value\":\"ann@example.com\","
    "\"event_name\":\"Purchase\",\"event_category\":\"commerce\","
    "\"attributes\":{\"Product\":\"Coffee \\\"Java\\\"\",\"Amount\":1.5,"
    "\"tier\":\"silver\",\"vip\":true,\"none\":null,"
    "\"occurred_at\":\"not mine\"},"
    "\"user_attributes\":{\"tier\":\"gold\",\"City\":\"Breda\","
    "\"Email Address\":\"other@example.com\"}}";

/* The item record_json becomes, byte for byte: the identity first, the
 * user attributes (tier overridden by the attribute, Email Address the
 * identity's), the attributes (their occurred_at the record's), then
 * occurred_at. */
static const char *record_item =
    "{\"EventTypeId\":\"" PURCHASE "\",\"Event\":{"
    "\"Email Address\":\"ann@example.com\",\"City\":\"Breda\","
    "\"Product\":\"Coffee \\\"Java\\\"\",\"Amount\":1.5,\"tier\":\"silver\","
    "\"vip\":true,\"none\":null,"
    "\"occurred_at\":\"2025-11-25T10:01:00.123Z\"}}";

/* A conf with the base url, tenant, event types, token and up to two more
 * keys; init's result. */
static int setup_conf2(struct fixture *f, const char *token, const char *k1,
                       const char *v1, const char *k2, const char *v2,
                       char *errstr, size_t errstr_size)
{
        const char *const kv[][2] = {{"cmcdp.url", f->url},
                                     {"cmcdp.tenant_id", TENANT},
                                     {"cmcdp.event_types", TYPES},
                                     {k1, v1},
                                     {k2, v2}};
        fx_conf_new(f);
        unsetenv("RELAY_CMCDP_PRODUCT_TOKEN_FILE");
        if (token)
                setenv("RELAY_CMCDP_PRODUCT_TOKEN", token, 1);
        else
                unsetenv("RELAY_CMCDP_PRODUCT_TOKEN");
        fx_conf_set(f, kv, 5, errstr, errstr_size);
        return fx_init(f, errstr, errstr_size);
}

static void setup_conf(struct fixture *f, const char *k1, const char *v1)
{
        char errstr[512];
        if (setup_conf2(f, TOKEN, k1, v1, NULL, NULL, errstr, sizeof(errstr)))
                fail_msg("init: %s", errstr);
}

/* init with k1 = v1 fails with errstr want. */
static void refused(struct fixture *f, const char *k1, const char *v1,
                    const char *want)
{
        char errstr[512];
        assert_int_equal(setup_conf2(f, TOKEN, k1, v1, NULL, NULL, errstr,
                                     sizeof(errstr)),
                         -1);
        assert_null(f->st);
        assert_string_equal(errstr, want);
}

static int setup(void **state)
{
        /* A trailing slash, which the adapter drops. */
        return fx_setup(state, "cmcdp", "/cdp/");
}

static int teardown(void **state)
{
        unsetenv("RELAY_CMCDP_PRODUCT_TOKEN");
        return fx_teardown(state);
}

/* record_json with field set to a JSON value given as text. */
static json_t *record_with(const char *field, const char *value)
{
        return fx_record(record_json, field, value);
}

static void test_body_exact(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item, item2, body;
        relay_http_request_t req;
        relay_buf_init(&item);
        relay_buf_init(&item2);
        relay_buf_init(&body);
        setup_conf(f, NULL, NULL);
        json_t *rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_string_equal(item.data, record_item);
        json_decref(rec);

        /* Another event type (the name's spaces in the setting trimmed),
         * an identity type other than email named as itself, no
         * attributes. */
        rec = json_loads(
            "{\"event_id\":\"e2\",\"occurred_at\":0,\"tenant\":\"t\","
            "\"source\":\"s\",\"connection\":\"c\",\"destination\":"
            "\"cmcdp\",\"environment\":\"production\","
            "\"identity_type\":\"Customer Number\",\"identity_value\":\"42\","
            "\"event_name\":\"Points Added\",\"event_category\":null,"
            "\"attributes\":{},\"user_attributes\":{\"n\":-3}}",
            0, NULL);
        assert_int_equal(fx_encode(f, rec, &item2, errstr, sizeof(errstr)),
                         RELAY_OK);
        const char *item2_want =
            "{\"EventTypeId\":\"" POINTS "\",\"Event\":{\"Customer Number\":"
            "\"42\",\"n\":-3,\"occurred_at\":\"1970-01-01T00:00:00.000Z\"}}";
        assert_string_equal(item2.data, item2_want);
        json_decref(rec);

        /* Both in one request: a JSON array of the two, in order. */
        relay_buf_t items[2] = {item, item2};
        relay_adapter_request(f->a, f->st, items, 2, &body, &req);
        relay_buf_t want;
        relay_buf_init(&want);
        relay_buf_printf(&want, "[%s,%s]", record_item, item2_want);
        assert_int_equal(req.body_len, want.len);
        assert_memory_equal(req.body, want.data, want.len);
        assert_string_equal(req.method, "POST");
        assert_string_equal(req.headers[0], "Content-Type: application/json");
        assert_string_equal(req.headers[1], "X-CM-PRODUCTTOKEN: " TOKEN);
        assert_null(req.headers[2]);
        assert_null(req.userpwd);
        json_t *doc = json_loadb(req.body, req.body_len, 0, NULL);
        assert_non_null(doc);
        assert_int_equal(json_array_size(doc), 2);
        json_decref(doc);
        relay_buf_free(&want);
        relay_buf_free(&item);
        relay_buf_free(&item2);
        relay_buf_free(&body);
}

/* cmcdp.identity_field names the identity's field, for email too. */
static void test_identity_field(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item;
        relay_buf_init(&item);
        setup_conf(f, "cmcdp.identity_field", "Customer Id");
        json_t *rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        json_t *got = json_loadb(item.data, item.len, 0, NULL);
        json_t *ev = json_object_get(got, "Event");
        assert_string_equal(
            json_string_value(json_object_get(ev, "Customer Id")),
            "ann@example.com");
        /* "Email Address" is only a user attribute now, and sent as one. */
        assert_string_equal(
            json_string_value(json_object_get(ev, "Email Address")),
            "other@example.com");
        json_decref(got);
        json_decref(rec);
        relay_buf_free(&item);
}

/* A record whose event has no CM.com event type is refused. */
static void test_unknown_event(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item;
        relay_buf_init(&item);
        setup_conf(f, NULL, NULL);
        json_t *rec = record_with("event_name", "\"Refund\"");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(
            errstr, "no CM.com event type for event 'Refund' (cmcdp.event_types)");
        json_decref(rec);
        /* Names match exactly: no case folding, no prefix. */
        rec = record_with("event_name", "\"purchase\"");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        json_decref(rec);
        rec = record_with("event_name", "\"Points\"");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        json_decref(rec);
        rec = record_with("event_name", "null");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr, "no CM.com event type for a record without "
                                    "an event_name (cmcdp.event_types)");
        json_decref(rec);
        relay_buf_free(&item);
}

/* The request line of what the server received, e.g. "POST /x HTTP/1.1". */
static void request_line(const struct request *rq, char *out, size_t size)
{
        size_t n = strcspn(rq->head, "\r\n");
        assert_true(n < size);
        memcpy(out, rq->head, n);
        out[n] = '\0';
}

/* The path and the token, as a server sees them: in the header by
 * default, in the query with token_in = "query" (escaped). */
static void test_on_the_wire(void **state)
{
        struct fixture *f = *state;
        char errstr[512], line[512], v[256];
        relay_buf_t item, body;
        relay_http_request_t req;
        relay_buf_init(&item);
        relay_buf_init(&body);
        setup_conf(f, NULL, NULL);
        json_t *rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        json_decref(rec);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        struct request rq = fx_send(f, &req, 202, NULL);
        request_line(&rq, line, sizeof(line));
        assert_string_equal(line, "POST /cdp/events/v1.0/tenants/" TENANT
                                  "/events HTTP/1.1");
        fx_header(&rq, "X-CM-PRODUCTTOKEN", v, sizeof(v));
        assert_string_equal(v, TOKEN);
        fx_header(&rq, "Content-Type", v, sizeof(v));
        assert_string_equal(v, "application/json");
        assert_int_equal(rq.body.len, strlen(record_item) + 2);
        assert_memory_equal(rq.body.data + 1, record_item,
                            strlen(record_item));

        assert_int_equal(setup_conf2(f, "tok en/+&=", "cmcdp.token_in",
                                     "query", NULL, NULL, errstr,
                                     sizeof(errstr)),
                         0);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_null(req.headers[1]);
        rq = fx_send(f, &req, 202, NULL);
        request_line(&rq, line, sizeof(line));
        assert_string_equal(line,
                            "POST /cdp/events/v1.0/tenants/" TENANT
                            "/events?producttoken=tok%20en%2F%2B%26%3D "
                            "HTTP/1.1");
        assert_false(
            find_header(rq.head, "X-CM-PRODUCTTOKEN", v, sizeof(v)));
        relay_buf_free(&item);
        relay_buf_free(&body);
}

static void test_settings_refused(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        const relay_conf_prop_t *tables[] = {f->a->props};
        relay_conf_t *c = relay_conf_new(tables, 1);
        /* A secret never comes from the file or the command line. */
        assert_int_equal(relay_conf_set(c, "cmcdp.product_token", "t", errstr,
                                        sizeof(errstr)),
                         -1);
        assert_int_equal(relay_conf_set(c, "cmcdp.max_events_per_request",
                                        "0", errstr, sizeof(errstr)),
                         -1);
        assert_int_equal(relay_conf_set(c, "cmcdp.max_request_bytes", "100",
                                        errstr, sizeof(errstr)),
                         -1);
        relay_conf_destroy(c);

        /* No token: init names where it comes from. */
        assert_int_equal(setup_conf2(f, NULL, NULL, NULL, NULL, NULL, errstr,
                                     sizeof(errstr)),
                         -1);
        assert_null(f->st);
        assert_non_null(strstr(errstr, "'cmcdp.product_token'"));
        assert_non_null(strstr(errstr, "RELAY_CMCDP_PRODUCT_TOKEN or "
                                       "RELAY_CMCDP_PRODUCT_TOKEN_FILE"));

        refused(f, "cmcdp.tenant_id", "acme",
                "cmcdp.tenant_id 'acme' is not a GUID "
                "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
        refused(f, "cmcdp.tenant_id", "3f2504e0-4f89-11d3-9a0c-0305e82c330",
                "cmcdp.tenant_id '3f2504e0-4f89-11d3-9a0c-0305e82c330' is not "
                "a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
        refused(f, "cmcdp.tenant_id", "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}",
                "cmcdp.tenant_id '{3f2504e0-4f89-11d3-9a0c-0305e82c3301}' is "
                "not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
        refused(f, "cmcdp.event_types", "Purchase=" PURCHASE ",Refund=nope",
                "cmcdp.event_types: the event type id 'nope' of 'Refund' is "
                "not a GUID");
        refused(f, "cmcdp.event_types",
                "Purchase=0f8fad5b-d9cb-469f-a165-70867728950g",
                "cmcdp.event_types: the event type id "
                "'0f8fad5b-d9cb-469f-a165-70867728950g' of 'Purchase' is not "
                "a GUID");
        refused(f, "cmcdp.event_types", "Purchase=" PURCHASE ", Refund",
                "cmcdp.event_types: entry 2 'Refund' is not Name=guid");
        refused(f, "cmcdp.event_types", "Purchase=" PURCHASE ",",
                "cmcdp.event_types: entry 2 '' is not Name=guid");
        refused(f, "cmcdp.event_types", " =" PURCHASE,
                "cmcdp.event_types: entry 1 has no event name before '='");
        refused(f, "cmcdp.event_types",
                "Purchase=" PURCHASE ",Purchase=" POINTS,
                "cmcdp.event_types: event 'Purchase' is given twice");
        refused(f, "cmcdp.token_in", "cookie",
                "cmcdp.token_in 'cookie' is neither \"header\" nor "
                "\"query\"");
        refused(f, "cmcdp.identity_field", "",
                "cmcdp.identity_field is empty");
        snprintf(f->url, sizeof(f->url), "api.cdp.cm.com");
        refused(f, NULL, NULL,
                "cmcdp.url 'api.cdp.cm.com' is not an http:// or https:// "
                "URL");
        /* A token a header cannot carry. */
        make_url(f->url, sizeof(f->url), f->srv->port, "/cdp");
        assert_int_equal(setup_conf2(f, "a\r\nX-Evil: 1", NULL, NULL, NULL,
                                     NULL, errstr, sizeof(errstr)),
                         -1);
        assert_string_equal(errstr, "cmcdp.product_token holds a line break, "
                                    "which a header cannot carry");
}

/* The engine fills a request while the items' bytes plus one separator
 * each stay within max_bytes; the body built from them then stays within
 * cmcdp.max_request_bytes, and a record that cannot fit alone is
 * refused. */
static void test_limits(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        size_t max_items, max_bytes;

        setup_conf(f, NULL, NULL);
        relay_adapter_limits(f->a, f->st, &max_items, &max_bytes);
        assert_int_equal(max_items, 100);
        assert_int_equal(max_bytes, 1048576 - 2);

        assert_int_equal(setup_conf2(f, TOKEN, "cmcdp.max_events_per_request",
                                     "20", "cmcdp.max_request_bytes", "2048",
                                     errstr, sizeof(errstr)),
                         0);
        relay_adapter_limits(f->a, f->st, &max_items, &max_bytes);
        assert_int_equal(max_items, 20);
        assert_int_equal(max_bytes, 2048 - 2);

        /* Items packed as the engine packs them, to the byte. */
        relay_buf_t items[21], body;
        relay_http_request_t req;
        relay_buf_init(&body);
        size_t used = 0, n = 0;
        for (; n < 20; n++) {
                relay_buf_init(&items[n]);
                relay_buf_printf(&items[n], "{\"EventTypeId\":\"%s\",\"Event\""
                                            ":{\"pad\":\"",
                                 POINTS);
                while (items[n].len < 190)
                        relay_buf_puts(&items[n], "x");
                relay_buf_puts(&items[n], "\"}}");
                if (used + items[n].len + 1 > max_bytes)
                        break;
                used += items[n].len + 1;
        }
        /* Fill the rest exactly with a last item. */
        size_t room = max_bytes - used - 1;
        relay_buf_reset(&items[n]);
        relay_buf_printf(&items[n], "{\"EventTypeId\":\"%s\",\"Event\":{\"p\":"
                                    "\"",
                         POINTS);
        while (items[n].len < room - 3)
                relay_buf_puts(&items[n], "y");
        relay_buf_puts(&items[n], "\"}}");
        assert_int_equal(used + items[n].len + 1, max_bytes);
        relay_adapter_request(f->a, f->st, items, n + 1, &body, &req);
        if (req.body_len > 2048)
                fail_msg("a body of %zu bytes from items within the limits",
                         req.body_len);
        assert_int_equal(req.body_len, 2047);
        json_t *doc = json_loadb(req.body, req.body_len, 0, NULL);
        assert_int_equal(json_array_size(doc), n + 1);
        json_decref(doc);
        for (size_t i = 0; i <= n; i++)
                relay_buf_free(&items[i]);
        relay_buf_free(&body);

        /* One record larger than a request may be. */
        relay_buf_t item;
        relay_buf_init(&item);
        char *big = malloc(3000);
        memset(big, 'x', 2999);
        big[2999] = '\0';
        json_t *rec = record_with(NULL, NULL);
        json_object_set_new(json_object_get(rec, "attributes"), "big",
                            json_string(big));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        char want[160];
        snprintf(want, sizeof(want),
                 "event of %zu bytes does not fit in a request of "
                 "cmcdp.max_request_bytes 2048",
                 item.len);
        assert_string_equal(errstr, want);
        free(big);
        json_decref(rec);
        relay_buf_free(&item);
}

static void test_classify(void **state)
{
        struct fixture *f = *state;
        char e[512];
        setup_conf(f, NULL, NULL);
        assert_int_equal(fx_classify(f, 200, NULL, 0, e, sizeof(e)), RELAY_OK);
        assert_int_equal(fx_classify(f, 202, "{}", 0, e, sizeof(e)), RELAY_OK);
        assert_int_equal(fx_classify(f, 204, NULL, 0, e, sizeof(e)), RELAY_OK);
        /* The records' fault, with the answer's text (200 bytes at most,
         * on one line). */
        assert_int_equal(fx_classify(f, 400,
                                     "{\"message\":\"Field 'Amount' is not\n"
                                     "a number\"}\r\n",
                                     0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(
            e, "HTTP 400: {\"message\":\"Field 'Amount' is not a number\"}");
        char big[400];
        memset(big, 'z', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(fx_classify(f, 422, big, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_int_equal(strlen(e), strlen("HTTP 422: ") + 200);
        assert_int_equal(fx_classify(f, 413, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 413: (no body)");
        /* The engine reads these as the token or tenant refused (pause). */
        assert_int_equal(fx_classify(f, 401, "bad token", 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 401: bad token");
        assert_int_equal(fx_classify(f, 403, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_int_equal(fx_classify(f, 404, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        /* Retried. */
        assert_int_equal(fx_classify(f, 408, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 429, "slow down", 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "HTTP 429: slow down");
        assert_int_equal(fx_classify(f, 500, "oops", 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 503, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 302, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 0, NULL, 28, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "Timeout was reached");
}

/* deliver's per-record work (decode the envelope into slots, encode the
 * item into a reused buffer) allocates nothing once warm, nor does
 * building a request into a reused body. */
static void test_steady_state_allocates_nothing(void **state)
{
        struct fixture *f = *state;
        setup_conf(f, NULL, NULL);
        struct fx_steady got = fx_steady_state(f, &record_json, 1, 1, 1000, 1);
        assert_int_equal(got.item_bytes, 1000 * strlen(record_item));
}

int main(void)
{
        count_init();
        alarm(120);
        if (relay_http_global_init() != 0)
                return 1;
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_body_exact, setup, teardown),
            cmocka_unit_test_setup_teardown(test_identity_field, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_unknown_event, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_on_the_wire, setup, teardown),
            cmocka_unit_test_setup_teardown(test_settings_refused, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
            cmocka_unit_test_setup_teardown(test_classify, setup, teardown),
            cmocka_unit_test_setup_teardown(test_steady_state_allocates_nothing,
                                            setup, teardown),
        };
        int rc = cmocka_run_group_tests(tests, NULL, NULL);
        relay_http_global_cleanup();
        return rc;
}
