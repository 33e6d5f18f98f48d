/*
 * Private declarations shared by the files of common/avro/: the catalogue's
 * entries and state (catalogue.c, cache.c), and the helpers a reader and a
 * writer use from the others. Not part of the API: relay/avro.h is.
 */
#ifndef RELAY_AVRO_INT_H
#define RELAY_AVRO_INT_H

#include "relay/avro.h"

#include <avro.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct schema_entry {
        int32_t id;
        int version;
        avro_schema_t schema;
        char *text; /* the .avsc as written (manifest entries only) */
        char **subjects;
        int nsubjects;
        int subjects_unknown; /* the registry could not say: match by name */
        int pinned;           /* this process's own reader/writer schema */
        uint64_t used;        /* LRU tick of cached registry entries */
};

/*
 * Without a registry the wire ids are the manifest's. With one, the
 * manifest only says which schema this process reads and writes for each
 * subject; wire ids are the registry's, kept in `cache`: pinned entries
 * for the subjects bound at start, and entries fetched by id as records
 * name them, the least recently used evicted beyond cache_max. Fetched
 * entries stay usable while the registry is down.
 *
 * `unknown` remembers ids the registry answered 404 for, until a deadline
 * negative_ttl_ms later: anyone who can produce to a topic can name any
 * id, and without it every such record would cost a registry request.
 * The TTL (rather than forever) lets an id registered later be read
 * without a restart. Bounded by cache_max too, the soonest to expire
 * going first.
 */
struct unknown_id {
        int32_t id;
        int64_t until_ms; /* relay_mono_ms() deadline */
};

struct relay_schemas {
        struct schema_entry *entries; /* the manifest */
        size_t n;

        relay_registry_t *reg;
        relay_schemas_registry_conf_t rconf;
        struct schema_entry *cache;
        size_t ncache;
        uint64_t tick;
        struct unknown_id *unknown;
        size_t nunknown;
};

/* catalogue.c */

/* Frees what e holds and zeroes it. */
void relay_schemas_entry_free(struct schema_entry *e);
/* The entry of a wire id already known (no registry call), or NULL. */
struct schema_entry *relay_schemas_find_id(const relay_schemas_t *s,
                                           int32_t id);
int relay_schemas_entry_has_subject(const struct schema_entry *e,
                                    const char *subject);
/* Adds subject to e's subjects (copied) unless it is there already. */
void relay_schemas_add_subject(struct schema_entry *e, const char *subject);
/* The manifest's newest version of subject, or NULL. */
const struct schema_entry *relay_schemas_local_entry(const relay_schemas_t *s,
                                                     const char *subject);
/* Whether entry e may be read as subject, whose reader schema is rs. */
int relay_schemas_entry_fits(const struct schema_entry *e, const char *subject,
                             avro_schema_t rs);

/* cache.c */

/* The entry of a wire id: known, or fetched from the registry (never
 * waiting). RELAY_FATAL for an id nobody knows, RELAY_RETRY when the
 * registry could not say; errstr says why. *out is owned by s. */
enum relay_result relay_schemas_lookup(relay_schemas_t *s, int32_t id,
                                       struct schema_entry **out, char *errstr,
                                       size_t errstr_size);

/* scan.c */

/* Whether the body after the frame is exactly one value of writer schema
 * ws: 0, or -1 with the reason. */
int relay_avro_check_body(avro_schema_t ws, int32_t id, const void *buf,
                          size_t len, char *errstr, size_t errstr_size);

/* json.c */

/* The shortest %g form of d, from min digits up to max, that reads back
 * as the same number (as float when is_float), appended. */
void relay_avro_append_number(relay_buf_t *b, double d, int min, int max,
                              int is_float);

/* reader.c */

/* A generic value of schema (and its class): 0, or -1 with errstr naming
 * what (reader, writer) and subject. The caller owns both. */
int relay_avro_generic_new(avro_schema_t schema, avro_value_iface_t **iface,
                           avro_value_t *value, const char *what,
                           const char *subject, char *errstr,
                           size_t errstr_size);

#endif
