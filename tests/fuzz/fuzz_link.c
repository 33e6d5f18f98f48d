/*
 * Fuzz target: a signed link token as relay-ingest's /c/ and /r/ read it,
 * and the same bytes as the payload of a token signed with a known key,
 * so that the payload's parsing past the signature check is reached too.
 */
#include "relay/link.h"
#include "relay/sign.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static relay_link_keys_t *keys;

static void fini(void)
{
        relay_link_keys_destroy(keys);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char errstr[512];
        if (!keys) {
                keys = relay_link_keys_parse("k1:fuzz-secret,k2:other", errstr,
                                             sizeof(errstr));
                atexit(fini); /* leak checkers see a clean exit */
        }
        relay_link_t l;
        if (!relay_link_verify((const char *)data, size, keys, &l, errstr,
                               sizeof(errstr)))
                relay_link_free(&l);
        if (size > 3000)
                return 0;
        /* "k1." + payload + "." + signature */
        char *tok = malloc(3 + RELAY_SIGN_BASE64_LEN(size) + 2 + 44 + 1);
        memcpy(tok, "k1.", 3);
        size_t n = 3 + relay_sign_base64url(data, size, tok + 3);
        unsigned char mac[RELAY_SIGN_SHA256_LEN];
        relay_sign_part_t part = {tok, n};
        relay_sign_hmac_sha256("fuzz-secret", 11, &part, 1, mac);
        tok[n++] = '.';
        n += relay_sign_base64url(mac, sizeof(mac), tok + n);
        if (!relay_link_verify(tok, n, keys, &l, errstr, sizeof(errstr))) {
                if (!relay_link_url_ok(l.url))
                        abort(); /* a verified link must have a safe target */
                relay_link_free(&l);
        }
        free(tok);
        return 0;
}
