/*
 * Fuzz target: an HTTP answer body from mParticle (or anything posing as
 * it), as the adapter classifies it, under every status class.
 */
#include "relay/adapter.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const long statuses[] = {202, 400, 401, 413, 429, 503};
        const struct relay_adapter *a = relay_adapter_find("mparticle");
        char errstr[512];
        relay_http_response_t r;
        for (size_t i = 0; i < sizeof(statuses) / sizeof(*statuses); i++) {
                relay_http_response_init(&r);
                r.status = statuses[i];
                relay_buf_append(&r.body, data, size);
                relay_adapter_classify(a, NULL, &r, errstr, sizeof(errstr));
                relay_http_response_reset(&r);
        }
        return 0;
}
