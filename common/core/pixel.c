/*
 * The pixels' request checks (see relay/pixel.h).
 */
#include "relay/pixel.h"
#include "relay/common.h"

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
