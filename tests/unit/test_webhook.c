/*
 * Unit tests of the generic signed webhook adapter
 * (common/adapters/webhook.c): the body a record becomes, the Standard
 * Webhooks headers as they arrive at a server (the signature recomputed
 * here over the bytes received, and a fixed vector), webhook-id for one
 * and several records, the request limits, what each answer means, the
 * settings it refuses, and no allocation per record once warm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapter_fixture.h"
#include "relay/sign.h"

#include <time.h>

/* The example secret of the Standard Webhooks specification, and its key. */
#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
static const unsigned char secret_key[] = {
    0x31, 0xf2, 0x90, 0xf6, 0xbf, 0x06, 0x29, 0x8a, 0xab, 0x4f, 0x08, 0xd4,
    0x3c, 0x3f, 0x08, 0x2c, 0xf6, 0x48, 0xa3, 0x62, 0xda, 0x2d, 0xa4, 0xb0};

static const char *record_json =
    "{\"event_id\":\"6f1c2a10-0002-4000-8000-000000000002\","
    "\"occurred_at\":1764064860123,\"tenant\":\"acme\",\"source\":\"antavo\","
    "\"connection\":\"c1\",\"destination\":\"webhook\","
    "\"environment\":\"development\",\"identity_type\":\"loyalty_member\","
    "\"identity_value\":\"cust-\\\"1\","
    "\"event_name\":\"Coupon Issued\",\"event_category\":\"rewards\","
    "\"attributes\":{\"code\":\"W10\",\"points\":5,\"ratio\":0.5,"
    "\"vip\":true,\"none\":null},"
    "\"user_attributes\":{\"$firstname\":\"Ann\"}}";

/* The item record_json becomes, byte for byte. */
static const char *record_item =
    "{\"event_id\":\"6f1c2a10-0002-4000-8000-000000000002\","
    "\"occurred_at\":\"2025-11-25T10:01:00.123Z\",\"tenant\":\"acme\","
    "\"source\":\"antavo\",\"connection\":\"c1\","
    "\"environment\":\"development\","
    "\"identity\":{\"type\":\"loyalty_member\",\"value\":\"cust-\\\"1\"},"
    "\"event_name\":\"Coupon Issued\",\"event_category\":\"rewards\","
    "\"attributes\":{\"code\":\"W10\",\"points\":5,\"ratio\":0.5,"
    "\"vip\":true,\"none\":null},"
    "\"user_attributes\":{\"$firstname\":\"Ann\"}}";

/* A conf with the url, the secret (NULL: none) and up to two more keys;
 * init's result. */
static int setup_conf2(struct fixture *f, const char *secret, const char *k1,
                       const char *v1, const char *k2, const char *v2,
                       char *errstr, size_t errstr_size)
{
        const char *const kv[][2] = {{"webhook.url", f->url}, {k1, v1},
                                     {k2, v2}};
        fx_conf_new(f);
        unsetenv("RELAY_WEBHOOK_SECRET_FILE");
        if (secret)
                setenv("RELAY_WEBHOOK_SECRET", secret, 1);
        else
                unsetenv("RELAY_WEBHOOK_SECRET");
        fx_conf_set(f, kv, 3, errstr, errstr_size);
        return fx_init(f, errstr, errstr_size);
}

static int setup_conf(struct fixture *f, const char *k1, const char *v1)
{
        char errstr[512];
        int rc = setup_conf2(f, SECRET, k1, v1, NULL, NULL, errstr,
                             sizeof(errstr));
        if (rc)
                fail_msg("init: %s", errstr);
        return rc;
}

static int setup(void **state)
{
        return fx_setup(state, "webhook", "/hooks/relay");
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
        relay_buf_t item, body;
        relay_http_request_t req;
        relay_buf_init(&item);
        relay_buf_init(&body);
        setup_conf(f, NULL, NULL);
        json_t *rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_string_equal(item.data, record_item);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        relay_buf_t want;
        relay_buf_init(&want);
        relay_buf_printf(&want, "{\"type\":\"relay.events\",\"data\":[%s]}",
                         record_item);
        assert_int_equal(req.body_len, want.len);
        assert_memory_equal(req.body, want.data, want.len);
        assert_string_equal(req.method, "POST");
        assert_string_equal(req.url, f->url);
        assert_string_equal(req.headers[0], "Content-Type: application/json");
        assert_string_equal(req.headers[1],
                            "webhook-id: 6f1c2a10-0002-4000-8000-000000000002");
        assert_null(req.userpwd);
        json_decref(rec);

        /* A profile-only update, production, no attributes; any identity
         * type and category go (no vocabulary). */
        rec = json_loads(
            "{\"event_id\":\"e2\",\"occurred_at\":0,\"tenant\":\"t\","
            "\"source\":\"s\",\"connection\":\"c\",\"destination\":"
            "\"webhook\",\"environment\":\"production\","
            "\"identity_type\":\"anything at all\",\"identity_value\":\"v\","
            "\"event_name\":null,\"event_category\":null,\"attributes\":{},"
            "\"user_attributes\":{\"tier\":\"gold\",\"n\":-3}}",
            0, NULL);
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_string_equal(
            item.data,
            "{\"event_id\":\"e2\",\"occurred_at\":\"1970-01-01T00:00:00.000Z\","
            "\"tenant\":\"t\",\"source\":\"s\",\"connection\":\"c\","
            "\"environment\":\"production\",\"identity\":{\"type\":"
            "\"anything at all\",\"value\":\"v\"},\"event_name\":null,"
            "\"event_category\":null,\"attributes\":{},\"user_attributes\":"
            "{\"tier\":\"gold\",\"n\":-3}}");
        json_decref(rec);

        /* Version 2 of the envelope: the identities and the operations
         * follow, as given. */
        rec = record_with("identities", "{\"customer_id\":\"c-1\","
                                        "\"email\":\"a@b\"}");
        json_object_set_new(
            rec, "operations",
            json_loads("[{\"op\":\"membership.add\",\"target\":\"aud-1\","
                       "\"attributes\":{\"n\":2}},{\"op\":\"reward.issue\","
                       "\"target\":null,\"attributes\":{}}]",
                       0, NULL));
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_OK);
        relay_buf_reset(&want);
        relay_buf_append(&want, record_item, strlen(record_item) - 1);
        relay_buf_puts(&want,
                       ",\"identities\":{\"customer_id\":\"c-1\","
                       "\"email\":\"a@b\"},\"operations\":[{\"op\":"
                       "\"membership.add\",\"target\":\"aud-1\","
                       "\"attributes\":{\"n\":2}},{\"op\":\"reward.issue\","
                       "\"target\":null,\"attributes\":{}}]}");
        assert_string_equal(item.data, want.data);
        json_decref(rec);

        /* Two items: joined by a comma, in order. */
        relay_buf_t two[2];
        relay_buf_init(&two[0]);
        relay_buf_init(&two[1]);
        relay_buf_puts(&two[0], "{\"event_id\":\"a\"}");
        relay_buf_puts(&two[1], "{\"event_id\":\"b\"}");
        relay_adapter_request(f->a, f->st, two, 2, &body, &req);
        const char *w2 = "{\"type\":\"relay.events\",\"data\":[{\"event_id\":"
                         "\"a\"},{\"event_id\":\"b\"}]}";
        assert_int_equal(req.body_len, strlen(w2));
        assert_memory_equal(req.body, w2, req.body_len);
        relay_buf_free(&two[0]);
        relay_buf_free(&two[1]);
        relay_buf_free(&want);
        relay_buf_free(&item);
        relay_buf_free(&body);
}

/* occurred_at as ISO-8601 UTC with milliseconds, at the edges of the
 * calendar arithmetic; a time the format cannot hold is refused. */
static void test_occurred_at(void **state)
{
        struct fixture *f = *state;
        static const struct {
                const char *ms, *iso;
        } cases[] = {
            {"-1", "1969-12-31T23:59:59.999Z"},
            {"951782400000", "2000-02-29T00:00:00.000Z"},
            {"951868799999", "2000-02-29T23:59:59.999Z"},
            {"4107542400000", "2100-03-01T00:00:00.000Z"},
            {"253402300799999", "9999-12-31T23:59:59.999Z"},
            {"-62167219200000", "0000-01-01T00:00:00.000Z"},
        };
        char errstr[512];
        relay_buf_t item;
        relay_buf_init(&item);
        setup_conf(f, NULL, NULL);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                json_t *rec = record_with("occurred_at", cases[i].ms);
                assert_int_equal(
                    fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                    RELAY_OK);
                json_t *got = json_loadb(item.data, item.len, 0, NULL);
                assert_non_null(got);
                assert_string_equal(
                    json_string_value(json_object_get(got, "occurred_at")),
                    cases[i].iso);
                json_decref(got);
                json_decref(rec);
        }
        json_t *rec = record_with("occurred_at", "253402300800000");
        assert_int_equal(fx_encode(f, rec, &item, errstr, sizeof(errstr)),
                         RELAY_FATAL);
        assert_string_equal(errstr, "occurred_at 253402300800000 ms is outside "
                                    "the years 0000 to 9999");
        json_decref(rec);
        relay_buf_free(&item);
}

/* The signature as the test computes it, without relay_sign_webhook: the
 * HMAC of the three pieces the specification names, joined by dots. */
static void expected_sig(const unsigned char *key, size_t key_len,
                         const char *id, const char *ts, const relay_buf_t *b,
                         char *out)
{
        unsigned char mac[RELAY_SIGN_SHA256_LEN];
        relay_sign_part_t parts[] = {{id, strlen(id)}, {".", 1},
                                     {ts, strlen(ts)}, {".", 1},
                                     {b->data, b->len}};
        assert_int_equal(relay_sign_hmac_sha256(key, key_len, parts, 5, mac),
                         0);
        memcpy(out, "v1,", 3);
        relay_sign_base64(mac, sizeof(mac), out + 3);
}

/* What arrives is signed: webhook-id, a timestamp of now and the
 * signature over exactly the bytes received. */
static void check_signed(const struct request *rq, const unsigned char *key,
                         size_t key_len, char *id, size_t id_size)
{
        char ts[32], sig[128], want[128], ctype[64];
        fx_header(rq, "webhook-id", id, id_size);
        fx_header(rq, "webhook-timestamp", ts, sizeof(ts));
        fx_header(rq, "webhook-signature", sig, sizeof(sig));
        fx_header(rq, "Content-Type", ctype, sizeof(ctype));
        assert_string_equal(ctype, "application/json");
        assert_string_equal(rq->method, "POST");
        char *end;
        long long t = strtoll(ts, &end, 10);
        assert_true(*end == '\0' && end != ts);
        long long now = (long long)time(NULL);
        if (t < now - 5 || t > now + 1)
                fail_msg("webhook-timestamp %s is not now (%lld)", ts, now);
        expected_sig(key, key_len, id, ts, &rq->body, want);
        assert_string_equal(sig, want);
}

static void test_signed_on_the_wire(void **state)
{
        struct fixture *f = *state;
        char errstr[512], id[256], id2[256];
        relay_buf_t items[3], body;
        relay_http_request_t req;
        for (int i = 0; i < 3; i++)
                relay_buf_init(&items[i]);
        relay_buf_init(&body);
        setup_conf(f, NULL, NULL);
        json_t *rec = record_with(NULL, NULL);
        assert_int_equal(fx_encode(f, rec, &items[0], errstr, sizeof(errstr)),
                         RELAY_OK);
        json_decref(rec);
        rec = record_with("event_id",
                          "\"7a2b3c40-0003-4000-8000-000000000003\"");
        assert_int_equal(fx_encode(f, rec, &items[1], errstr, sizeof(errstr)),
                         RELAY_OK);
        json_decref(rec);
        /* An event id a header cannot carry as it is. */
        rec = record_with("event_id", "\"id with \\\"quotes\\\" and spaces\"");
        assert_int_equal(fx_encode(f, rec, &items[2], errstr, sizeof(errstr)),
                         RELAY_OK);
        json_decref(rec);

        /* One record: its event id is the message id. */
        relay_adapter_request(f->a, f->st, items, 1, &body, &req);
        struct request rq = fx_send(f, &req, 204, NULL);
        assert_int_equal(rq.body.len, req.body_len);
        assert_memory_equal(rq.body.data, req.body, req.body_len);
        check_signed(&rq, secret_key, sizeof(secret_key), id, sizeof(id));
        assert_string_equal(id, "6f1c2a10-0002-4000-8000-000000000002");

        /* Two: "msg_" and 32 hex digits, the same for a retry of the same
         * records (a later send, signed again), another for other ones. */
        relay_adapter_request(f->a, f->st, items, 2, &body, &req);
        rq = fx_send(f, &req, 204, NULL);
        check_signed(&rq, secret_key, sizeof(secret_key), id, sizeof(id));
        assert_int_equal(strlen(id), 36);
        assert_memory_equal(id, "msg_", 4);
        assert_int_equal(strspn(id + 4, "0123456789abcdef"), 32);
        sleep(1); /* a new timestamp, so a new signature */
        relay_adapter_request(f->a, f->st, items, 2, &body, &req);
        rq = fx_send(f, &req, 204, NULL);
        check_signed(&rq, secret_key, sizeof(secret_key), id2, sizeof(id2));
        assert_string_equal(id, id2);
        relay_adapter_request(f->a, f->st, items + 1, 2, &body, &req);
        rq = fx_send(f, &req, 204, NULL);
        check_signed(&rq, secret_key, sizeof(secret_key), id2, sizeof(id2));
        assert_string_not_equal(id, id2);
        assert_memory_equal(id2, "msg_", 4);
        /* One record whose id is not header-safe gets the hashed form. */
        relay_adapter_request(f->a, f->st, items + 2, 1, &body, &req);
        rq = fx_send(f, &req, 204, NULL);
        check_signed(&rq, secret_key, sizeof(secret_key), id2, sizeof(id2));
        assert_int_equal(strlen(id2), 36);
        assert_memory_equal(id2, "msg_", 4);

        for (int i = 0; i < 3; i++)
                relay_buf_free(&items[i]);
        relay_buf_free(&body);
}

/* A secret without the whsec_ prefix is the key's raw bytes. */
static void test_raw_secret(void **state)
{
        struct fixture *f = *state;
        char errstr[512], id[256];
        assert_int_equal(setup_conf2(f, "it-raw-secret", NULL, NULL, NULL,
                                     NULL, errstr, sizeof(errstr)),
                         0);
        relay_buf_t item, body;
        relay_http_request_t req;
        relay_buf_init(&item);
        relay_buf_init(&body);
        relay_buf_puts(&item, "{\"event_id\":\"e1\"}");
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        struct request rq = fx_send(f, &req, 204, NULL);
        check_signed(&rq, (const unsigned char *)"it-raw-secret", 13, id,
                     sizeof(id));
        relay_buf_free(&item);
        relay_buf_free(&body);
}

/* Fixed vectors, computed apart from relay (Python's hmac and base64),
 * for relay_sign_webhook as the adapter calls it: a symmetric mistake
 * (the test and the adapter composing the message alike, wrongly) fails
 * here. */
static void test_fixed_vector(void **state)
{
        (void)state;
        char sig[RELAY_SIGN_WEBHOOK_SIG_SIZE];
        const char *id = "6f1c2a10-0002-4000-8000-000000000002";
        const char *body = "{\"type\":\"relay.events\",\"data\":[{\"event_id\":"
                           "\"6f1c2a10-0002-4000-8000-000000000002\"}]}";
        assert_int_equal(relay_sign_webhook(secret_key, sizeof(secret_key), id,
                                            strlen(id), 1764064860, body,
                                            strlen(body), sig),
                         0);
        assert_string_equal(sig,
                            "v1,T2AE+g8rrd3Yo7pLss9L6cgdchV8ujFMofbphlpsmYY=");
        assert_int_equal(relay_sign_webhook((const unsigned char *)"it-raw-"
                                                                   "secret",
                                            13, id, strlen(id), 1764064860,
                                            body, strlen(body), sig),
                         0);
        assert_string_equal(sig,
                            "v1,QPdYHKh0rznQex7mRTaiMDw03TwLK+x/ZST1siWjejQ=");
}

/* The engine fills a request while the items' bytes plus one separator
 * each stay within max_bytes; the body built from them then stays within
 * webhook.max_request_bytes, and a record that cannot fit alone is
 * refused. */
static void test_limits(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        size_t max_items, max_bytes;
        assert_int_equal(setup_conf2(f, SECRET,
                                     "webhook.max_events_per_request", "20",
                                     "webhook.max_request_bytes", "2048",
                                     errstr, sizeof(errstr)),
                         0);
        relay_adapter_limits(f->a, f->st, &max_items, &max_bytes);
        assert_int_equal(max_items, 20);
        assert_int_equal(max_bytes, 2048 - 33);

        /* Items packed as the engine packs them, to the byte. */
        relay_buf_t items[20], body;
        relay_http_request_t req;
        relay_buf_init(&body);
        size_t used = 0, n = 0;
        for (; n < 20; n++) {
                relay_buf_init(&items[n]);
                relay_buf_printf(&items[n], "{\"event_id\":\"%zu\",\"pad\":\"",
                                 n);
                while (items[n].len < 190)
                        relay_buf_puts(&items[n], "x");
                relay_buf_puts(&items[n], "\"}");
                if (used + items[n].len + 1 > max_bytes)
                        break;
                used += items[n].len + 1;
        }
        /* Fill the rest exactly with a last item. */
        size_t room = max_bytes - used - 1;
        relay_buf_reset(&items[n]);
        relay_buf_printf(&items[n], "{\"event_id\":\"last\",\"pad\":\"");
        while (items[n].len < room - 2)
                relay_buf_puts(&items[n], "y");
        relay_buf_puts(&items[n], "\"}");
        assert_int_equal(used + items[n].len + 1, max_bytes);
        relay_adapter_request(f->a, f->st, items, n + 1, &body, &req);
        if (req.body_len > 2048)
                fail_msg("a body of %zu bytes from items within the limits",
                         req.body_len);
        assert_int_equal(req.body_len, 2047);
        json_t *doc = json_loadb(req.body, req.body_len, 0, NULL);
        assert_int_equal(json_array_size(json_object_get(doc, "data")), n + 1);
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
                 "webhook.max_request_bytes 2048",
                 item.len);
        assert_string_equal(errstr, want);
        free(big);
        json_decref(rec);
        relay_buf_free(&item);
}

static void test_settings_refused(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        const relay_conf_prop_t *tables[] = {f->a->props};
        relay_conf_t *c = relay_conf_new(tables, 1);
        assert_int_equal(relay_conf_set(c, "webhook.max_events_per_request",
                                        "0", errstr, sizeof(errstr)),
                         -1);
        assert_int_equal(relay_conf_set(c, "webhook.max_events_per_request",
                                        "10001", errstr, sizeof(errstr)),
                         -1);
        assert_int_equal(relay_conf_set(c, "webhook.max_events_per_request",
                                        "10000", errstr, sizeof(errstr)),
                         0);
        /* A secret never comes from the file or the command line. */
        assert_int_equal(relay_conf_set(c, "webhook.secret", "s", errstr,
                                        sizeof(errstr)),
                         -1);
        relay_conf_destroy(c);

        /* No secret: init names where it comes from. */
        assert_int_equal(setup_conf2(f, NULL, NULL, NULL, NULL, NULL, errstr,
                                     sizeof(errstr)),
                         -1);
        assert_null(f->st);
        assert_non_null(strstr(errstr, "'webhook.secret'"));
        assert_non_null(strstr(errstr, "RELAY_WEBHOOK_SECRET or "
                                       "RELAY_WEBHOOK_SECRET_FILE"));
        /* whsec_ with a key that is not base64. */
        assert_int_equal(setup_conf2(f, "whsec_!!!!", NULL, NULL, NULL, NULL,
                                     errstr, sizeof(errstr)),
                         -1);
        assert_string_equal(errstr, "webhook.secret: the webhook secret starts "
                                    "with whsec_ but the rest is not padded "
                                    "base64");
        /* A URL that is not HTTP. */
        snprintf(f->url, sizeof(f->url), "ftp://example.com/x");
        assert_int_equal(setup_conf2(f, SECRET, NULL, NULL, NULL, NULL, errstr,
                                     sizeof(errstr)),
                         -1);
        assert_string_equal(errstr, "webhook.url 'ftp://example.com/x' is not "
                                    "an http:// or https:// URL");
}

static void test_classify(void **state)
{
        struct fixture *f = *state;
        char e[512];
        setup_conf(f, NULL, NULL);
        assert_int_equal(fx_classify(f, 200, NULL, 0, e, sizeof(e)), RELAY_OK);
        assert_int_equal(fx_classify(f, 204, NULL, 0, e, sizeof(e)), RELAY_OK);
        assert_int_equal(fx_classify(f, 202, "<html>", 0, e, sizeof(e)),
                         RELAY_OK);
        /* The records' fault, with the answer's text (200 bytes at most,
         * on one line). */
        assert_int_equal(
            fx_classify(f, 400, "{\"error\":\"bad event\"}\n", 0, e, sizeof(e)),
            RELAY_FATAL);
        assert_string_equal(e, "HTTP 400: {\"error\":\"bad event\"}");
        char big[400];
        memset(big, 'z', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(fx_classify(f, 422, big, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_int_equal(strlen(e), strlen("HTTP 422: ") + 200);
        assert_int_equal(fx_classify(f, 413, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 413: (no body)");
        assert_int_equal(fx_classify(f, 409, "conflict", 0, e, sizeof(e)),
                         RELAY_FATAL);
        /* The engine reads these as the secret or URL refused (pause). */
        assert_int_equal(fx_classify(f, 401, "bad signature", 0, e, sizeof(e)),
                         RELAY_FATAL);
        assert_string_equal(e, "HTTP 401: bad signature");
        assert_int_equal(fx_classify(f, 404, NULL, 0, e, sizeof(e)),
                         RELAY_FATAL);
        /* Retried. */
        assert_int_equal(fx_classify(f, 408, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 429, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 500, "oops", 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "HTTP 500: oops");
        assert_int_equal(fx_classify(f, 503, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 301, NULL, 0, e, sizeof(e)),
                         RELAY_RETRY);
        assert_int_equal(fx_classify(f, 0, NULL, 28, e, sizeof(e)),
                         RELAY_RETRY);
        assert_string_equal(e, "Timeout was reached");
}

/* A secret rotated in its *_FILE reaches the signatures once deliver has
 * re-read the secrets and re-run init (what it does before a probe). */
static void test_rotated_secret(void **state)
{
        struct fixture *f = *state;
        char errstr[512], id[256], path[] = "/tmp/relay-test-wh-secret-XXXXXX";
        const char *const kv[][2] = {{"webhook.url", f->url}};
        fx_temp_file(path, "old-secret\n");
        fx_conf_new(f);
        unsetenv("RELAY_WEBHOOK_SECRET");
        setenv("RELAY_WEBHOOK_SECRET_FILE", path, 1);
        fx_conf_set(f, kv, 1, errstr, sizeof(errstr));
        assert_int_equal(fx_init(f, errstr, sizeof(errstr)), 0);
        relay_buf_t item, body;
        relay_http_request_t req;
        relay_buf_init(&item);
        relay_buf_init(&body);
        relay_buf_puts(&item, "{\"event_id\":\"e1\"}");
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        struct request rq = fx_send(f, &req, 204, NULL);
        check_signed(&rq, (const unsigned char *)"old-secret", 10, id,
                     sizeof(id));

        fx_rewrite(path, SECRET "\n");
        assert_int_equal(
            relay_conf_reload_secrets(f->conf, errstr, sizeof(errstr)), 1);
        fx_reinit(f);
        relay_adapter_request(f->a, f->st, &item, 1, &body, &req);
        rq = fx_send(f, &req, 204, NULL);
        check_signed(&rq, secret_key, sizeof(secret_key), id, sizeof(id));

        unsetenv("RELAY_WEBHOOK_SECRET_FILE");
        unlink(path);
        relay_buf_free(&item);
        relay_buf_free(&body);
}

/* deliver's per-record work (decode the envelope into slots, encode the
 * item into a reused buffer) allocates nothing once warm. */
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
            cmocka_unit_test_setup_teardown(test_occurred_at, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_signed_on_the_wire, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_raw_secret, setup,
                                            fx_teardown),
            cmocka_unit_test(test_fixed_vector),
            cmocka_unit_test_setup_teardown(test_limits, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_settings_refused, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_classify, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_rotated_secret, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_steady_state_allocates_nothing,
                                            setup, fx_teardown),
        };
        int rc = cmocka_run_group_tests(tests, NULL, NULL);
        relay_http_global_cleanup();
        return rc;
}
