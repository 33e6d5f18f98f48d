/*
 * Unit tests of common/core/sign.c: HMAC-SHA256 against RFC 4231's test
 * cases 1, 2 and 6, SHA-256 against FIPS 180-2's "abc", base64 both ways
 * with its strictness, the constant-time compare, Standard Webhooks keys
 * and the published Standard Webhooks signature example.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "relay/sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"

/* The hex of a digest, for readable failures. */
static void hex(const unsigned char *p, size_t n, char *out)
{
        for (size_t i = 0; i < n; i++)
                snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void check_hmac(const void *key, size_t key_len, const char *msg,
                       const char *want)
{
        unsigned char mac[RELAY_SIGN_SHA256_LEN];
        char got[2 * RELAY_SIGN_SHA256_LEN + 1];
        relay_sign_part_t part = {msg, strlen(msg)};
        assert_int_equal(relay_sign_hmac_sha256(key, key_len, &part, 1, mac),
                         0);
        hex(mac, sizeof(mac), got);
        assert_string_equal(got, want);
        /* The same message in pieces, an empty one among them. */
        size_t n = strlen(msg), cut = n / 3;
        relay_sign_part_t parts[] = {
            {msg, cut}, {"", 0}, {msg + cut, n - cut}};
        assert_int_equal(relay_sign_hmac_sha256(key, key_len, parts, 3, mac),
                         0);
        hex(mac, sizeof(mac), got);
        assert_string_equal(got, want);
}

/* RFC 4231 section 4: test cases 1 (short key), 2 (key shorter than the
 * output: "Jefe") and 6 (a 131-byte key, longer than SHA-256's block,
 * hashed first). */
static void test_hmac_rfc4231(void **state)
{
        (void)state;
        unsigned char k1[20], k6[131];
        memset(k1, 0x0b, sizeof(k1));
        memset(k6, 0xaa, sizeof(k6));
        check_hmac(k1, sizeof(k1), "Hi There",
                   "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e"
                   "32cff7");
        check_hmac("Jefe", 4, "what do ya want for nothing?",
                   "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964"
                   "ec3843");
        check_hmac(k6, sizeof(k6),
                   "Test Using Larger Than Block-Size Key - Hash Key First",
                   "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0e"
                   "e37f54");
}

static void test_sha256(void **state)
{
        (void)state;
        unsigned char h[RELAY_SIGN_SHA256_LEN];
        char got[2 * RELAY_SIGN_SHA256_LEN + 1];
        relay_sign_part_t parts[] = {{"a", 1}, {"bc", 2}};
        assert_int_equal(relay_sign_sha256(parts, 2, h), 0);
        hex(h, sizeof(h), got);
        assert_string_equal(got, "ba7816bf8f01cfea414140de5dae2223b00361a39617"
                                 "7a9cb410ff61f20015ad");
}

static void test_base64(void **state)
{
        (void)state;
        /* RFC 4648 section 10. */
        static const char *const plain[] = {"",    "f",    "fo",    "foo",
                                            "foob", "fooba", "foobar"};
        static const char *const coded[] = {"",         "Zg==",     "Zm8=",
                                            "Zm9v",     "Zm9vYg==", "Zm9vYmE=",
                                            "Zm9vYmFy"};
        char out[16];
        unsigned char back[16];
        for (size_t i = 0; i < 7; i++) {
                size_t n = strlen(plain[i]);
                assert_int_equal(relay_sign_base64(plain[i], n, out),
                                 strlen(coded[i]));
                assert_int_equal(RELAY_SIGN_BASE64_LEN(n), strlen(coded[i]));
                assert_string_equal(out, coded[i]);
                assert_int_equal(relay_sign_unbase64(coded[i], strlen(coded[i]),
                                                     back, sizeof(back)),
                                 (long)n);
                assert_memory_equal(back, plain[i], n);
        }
        /* Bytes that are not text, and every value of a byte. */
        unsigned char all[256], dec[256];
        char enc[RELAY_SIGN_BASE64_LEN(256) + 1];
        for (int i = 0; i < 256; i++)
                all[i] = (unsigned char)i;
        size_t el = relay_sign_base64(all, sizeof(all), enc);
        assert_int_equal(relay_sign_unbase64(enc, el, dec, sizeof(dec)), 256);
        assert_memory_equal(dec, all, 256);
        /* What is not padded base64 is refused, not guessed at. */
        assert_int_equal(relay_sign_unbase64("Zm9", 3, back, sizeof(back)),
                         -1);
        assert_int_equal(relay_sign_unbase64("Zm 9v", 5, back, sizeof(back)),
                         -1);
        assert_int_equal(relay_sign_unbase64("Zm9v\n", 5, back, sizeof(back)),
                         -1);
        assert_int_equal(relay_sign_unbase64("Zm-_", 4, back, sizeof(back)),
                         -1);
        assert_int_equal(relay_sign_unbase64("Z===", 4, back, sizeof(back)),
                         -1);
        assert_int_equal(relay_sign_unbase64("Zg==Zg==", 8, back,
                                             sizeof(back)),
                         -1);
        /* Too small an output. */
        assert_int_equal(relay_sign_unbase64("Zm9vYmFy", 8, back, 5), -1);
}

static void test_equal(void **state)
{
        (void)state;
        assert_int_equal(relay_sign_equal("abcdef", "abcdef", 6), 1);
        assert_int_equal(relay_sign_equal("abcdef", "abcdeg", 6), 0);
        assert_int_equal(relay_sign_equal("xbcdef", "abcdef", 6), 0);
        assert_int_equal(relay_sign_equal("a", "b", 0), 1);
}

static void test_webhook_key(void **state)
{
        (void)state;
        unsigned char *key;
        size_t len;
        char errstr[256];
        assert_int_equal(relay_sign_webhook_key(
                             "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &key,
                             &len, errstr, sizeof(errstr)),
                         0);
        static const unsigned char want[] = {
            0x31, 0xf2, 0x90, 0xf6, 0xbf, 0x06, 0x29, 0x8a,
            0xab, 0x4f, 0x08, 0xd4, 0x3c, 0x3f, 0x08, 0x2c,
            0xf6, 0x48, 0xa3, 0x62, 0xda, 0x2d, 0xa4, 0xb0};
        assert_int_equal(len, sizeof(want));
        assert_memory_equal(key, want, len);
        free(key);
        /* Without the prefix: the bytes themselves. */
        assert_int_equal(relay_sign_webhook_key("not base64!", &key, &len,
                                                errstr, sizeof(errstr)),
                         0);
        assert_int_equal(len, 11);
        assert_memory_equal(key, "not base64!", 11);
        free(key);
        assert_int_equal(relay_sign_webhook_key("whsec_not base64!", &key,
                                                &len, errstr, sizeof(errstr)),
                         -1);
        assert_null(key);
        assert_string_equal(errstr, "the webhook secret starts with whsec_ "
                                    "but the rest is not padded base64");
        assert_int_equal(relay_sign_webhook_key("whsec_", &key, &len, errstr,
                                                sizeof(errstr)),
                         -1);
        assert_int_equal(
            relay_sign_webhook_key("", &key, &len, errstr, sizeof(errstr)),
            -1);
        assert_string_equal(errstr, "the webhook secret is empty");
}

/* The example of the Standard Webhooks specification and its reference
 * libraries: secret, id, timestamp and body, and the signature they
 * publish for them. */
static void test_webhook_example(void **state)
{
        (void)state;
        unsigned char *key;
        size_t len;
        char sig[RELAY_SIGN_WEBHOOK_SIG_SIZE], errstr[256];
        const char *id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        const char *body = "{\"test\": 2432232314}";
        assert_int_equal(relay_sign_webhook_key(
                             "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &key,
                             &len, errstr, sizeof(errstr)),
                         0);
        assert_int_equal(relay_sign_webhook(key, len, id, strlen(id),
                                            1614265330, body, strlen(body),
                                            sig),
                         0);
        assert_string_equal(sig,
                            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_int_equal(strlen(sig) + 1, RELAY_SIGN_WEBHOOK_SIG_SIZE);
        /* Any change of id, time or body changes it. */
        assert_int_equal(relay_sign_webhook(key, len, id, strlen(id),
                                            1614265331, body, strlen(body),
                                            sig),
                         0);
        assert_string_not_equal(
            sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        free(key);
}

/* Hex, the HTTP date and an Escher signature (Antavo's settings),
 * against values computed apart from relay with Python's hashlib, hmac
 * and datetime. */
static void test_escher(void **state)
{
        (void)state;
        char hex[2 * RELAY_SIGN_SHA256_LEN + 1], date[RELAY_SIGN_HTTP_DATE_SIZE];
        relay_sign_part_t abc[] = {{"a", 1}, {"bc", 2}};
        assert_int_equal(relay_sign_sha256_hex(abc, 2, hex), 0);
        assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
                                 "b00361a396177a9cb410ff61f20015ad");
        static const struct {
                int64_t t;
                const char *want;
        } dates[] = {{0, "Thu, 01 Jan 1970 00:00:00 GMT"},
                     {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
                     {1764064860, "Tue, 25 Nov 2025 10:01:00 GMT"},
                     {253402300799LL, "Fri, 31 Dec 9999 23:59:59 GMT"}};
        for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
                assert_int_equal(relay_sign_http_date(dates[i].t, date), 0);
                assert_string_equal(date, dates[i].want);
        }
        assert_int_equal(relay_sign_http_date(-1, date), -1);
        assert_int_equal(relay_sign_http_date(253402300800LL, date), -1);

        relay_sign_escher_t e = {"ANTAVO", "ANTAVO", "eu/api/antavo_request",
                                 "relay-test-key", "relay-test-secret"};
        const char *body =
            "{\"customer\":\"cust-1\",\"action\":\"point_add\","
            "\"data\":{\"points\":5}}";
        relay_buf_t auth;
        relay_buf_init(&auth);
        relay_buf_puts(&auth, "Authorization: ");
        assert_int_equal(relay_sign_escher(&e, "POST", "/events",
                                           "api_key=relay-test-key",
                                           "api.demo.antavo.com", 1764064860,
                                           body, strlen(body), date, &auth),
                         0);
        assert_string_equal(date, "Tue, 25 Nov 2025 10:01:00 GMT");
        assert_string_equal(
            auth.data,
            "Authorization: ANTAVO-HMAC-SHA256 "
            "Credential=relay-test-key/20251125/eu/api/antavo_request, "
            "SignedHeaders=date;host, "
            "Signature=481cb7aa294efe51b18c997261142102"
            "ae6897e457d24c010ad5e5d2938b0263");
        /* Another second, another signature; a time out of range none. */
        relay_buf_reset(&auth);
        assert_int_equal(relay_sign_escher(&e, "POST", "/events",
                                           "api_key=relay-test-key",
                                           "api.demo.antavo.com", 1764064861,
                                           body, strlen(body), date, &auth),
                         0);
        assert_null(strstr(auth.data, "481cb7aa294efe51"));
        relay_buf_reset(&auth);
        assert_int_equal(relay_sign_escher(&e, "POST", "/events", "", "h", -5,
                                           body, strlen(body), date, &auth),
                         -1);
        assert_int_equal(auth.len, 0);
        relay_buf_free(&auth);
}

/* The reusable context: the same hex as relay_sign_sha256_hex (Eagle
 * Eye's published auth vector among the inputs), and no allocation once
 * warm. */
static void test_sha256_ctx(void **state)
{
        (void)state;
        relay_sign_sha256_ctx_t *c = relay_sign_sha256_ctx_new();
        assert_non_null(c);
        char got[65], want[65];
        relay_sign_part_t ee[] = {{"/wallet/555555", 14}, {"", 0},
                                  {"0987654321", 10}};
        assert_int_equal(relay_sign_sha256_hex_ctx(c, ee, 3, got), 0);
        assert_string_equal(got, "76e132ab2154bb7139258b65134ddaf74c12a424"
                                 "2ce136b87a7335292fddc068");
        relay_sign_part_t abc = {"abc", 3};
        assert_int_equal(relay_sign_sha256_hex_ctx(c, &abc, 1, got), 0);
        assert_int_equal(relay_sign_sha256_hex(&abc, 1, want), 0);
        assert_string_equal(got, want);
        assert_int_equal(relay_sign_sha256_hex_ctx(c, NULL, 0, got), 0);
        assert_string_equal(got, "e3b0c44298fc1c149afbf4c8996fb924"
                                 "27ae41e4649b934ca495991b7852b855");
        allocations = 0;
        counting = 1;
        for (int i = 0; i < 100; i++)
                relay_sign_sha256_hex_ctx(c, ee, 3, got);
        counting = 0;
        assert_int_equal(allocations, 0);
        assert_string_equal(got, "76e132ab2154bb7139258b65134ddaf74c12a424"
                                 "2ce136b87a7335292fddc068");
        relay_sign_sha256_ctx_destroy(c);
        relay_sign_sha256_ctx_destroy(NULL);
}

int main(void)
{
        count_init();
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_escher),
            cmocka_unit_test(test_hmac_rfc4231),
            cmocka_unit_test(test_sha256),
            cmocka_unit_test(test_sha256_ctx),
            cmocka_unit_test(test_base64),
            cmocka_unit_test(test_equal),
            cmocka_unit_test(test_webhook_key),
            cmocka_unit_test(test_webhook_example),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
