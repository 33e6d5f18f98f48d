/*
 * Fuzz target: a webhook body as relay-ingest reads it (jansson's parser,
 * then the records a source finds in it, each mapped into its topic's
 * Avro record) through every shipped source of deploy/config/ingest/.
 */
#include "relay/ingest.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static relay_schemas_t *schemas;
static relay_ingest_t *sources;

static void fini(void)
{
        relay_ingest_destroy(sources);
        relay_schemas_destroy(schemas);
}

static void load(void)
{
        const char *src = getenv("RELAY_SOURCE_DIR");
        char path[1200], err[1024];
        setenv("RELAY_INGEST_TOKENS_ANTAVO", "a", 1);
        setenv("RELAY_INGEST_TOKENS_CMCDP", "c", 1);
        setenv("RELAY_INGEST_TOKENS_MPARTICLE", "m", 1);
        snprintf(path, sizeof(path), "%s/schemas/manifest.cfg",
                 src ? src : ".");
        schemas = relay_schemas_load(path, err, sizeof(err));
        snprintf(path, sizeof(path), "%s/deploy/config/ingest",
                 src ? src : ".");
        sources = schemas ? relay_ingest_load(path, schemas, err, sizeof(err))
                          : NULL;
        if (!sources) {
                fprintf(stderr, "fuzz_webhook: %s\n", err);
                abort();
        }
        atexit(fini); /* leak checkers see a clean exit */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!sources)
                load();
        json_error_t jerr;
        json_t *body = json_loadb((const char *)data, size, 0, &jerr);
        if (!body)
                return 0;
        char errstr[512], eid[RELAY_UUID_SIZE];
        relay_buf_t key;
        relay_buf_init(&key);
        for (size_t i = 0; i < relay_ingest_count(sources); i++) {
                const relay_ingest_source_t *s = relay_ingest_get(sources, i);
                int single;
                json_t *recs = relay_ingest_records(s, body, &single, errstr,
                                                    sizeof(errstr));
                size_t n = !recs ? 0 : single ? 1 : json_array_size(recs);
                relay_ingest_req_t rq = {"tenant-1", "type-1", body};
                for (size_t j = 0; j < n && j < 64; j++) {
                        const void *val;
                        size_t len;
                        relay_ingest_map(s, &rq,
                                         single ? recs : json_array_get(recs, j),
                                         &key, &val, &len, eid, errstr,
                                         sizeof(errstr));
                }
        }
        relay_buf_free(&key);
        json_decref(body);
        return 0;
}
