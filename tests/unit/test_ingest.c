/*
 * The ingest gateway's parts that need no server: signed links
 * (common/core/link.c), the pixels' checks (common/core/pixel.c) and
 * ingest sources (common/mapping/ingest.c), against the real schemas and
 * the shipped source files of deploy/config/ingest/. The records are
 * decoded back with avro-c's generic path (relay_avro_decode_written).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "relay/avro.h"
#include "relay/ingest.h"
#include "relay/link.h"
#include "relay/pixel.h"
#include "relay/sign.h"
#include "unit.h"

static char err[1024], srcdir[1024];
static relay_schemas_t *schemas;

static int group_setup(void **state)
{
        (void)state;
        const char *src = getenv("RELAY_SOURCE_DIR");
        char path[1200];
        snprintf(srcdir, sizeof(srcdir), "%s", src ? src : ".");
        snprintf(path, sizeof(path), "%s/schemas/manifest.cfg", srcdir);
        if (!(schemas = relay_schemas_load(path, err, sizeof(err)))) {
                fprintf(stderr, "%s\n", err);
                return -1;
        }
        setenv("RELAY_INGEST_TOKENS_ANTAVO", "old-token, new-token", 1);
        setenv("RELAY_INGEST_TOKENS_CMCDP", "cm-token", 1);
        setenv("RELAY_INGEST_TOKENS_MPARTICLE", "mp-token", 1);
        setenv("RELAY_INGEST_TOKENS_T", "t", 1);
        return unit_tmpdir_make("ingest");
}

static int group_teardown(void **state)
{
        (void)state;
        relay_schemas_destroy(schemas);
        return unit_tmpdir_remove();
}

/* ---- URL-safe base64 ---- */

static void test_base64url(void **state)
{
        (void)state;
        const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar",
                            "\xfb\xff\xfe"};
        const char *want[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE",
                              "Zm9vYmFy", "-__-"};
        for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
                char out[32];
                unsigned char back[32];
                relay_sign_base64url(in[i], strlen(in[i]), out);
                assert_string_equal(out, want[i]);
                long n = relay_sign_unbase64url(out, strlen(out), back,
                                                sizeof(back));
                assert_int_equal(n, (long)strlen(in[i]));
                assert_memory_equal(back, in[i], (size_t)n);
        }
        unsigned char b[8];
        assert_int_equal(relay_sign_unbase64url("Zg=", 3, b, 8), -1);
        assert_int_equal(relay_sign_unbase64url("Z", 1, b, 8), -1);
        assert_int_equal(relay_sign_unbase64url("Zh", 2, b, 8), -1); /* bits */
        assert_int_equal(relay_sign_unbase64url("Zm+v", 4, b, 8), -1);
        assert_int_equal(relay_sign_unbase64url("Zm9vYmFy", 8, b, 5), -1);
}

/* ---- signed links ---- */

static relay_link_t sample(void)
{
        relay_link_t l = {0};
        l.tenant = "acme";
        l.message_id = "m-1";
        l.link_id = "7";
        l.url = "https://shop.example/offer?x=1";
        l.contact = "42";
        return l;
}

static void test_link_round_trip_and_rotation(void **state)
{
        (void)state;
        relay_link_keys_t *old = relay_link_keys_parse("k1:s3cret", err,
                                                       sizeof(err));
        relay_link_keys_t *both = relay_link_keys_parse(
            "k1:s3cret,k2:n3w", err, sizeof(err));
        assert_non_null(old);
        assert_non_null(both);
        relay_link_t l = sample(), got;
        relay_buf_t t;
        relay_buf_init(&t);
        assert_int_equal(relay_link_sign(&l, old, "k1", &t, err, sizeof(err)),
                         0);
        assert_int_equal(relay_link_verify(t.data, t.len, both, &got, err,
                                           sizeof(err)),
                         0);
        assert_string_equal(got.tenant, "acme");
        assert_string_equal(got.url, "https://shop.example/offer?x=1");
        assert_string_equal(got.link_id, "7");
        assert_null(got.campaign);
        relay_link_free(&got);
        /* Signed with the new key: the old set does not know it. */
        relay_buf_reset(&t);
        assert_int_equal(relay_link_sign(&l, both, "k2", &t, err, sizeof(err)),
                         0);
        assert_int_equal(relay_link_verify(t.data, t.len, old, &got, err,
                                           sizeof(err)),
                         -1);
        assert_contains(err, "unknown key");
        relay_buf_free(&t);
        relay_link_keys_destroy(old);
        relay_link_keys_destroy(both);
}

static void test_link_tampered(void **state)
{
        (void)state;
        relay_link_keys_t *k = relay_link_keys_parse("k1:s3cret", err,
                                                     sizeof(err));
        relay_link_t l = sample(), got;
        relay_buf_t t;
        relay_buf_init(&t);
        assert_int_equal(relay_link_sign(&l, k, "k1", &t, err, sizeof(err)), 0);
        /* Another target in the payload, the signature kept. */
        l.url = "https://evil.example/";
        relay_buf_t t2;
        relay_buf_init(&t2);
        assert_int_equal(relay_link_sign(&l, k, "k1", &t2, err, sizeof(err)),
                         0);
        char *d1 = strchr(t.data, '.'), *d2 = strrchr(t.data, '.');
        char *e1 = strchr(t2.data, '.'), *e2 = strrchr(t2.data, '.');
        relay_buf_t forged;
        relay_buf_init(&forged);
        relay_buf_append(&forged, t2.data, (size_t)(e2 - t2.data));
        relay_buf_append(&forged, d2, strlen(d2));
        assert_int_equal(relay_link_verify(forged.data, forged.len, k, &got,
                                           err, sizeof(err)),
                         -1);
        assert_contains(err, "signature is wrong");
        (void)d1;
        (void)e1;
        /* One character of the signature changed. */
        t.data[t.len - 1] = t.data[t.len - 1] == 'A' ? 'B' : 'A';
        assert_int_equal(relay_link_verify(t.data, t.len, k, &got, err,
                                           sizeof(err)),
                         -1);
        /* Not three parts, empty, too long. */
        assert_int_equal(relay_link_verify("k1.abc", 6, k, &got, err,
                                           sizeof(err)),
                         -1);
        assert_contains(err, "<key>.<payload>.<signature>");
        assert_int_equal(relay_link_verify("", 0, k, &got, err, sizeof(err)),
                         -1);
        relay_buf_free(&t);
        relay_buf_free(&t2);
        relay_buf_free(&forged);
        relay_link_keys_destroy(k);
}

/* A payload we sign by hand, as a leaked key would: the target is still
 * checked after the signature. */
static void test_link_javascript_target(void **state)
{
        (void)state;
        relay_link_keys_t *k = relay_link_keys_parse("k1:s3cret", err,
                                                     sizeof(err));
        relay_link_t l = sample();
        l.url = "javascript:alert(1)";
        relay_buf_t t;
        relay_buf_init(&t);
        assert_int_equal(relay_link_sign(&l, k, "k1", &t, err, sizeof(err)),
                         -1);
        assert_contains(err, "http");
        const char *payload =
            "{\"m\":\"1\",\"t\":\"acme\",\"u\":\"javascript:alert(1)\"}";
        char b64[256], sig64[64], tok[512];
        relay_sign_base64url(payload, strlen(payload), b64);
        snprintf(tok, sizeof(tok), "k1.%s", b64);
        unsigned char mac[32];
        relay_sign_part_t part = {tok, strlen(tok)};
        relay_sign_hmac_sha256("s3cret", 6, &part, 1, mac);
        relay_sign_base64url(mac, 32, sig64);
        strcat(tok, ".");
        strcat(tok, sig64);
        relay_link_t got;
        assert_int_equal(relay_link_verify(tok, strlen(tok), k, &got, err,
                                           sizeof(err)),
                         -1);
        assert_contains(err, "not an http(s) URL");
        assert_false(relay_link_url_ok("http:///x"));
        assert_false(relay_link_url_ok("https://a b"));
        assert_false(relay_link_url_ok("//evil.example"));
        assert_false(relay_link_url_ok("https:/\\evil.example"));
        assert_true(relay_link_url_ok("HTTPS://shop.example"));
        relay_buf_free(&t);
        relay_link_keys_destroy(k);
}

static void test_link_keys_errors(void **state)
{
        (void)state;
        assert_null(relay_link_keys_parse("", err, sizeof(err)));
        assert_contains(err, "no link keys");
        assert_null(relay_link_keys_parse("k1", err, sizeof(err)));
        assert_contains(err, "link key 1");
        assert_null(relay_link_keys_parse("k1:a,k1:b", err, sizeof(err)));
        assert_contains(err, "given twice");
        assert_null(relay_link_keys_parse("k 1:zQxJ", err, sizeof(err)));
        assert_null(strstr(err, "zQxJ")); /* never the secret */
}

/* ---- the sync pixel ---- */

static void test_sync_check(void **state)
{
        (void)state;
        relay_sync_params_t p = {"shop", "tealium", "abc-123", "1", "CPx_y.z"};
        assert_int_equal(relay_sync_check(&p, err, sizeof(err)), RELAY_SYNC_OK);
        const char *macros[] = {"${UID}", "[[USERID]]", "%%UID%%", "{uid}",
                                "$UID", "__UID__", "<uid>"};
        for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
                p.partner_uid = macros[i];
                assert_int_equal(relay_sync_check(&p, err, sizeof(err)),
                                 RELAY_SYNC_BAD);
                assert_contains(err, "macro");
        }
        p.partner_uid = NULL;
        assert_int_equal(relay_sync_check(&p, err, sizeof(err)),
                         RELAY_SYNC_NO_ID);
        p.partner_uid = "abc";
        p.partner = "Tealium";
        assert_int_equal(relay_sync_check(&p, err, sizeof(err)),
                         RELAY_SYNC_BAD);
        assert_contains(err, "partner=");
        p.partner = "tealium";
        p.gdpr = "yes";
        assert_int_equal(relay_sync_check(&p, err, sizeof(err)),
                         RELAY_SYNC_BAD);
        p.gdpr = NULL;
        p.partner_uid = "a b";
        assert_int_equal(relay_sync_check(&p, err, sizeof(err)),
                         RELAY_SYNC_BAD);
        assert_true(relay_pixel_cookie_ok("0b7c4a1e-3f1d-4c55-9a2e-1f0e8d7c6b5a"));
        assert_false(relay_pixel_cookie_ok("0b7c4a1e"));
        assert_false(relay_pixel_cookie_ok(NULL));
}

/* The visitor's address behind trusted proxies. */
static void test_client_ip(void **state)
{
        (void)state;
        char ip[16];
        relay_proxies_t *p =
            relay_proxies_parse("10.0.0.0/8, 127.0.0.1", err, sizeof(err));
        assert_non_null(p);
        /* An untrusted peer: its own address, whatever it claims. */
        relay_client_ip(p, "198.51.100.9", "203.0.113.7", ip);
        assert_string_equal(ip, "198.51.100.9");
        /* A trusted peer: the right-most address that is not a proxy. */
        relay_client_ip(p, "127.0.0.1", "1.2.3.4, 203.0.113.7, 10.1.2.3", ip);
        assert_string_equal(ip, "203.0.113.7");
        /* No header, or garbage in it: the last good address. */
        relay_client_ip(p, "127.0.0.1", NULL, ip);
        assert_string_equal(ip, "127.0.0.1");
        relay_client_ip(p, "10.9.9.9", "junk, 10.0.0.2", ip);
        assert_string_equal(ip, "10.0.0.2");
        relay_client_ip(NULL, "127.0.0.1", "203.0.113.7", ip);
        assert_string_equal(ip, "127.0.0.1");
        relay_proxies_destroy(p);
        assert_null(relay_proxies_parse("10.0.0.0/33", err, sizeof(err)));
        assert_contains(err, "10.0.0.0/33");
        assert_null(relay_proxies_parse("localhost", err, sizeof(err)));
        p = relay_proxies_parse("", err, sizeof(err));
        assert_non_null(p);
        relay_client_ip(p, "127.0.0.1", "203.0.113.7", ip);
        assert_string_equal(ip, "127.0.0.1");
        relay_proxies_destroy(p);
}

/* ---- ingest sources ---- */

static relay_ingest_t *shipped(void)
{
        char path[1200];
        snprintf(path, sizeof(path), "%s/deploy/config/ingest", srcdir);
        relay_ingest_t *in = relay_ingest_load(path, schemas, err, sizeof(err));
        if (!in)
                fail_msg("%s", err);
        return in;
}

/* Map body as source s would, decode the record back with avro-c. */
static json_t *map_one(const relay_ingest_source_t *s, const char *tenant,
                       const char *type, const char *body_text, size_t index,
                       char *key_out, size_t key_n, int *rc)
{
        json_t *body = js(body_text);
        int single;
        json_t *recs = relay_ingest_records(s, body, &single, err, sizeof(err));
        assert_non_null(recs);
        json_t *rec = single ? recs : json_array_get(recs, index);
        relay_ingest_req_t rq = {tenant, type, body};
        relay_buf_t key;
        relay_buf_init(&key);
        const void *val;
        size_t len;
        char eid[RELAY_UUID_SIZE];
        *rc = relay_ingest_map(s, &rq, rec, &key, &val, &len, eid, err,
                               sizeof(err));
        json_t *out = NULL;
        if (!*rc) {
                char why[512];
                assert_int_equal(relay_avro_decode_written(schemas, val, len,
                                                           &out, why,
                                                           sizeof(why)),
                                 RELAY_OK);
                assert_string_equal(json_string_value(json_object_get(
                                        out, "event_id")),
                                    eid);
                snprintf(key_out, key_n, "%.*s", (int)key.len, key.data);
        }
        relay_buf_free(&key);
        json_decref(body);
        return out;
}

static void test_antavo_webhook(void **state)
{
        (void)state;
        relay_ingest_t *in = shipped();
        const relay_ingest_source_t *s = relay_ingest_find(in, "antavo", 6);
        assert_non_null(s);
        assert_true(relay_ingest_token_ok(s, "old-token"));
        assert_true(relay_ingest_token_ok(s, "new-token"));
        assert_false(relay_ingest_token_ok(s, "new-toke"));
        assert_false(relay_ingest_token_ok(s, NULL));
        char key[128];
        int rc;
        json_t *r = map_one(
            s, NULL, "point_add",
            "{'id':'tx-9','customer':'c-1','email':'a@b.c',"
            "'created_at':'2026-12-07T10:00:00.250+01:00',"
            "'data':{'points':10,'reason':'purchase'}}",
            0, key, sizeof(key), &rc);
        assert_int_equal(rc, 0);
        assert_string_equal(key, "c-1");
        assert_string_equal(json_string_value(json_object_get(r, "tenant")),
                            "acme");
        assert_string_equal(json_string_value(json_object_get(r, "source")),
                            "antavo");
        assert_string_equal(
            json_string_value(json_object_get(r, "event_type")), "point_add");
        /* 2026-12-07T09:00:00.250Z */
        assert_int_equal(json_integer_value(json_object_get(r, "occurred_at")),
                         1796634000250LL);
        assert_json_text(json_object_get(r, "data"),
                         "{'points':10,'reason':'purchase'}");
        /* The same platform id gives the same event id (a retry is one
         * event downstream); a name-based UUID (version 5). */
        const char *eid = json_string_value(json_object_get(r, "event_id"));
        assert_int_equal(eid[14], '5');
        json_t *again = map_one(s, NULL, "point_add",
                                "{'id':'tx-9','customer':'c-1'}", 0, key,
                                sizeof(key), &rc);
        assert_string_equal(
            json_string_value(json_object_get(again, "event_id")), eid);
        json_decref(again);
        json_decref(r);
        /* Required field missing: an error naming it. */
        r = map_one(s, NULL, "x", "{'id':'1'}", 0, key, sizeof(key), &rc);
        assert_int_equal(rc, -1);
        assert_contains(err, "customer");
        /* A value that does not fit the schema's map. */
        r = map_one(s, NULL, "x", "{'customer':'c','data':{'a':{'b':1}}}", 0,
                    key, sizeof(key), &rc);
        assert_int_equal(rc, -1);
        assert_contains(err, "data");
        /* A time that is not one. */
        r = map_one(s, NULL, "x", "{'customer':'c','created_at':'yesterday'}",
                    0, key, sizeof(key), &rc);
        assert_int_equal(rc, -1);
        assert_contains(err, "created_at");
        relay_ingest_destroy(in);
}

static void test_cmcdp_tenant_route(void **state)
{
        (void)state;
        relay_ingest_t *in = shipped();
        const relay_ingest_source_t *s = relay_ingest_tenant_route(in);
        assert_non_null(s);
        assert_string_equal(relay_ingest_name(s), "cmcdp");
        assert_null(relay_ingest_find(in, "cmcdp", 5)); /* not under /v1 */
        char key[128];
        int rc;
        json_t *r = map_one(s, "t-42", "ev-7",
                            "[{'Email Address':'x@y.z','Product':'Coffee',"
                            "'Amount':'1.5'},{'Product':'Tea'}]",
                            0, key, sizeof(key), &rc);
        assert_int_equal(rc, 0);
        assert_string_equal(json_string_value(json_object_get(r, "tenant")),
                            "t-42");
        assert_string_equal(
            json_string_value(json_object_get(r, "event_type")), "ev-7");
        assert_json_text(json_object_get(r, "data"),
                         "{'product':'Coffee','amount':1.5}");
        assert_string_equal(key, "x@y.z");
        json_decref(r);
        r = map_one(s, "t-42", "ev-7", "[{'Product':'Tea'}]", 0, key,
                    sizeof(key), &rc);
        assert_int_equal(rc, -1);
        assert_contains(err, "Email Address");
        relay_ingest_destroy(in);
}

static void test_mparticle_batch(void **state)
{
        (void)state;
        relay_ingest_t *in = shipped();
        const relay_ingest_source_t *s = relay_ingest_find(in, "mparticle", 9);
        assert_true(relay_ingest_event_type_ok(s, "batch", 5));
        assert_false(relay_ingest_event_type_ok(s, "other", 5));
        const char *body =
            "{'mpid':-8433569,'user_identities':{'customer_id':'cust-5',"
            "'email':'p@q.r'},'events':["
            "{'event_type':'custom_event','data':{'event_name':'Signup',"
            "'timestamp_unixtime_ms':1796634000000,'source_message_id':"
            "'8D9A1B2C-0000-4000-8000-000000000001','custom_attributes':"
            "{'plan':'gold'}}},"
            "{'event_type':'custom_event','data':{'event_name':'Login',"
            "'timestamp_unixtime_ms':1796634001000}}]}";
        char key[128];
        int rc;
        json_t *r = map_one(s, NULL, "batch", body, 0, key, sizeof(key), &rc);
        assert_int_equal(rc, 0);
        assert_string_equal(json_string_value(json_object_get(r, "event_id")),
                            "8d9a1b2c-0000-4000-8000-000000000001");
        assert_string_equal(
            json_string_value(json_object_get(r, "event_type")), "Signup");
        assert_json_text(json_object_get(r, "identities"),
                         "{'customer_id':'cust-5','email':'p@q.r',"
                         "'mpid':'-8433569'}");
        assert_string_equal(key, "cust-5");
        json_decref(r);
        r = map_one(s, NULL, "batch", body, 1, key, sizeof(key), &rc);
        assert_int_equal(rc, 0);
        assert_int_equal(json_integer_value(json_object_get(r, "occurred_at")),
                         1796634001000LL);
        json_decref(r);
        /* A body without the events array. */
        json_t *b = js("{'mpid':1}");
        int single;
        assert_null(relay_ingest_records(s, b, &single, err, sizeof(err)));
        assert_contains(err, "events");
        json_decref(b);
        relay_ingest_destroy(in);
}

static void expect_load_error(const char *text, const char *want)
{
        const char *f = write_file("bad.cfg", text);
        relay_ingest_t *in = relay_ingest_load(f, schemas, err, sizeof(err));
        assert_null(in);
        assert_contains(err, want);
        assert_contains(err, "bad.cfg:");
}

static void test_load_errors(void **state)
{
        (void)state;
        const char *head = "source = { name = \"t\"; topic = \"loyalty.events\";"
                           " tokens_env = \"RELAY_INGEST_TOKENS_T\";"
                           " token_header = \"X-T\";\n";
        char text[1024];
        snprintf(text, sizeof(text),
                 "%s fields = ( { to = \"nope\"; from = \"a\"; } ); };", head);
        expect_load_error(text, "has no field 'nope'");
        snprintf(text, sizeof(text),
                 "%s fields = ( { to = \"identities.a.b\"; from = \"a\"; } ); };",
                 head);
        expect_load_error(text, "one key deep");
        snprintf(text, sizeof(text),
                 "%s fields = ( { to = \"data\"; value = \"x\"; } ); };", head);
        expect_load_error(text, "only a kept copy");
        snprintf(text, sizeof(text),
                 "%s fields = ( { to = \"tenant\"; value = \"{a\"; } ); };",
                 head);
        expect_load_error(text, "unclosed");
        snprintf(text, sizeof(text), "%s colour = \"red\"; };", head);
        expect_load_error(text, "unknown key 'colour'");
        expect_load_error("source = { name = \"t\"; topic = \"loyalty.events\";"
                          " tokens_env = \"RELAY_INGEST_TOKENS_NONE\";"
                          " token_header = \"X\"; };",
                          "RELAY_INGEST_TOKENS_NONE");
        expect_load_error("source = { name = \"t\"; topic = \"nosuch\";"
                          " tokens_env = \"RELAY_INGEST_TOKENS_T\";"
                          " token_header = \"X\"; };",
                          "nosuch");
        expect_load_error("source = { name = \"a/b\"; topic = \"loyalty.events\";"
                          " tokens_env = \"RELAY_INGEST_TOKENS_T\";"
                          " token_header = \"X\"; };",
                          "URL segment");
        expect_load_error("source = { name = \"t\"; topic = \"loyalty.events\";"
                          " tokens_env = \"RELAY_INGEST_TOKENS_T\"; };",
                          "token_header, token_query");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_base64url),
            cmocka_unit_test(test_link_round_trip_and_rotation),
            cmocka_unit_test(test_link_tampered),
            cmocka_unit_test(test_link_javascript_target),
            cmocka_unit_test(test_link_keys_errors),
            cmocka_unit_test(test_sync_check),
            cmocka_unit_test(test_client_ip),
            cmocka_unit_test(test_antavo_webhook),
            cmocka_unit_test(test_cmcdp_tenant_route),
            cmocka_unit_test(test_mparticle_batch),
            cmocka_unit_test(test_load_errors),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
