/*
 * relayctl sign-link: a signed link of the ingest gateway's click redirect
 * (/c/) or read-online tracker (/r/), for the engagement platform's
 * templates. The keys are the gateway's, from the same place:
 * RELAY_INGEST_LINK_KEYS (id:secret[,id:secret]); --key-id picks the one
 * that signs (default: the first).
 */
#include "relay/link.h"

#include "relayctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_sign_link(int argc, char **argv)
{
        static const char *const names[] = {
            "tenant",  "message", "url",          "link",   "campaign",
            "contact", "email-sha256", "source",  "key-id", "base"};
        const char *v[10] = {NULL};
        int read_online = 0;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (!strcmp(a, "--read-online")) {
                        read_online = 1;
                        continue;
                }
                size_t k = 0;
                while (k < 10 && (strncmp(a, "--", 2) || strcmp(a + 2, names[k])))
                        k++;
                if (k == 10 || i + 1 == argc) {
                        fprintf(stderr,
                                "relayctl: sign-link: %s %s\n", a,
                                k == 10 ? "is not an option" : "needs a value");
                        return usage();
                }
                v[k] = argv[++i];
        }
        const char *keys_text = getenv("RELAY_INGEST_LINK_KEYS");
        char errstr[512];
        relay_link_keys_t *keys =
            relay_link_keys_parse(keys_text, errstr, sizeof(errstr));
        if (!keys) {
                fprintf(stderr, "relayctl: sign-link: RELAY_INGEST_LINK_KEYS: "
                        "%s\n", errstr);
                return 1;
        }
        char kid[RELAY_LINK_KID_MAX + 1];
        if (v[8])
                snprintf(kid, sizeof(kid), "%s", v[8]);
        else
                snprintf(kid, sizeof(kid), "%.*s",
                         (int)strcspn(keys_text, ":"), keys_text);
        relay_link_t l = {(char *)v[0], (char *)v[7], (char *)v[1],
                          (char *)v[4], (char *)v[3], (char *)v[2],
                          (char *)v[5], (char *)v[6]};
        relay_buf_t out;
        relay_buf_init(&out);
        if (v[9]) {
                relay_buf_puts(&out, v[9]);
                while (out.len && out.data[out.len - 1] == '/')
                        out.len--;
                relay_buf_puts(&out, read_online ? "/r/" : "/c/");
        }
        int rc = relay_link_sign(&l, keys, kid, &out, errstr, sizeof(errstr));
        if (rc)
                fprintf(stderr, "relayctl: sign-link: %s\n", errstr);
        else
                printf("%.*s\n", (int)out.len, out.data);
        relay_buf_free(&out);
        relay_link_keys_destroy(keys);
        return rc ? 1 : 0;
}
