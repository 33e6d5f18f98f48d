/*
 * Fuzz target: the cookie-sync pixel's parameters (site, partner,
 * cookieid, gdpr, gdpr_consent: the input split on '&', as libmicrohttpd
 * hands them over decoded) and a cookie value, as relay-ingest checks them.
 */
#include "relay/pixel.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        memcpy(text, data, size);
        text[size] = '\0';
        const char *v[5] = {NULL};
        char *p = text;
        for (int i = 0; i < 5 && p; i++) {
                char *amp = strchr(p, '&');
                if (amp)
                        *amp = '\0';
                /* An empty piece is an absent parameter. */
                v[i] = *p ? p : NULL;
                p = amp ? amp + 1 : NULL;
        }
        relay_sync_params_t s = {v[0], v[1], v[2], v[3], v[4]};
        char errstr[256];
        enum relay_sync_check c = relay_sync_check(&s, errstr, sizeof(errstr));
        if (c == RELAY_SYNC_OK &&
            (!s.partner_uid || strpbrk(s.partner_uid, "{}[]<> ")))
                abort(); /* an accepted id is never a macro */
        relay_pixel_cookie_ok(text);
        free(text);
        return 0;
}
