/*
 * The mapping engine: connections (tenant, source platform, destination
 * platform, settings, mapping table) loaded from libconfig files and applied
 * to decoded input records, filling the relay.out.Outbound envelope.
 *
 * A mapping table expresses event association (source event types →
 * destination event name and category, or dropped), field sync (source
 * field → destination user attribute, e.g. mParticle's $firstname), event
 * attributes as literals, `{field}` templates or typed copies, and identity
 * choice with fallbacks; the person field keys the output so that one
 * person's records stay in order. Everything is validated at load against
 * the input topic's schema and the destination adapter's vocabulary, with
 * errors naming file, line and entry. Event types no rule names are skipped
 * (counted and logged) or, with `unmapped = "dead_letter"`, refused.
 */
#ifndef RELAY_MAPPING_H
#define RELAY_MAPPING_H

#include "relay/codec.h"
#include "relay/common.h"

#include <avro.h>

typedef struct relay_mapping relay_mapping_t;
typedef struct relay_connection relay_connection_t;

/* Load every *.cfg connection in a directory (in name order), or one file.
 * input_schema is the input topic's reader schema, used to check paths; it
 * is borrowed for the call only. NULL with errstr ("file:line: ...") when
 * any connection is invalid. The caller owns the result. */
relay_mapping_t *relay_mapping_load(const char *path,
                                    avro_schema_t input_schema, char *errstr,
                                    size_t errstr_size);
/* Free m and its connections (NULL is fine); connection pointers taken
 * from it are invalid afterwards. */
void relay_mapping_destroy(relay_mapping_t *m);

/* The input's top-level fields that any connection reads (NULL-
 * terminated, owned by m): a reader decodes only these
 * (relay_avro_reader_want) and skips the rest. */
const char *const *relay_mapping_fields(const relay_mapping_t *m);

/* The connections, in load order; NULL when i is past the end. Borrowed
 * from m. */
size_t relay_mapping_count(const relay_mapping_t *m);
const relay_connection_t *relay_mapping_get(const relay_mapping_t *m, size_t i);

/* The connection with this id (e.g. from a dead letter's failed-connection
 * header, to re-apply only it on replay), or NULL. Borrowed from m. */
const relay_connection_t *relay_mapping_find(const relay_mapping_t *m,
                                             const char *id);

/* Strings owned by the connection. */
const char *relay_connection_id(const relay_connection_t *c);
const char *relay_connection_destination(const relay_connection_t *c);
/* The path of the field that identifies a person (`person = ...`, e.g.
 * "identities.customer_id"), or NULL when the connection sets none. */
const char *relay_connection_person(const relay_connection_t *c);

/* Outcome of applying a connection to one record. */
enum relay_map_result {
        RELAY_MAP_OUT = 0, /* out was filled: produce it */
        RELAY_MAP_SKIP,    /* not for this connection, or dropped by it */
        RELAY_MAP_ERROR    /* the record cannot be mapped: errstr says why */
};

/* Apply connection c to the decoded input record in (slots of the input
 * schema the mapping was loaded with), filling out (slots of a
 * relay.out.Outbound shape, reset by the caller; its strings may point
 * into in's bytes and c's text, so encode it while both live) and the
 * Kafka key into key. The key is the person, "<tenant>/<person value>"; a
 * record whose person field is absent, null or empty is keyed
 * "<tenant>/<identity value>" by the identity the destination gets (the first
 * present), and counted (relay_connection_fallback_keys()); without `person`
 * every record is keyed that way, uncounted.
 *
 * RELAY_MAP_SKIP: the record is another tenant's or source's, its event
 * type is in a `drop = true` rule, or no rule names its type (counted per
 * type, see relay_connection_unmapped_get(), and logged at most once a
 * minute per type). RELAY_MAP_ERROR, with errstr naming the connection and
 * the field: a required field missing or null, a value that does not
 * convert, no identity, an identity or person that is not valid UTF-8, or
 * an unassociated type with `unmapped = "dead_letter"`. in, out and key
 * stay the caller's. Updates c's counters: apply one connection from one
 * thread at a time. */
enum relay_map_result relay_connection_apply(const relay_connection_t *c,
                                             const relay_slots_t *in,
                                             relay_slots_t *out,
                                             relay_buf_t *key, char *errstr,
                                             size_t errstr_size);

/* The same on avro-c values (in of the input schema, out a reset
 * relay.out.Outbound value), through the slots: for tests and tools, not
 * the hot path (it compiles a plan and a shape per call). */
enum relay_map_result relay_connection_apply_value(
    const relay_connection_t *c, const avro_value_t *in, avro_value_t *out,
    relay_buf_t *key, char *errstr, size_t errstr_size);

/* Records keyed by their identity because they lacked c's person field,
 * since c was loaded. */
uint64_t relay_connection_fallback_keys(const relay_connection_t *c);

/* Event types that no rule of c names, with how many records of each were
 * seen since c was loaded (skipped, or dead-lettered with `unmapped =
 * "dead_letter"`), in the order first seen: iterate i from 0 until NULL.
 * Returns the type (owned by c) and sets *count when count is not NULL.
 * Past 256 types, or for types longer than 128 bytes, the rest are counted
 * together as "(other types)", so that a producer sending arbitrary types
 * cannot grow memory or a metric's label set without bound. */
size_t relay_connection_unmapped_types(const relay_connection_t *c);
const char *relay_connection_unmapped_get(const relay_connection_t *c, size_t i,
                                          uint64_t *count);

#endif
