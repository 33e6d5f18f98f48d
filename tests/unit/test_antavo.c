/*
 * Unit tests of the Antavo adapter (common/adapters/antavo.c): the event
 * a record becomes, byte for byte; the Escher signature as it arrives at a
 * server (recomputed here from the request received) and against a fixed
 * vector computed apart from relay with Python; one event per request vs
 * bulk; what each answer means (ERR_TX_ALREADY_EXISTS included); the
 * settings it refuses; and no allocation per record once warm.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapter_fixture.h"
#include "relay/sign.h"

#include <time.h>

#define KEY "relay-test-key"
#define SECRET "relay-test-secret"

static const char *record_json =
    "{\"event_id\":\"6f1c2a10-0002-4000-8000-000000000002\","
    "\"occurred_at\":1764064860123,\"tenant\":\"acme\",\"source\":\"shop\","
    "\"connection\":\"c1\",\"destination\":\"antavo\","
    "\"environment\":\"production\",\"identity_type\":\"customer_id\","
    "\"identity_value\":\"cust-\\\"1\","
    "\"event_name\":\"point_add\",\"event_category\":\"loyalty\","
    "\"attributes\":{\"points\":5,\"ratio\":0.5,\"vip\":true,"
    "\"none\":null,\"tier\":\"event's\"},"
    "\"user_attributes\":{\"tier\":\"gold\",\"$firstname\":\"Ann\"}}";

/* The event record_json becomes: attributes, then the user attributes
 * that are not attributes too. */
static const char *record_item =
    "{\"customer\":\"cust-\\\"1\",\"action\":\"point_add\",\"data\":"
    "{\"points\":5,\"ratio\":0.5,\"vip\":true,\"none\":null,"
    "\"tier\":\"event's\",\"$firstname\":\"Ann\"}}";

/* The fixed vector's record and event (see test_fixed_vector). */
static const char *vector_json =
    "{\"event_id\":\"e1\",\"occurred_at\":0,\"tenant\":\"t\",\"source\":\"s\","
    "\"connection\":\"c\",\"destination\":\"antavo\",\"environment\":"
    "\"production\",\"identity_type\":\"customer_id\",\"identity_value\":"
    "\"cust-1\",\"event_name\":\"point_add\",\"event_category\":null,"
    "\"attributes\":{\"points\":5},\"user_attributes\":{}}";
static const char *vector_body =
    "{\"customer\":\"cust-1\",\"action\":\"point_add\",\"data\":{\"points\":5}}";

/* A conf with antavo.url, the secrets and up to two more keys; init's
 * result. */
static int setup_conf2(struct fixture *f, const char *secret, const char *k1,
                       const char *v1, const char *k2, const char *v2,
                       char *errstr, size_t errstr_size)
{
        const char *const kv[][2] = {{"antavo.url", f->url}, {k1, v1},
                                     {k2, v2}};
        fx_conf_new(f);
        unsetenv("RELAY_ANTAVO_API_KEY_FILE");
        unsetenv("RELAY_ANTAVO_API_SECRET_FILE");
        setenv("RELAY_ANTAVO_API_KEY", KEY, 1);
        if (secret)
                setenv("RELAY_ANTAVO_API_SECRET", secret, 1);
        else
                unsetenv("RELAY_ANTAVO_API_SECRET");
        fx_conf_set(f, kv, 3, errstr, errstr_size);
        return fx_init(f, errstr, errstr_size);
}

static void setup_conf(struct fixture *f, const char *k1, const char *v1)
{
        char errstr[512];
        if (setup_conf2(f, SECRET, k1, v1, NULL, NULL, errstr, sizeof(errstr)))
                fail_msg("init: %s", errstr);
}

static int setup(void **state)
{
        return fx_setup(state, "antavo", "/api/");
}

/* record_json with field set to a JSON value given as text. */
static json_t *record_with(const char *field, const char *value)
{
        return fx_record(record_json, field, value);
}

static void test_body_exact(void **state)
{
        struct fixture *f = *state;
        char errstr[512], want[256];
        relay_buf_t item, body;
        relay_http_request_t req;
        relay_buf_init(&item);
        relay_buf_init(&body);
        setup_conf(f, NULL, NULL);
        json_t *rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_string_equal(item.data, record_item);
        json_decref(rec);
        /* One event per request: the object itself, to /events. */
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_int_equal(req.body_len, item.len);
        assert_memory_equal(req.body, item.data, item.len);
        assert_string_equal(req.method, "POST");
        snprintf(want, sizeof(want),
                 "http://127.0.0.1:%d/api/events?api_key=" KEY, f->srv->port);
        assert_string_equal(req.url, want);
        assert_string_equal(req.headers[0], "Content-Type: application/json");
        snprintf(want, sizeof(want), "Host: 127.0.0.1:%d", f->srv->port);
        assert_string_equal(req.headers[1], want);
        assert_memory_equal(req.headers[2], "Date: ", 6);
        assert_memory_equal(req.headers[3],
                            "Authorization: ANTAVO-HMAC-SHA256 Credential=" KEY
                            "/",
                            strlen("Authorization: ANTAVO-HMAC-SHA256 "
                                   "Credential=" KEY "/"));
        assert_null(req.headers[4]);
        assert_null(req.userpwd);

        /* A checkout carries its event_id as transaction_id, unless it has
         * one of its own; no user attributes, no attributes. */
        rec = record_with("event_name", "\"checkout\"");
        json_object_set_new(rec, "attributes", json_object());
        json_object_set_new(rec, "user_attributes",
                            json_loads("{\"transaction_id\":\"u\"}", 0, NULL));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_string_equal(item.data,
                            "{\"customer\":\"cust-\\\"1\",\"action\":"
                            "\"checkout\",\"data\":{\"transaction_id\":"
                            "\"6f1c2a10-0002-4000-8000-000000000002\"}}");
        json_object_set_new(rec, "attributes",
                            json_loads("{\"transaction_id\":\"T-9\","
                                       "\"total\":12.5}",
                                       0, NULL));
        json_object_set_new(rec, "user_attributes", json_object());
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_string_equal(item.data,
                            "{\"customer\":\"cust-\\\"1\",\"action\":"
                            "\"checkout\",\"data\":{\"transaction_id\":"
                            "\"T-9\",\"total\":12.5}}");
        json_decref(rec);

        /* No action or no customer: never sendable. */
        rec = record_with("event_name", "null");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr,
                            "no event_name: an Antavo event needs an action "
                            "(profile-only updates have no Antavo event)");
        json_decref(rec);
        rec = record_with("identity_value", "\"\"");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr, "no identity_value: an Antavo event needs "
                                    "a customer");
        json_decref(rec);
        relay_buf_free(&item);
        relay_buf_free(&body);
}

/* Bulk: a JSON array to the bulk path, within the limits. */
static void test_bulk(void **state)
{
        struct fixture *f = *state;
        char errstr[512], want[256];
        assert_int_equal(setup_conf2(f, SECRET,
                                     "antavo.max_events_per_request", "3",
                                     "antavo.max_request_bytes", "1024",
                                     errstr, sizeof(errstr)),
                         0);
        size_t max_items, max_bytes;
        relay_adapter_limits(f->a, f->st, &max_items, &max_bytes);
        assert_int_equal(max_items, 3);
        assert_int_equal(max_bytes, 1022);
        relay_buf_t items[2], body;
        relay_http_request_t req;
        relay_buf_init(&items[0]);
        relay_buf_init(&items[1]);
        relay_buf_init(&body);
        relay_buf_puts(&items[0], "{\"a\":1}");
        relay_buf_puts(&items[1], "{\"b\":2}");
        relay_adapter_request(f->a, f->st, items, 2, &body, &req);
        assert_int_equal(req.body_len, strlen("[{\"a\":1},{\"b\":2}]"));
        assert_memory_equal(req.body, "[{\"a\":1},{\"b\":2}]", req.body_len);
        snprintf(want, sizeof(want),
                 "http://127.0.0.1:%d/api/events/bulk?api_key=" KEY,
                 f->srv->port);
        assert_string_equal(req.url, want);
        /* One event in bulk mode is still an array of one. */
        relay_adapter_request(f->a, f->st, items, 1, &body, &req);
        assert_int_equal(req.body_len, 9);
        assert_memory_equal(req.body, "[{\"a\":1}]", 9);
        /* An event larger than a request may be. */
        json_t *rec = record_with(NULL, NULL);
        char big[1100];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        json_object_set_new(json_object_get(rec, "attributes"), "big",
                            json_string(big));
        assert_int_equal(fx_encode(f, rec, &items[0], errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_non_null(strstr(errstr, "antavo.max_request_bytes 1024"));
        json_decref(rec);
        relay_buf_free(&items[0]);
        relay_buf_free(&items[1]);
        relay_buf_free(&body);
}

static void test_settings_refused(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        const relay_conf_prop_t *tables[] = {f->a->props};
        relay_conf_t *c = relay_conf_new(tables, 1);
        assert_int_equal(relay_conf_set(c, "antavo.max_events_per_request",
                                        "0", errstr, sizeof(errstr)),
                         -1);
        assert_int_equal(relay_conf_set(c, "antavo.max_events_per_request",
                                        "51", errstr, sizeof(errstr)),
                         -1);
        assert_int_equal(relay_conf_set(c, "antavo.max_events_per_request",
                                        "50", errstr, sizeof(errstr)),
                         0);
        assert_int_equal(relay_conf_set(c, "antavo.api_secret", "s", errstr,
                                        sizeof(errstr)),
                         -1);
        relay_conf_destroy(c);
        assert_int_equal(setup_conf2(f, NULL, NULL, NULL, NULL, NULL, errstr,
                                     sizeof(errstr)),
                         -1);
        assert_null(f->st);
        assert_non_null(strstr(errstr, "RELAY_ANTAVO_API_SECRET or "
                                       "RELAY_ANTAVO_API_SECRET_FILE"));
        snprintf(f->url, sizeof(f->url), "https://api.antavo.com/x?y=1");
        assert_int_equal(setup_conf2(f, SECRET, NULL, NULL, NULL, NULL, errstr,
                                     sizeof(errstr)),
                         -1);
        assert_non_null(strstr(errstr, "without credentials, query"));
        snprintf(f->url, sizeof(f->url), "https://api.antavo.com");
        assert_int_equal(setup_conf2(f, SECRET,
                                     "antavo.max_events_per_request", "2",
                                     "antavo.bulk_path", "bulk", errstr,
                                     sizeof(errstr)),
                         -1);
        assert_string_equal(errstr,
                            "antavo.bulk_path 'bulk' does not start with /");
}

/* The Unix time of an HTTP date. */
static int64_t http_time(const char *date)
{
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *end = strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (!end || *end)
                fail_msg("Date '%s' is not an HTTP date", date);
        return (int64_t)timegm(&tm);
}

/* The Authorization an Escher verifier expects for a request as it was
 * received, composed here from the primitives: the canonical request,
 * the string to sign and the key chain, with Antavo's settings. */
static void expected_auth(const char *path, const char *query,
                          const char *host, const char *date,
                          const relay_buf_t *body, const char *secret,
                          char *out, size_t size)
{
        int64_t t = http_time(date);
        struct tm tm;
        time_t tt = (time_t)t;
        gmtime_r(&tt, &tm);
        char shortd[16], longd[32], bh[65], ch[65], sig[65];
        strftime(shortd, sizeof(shortd), "%Y%m%d", &tm);
        strftime(longd, sizeof(longd), "%Y%m%dT%H%M%SZ", &tm);
        relay_sign_part_t bp = {body->data, body->len};
        relay_sign_sha256_hex(&bp, 1, bh);
        relay_buf_t c;
        relay_buf_init(&c);
        relay_buf_printf(&c, "POST\n%s\n%s\ndate:%s\nhost:%s\n\ndate;host\n%s",
                         path, query, date, host, bh);
        relay_sign_part_t cp = {c.data, c.len};
        relay_sign_sha256_hex(&cp, 1, ch);
        relay_buf_reset(&c);
        relay_buf_printf(&c,
                         "ANTAVO-HMAC-SHA256\n%s\n%s/eu/api/antavo_request\n%s",
                         longd, shortd, ch);
        char k0[128];
        snprintf(k0, sizeof(k0), "ANTAVO%s", secret);
        unsigned char k[32];
        const char *chain[] = {shortd, "eu", "api", "antavo_request"};
        relay_sign_part_t p = {chain[0], strlen(chain[0])};
        relay_sign_hmac_sha256(k0, strlen(k0), &p, 1, k);
        for (int i = 1; i < 4; i++) {
                relay_sign_part_t q = {chain[i], strlen(chain[i])};
                relay_sign_hmac_sha256(k, 32, &q, 1, k);
        }
        unsigned char m[32];
        relay_sign_part_t s = {c.data, c.len};
        relay_sign_hmac_sha256(k, 32, &s, 1, m);
        relay_sign_hex(m, 32, sig);
        snprintf(out, size,
                 "ANTAVO-HMAC-SHA256 Credential=" KEY
                 "/%s/eu/api/antavo_request, SignedHeaders=date;host, "
                 "Signature=%s",
                 shortd, sig);
        relay_buf_free(&c);
}

/* What arrives verifies: the signature recomputed over the request line,
 * Host, Date and body received; the Date is now; a retry right after is
 * signed afresh. */
static void test_signed_on_the_wire(void **state)
{
        struct fixture *f = *state;
        char errstr[512], date[64], host[128], auth[512], want[512];
        char first[512];
        relay_buf_t item, body;
        relay_http_request_t req;
        relay_buf_init(&item);
        relay_buf_init(&body);
        setup_conf(f, NULL, NULL);
        json_t *rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        json_decref(rec);
        /* The second send at once: within the same second it would be the
         * same signature, a replay; it is dated a second later instead. */
        for (int round = 0; round < 2; round++) {
                relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
                struct request rq = fx_send(f, &req, 200, "{}");
                assert_string_equal(rq.method, "POST");
                assert_int_equal(rq.body.len, item.len);
                assert_memory_equal(rq.body.data, item.data, item.len);
                /* "POST /api/events?api_key=... HTTP/1.1" */
                char target[256];
                assert_int_equal(sscanf(rq.head, "POST %255s HTTP/1.1",
                                        target),
                                 1);
                assert_string_equal(target, "/api/events?api_key=" KEY);
                fx_header(&rq, "Host", host, sizeof(host));
                fx_header(&rq, "Date", date, sizeof(date));
                fx_header(&rq, "Authorization", auth, sizeof(auth));
                int64_t t = http_time(date), now = (int64_t)time(NULL);
                if (t < now - 5 || t > now + 1)
                        fail_msg("Date %s is not now", date);
                expected_auth("/api/events", "api_key=" KEY, host, date,
                              &rq.body, SECRET, want, sizeof(want));
                assert_string_equal(auth, want);
                if (round)
                        assert_string_not_equal(auth, first);
                snprintf(first, sizeof(first), "%s", auth);
        }
        relay_buf_free(&item);
        relay_buf_free(&body);
}

/* The adapter's request for the vector's record at api.demo.antavo.com
 * has the vector's inputs, and is signed as relay_sign_escher signs them;
 * relay_sign_escher at the vector's time gives the signature Python's
 * hmac and hashlib gave (tests/sim/test_antavo_sim.py checks the
 * simulator against the same literal). */
static void test_fixed_vector(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        snprintf(f->url, sizeof(f->url), "https://api.demo.antavo.com");
        setup_conf(f, NULL, NULL);
        relay_buf_t item, body, auth;
        relay_http_request_t req;
        relay_buf_init(&item);
        relay_buf_init(&body);
        relay_buf_init(&auth);
        json_t *rec = json_loads(vector_json, 0, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        json_decref(rec);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_string_equal(req.url,
                            "https://api.demo.antavo.com/events?api_key=" KEY);
        assert_string_equal(req.headers[1], "Host: api.demo.antavo.com");
        assert_int_equal(req.body_len, strlen(vector_body));
        assert_memory_equal(req.body, vector_body, req.body_len);

        relay_sign_escher_t e = {"ANTAVO", "ANTAVO", "eu/api/antavo_request",
                                 KEY, SECRET};
        char date[RELAY_SIGN_HTTP_DATE_SIZE];
        /* The header sent, re-signed at its own Date. */
        int64_t t = http_time(req.headers[2] + 6);
        relay_buf_puts(&auth, "Authorization: ");
        assert_int_equal(relay_sign_escher(&e, "POST", "/events",
                                           "api_key=" KEY, "api.demo.antavo.com",
                                           t, req.body, req.body_len, date,
                                           &auth),
                         0);
        assert_string_equal(req.headers[3], auth.data);
        /* The vector: 2025-11-25 10:01:00 UTC. */
        relay_buf_reset(&auth);
        assert_int_equal(relay_sign_escher(&e, "POST", "/events",
                                           "api_key=" KEY, "api.demo.antavo.com",
                                           1764064860, req.body, req.body_len,
                                           date, &auth),
                         0);
        assert_string_equal(date, "Tue, 25 Nov 2025 10:01:00 GMT");
        assert_string_equal(
            auth.data,
            "ANTAVO-HMAC-SHA256 "
            "Credential=relay-test-key/20251125/eu/api/antavo_request, "
            "SignedHeaders=date;host, "
            "Signature=481cb7aa294efe51b18c997261142102"
            "ae6897e457d24c010ad5e5d2938b0263");
        relay_buf_free(&item);
        relay_buf_free(&body);
        relay_buf_free(&auth);
}

/* The per-item reading of an answer to a request of n (empty) items. */
static int partial(struct fixture *f, long status, const char *body, size_t n,
                   relay_item_result_t *out)
{
        relay_buf_t items[3];
        assert_true(n <= 3);
        for (int i = 0; i < 3; i++)
                relay_buf_init(&items[i]);
        return fx_partial(f, status, body, items, n, out);
}

static void test_classify(void **state)
{
        struct fixture *f = *state;
        char e[512];
        setup_conf(f, NULL, NULL);
        assert_int_equal(fx_classify(f, 200, "{\"action\":\"x\"}", 0, e,
                                     sizeof(e)),
                         RELAY_OK);
        assert_int_equal(fx_classify(f, 201, NULL, 0, e, sizeof(e)), RELAY_OK);
        /* The record's fault, with the envelope's message. */
        assert_int_equal(
            fx_classify(f, 400,
                        "{\"error\":{\"type\":\"BadRequestException\",\"code\":"
                        "400,\"message\":\"Missing customer\"}}",
                        0, e, sizeof(e)),
            RELAY_FATAL);
        assert_string_equal(e, "HTTP 400: Missing customer");
        assert_int_equal(
            fx_classify(f, 422,
                        "{\"error\":{\"type\":\"RuleException\",\"code\":422,"
                        "\"message\":\"Not enough\\npoints\"}}",
                        0, e, sizeof(e)),
            RELAY_FATAL);
        assert_string_equal(e, "HTTP 422: Not enough points");
        assert_int_equal(fx_classify(f, 400, "not json", 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 400: not json");
        /* A checkout Antavo has already: delivered. */
        const char *exists = "{\"error\":{\"type\":\"BadRequestException\","
                             "\"code\":400,\"message\":"
                             "\"ERR_TX_ALREADY_EXISTS\"}}";
        assert_int_equal(fx_classify(f, 400, exists, 0, e, sizeof(e)),
                         RELAY_OK);
        assert_int_equal(fx_classify(f, 409, NULL, 0, e, sizeof(e)), RELAY_OK);
        /* ... alone; in a request of several each is sent again. */
        relay_item_result_t out[3];
        assert_int_equal(partial(f, 400, exists, 1, out), 0);
        assert_int_equal(partial(f, 200, "{}", 3, out), 0);
        assert_int_equal(partial(f, 400, exists, 3, out), 1);
        for (int i = 0; i < 3; i++)
                assert_int_equal(out[i].result, RELAY_RETRY);
        /* Credentials or module: the engine pauses on these. */
        assert_int_equal(
            fx_classify(f, 401,
                        "{\"error\":{\"type\":\"AuthException\",\"code\":401,"
                        "\"message\":\"Invalid signature\"}}",
                        0, e, sizeof(e)),
            RELAY_FATAL);
        assert_string_equal(e, "HTTP 401: Invalid signature");
        assert_int_equal(fx_classify(f, 403, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 403: (no body)");
        assert_int_equal(fx_classify(f, 404, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        /* Retried. */
        assert_int_equal(fx_classify(f, 429, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 500, "oops", 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "HTTP 500: oops");
        assert_int_equal(fx_classify(f, 503, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 0, NULL, 28, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "Timeout was reached");
}

/* deliver's per-record work (decode into slots, encode into a reused
 * buffer) allocates nothing once warm; building and signing a request is
 * per request (libcrypto allocates there). */
static void test_steady_state_allocates_nothing(void **state)
{
        struct fixture *f = *state;
        setup_conf(f, NULL, NULL);
        struct fx_steady got = fx_steady_state(f, &record_json, 1, 1, 1000, 0);
        assert_int_equal(got.item_bytes, 1000 * strlen(record_item));
}

int main(void)
{
        count_init();
        alarm(120);
        if (relay_http_global_init() != 0)
                return 1;
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_body_exact, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_bulk, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_settings_refused, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_signed_on_the_wire, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_fixed_vector, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_classify, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_steady_state_allocates_nothing,
                                            setup, fx_teardown),
        };
        int rc = cmocka_run_group_tests(tests, NULL, NULL);
        relay_http_global_cleanup();
        return rc;
}
