/*
 * Signed links: the tokens of the ingest gateway's click redirect
 * (GET /c/{token}) and read-online tracker (GET /r/{token}), made by
 * `relayctl sign-link` for the engagement platform's templates.
 *
 * A token is "<key id>.<payload>.<signature>": the payload is the link's
 * fields as compact JSON in URL-safe base64, the signature the URL-safe
 * base64 of HMAC-SHA256(key, "<key id>.<payload>"). Everything a click
 * records (tenant, target, message, link, recipient) comes from the signed
 * payload, never from the request, so a link cannot be pointed elsewhere
 * (no open redirect) nor credited to another tenant. Several keys are
 * accepted at once (rotation); one of them signs.
 *
 * Stateless and safe from several threads. Inputs are borrowed.
 */
#ifndef RELAY_LINK_H
#define RELAY_LINK_H

#include "relay/common.h"

#include <stddef.h>

/* Longest token accepted (the whole path segment). */
#define RELAY_LINK_MAX 4096
/* Longest key id. */
#define RELAY_LINK_KID_MAX 32

/* What a link carries. Strings are NUL-terminated; NULL when absent.
 * tenant, message_id and url are required; the rest are optional. */
typedef struct relay_link {
        char *tenant;       /* t */
        char *source;       /* s: the platform that sent the message */
        char *message_id;   /* m */
        char *campaign;     /* g */
        char *link_id;      /* l */
        char *url;          /* u: the target (or the online version) */
        char *contact;      /* c: the recipient's engage_user_id */
        char *email_sha256; /* e: the recipient's hashed e-mail */
} relay_link_t;

/* The keys a gateway accepts: parsed from "id:secret,id:secret" (ids of
 * letters, digits, '-' and '_'; secrets non-empty, raw bytes). */
typedef struct relay_link_keys relay_link_keys_t;

/* NULL + errstr naming the entry that is wrong (never the secret). */
relay_link_keys_t *relay_link_keys_parse(const char *text, char *errstr,
                                         size_t errstr_size);
void relay_link_keys_destroy(relay_link_keys_t *k);
size_t relay_link_keys_count(const relay_link_keys_t *k);

/* 1 when url is one a link may redirect to: http:// or https://
 * (any case), a host, no whitespace or control characters, at most
 * 2,048 bytes. */
int relay_link_url_ok(const char *url);

/* Sign l with the key kid of keys into out (appended). 0, or -1 with
 * errstr (unknown kid, a required field missing, a bad url). */
int relay_link_sign(const relay_link_t *l, const relay_link_keys_t *keys,
                    const char *kid, relay_buf_t *out, char *errstr,
                    size_t errstr_size);

/* Check token[0..n) and fill *l (owned by the caller: relay_link_free).
 * 0, or -1 with errstr saying what was wrong (shape, unknown key, bad
 * signature, payload not JSON, a field missing or of the wrong type, a
 * target that is not http(s)); *l is then empty. */
int relay_link_verify(const char *token, size_t n, const relay_link_keys_t *keys,
                      relay_link_t *l, char *errstr, size_t errstr_size);

void relay_link_free(relay_link_t *l);

#endif
