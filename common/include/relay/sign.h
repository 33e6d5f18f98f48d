/*
 * Request signatures: HMAC-SHA256, SHA-256, base64 and a constant-time
 * compare, on OpenSSL's libcrypto, plus the Standard Webhooks signature
 * (standardwebhooks.com) built from them. The generic webhook adapter
 * signs with these; the ingest gateway and Eagle Eye's request signature
 * are meant to use the same helpers rather than their own.
 *
 * Nothing here keeps state between calls; every function is safe to call
 * from several threads. Inputs are borrowed for the call only.
 */
#ifndef RELAY_SIGN_H
#define RELAY_SIGN_H

#include "relay/common.h"

#include <stddef.h>
#include <stdint.h>

#define RELAY_SIGN_SHA256_LEN 32
/* Characters of the base64 text of n bytes, without the NUL. */
#define RELAY_SIGN_BASE64_LEN(n) ((((n) + 2) / 3) * 4)
/* "v1," and the base64 of an HMAC-SHA256, with the NUL. */
#define RELAY_SIGN_WEBHOOK_SIG_SIZE (3 + RELAY_SIGN_BASE64_LEN(32) + 1)

/* One piece of a message that is signed or hashed as the concatenation of
 * its pieces (so that a body need not be copied behind its prefix). */
typedef struct relay_sign_part {
        const void *p;
        size_t n;
} relay_sign_part_t;

/* HMAC-SHA256 under key of the concatenation of parts[0..nparts) into
 * out. 0, or -1 when libcrypto fails (out is then zeroed). */
int relay_sign_hmac_sha256(const void *key, size_t key_len,
                           const relay_sign_part_t *parts, size_t nparts,
                           unsigned char out[RELAY_SIGN_SHA256_LEN]);

/* SHA-256 of the concatenation of parts[0..nparts) into out. 0, or -1
 * when libcrypto fails (out is then zeroed). */
int relay_sign_sha256(const relay_sign_part_t *parts, size_t nparts,
                      unsigned char out[RELAY_SIGN_SHA256_LEN]);

/* The standard base64 (RFC 4648 section 4, padded) of in[0..n) into out,
 * which holds RELAY_SIGN_BASE64_LEN(n) + 1 bytes; NUL-terminated. Returns
 * the characters written. */
size_t relay_sign_base64(const void *in, size_t n, char *out);

/* Decode padded standard base64 text in[0..n) into out (out_size bytes;
 * 3 * n / 4 always suffices). The length decoded, or -1 when the text is
 * not base64 (a character outside the alphabet, whitespace, a length that
 * is not a multiple of 4, padding other than at the end) or out is too
 * small for it. */
long relay_sign_unbase64(const char *in, size_t n, unsigned char *out,
                         size_t out_size);

/* The URL-safe base64 (RFC 4648 section 5, '-' and '_', no padding) of
 * in[0..n) into out, which holds RELAY_SIGN_BASE64_LEN(n) + 1 bytes;
 * NUL-terminated. Returns the characters written. */
size_t relay_sign_base64url(const void *in, size_t n, char *out);

/* Decode unpadded URL-safe base64 in[0..n) into out (out_size bytes;
 * 3 * n / 4 + 1 always suffices). The length decoded, or -1 when the text
 * is not that (a character outside the alphabet, padding, a length of
 * 4k + 1, bits set past the last byte) or out is too small. */
long relay_sign_unbase64url(const char *in, size_t n, unsigned char *out,
                            size_t out_size);

/* 1 when a[0..n) and b[0..n) are equal, 0 otherwise, in a time that does
 * not depend on where they differ (for comparing signatures). */
int relay_sign_equal(const void *a, const void *b, size_t n);

/* The HMAC key of a Standard Webhooks secret: "whsec_<base64>" is
 * base64-decoded after the prefix; a secret without the prefix is the key
 * itself, as raw bytes (what some receivers hand out). On success *key
 * (owned by the caller: free()) and *key_len are set and 0 returned; -1
 * with errstr for an empty secret or a "whsec_" one that is not base64. */
int relay_sign_webhook_key(const char *secret, unsigned char **key,
                           size_t *key_len, char *errstr, size_t errstr_size);

/* The Standard Webhooks signature of one message: "v1," and the base64 of
 * HMAC-SHA256(key, "<id>.<timestamp>.<body>"), into sig
 * (RELAY_SIGN_WEBHOOK_SIG_SIZE bytes, NUL-terminated), what goes into the
 * webhook-signature header. timestamp is Unix seconds. 0, or -1 when
 * libcrypto fails. */
int relay_sign_webhook(const unsigned char *key, size_t key_len,
                       const char *id, size_t id_len, int64_t timestamp,
                       const void *body, size_t body_len,
                       char sig[RELAY_SIGN_WEBHOOK_SIG_SIZE]);

/* Lowercase hex of in[0..n) into out (2 * n + 1 bytes, NUL-terminated). */
void relay_sign_hex(const void *in, size_t n, char *out);

/* The lowercase hex SHA-256 of the concatenation of parts[0..nparts) into
 * out (65 bytes, NUL-terminated). 0, or -1 when libcrypto fails (out is
 * then ""). */
int relay_sign_sha256_hex(const relay_sign_part_t *parts, size_t nparts,
                          char out[2 * RELAY_SIGN_SHA256_LEN + 1]);

/* The name-based UUID (RFC 4122 version 5: SHA-1) of name[0..n) in the
 * namespace ns (its 16 bytes), lowercase canonical text into out: the same
 * name always gives the same id, as Python's uuid.uuid5 does. 0, or -1
 * (out "") when libcrypto fails. */
int relay_sign_uuid5(const unsigned char ns[16], const void *name, size_t n,
                     char out[RELAY_UUID_SIZE]);

/* Escher (escherauth.io), the AWS SigV4 variant Emarsys published and
 * Antavo signs its APIs with, for a request signed by headers with the
 * SignedHeaders "date;host" and SHA-256. The strings are borrowed for the
 * call. */
typedef struct relay_sign_escher {
        const char *algo_prefix; /* "<prefix>-HMAC-SHA256" */
        /* Prepended to the secret as the first HMAC key of the key chain
         * (Escher's libraries use the algo prefix, as AWS uses "AWS4"). */
        const char *key_prefix;
        const char *scope;      /* credential scope, e.g. "eu/api/x_request" */
        const char *access_key; /* the Credential's key id */
        const char *secret;
} relay_sign_escher_t;

/* "Sun, 06 Nov 1994 08:49:37 GMT" and its NUL. */
#define RELAY_SIGN_HTTP_DATE_SIZE 30

/* The HTTP date (RFC 7231 IMF-fixdate) of Unix seconds t into out; -1 for
 * a time outside the years 1970 to 9999. */
int relay_sign_http_date(int64_t t, char out[RELAY_SIGN_HTTP_DATE_SIZE]);

/* Sign one request at Unix seconds t: the Date header's value (the HTTP
 * date of t) into date, and the Authorization header's value,
 *   <prefix>-HMAC-SHA256 Credential=<key>/<YYYYMMDD>/<scope>,
 *   SignedHeaders=date;host, Signature=<hex>
 * appended to auth. path and query are as sent and already canonical
 * (the query's parameters sorted and percent-encoded, "" for none); host
 * is the Host header's value; body[0..body_len) the bytes sent. 0, or -1
 * when libcrypto fails or t is out of range (auth is then unchanged). */
int relay_sign_escher(const relay_sign_escher_t *e, const char *method,
                      const char *path, const char *query, const char *host,
                      int64_t t, const void *body, size_t body_len,
                      char date[RELAY_SIGN_HTTP_DATE_SIZE], relay_buf_t *auth);

/* A SHA-256 context kept for reuse: a hot path (an adapter's encode or
 * request, once per record) hashes through it without allocating once
 * the first hash is done, which relay_sign_sha256() cannot promise (it
 * makes a context per call). Not thread-safe: one per user. */
typedef struct relay_sign_sha256_ctx relay_sign_sha256_ctx_t;

/* A new context, or NULL when libcrypto has no SHA-256. Owned by the
 * caller; _destroy accepts NULL. */
relay_sign_sha256_ctx_t *relay_sign_sha256_ctx_new(void);
void relay_sign_sha256_ctx_destroy(relay_sign_sha256_ctx_t *c);

/* The lowercase hex SHA-256 of the concatenation of parts[0..nparts)
 * through c into out, as relay_sign_sha256_hex(). 0, or -1 (out "") on a
 * libcrypto failure. */
int relay_sign_sha256_hex_ctx(relay_sign_sha256_ctx_t *c,
                              const relay_sign_part_t *parts, size_t nparts,
                              char out[2 * RELAY_SIGN_SHA256_LEN + 1]);

#endif
