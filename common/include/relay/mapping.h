/*
 * The mapping engine: connections (tenant, source platform, destination
 * platform, settings, mapping table) loaded from libconfig files and applied
 * to decoded input records, filling the relay.out.Outbound envelope.
 *
 * A mapping table expresses event association (source event types →
 * destination event name and category, or dropped), field sync (source
 * field → destination user attribute, e.g. mParticle's $firstname), event
 * attributes as literals, `{field}` templates or typed copies, and identity
 * choice with fallbacks. Everything is validated at load against the input
 * topic's schema and the destination adapter's vocabulary, with errors
 * naming file, line and entry.
 */
#ifndef RELAY_MAPPING_H
#define RELAY_MAPPING_H

#include "relay/common.h"

#include <avro.h>

typedef struct relay_mapping relay_mapping_t;
typedef struct relay_connection relay_connection_t;

/* Load every *.cfg connection in a directory (in name order), or one file.
 * input_schema is the input topic's reader schema, used to check paths.
 * NULL with errstr ("file:line: ...") when any connection is invalid. */
relay_mapping_t *relay_mapping_load(const char *path,
                                    avro_schema_t input_schema, char *errstr,
                                    size_t errstr_size);
void relay_mapping_destroy(relay_mapping_t *m);

size_t relay_mapping_count(const relay_mapping_t *m);
const relay_connection_t *relay_mapping_get(const relay_mapping_t *m, size_t i);

const char *relay_connection_id(const relay_connection_t *c);
const char *relay_connection_destination(const relay_connection_t *c);

/* Outcome of applying a connection to one record. */
enum relay_map_result {
        RELAY_MAP_OUT = 0, /* out was filled: produce it */
        RELAY_MAP_SKIP,    /* not for this connection, or dropped by it */
        RELAY_MAP_ERROR    /* the record cannot be mapped: errstr says why */
};

/* Apply connection c to the decoded input record in, filling out (a
 * relay.out.Outbound value, reset by the caller) and the Kafka key (the
 * person: "<tenant>/<identity_type>/<identity_value>") into key. */
enum relay_map_result relay_connection_apply(const relay_connection_t *c,
                                             const avro_value_t *in,
                                             avro_value_t *out,
                                             relay_buf_t *key, char *errstr,
                                             size_t errstr_size);

#endif
