/*
 * Fuzz target: a record value from loyalty.events, the transform worker's
 * outside input. Decodes it like relay-transform does (framing, schema id,
 * pre-scan, avro-c, resolution), renders it, and applies the repository's
 * example connections, encoding whatever they map to.
 */
#include "relay/avro.h"
#include "relay/mapping.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_catalogue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static relay_schemas_t *schemas;
static relay_avro_reader_t *reader;
static relay_avro_writer_t *writer;
static relay_mapping_t *mapping;

static void fini(void)
{
        relay_mapping_destroy(mapping);
        relay_avro_writer_destroy(writer);
        relay_avro_reader_destroy(reader);
        relay_schemas_destroy(schemas);
}

static void init(void)
{
        char errstr[512], path[1024];

        atexit(fini); /* leak checkers see a clean exit */
        schemas =
            fuzz_catalogue("fuzz_loyalty", "loyalty.events-value", &reader);
        if (!(writer = relay_avro_writer_new(schemas, "out.mparticle-value",
                                             errstr, sizeof(errstr)))) {
                fprintf(stderr, "fuzz_loyalty: %s\n", errstr);
                abort();
        }
        fuzz_path(path, sizeof(path), "deploy/config/connections");
        mapping = relay_mapping_load(
            path,
            relay_schemas_get(
                schemas, relay_schemas_latest(schemas, "loyalty.events-value")),
            errstr, sizeof(errstr));
        if (!mapping) {
                fprintf(stderr, "fuzz_loyalty: %s\n", errstr);
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char errstr[512];
        avro_value_t *in;
        const relay_slots_t *slots;
        if (!schemas)
                init();
        if (relay_avro_reader_decode(reader, data, size, &in, NULL, errstr,
                                     sizeof(errstr)) != RELAY_OK)
                return 0;
        json_decref(relay_avro_to_json(in));
        /* The workers' path: slots in, slots out (fuzz_codec holds the
         * compiled decode against avro-c's). */
        if (relay_avro_reader_decode_slots(reader, data, size, &slots, NULL,
                                           errstr, sizeof(errstr)) != RELAY_OK)
                return 0;
        relay_buf_t key;
        relay_buf_init(&key);
        for (size_t i = 0; i < relay_mapping_count(mapping); i++) {
                relay_slots_t *out = relay_avro_writer_slots(writer);
                if (relay_connection_apply(relay_mapping_get(mapping, i), slots,
                                           out, &key, errstr,
                                           sizeof(errstr)) == RELAY_MAP_OUT) {
                        const void *buf;
                        size_t len;
                        if (relay_avro_writer_encode_slots(
                                writer, &buf, &len, errstr, sizeof(errstr)) !=
                            RELAY_OK) {
                                /* A mapped record always encodes. */
                                fprintf(stderr, "fuzz_loyalty: %s\n", errstr);
                                abort();
                        }
                }
        }
        relay_buf_free(&key);
        return 0;
}
