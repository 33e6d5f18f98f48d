/*
 * The relay.out.Outbound envelope (schemas/outbound.avsc) as slots: what
 * the mapping writes and every delivery adapter reads, by slot index
 * looked up once per shape rather than by name per record.
 */
#ifndef RELAY_OUTBOUND_H
#define RELAY_OUTBOUND_H

#include "relay/codec.h"

enum relay_out_field {
        RELAY_OUT_EVENT_ID,
        RELAY_OUT_OCCURRED_AT,
        RELAY_OUT_TENANT,
        RELAY_OUT_SOURCE,
        RELAY_OUT_CONNECTION,
        RELAY_OUT_DESTINATION,
        RELAY_OUT_ENVIRONMENT,
        RELAY_OUT_IDENTITY_TYPE,
        RELAY_OUT_IDENTITY_VALUE,
        RELAY_OUT_EVENT_NAME,
        RELAY_OUT_EVENT_CATEGORY,
        RELAY_OUT_ATTRIBUTES,
        RELAY_OUT_USER_ATTRIBUTES,
        RELAY_OUT_NFIELDS
};

/* The field names, by enum relay_out_field. */
extern const char *const relay_out_names[RELAY_OUT_NFIELDS];

/* The value types of the attribute maps' union, in the order of branch[]
 * below: null, boolean, long, double, string. */
#define RELAY_OUT_NTYPES 5

typedef struct relay_out_index {
        const relay_shape_t *shape;
        int slot[RELAY_OUT_NFIELDS]; /* -1: the shape lacks it */
        /* per map (0 attributes, 1 user_attributes): the union branch of
         * each value type, -1 when it has none */
        int branch[2][RELAY_OUT_NTYPES];
} relay_out_index_t;

/* Where the envelope's fields are in shape sh: *ix, computed unless it
 * is sh's already. An element of either map is 2 slots: key, value. */
const relay_out_index_t *relay_out_index(relay_out_index_t *ix,
                                         const relay_shape_t *sh);

/* The slot of field f of rec, whose shape ix is. */
static inline const relay_slot_t *relay_out_get(const relay_out_index_t *ix,
                                                const relay_slots_t *rec,
                                                enum relay_out_field f)
{
        return &rec->s[ix->slot[f]];
}

/* The branch index (into relay_out_index_t.branch) of a value type. */
int relay_out_type_index(avro_type_t t);

#endif
