/*
 * The pixels' request checks (see relay/pixel.h).
 */
#include "relay/pixel.h"
#include "relay/common.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const unsigned char relay_pixel_gif[] = {
    'G',  'I',  'F',  '8',  '9',  'a',  0x01, 0x00, 0x01, 0x00, 0x80,
    0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};
const size_t relay_pixel_gif_len = sizeof(relay_pixel_gif);

static int printable(const char *s, size_t max)
{
        size_t n = strlen(s);
        if (n == 0 || n > max)
                return 0;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
                        return 0;
        return 1;
}

/* A macro some partner forgot to replace: ${UID}, [[USERID]], %%UID%%,
 * {uid}, <uid>, $UID or __UID__. */
static int macro(const char *s)
{
        if (strpbrk(s, "{}[]<>") || strstr(s, "%%") || s[0] == '$')
                return 1;
        size_t n = strlen(s);
        return n >= 4 && !strncmp(s, "__", 2) && !strcmp(s + n - 2, "__");
}

enum relay_sync_check relay_sync_check(const relay_sync_params_t *p,
                                       char *errstr, size_t errstr_size)
{
        if (!p->partner || !*p->partner) {
                relay_seterr(errstr, errstr_size, "partner= is missing");
                return RELAY_SYNC_BAD;
        }
        size_t n = strlen(p->partner);
        if (n > 64 || strspn(p->partner, "abcdefghijklmnopqrstuvwxyz"
                                         "0123456789_-.") != n) {
                relay_seterr(errstr, errstr_size,
                             "partner= must be 1-64 lowercase letters, "
                             "digits, '_', '-' or '.'");
                return RELAY_SYNC_BAD;
        }
        if (p->site && *p->site && !printable(p->site, 256)) {
                relay_seterr(errstr, errstr_size,
                             "site= must be up to 256 printable characters");
                return RELAY_SYNC_BAD;
        }
        if (p->gdpr && strcmp(p->gdpr, "0") && strcmp(p->gdpr, "1")) {
                relay_seterr(errstr, errstr_size, "gdpr= must be 0 or 1");
                return RELAY_SYNC_BAD;
        }
        if (p->gdpr_consent && *p->gdpr_consent) {
                size_t cn = strlen(p->gdpr_consent);
                if (cn > 4096 ||
                    strspn(p->gdpr_consent,
                           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789-_.") != cn) {
                        relay_seterr(errstr, errstr_size,
                                     "gdpr_consent= is not a TCF string");
                        return RELAY_SYNC_BAD;
                }
        }
        if (!p->partner_uid || !*p->partner_uid)
                return RELAY_SYNC_NO_ID;
        if (!printable(p->partner_uid, 256)) {
                relay_seterr(errstr, errstr_size,
                             "cookieid= must be 1-256 printable characters");
                return RELAY_SYNC_BAD;
        }
        if (macro(p->partner_uid)) {
                relay_seterr(errstr, errstr_size,
                             "cookieid= is an unreplaced macro, not an id");
                return RELAY_SYNC_BAD;
        }
        return RELAY_SYNC_OK;
}

int relay_pixel_cookie_ok(const char *v)
{
        return v && relay_uuid_valid(v, strlen(v));
}

struct relay_proxies {
        struct {
                uint32_t net, mask;
        } *r;
        size_t n;
};

void relay_proxies_destroy(relay_proxies_t *p)
{
        if (p)
                free(p->r);
        free(p);
}

static int ipv4(const char *s, size_t n, uint32_t *out)
{
        char buf[16];
        struct in_addr a;
        if (n == 0 || n >= sizeof(buf))
                return -1;
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (inet_pton(AF_INET, buf, &a) != 1)
                return -1;
        *out = ntohl(a.s_addr);
        return 0;
}

relay_proxies_t *relay_proxies_parse(const char *text, char *errstr,
                                     size_t errstr_size)
{
        relay_proxies_t *p = relay_calloc(1, sizeof(*p));
        for (const char *s = text ? text : ""; *s;) {
                s += strspn(s, " ,");
                size_t n = strcspn(s, " ,");
                if (!n)
                        break;
                const char *slash = memchr(s, '/', n);
                uint32_t net;
                long bits = 32;
                char *end = NULL;
                if (slash) {
                        bits = strtol(slash + 1, &end, 10);
                        if (end != s + n || slash + 1 == end)
                                bits = -1;
                }
                if (ipv4(s, slash ? (size_t)(slash - s) : n, &net) ||
                    bits < 0 || bits > 32) {
                        relay_seterr(errstr, errstr_size,
                                     "'%.*s' is not an IPv4 address or "
                                     "a.b.c.d/bits block",
                                     (int)n, s);
                        relay_proxies_destroy(p);
                        return NULL;
                }
                uint32_t mask = bits ? 0xffffffffu << (32 - bits) : 0;
                p->r = relay_realloc(p->r, (p->n + 1) * sizeof(*p->r));
                p->r[p->n].net = net & mask;
                p->r[p->n++].mask = mask;
                s += n;
        }
        return p;
}

static int trusted(const relay_proxies_t *p, uint32_t a)
{
        for (size_t i = 0; p && i < p->n; i++)
                if ((a & p->r[i].mask) == p->r[i].net)
                        return 1;
        return 0;
}

void relay_client_ip(const relay_proxies_t *p, const char *peer,
                     const char *xff, char out[16])
{
        uint32_t a;
        snprintf(out, 16, "%s", peer ? peer : "");
        if (!peer || ipv4(peer, strlen(peer), &a) || !trusted(p, a) || !xff)
                return;
        /* From the right: each hop the proxies appended. */
        size_t end = strlen(xff);
        while (end > 0) {
                size_t start = end;
                while (start > 0 && xff[start - 1] != ',')
                        start--;
                const char *e = xff + start;
                size_t n = end - start;
                while (n && *e == ' ')
                        e++, n--;
                while (n && e[n - 1] == ' ')
                        n--;
                if (ipv4(e, n, &a))
                        return; /* not an address: stop at the last good */
                snprintf(out, 16, "%.*s", (int)n, e);
                if (!trusted(p, a))
                        return;
                end = start ? start - 1 : 0;
        }
}
