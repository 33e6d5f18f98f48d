/*
 * Unit tests of the Eagle Eye AIR adapter (common/adapters/eagleeye.c):
 * the calls a record becomes (method, URL, body and headers byte for
 * byte, the auth hashes and references computed independently in Python),
 * PLATFORMS.md's auth test vector, a retried request that carries the same
 * reference, transaction id and hash, the records refused with their
 * reasons, what each answer means (a 404 for an unknown wallet is the
 * record's, any other the engine's), the settings refused at init, and no
 * allocation per record once warm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapter_fixture.h"
#include "relay/sign.h"

#define SECRET "secret-1"
#define EVENT_ID "6f1c2a10-0003-4000-8000-000000000003"

/* An issuance: the wallet in identities, two properties. */
static const char *issue_json =
    "{\"event_id\":\"" EVENT_ID "\",\"occurred_at\":1764064860123,"
    "\"tenant\":\"acme\",\"source\":\"antavo\",\"connection\":\"c1\","
    "\"destination\":\"eagleeye\",\"environment\":\"production\","
    "\"identity_type\":\"customer_id\",\"identity_value\":\"cust-1\","
    "\"event_name\":null,\"event_category\":null,\"attributes\":{},"
    "\"user_attributes\":{},\"identities\":{\"customer_id\":\"cust-1\","
    "\"wallet_id\":\"W-1\"},\"operations\":[{\"op\":\"reward.issue\","
    "\"target\":\"CAMP-1\",\"attributes\":{\"channel\":\"app\",\"n\":2}}]}";

/* Independently computed (Python hashlib):
 * sha256("acme/W-1/CAMP-1/<event id>")[:32], and the auth hashes. */
#define REF1 "251c8d231e140d5f520af2752f05f018"
#define BODY1                                                                 \
        "{\"resourceType\":\"CAMPAIGN\",\"resourceId\":\"CAMP-1\","          \
        "\"consumerIdentifier\":{\"reference\":\"W-1\"},\"reference\":\"" REF1 \
        "\",\"properties\":{\"channel\":\"app\",\"n\":2}}"
#define HASH1 "364ab1fa19fec8019e343eb43a6f04b67b68eb0c7a57858e223a9988ca136e5a"
/* The same over "/base/2.0/token/create" (a base URL with a path). */
#define HASH1_BASE                                                            \
        "372ce2c07a6fbac3652edbce10695e7121c86df759ad3fa28e475106e3cfe322"
/* points.earn of 50 on account ACC-9 of wallet "W/7" (identity_type). */
#define REF2 "3a3a96542e62dcf7f6edbee69c8751ca"
#define BODY2 "{\"points\":50,\"reference\":\"" REF2 "\"}"
#define HASH2 "87338c221f00624e0a3327dfd78b69f6e9f9f5638d672f62451a4432ecbc460d"

/* A conf with the client id and secret, the url (NULL: the default) and
 * one more key; init's result. */
static int init_conf(struct fixture *f, const char *url, const char *k1,
                     const char *v1, char *errstr, size_t errstr_size)
{
        const char *const kv[][2] = {{"eagleeye.client_id", "client-1"},
                                     {url ? "eagleeye.url" : NULL, url},
                                     {k1, v1}};
        fx_conf_new(f);
        unsetenv("RELAY_EAGLEEYE_CLIENT_SECRET_FILE");
        setenv("RELAY_EAGLEEYE_CLIENT_SECRET", SECRET, 1);
        fx_conf_set(f, kv, 3, errstr, errstr_size);
        return fx_init(f, errstr, errstr_size);
}

static void setup_conf(struct fixture *f, const char *url)
{
        char errstr[512];
        if (init_conf(f, url, NULL, NULL, errstr, sizeof(errstr)))
                fail_msg("init: %s", errstr);
}

static int setup(void **state)
{
        return fx_setup(state, "eagleeye", NULL);
}

/* issue_json with field set to a JSON value given as text. */
static json_t *record_with(const char *field, const char *value)
{
        return fx_record(issue_json, field, value);
}

static void test_calls_exact(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item, body;
        relay_http_request_t req;
        relay_buf_init(&item);
        relay_buf_init(&body);
        setup_conf(f, "http://127.0.0.1:1/");

        json_t *rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_string_equal(req.method, "POST");
        assert_string_equal(req.url, "http://127.0.0.1:1/2.0/token/create");
        fx_assert_body(&req, BODY1);
        assert_string_equal(req.headers[0], "Content-Type: application/json");
        assert_string_equal(req.headers[1], "Accept: application/json");
        assert_string_equal(req.headers[2], "X-EES-AUTH-CLIENT-ID: client-1");
        assert_string_equal(req.headers[3], "X-EES-TRANSACTION-ID: " REF1);
        assert_string_equal(req.headers[4], "X-EES-AUTH-HASH: " HASH1);
        assert_null(req.headers[5]);
        assert_null(req.userpwd);
        json_decref(rec);

        /* points.earn: the wallet as the primary identity (no
         * identities), percent-encoded in the path; PATCH. */
        rec = record_with("identities", "null");
        json_object_set_new(rec, "identity_type", json_string("wallet_id"));
        json_object_set_new(rec, "identity_value", json_string("W/7"));
        json_object_set_new(
            rec, "operations",
            json_loads("[{\"op\":\"points.earn\",\"target\":\"ACC-9\","
                       "\"attributes\":{\"points\":50}}]",
                       0, NULL));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_string_equal(req.method, "PATCH");
        assert_string_equal(req.url,
                            "http://127.0.0.1:1/2.0/wallet/W%2F7/account/"
                            "ACC-9/earn");
        fx_assert_body(&req, BODY2);
        assert_string_equal(req.headers[3], "X-EES-TRANSACTION-ID: " REF2);
        assert_string_equal(req.headers[4], "X-EES-AUTH-HASH: " HASH2);

        /* points.debit: a whole double is taken as points. */
        json_object_set_new(
            rec, "operations",
            json_loads("[{\"op\":\"points.debit\",\"target\":\"ACC-9\","
                       "\"attributes\":{\"points\":30.0}}]",
                       0, NULL));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_string_equal(req.url,
                            "http://127.0.0.1:1/2.0/wallet/W%2F7/account/"
                            "ACC-9/debit");
        fx_assert_body(&req, "{\"points\":30,\"reference\":\"" REF2 "\"}");
        json_decref(rec);

        /* An issuance without attributes has no properties. */
        rec = record_with("operations",
                          "[{\"op\":\"reward.issue\",\"target\":\"CAMP-1\","
                          "\"attributes\":{}}]");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        fx_assert_body(&req, "{\"resourceType\":\"CAMPAIGN\",\"resourceId\":"
                             "\"CAMP-1\",\"consumerIdentifier\":{\"reference\":"
                             "\"W-1\"},\"reference\":\"" REF1 "\"}");
        json_decref(rec);

        /* A base URL with a path: it is part of the URI that is hashed. */
        setup_conf(f, "http://127.0.0.1:1/base//");
        rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_string_equal(req.url,
                            "http://127.0.0.1:1/base/2.0/token/create");
        assert_string_equal(req.headers[4], "X-EES-AUTH-HASH: " HASH1_BASE);
        json_decref(rec);

        /* The issuance path is a setting. */
        char e2[512];
        assert_int_equal(init_conf(f, "https://w.example", "eagleeye.issue_path",
                                   "/2.0/connect/issue", e2, sizeof(e2)),
                         0);
        rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_string_equal(req.url, "https://w.example/2.0/connect/issue");
        json_decref(rec);
        relay_buf_free(&item);
        relay_buf_free(&body);
}

/* PLATFORMS.md's vector, through the hash the adapter signs with. */
static void test_hash_vector(void **state)
{
        (void)state;
        relay_sign_sha256_ctx_t *c = relay_sign_sha256_ctx_new();
        relay_sign_part_t parts[] = {
            {"/wallet/555555", 14}, {"", 0}, {"0987654321", 10}};
        char hex[65];
        assert_int_equal(relay_sign_sha256_hex_ctx(c, parts, 3, hex), 0);
        assert_string_equal(hex, "76e132ab2154bb7139258b65134ddaf74c12a4242ce1"
                                 "36b87a7335292fddc068");
        relay_sign_sha256_ctx_destroy(c);
}

/* A retry: request() again on the same item, and the record encoded
 * again (redelivered after a restart), send the same bytes. */
static void test_retry_same(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item, again, b1, b2;
        relay_http_request_t r1, r2;
        relay_buf_init(&item);
        relay_buf_init(&again);
        relay_buf_init(&b1);
        relay_buf_init(&b2);
        setup_conf(f, "http://127.0.0.1:1");
        json_t *rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_int_equal(fx_encode(f, rec, &again, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_int_equal(item.len, again.len);
        assert_memory_equal(item.data, again.data, item.len);
        relay_adapter_request(f->a, f->st, &item, 1, &b1, &r1);
        relay_adapter_request(f->a, f->st, &again, 1, &b2, &r2);
        assert_int_equal(r1.body_len, r2.body_len);
        assert_memory_equal(r1.body, r2.body, r1.body_len);
        for (int h = 0; h < 5; h++)
                assert_string_equal(r1.headers[h], r2.headers[h]);
        assert_string_equal(r2.headers[3], "X-EES-TRANSACTION-ID: " REF1);
        /* Another event of the same wallet and campaign: another
         * reference (not the same issuance). */
        json_object_set_new(rec, "event_id",
                            json_string("6f1c2a10-0003-4000-8000-000000000004"));
        assert_int_equal(fx_encode(f, rec, &again, errstr, sizeof(errstr)),
                         RELAY_OK);
        relay_adapter_request(f->a, f->st, &again, 1, &b2, &r2);
        assert_string_not_equal(r2.headers[3], "X-EES-TRANSACTION-ID: " REF1);
        json_decref(rec);
        relay_buf_free(&item);
        relay_buf_free(&again);
        relay_buf_free(&b1);
        relay_buf_free(&b2);
}

static void refused(struct fixture *f, json_t *rec, const char *why)
{
        char errstr[512];
        relay_buf_t item;
        relay_buf_init(&item);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr, why);
        relay_buf_free(&item);
        json_decref(rec);
}

static void test_refusals(void **state)
{
        struct fixture *f = *state;
        setup_conf(f, NULL);
        refused(f, record_with("operations", "null"),
                "the record carries 0 operations; Eagle Eye takes exactly one "
                "a record (reward.issue, points.earn or points.debit)");
        refused(f,
                record_with("operations",
                            "[{\"op\":\"reward.issue\",\"target\":\"A\","
                            "\"attributes\":{}},{\"op\":\"reward.issue\","
                            "\"target\":\"B\",\"attributes\":{}}]"),
                "the record carries 2 operations; Eagle Eye takes exactly one "
                "a record (reward.issue, points.earn or points.debit)");
        refused(f,
                record_with("operations",
                            "[{\"op\":\"membership.add\",\"target\":\"A\","
                            "\"attributes\":{}}]"),
                "operation 'membership.add' is not one Eagle Eye performs "
                "(reward.issue, points.earn, points.debit)");
        refused(f,
                record_with("operations",
                            "[{\"op\":\"reward.issue\",\"target\":null,"
                            "\"attributes\":{}}]"),
                "reward.issue has no target (the campaign reference)");
        refused(f, record_with("identities", "{\"customer_id\":\"c\"}"),
                "the record has no 'wallet_id' identity (the wallet id, "
                "eagleeye.wallet_identity) in identities or as "
                "identity_type");
        static const struct {
                const char *attrs, *why;
        } pts[] = {
            {"{}", "points.earn: attributes.points is missing"},
            {"{\"points\":\"50\"}",
             "points.earn: attributes.points is not a whole number"},
            {"{\"points\":1.5}",
             "points.earn: attributes.points is not a whole number"},
            {"{\"points\":0}", "points.earn: attributes.points is not above 0"},
            {"{\"points\":-5}",
             "points.earn: attributes.points is not above 0"},
        };
        for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++) {
                char ops[256];
                snprintf(ops, sizeof(ops),
                         "[{\"op\":\"points.earn\",\"target\":\"ACC\","
                         "\"attributes\":%s}]",
                         pts[i].attrs);
                refused(f, record_with("operations", ops), pts[i].why);
        }
        /* The wallet identity is a setting. */
        char errstr[512];
        assert_int_equal(init_conf(f, NULL, "eagleeye.wallet_identity",
                                   "customer_id", errstr, sizeof(errstr)),
                         0);
        relay_buf_t item;
        relay_buf_init(&item);
        json_t *rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        relay_buf_t body;
        relay_http_request_t req;
        relay_buf_init(&body);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_non_null(strstr(req.body, "{\"reference\":\"cust-1\"}"));
        json_decref(rec);
        relay_buf_free(&body);
        relay_buf_free(&item);
}

/* The reading of an answer of status with body (NULL: none). */
static enum relay_result classify(struct fixture *f, long status,
                                  const char *body, char *why, size_t size)
{
        return fx_classify(f, status, body, 0, why, size);
}

static void test_classify(void **state)
{
        struct fixture *f = *state;
        char why[600];
        setup_conf(f, NULL);
        assert_int_equal(classify(f, 200, "{}", why, sizeof(why)), RELAY_OK);
        assert_int_equal(classify(f, 201, "{}", why, sizeof(why)), RELAY_OK);
        assert_int_equal(classify(f, 409, "{}", why, sizeof(why)), RELAY_OK);
        assert_int_equal(classify(f, 400,
                                  "{\"errorCode\":\"INSUFFICIENT_BALANCE\"}",
                                  why, sizeof(why)),
                         RELAY_FATAL);
        assert_string_equal(why, "HTTP 400: {\"errorCode\":"
                                 "\"INSUFFICIENT_BALANCE\"}");
        assert_int_equal(classify(f, 422, NULL, why, sizeof(why)),
                         RELAY_FATAL);
        assert_string_equal(why, "HTTP 422: (no body)");
        assert_int_equal(classify(f, 401, "x", why, sizeof(why)), RELAY_FATAL);
        assert_int_equal(classify(f, 403, "x", why, sizeof(why)), RELAY_FATAL);
        assert_int_equal(classify(f, 404, "{\"errorCode\":\"NOT_FOUND\"}", why,
                                  sizeof(why)),
                         RELAY_FATAL); /* the engine pauses */
        assert_int_equal(classify(f, 429, "", why, sizeof(why)), RELAY_RETRY);
        assert_int_equal(classify(f, 503, "", why, sizeof(why)), RELAY_RETRY);
        assert_int_equal(classify(f, 500, "", why, sizeof(why)), RELAY_RETRY);
        assert_int_equal(classify(f, 408, "", why, sizeof(why)), RELAY_RETRY);

        relay_http_response_t resp;
        relay_http_response_init(&resp);
        resp.transport_error = 7;
        snprintf(resp.error, sizeof(resp.error), "connection refused");
        assert_int_equal(
            relay_adapter_classify(f->a, f->st, &resp, why, sizeof(why)),
            RELAY_RETRY);
        assert_string_equal(why, "connection refused");

        /* A 404 naming an unknown wallet: the record's fault (the engine
         * dead-letters it with the body) where any other 404 pauses. */
        relay_http_response_reset(&resp);
        relay_http_response_init(&resp);
        resp.status = 404;
        relay_buf_puts(&resp.body, "{\"errorCode\":\"WALLET_NOT_FOUND\","
                                   "\"errorMessage\":\"wallet W-9\"}");
        assert_int_equal(
            relay_adapter_classify(f->a, f->st, &resp, why, sizeof(why)),
            RELAY_FATAL);
        assert_string_equal(why,
                            "HTTP 404: {\"errorCode\":\"WALLET_NOT_FOUND\","
                            "\"errorMessage\":\"wallet W-9\"}");
        assert_true(relay_adapter_record_refused(f->a, f->st, &resp));
        relay_buf_reset(&resp.body);
        relay_buf_puts(&resp.body, "{\"errorCode\":\"NOT_FOUND\"}");
        assert_false(relay_adapter_record_refused(f->a, f->st, &resp));
        relay_http_response_reset(&resp);
}

static void test_init_refusals(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        assert_int_equal(init_conf(f, "ftp://x", NULL, NULL, errstr,
                                   sizeof(errstr)),
                         -1);
        assert_string_equal(errstr, "eagleeye.url 'ftp://x' is not an http:// "
                                    "or https:// URL");
        assert_int_equal(init_conf(f, NULL, "eagleeye.issue_path", "2.0/x",
                                   errstr, sizeof(errstr)),
                         -1);
        assert_string_equal(errstr, "eagleeye.issue_path '2.0/x' does not start "
                                    "with '/'");
        /* The default host. */
        setup_conf(f, NULL);
        relay_buf_t item, body;
        relay_http_request_t req;
        relay_buf_init(&item);
        relay_buf_init(&body);
        json_t *rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        assert_string_equal(req.url,
                            "https://wallet.uk.eagleeye.com/2.0/token/create");
        size_t mi, mb;
        relay_adapter_limits(f->a, f->st, &mi, &mb);
        assert_int_equal(mi, 1);
        json_decref(rec);
        relay_buf_free(&item);
        relay_buf_free(&body);
}

/* Once the buffers are warm, encoding and building a request allocate
 * nothing (the hashes go through a kept context). */
static void test_no_alloc(void **state)
{
        struct fixture *f = *state;
        setup_conf(f, NULL);
        struct fx_steady got = fx_steady_state(f, &issue_json, 1, 1, 1000, 1);
        assert_int_equal(got.body_bytes, 1000 * strlen(BODY1));
}

int main(void)
{
        count_init();
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_calls_exact, setup,
                                            fx_teardown),
            cmocka_unit_test(test_hash_vector),
            cmocka_unit_test_setup_teardown(test_retry_same, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_refusals, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_classify, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_init_refusals, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_no_alloc, setup, fx_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
