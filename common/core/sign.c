/*
 * Request signatures on OpenSSL's libcrypto (see relay/sign.h).
 *
 * libcrypto rather than a SHA-256 of our own: it is already in every
 * worker's process as libcurl's TLS, it is maintained and tested against
 * the published vectors, and a hand-written digest is one more thing to
 * get subtly wrong. HMAC goes through EVP_MAC (the OpenSSL 3 interface;
 * HMAC_CTX is deprecated there), base64 through EVP_EncodeBlock and
 * EVP_DecodeBlock, with the strictness DecodeBlock lacks (it skips
 * whitespace and counts padding as bytes) checked here first.
 */
#include "relay/sign.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int relay_sign_hmac_sha256(const void *key, size_t key_len,
                           const relay_sign_part_t *parts, size_t nparts,
                           unsigned char out[RELAY_SIGN_SHA256_LEN])
{
        /* A zero-length key is valid HMAC; EVP wants a non-NULL pointer. */
        static const unsigned char none[1];
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
            OSSL_PARAM_construct_end()};
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
        size_t len = 0;
        int ok = ctx && EVP_MAC_init(ctx, key_len ? key : none, key_len,
                                     params) == 1;
        for (size_t i = 0; ok && i < nparts; i++)
                if (parts[i].n)
                        ok = EVP_MAC_update(ctx, parts[i].p, parts[i].n) == 1;
        ok = ok &&
             EVP_MAC_final(ctx, out, &len, RELAY_SIGN_SHA256_LEN) == 1 &&
             len == RELAY_SIGN_SHA256_LEN;
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(mac);
        if (!ok)
                memset(out, 0, RELAY_SIGN_SHA256_LEN);
        return ok ? 0 : -1;
}

int relay_sign_sha256(const relay_sign_part_t *parts, size_t nparts,
                      unsigned char out[RELAY_SIGN_SHA256_LEN])
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned int len = 0;
        int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
        for (size_t i = 0; ok && i < nparts; i++)
                if (parts[i].n)
                        ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].n) == 1;
        ok = ok && EVP_DigestFinal_ex(ctx, out, &len) == 1 &&
             len == RELAY_SIGN_SHA256_LEN;
        EVP_MD_CTX_free(ctx);
        if (!ok)
                memset(out, 0, RELAY_SIGN_SHA256_LEN);
        return ok ? 0 : -1;
}

size_t relay_sign_base64(const void *in, size_t n, char *out)
{
        /* EVP_EncodeBlock takes an int; encode in whole groups of 3 so
         * that pieces join without padding between them. */
        const unsigned char *p = in;
        size_t w = 0;
        do {
                size_t chunk = n > 3 * (INT_MAX / 4 / 3) ? 3 * (INT_MAX / 4 / 3)
                                                         : n;
                w += (size_t)EVP_EncodeBlock((unsigned char *)out + w, p,
                                             (int)chunk);
                p += chunk;
                n -= chunk;
        } while (n);
        out[w] = '\0';
        return w;
}

static int base64_char(unsigned char c)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
               (c >= '0' && c <= '9') || c == '+' || c == '/';
}

long relay_sign_unbase64(const char *in, size_t n, unsigned char *out,
                         size_t out_size)
{
        const unsigned char *s = (const unsigned char *)in;
        size_t pad = 0;
        if (n % 4 || n > (size_t)INT_MAX)
                return -1;
        while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
                pad++;
        for (size_t i = 0; i < n - pad; i++)
                if (!base64_char(s[i]))
                        return -1;
        if (n == 0)
                return 0;
        size_t len = 3 * (n / 4) - pad;
        if (len > out_size)
                return -1;
        /* DecodeBlock writes padding as zero bytes: the last group goes
         * through a buffer of its own so that out need only hold len. */
        unsigned char last[3];
        if ((n > 4 && EVP_DecodeBlock(out, s, (int)(n - 4)) < 0) ||
            EVP_DecodeBlock(last, s + n - 4, 4) != 3)
                return -1;
        memcpy(out + 3 * (n / 4 - 1), last, 3 - pad);
        return (long)len;
}

int relay_sign_equal(const void *a, const void *b, size_t n)
{
        return CRYPTO_memcmp(a, b, n) == 0;
}

int relay_sign_webhook_key(const char *secret, unsigned char **key,
                           size_t *key_len, char *errstr, size_t errstr_size)
{
        static const char prefix[] = "whsec_";
        size_t n = strlen(secret);
        *key = NULL;
        *key_len = 0;
        if (strncmp(secret, prefix, sizeof(prefix) - 1) != 0) {
                if (!n) {
                        relay_seterr(errstr, errstr_size,
                                     "the webhook secret is empty");
                        return -1;
                }
                *key = relay_malloc(n);
                memcpy(*key, secret, n);
                *key_len = n;
                return 0;
        }
        const char *b64 = secret + sizeof(prefix) - 1;
        n -= sizeof(prefix) - 1;
        unsigned char *k = relay_malloc(n / 4 * 3 + 1);
        long len = relay_sign_unbase64(b64, n, k, n / 4 * 3 + 1);
        if (len <= 0) {
                free(k);
                relay_seterr(errstr, errstr_size,
                             len == 0 ? "the webhook secret is whsec_ with "
                                        "no key after it"
                                      : "the webhook secret starts with "
                                        "whsec_ but the rest is not "
                                        "padded base64");
                return -1;
        }
        *key = k;
        *key_len = (size_t)len;
        return 0;
}

int relay_sign_webhook(const unsigned char *key, size_t key_len,
                       const char *id, size_t id_len, int64_t timestamp,
                       const void *body, size_t body_len,
                       char sig[RELAY_SIGN_WEBHOOK_SIG_SIZE])
{
        char ts[24];
        unsigned char mac[RELAY_SIGN_SHA256_LEN];
        int tn = snprintf(ts, sizeof(ts), ".%" PRId64 ".", timestamp);
        relay_sign_part_t parts[] = {
            {id, id_len}, {ts, (size_t)tn}, {body, body_len}};
        if (relay_sign_hmac_sha256(key, key_len, parts, 3, mac)) {
                sig[0] = '\0';
                return -1;
        }
        memcpy(sig, "v1,", 3);
        relay_sign_base64(mac, sizeof(mac), sig + 3);
        return 0;
}
