/*
 * The set-up the fuzz targets of Avro records share: a path in the source
 * tree (RELAY_SOURCE_DIR, or the working directory), and the repository's
 * catalogue (schemas/manifest.cfg, no registry) with a reader of one
 * subject as the workers build it. A set-up that fails is a broken tree,
 * not a finding, so it aborts naming the target and the reason.
 */
#ifndef RELAY_FUZZ_CATALOGUE_H
#define RELAY_FUZZ_CATALOGUE_H

#include "relay/avro.h"

#include <stdio.h>
#include <stdlib.h>

/* A reader's record limit: transform.max_record_bytes' default. */
#define FUZZ_MAX_RECORD (1 << 20)

/* path = "<source dir>/rel". */
static inline void fuzz_path(char *path, size_t size, const char *rel)
{
        const char *src = getenv("RELAY_SOURCE_DIR");

        snprintf(path, size, "%s/%s", src ? src : ".", rel);
}

/* The repository's catalogue and, in *reader, a reader of subject; both
 * owned by the caller. Aborts with "target: reason" on failure. */
static inline relay_schemas_t *fuzz_catalogue(const char *target,
                                              const char *subject,
                                              relay_avro_reader_t **reader)
{
        char errstr[512], path[1024];
        relay_schemas_t *s;

        fuzz_path(path, sizeof(path), "schemas/manifest.cfg");
        if (!(s = relay_schemas_load(path, errstr, sizeof(errstr))) ||
            !(*reader = relay_avro_reader_new(s, subject, FUZZ_MAX_RECORD,
                                              errstr, sizeof(errstr)))) {
                fprintf(stderr, "%s: %s\n", target, errstr);
                abort();
        }
        return s;
}

#endif
