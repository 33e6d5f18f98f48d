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

#include <ctype.h>
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

/* The digest md of the concatenation of parts into out (len bytes). */
static int digest(const EVP_MD *md, const relay_sign_part_t *parts,
                  size_t nparts, unsigned char *out, unsigned int want)
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned int len = 0;
        int ok = ctx && EVP_DigestInit_ex(ctx, md, NULL) == 1;
        for (size_t i = 0; ok && i < nparts; i++)
                if (parts[i].n)
                        ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].n) == 1;
        ok = ok && EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == want;
        EVP_MD_CTX_free(ctx);
        if (!ok)
                memset(out, 0, want);
        return ok ? 0 : -1;
}

int relay_sign_sha256(const relay_sign_part_t *parts, size_t nparts,
                      unsigned char out[RELAY_SIGN_SHA256_LEN])
{
        return digest(EVP_sha256(), parts, nparts, out, RELAY_SIGN_SHA256_LEN);
}

int relay_sign_uuid5(const unsigned char ns[16], const void *name, size_t n,
                     char out[RELAY_UUID_SIZE])
{
        unsigned char h[20];
        relay_sign_part_t parts[] = {{ns, 16}, {name, n}};
        if (digest(EVP_sha1(), parts, 2, h, sizeof(h))) {
                out[0] = '\0';
                return -1;
        }
        h[6] = (unsigned char)((h[6] & 0x0f) | 0x50); /* version 5 */
        h[8] = (unsigned char)((h[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        relay_uuid_text(h, out);
        return 0;
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

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t relay_sign_base64url(const void *in, size_t n, char *out)
{
        const unsigned char *p = in;
        size_t w = 0, i = 0;
        for (; i + 3 <= n; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
                             p[i + 2];
                out[w++] = b64url[v >> 18];
                out[w++] = b64url[(v >> 12) & 63];
                out[w++] = b64url[(v >> 6) & 63];
                out[w++] = b64url[v & 63];
        }
        if (n - i == 1) {
                out[w++] = b64url[p[i] >> 2];
                out[w++] = b64url[(p[i] & 3) << 4];
        } else if (n - i == 2) {
                uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
                out[w++] = b64url[v >> 10];
                out[w++] = b64url[(v >> 4) & 63];
                out[w++] = b64url[(v & 15) << 2];
        }
        out[w] = '\0';
        return w;
}

static int b64url_val(unsigned char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

long relay_sign_unbase64url(const char *in, size_t n, unsigned char *out,
                            size_t out_size)
{
        if (n % 4 == 1 || n > (size_t)LONG_MAX / 3)
                return -1;
        size_t len = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
        if (len > out_size)
                return -1;
        uint32_t acc = 0;
        int bits = 0;
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
                int v = b64url_val((unsigned char)in[i]);
                if (v < 0)
                        return -1;
                acc = (acc << 6 | (uint32_t)v) & 0xffffff;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[w++] = (unsigned char)(acc >> bits);
                }
        }
        /* The bits past the last byte must be zero: one text per bytes. */
        if (bits && (acc & ((1u << bits) - 1)))
                return -1;
        return (long)w;
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

void relay_sign_hex(const void *in, size_t n, char *out)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = in;
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = hex[p[i] >> 4];
                out[2 * i + 1] = hex[p[i] & 15];
        }
        out[2 * n] = '\0';
}

int relay_sign_sha256_hex(const relay_sign_part_t *parts, size_t nparts,
                          char out[2 * RELAY_SIGN_SHA256_LEN + 1])
{
        unsigned char h[RELAY_SIGN_SHA256_LEN];
        if (relay_sign_sha256(parts, nparts, h)) {
                out[0] = '\0';
                return -1;
        }
        relay_sign_hex(h, sizeof(h), out);
        return 0;
}

/* A UTC time split into its calendar fields. */
struct civil {
        int y, mon, d, wday, h, min, s;
};

/* The calendar fields of Unix seconds t, in 1970 to 9999: days to civil
 * date as in H. Hinnant's date algorithms, rather than gmtime_r, which
 * takes a lock and may read the time zone files. -1 outside the range. */
static int civil_of(int64_t t, struct civil *c)
{
        if (t < 0 || t >= 253402300800LL)
                return -1;
        int64_t days = t / 86400, sod = t % 86400;
        c->wday = (int)((days + 4) % 7); /* 1970-01-01 was a Thursday */
        int64_t z = days + 719468, era = z / 146097, doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        c->d = (int)(doy - (153 * mp + 2) / 5 + 1);
        c->mon = (int)(mp < 10 ? mp + 3 : mp - 9);
        c->y = (int)(yoe + era * 400 + (c->mon <= 2));
        c->h = (int)(sod / 3600);
        c->min = (int)(sod / 60 % 60);
        c->s = (int)(sod % 60);
        return 0;
}

int relay_sign_http_date(int64_t t, char out[RELAY_SIGN_HTTP_DATE_SIZE])
{
        static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                        "Thu", "Fri", "Sat"};
        static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                           "May", "Jun", "Jul", "Aug",
                                           "Sep", "Oct", "Nov", "Dec"};
        struct civil c;
        if (civil_of(t, &c)) {
                out[0] = '\0';
                return -1;
        }
        snprintf(out, RELAY_SIGN_HTTP_DATE_SIZE,
                 "%s, %02d %s %04d %02d:%02d:%02d GMT", days[c.wday], c.d,
                 months[c.mon - 1], c.y, c.h, c.min, c.s);
        return 0;
}

#define PART(s) {(s), strlen(s)}
#define LIT(s) {(s), sizeof(s) - 1}

/* Escher, for SignedHeaders date;host and SHA-256, as the reference
 * libraries (escher-python, escher-js) compute it:
 *   canonical request = method \n path \n query \n
 *                       date:<Date> \n host:<Host> \n \n date;host \n
 *                       hex(SHA-256(body))
 *   string to sign    = <prefix>-HMAC-SHA256 \n <YYYYMMDDTHHMMSSZ> \n
 *                       <YYYYMMDD>/<scope> \n hex(SHA-256(canonical))
 *   signing key       = HMAC(<key_prefix><secret>, <YYYYMMDD>), then
 *                       HMAC(key, part) for each '/'-part of the scope
 *   signature         = hex(HMAC(signing key, string to sign)) */
int relay_sign_escher(const relay_sign_escher_t *e, const char *method,
                      const char *path, const char *query, const char *host,
                      int64_t t, const void *body, size_t body_len,
                      char date[RELAY_SIGN_HTTP_DATE_SIZE], relay_buf_t *auth)
{
        struct civil c;
        if (civil_of(t, &c) || relay_sign_http_date(t, date))
                return -1;
        char shortd[16], longd[24];
        snprintf(shortd, sizeof(shortd), "%04d%02d%02d", c.y, c.mon, c.d);
        snprintf(longd, sizeof(longd), "%sT%02d%02d%02dZ", shortd, c.h, c.min,
                 c.s);

        char body_hex[2 * RELAY_SIGN_SHA256_LEN + 1];
        relay_sign_part_t bp = {body, body_len};
        if (relay_sign_sha256_hex(&bp, 1, body_hex))
                return -1;
        relay_sign_part_t creq[] = {
            PART(method), LIT("\n"),  PART(path),     LIT("\n"),
            PART(query),  LIT("\n"),  LIT("date:"),   PART(date),
            LIT("\nhost:"), PART(host), LIT("\n\ndate;host\n"),
            {body_hex, 2 * RELAY_SIGN_SHA256_LEN}};
        char creq_hex[2 * RELAY_SIGN_SHA256_LEN + 1];
        if (relay_sign_sha256_hex(creq, sizeof(creq) / sizeof(creq[0]),
                                  creq_hex))
                return -1;
        relay_sign_part_t sts[] = {
            PART(e->algo_prefix), LIT("-HMAC-SHA256\n"), PART(longd),
            LIT("\n"),            PART(shortd),          LIT("/"),
            PART(e->scope),       LIT("\n"),
            {creq_hex, 2 * RELAY_SIGN_SHA256_LEN}};

        /* The first key is the prefix and the secret joined; the chain
         * then runs over the date and each part of the scope. */
        size_t np = strlen(e->key_prefix), ns = strlen(e->secret);
        unsigned char *k0 = relay_malloc(np + ns + 1);
        memcpy(k0, e->key_prefix, np);
        memcpy(k0 + np, e->secret, ns);
        unsigned char key[RELAY_SIGN_SHA256_LEN], mac[RELAY_SIGN_SHA256_LEN];
        relay_sign_part_t d = PART(shortd);
        int rc = relay_sign_hmac_sha256(k0, np + ns, &d, 1, key);
        memset(k0, 0, np + ns);
        free(k0);
        for (const char *p = e->scope; !rc && *p;) {
                const char *end = strchr(p, '/');
                size_t n = end ? (size_t)(end - p) : strlen(p);
                relay_sign_part_t part = {p, n};
                rc = relay_sign_hmac_sha256(key, sizeof(key), &part, 1, mac);
                memcpy(key, mac, sizeof(key));
                p += n + (end != NULL);
        }
        rc = rc || relay_sign_hmac_sha256(key, sizeof(key), sts,
                                          sizeof(sts) / sizeof(sts[0]), mac);
        memset(key, 0, sizeof(key));
        if (rc)
                return -1;
        char sig[2 * RELAY_SIGN_SHA256_LEN + 1];
        relay_sign_hex(mac, sizeof(mac), sig);
        relay_buf_printf(auth,
                         "%s-HMAC-SHA256 Credential=%s/%s/%s, "
                         "SignedHeaders=date;host, Signature=%s",
                         e->algo_prefix, e->access_key, shortd, e->scope, sig);
        return 0;
}

/* OpenSSL 3.0's EVP makes a new provider context on every
 * EVP_DigestInit_ex (one allocation per hash, whatever the flags; measured
 * in test_sign.c), so the kept context is the low-level SHA256_CTX, which
 * lives in the struct and allocates nothing. Those functions are
 * deprecated in 3.0 (not removed): the pragma keeps -Werror quiet here
 * only, and the result is checked against the EVP path in test_sign.c. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <openssl/sha.h>

struct relay_sign_sha256_ctx {
        SHA256_CTX c;
};

relay_sign_sha256_ctx_t *relay_sign_sha256_ctx_new(void)
{
        return calloc(1, sizeof(relay_sign_sha256_ctx_t));
}

void relay_sign_sha256_ctx_destroy(relay_sign_sha256_ctx_t *c)
{
        if (c)
                OPENSSL_cleanse(c, sizeof(*c));
        free(c);
}

int relay_sign_sha256_hex_ctx(relay_sign_sha256_ctx_t *c,
                              const relay_sign_part_t *parts, size_t nparts,
                              char out[2 * RELAY_SIGN_SHA256_LEN + 1])
{
        unsigned char h[RELAY_SIGN_SHA256_LEN];
        int ok = c && SHA256_Init(&c->c) == 1;
        for (size_t i = 0; ok && i < nparts; i++)
                if (parts[i].n)
                        ok = SHA256_Update(&c->c, parts[i].p, parts[i].n) == 1;
        ok = ok && SHA256_Final(h, &c->c) == 1;
        if (!ok) {
                out[0] = '\0';
                return -1;
        }
        relay_sign_hex(h, sizeof(h), out);
        return 0;
}
#pragma GCC diagnostic pop
