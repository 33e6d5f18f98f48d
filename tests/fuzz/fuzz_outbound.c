/*
 * Fuzz target: a record value from out.mparticle, the deliver worker's
 * outside input: decoded like relay-deliver does, then turned into an
 * mParticle batch by the adapter, whose JSON must always parse.
 */
#include "relay/adapter.h"
#include "relay/avro.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_catalogue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static relay_schemas_t *schemas;
static relay_avro_reader_t *reader;
static const struct relay_adapter *adapter;
static void *state;
static relay_conf_t *conf;

static void fini(void)
{
        relay_adapter_term(adapter, state);
        relay_conf_destroy(conf);
        relay_avro_reader_destroy(reader);
        relay_schemas_destroy(schemas);
}

static void init(void)
{
        char errstr[512];

        atexit(fini); /* leak checkers see a clean exit */
        adapter = relay_adapter_find("mparticle");
        const relay_conf_prop_t *tables[] = {adapter->props};
        conf = relay_conf_new(tables, 1);
        setenv("RELAY_MPARTICLE_API_KEY", "k", 1);
        setenv("RELAY_MPARTICLE_API_SECRET", "s", 1);
        schemas =
            fuzz_catalogue("fuzz_outbound", "out.mparticle-value", &reader);
        if (relay_conf_finish(conf, errstr, sizeof(errstr)) ||
            relay_adapter_init(adapter, &state, conf, errstr, sizeof(errstr))) {
                fprintf(stderr, "fuzz_outbound: %s\n", errstr);
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char errstr[512];
        const relay_slots_t *rec;
        if (!schemas)
                init();
        /* The deliver worker's path (fuzz_codec holds it against
         * avro-c's). */
        if (relay_avro_reader_decode_slots(reader, data, size, &rec, NULL,
                                           errstr, sizeof(errstr)) != RELAY_OK)
                return 0;
        relay_buf_t item;
        relay_buf_init(&item);
        if (relay_adapter_encode(adapter, state, rec, &item, errstr,
                                 sizeof(errstr)) == RELAY_OK) {
                /* Escaped NULs are valid JSON (RFC 8259) but jansson cannot
                 * hold one in an object key, so such output is not
                 * checked. */
                json_error_t jerr;
                json_t *j =
                    json_loadb(item.data, item.len, JSON_ALLOW_NUL, &jerr);
                if (!j && !strstr(item.data, "\\u0000")) {
                        fprintf(stderr, "fuzz_outbound: invalid JSON: %s\n%s\n",
                                jerr.text, item.data);
                        abort();
                }
                json_decref(j);
        }
        relay_buf_free(&item);
        return 0;
}
