/*
 * The ingest gateway's pixels: the cookie-sync pixel
 * (GET /sync?site=&partner=&cookieid=) and the read-online tracker answer
 * a 1x1 GIF; what they take from the request is checked here, apart from
 * the HTTP server, so that it can be fuzzed and tested alone.
 */
#ifndef RELAY_PIXEL_H
#define RELAY_PIXEL_H

#include <stddef.h>

/* A transparent 1x1 GIF. */
extern const unsigned char relay_pixel_gif[];
extern const size_t relay_pixel_gif_len;

/* What a sync request carries (NULL: the parameter was absent). */
typedef struct relay_sync_params {
        const char *site;
        const char *partner;      /* the other DMP, e.g. "tealium" */
        const char *partner_uid;  /* cookieid=: the partner's user id */
        const char *gdpr;         /* "0" or "1" */
        const char *gdpr_consent; /* the TCF string */
} relay_sync_params_t;

enum relay_sync_check {
        RELAY_SYNC_OK = 0,    /* a pair: produce it */
        RELAY_SYNC_NO_ID,     /* no partner id: answer, count, no record */
        RELAY_SYNC_BAD        /* refused (400): errstr says why */
};

/* Check a sync request's parameters: partner lowercase letters, digits,
 * '_', '-' or '.' (1-64); the partner's id 1-256 printable bytes and not
 * an unreplaced macro (${UID}, [[USERID]], %%UID%%, {uid}, $UID ...); site
 * up to 256 printable bytes; gdpr 0 or 1; the consent string up to 4,096
 * bytes of base64url and '.'. */
enum relay_sync_check relay_sync_check(const relay_sync_params_t *p,
                                       char *errstr, size_t errstr_size);

/* The proxies whose X-Forwarded-For is believed: IPv4 addresses or
 * CIDR blocks, "10.0.0.0/8,127.0.0.1". NULL + errstr naming the entry
 * that is not one; "" gives an empty list (no proxy trusted). */
typedef struct relay_proxies relay_proxies_t;
relay_proxies_t *relay_proxies_parse(const char *text, char *errstr,
                                     size_t errstr_size);
void relay_proxies_destroy(relay_proxies_t *p);

/* The visitor's IPv4 address into out (16 bytes): the connection's peer,
 * or, when the peer is a trusted proxy, the right-most address of
 * X-Forwarded-For (xff, may be NULL) that is not one (each proxy appends
 * the address it was reached from, so the left-most entries are whatever
 * the client claimed). An entry that is not an IPv4 address ends the walk
 * at the last good one. */
void relay_client_ip(const relay_proxies_t *p, const char *peer,
                     const char *xff, char out[16]);

/* 1 when a cookie value is one the gateway set (a UUID), so that a value
 * that is not ours is never recorded as a DMP cookie id. */
int relay_pixel_cookie_ok(const char *v);

#endif
