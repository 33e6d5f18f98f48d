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
        /* version 2 (schemas/outbound.v2.avsc); -1 slots in a version 1
         * shape. Each is a ["null", ...] union: its slot holds AVRO_NULL,
         * or the map (AVRO_MAP) or array (AVRO_ARRAY) itself. */
        RELAY_OUT_IDENTITIES, /* map<string>: kind -> value */
        RELAY_OUT_OPERATIONS, /* array<relay.out.Operation> */
        RELAY_OUT_NFIELDS
};

/* The fields of one relay.out.Operation, in its element block. */
enum relay_out_op_field { RELAY_OUT_OP, RELAY_OUT_OP_TARGET, RELAY_OUT_OP_ATTRIBUTES };

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
        /* version 2: the union branches holding the identities' map and
         * the operations' array (-1 when the shape lacks them); an
         * operation's element block (op_esize slots: op, target,
         * attributes at op_slot[]), the branch of target's string, and
         * of each value type of its attributes' union */
        int ids_branch, ops_branch;
        size_t op_esize;
        int op_slot[3], op_target_branch, op_null_branch;
        int op_branch[RELAY_OUT_NTYPES];
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

/* Element i of a map slot m of rec (a map's element block is 2 slots:
 * the key, then the value). */
static inline const relay_slot_t *relay_out_map_key(const relay_slots_t *rec,
                                                    const relay_slot_t *m,
                                                    size_t i)
{
        return &rec->s[m->v.first + 2 * i];
}

static inline const relay_slot_t *
relay_out_map_value(const relay_slots_t *rec, const relay_slot_t *m, size_t i)
{
        return &rec->s[m->v.first + 2 * i + 1];
}

/* How many identities rec carries (version 2; 0 when none or null), and
 * the map's slot in *m. */
static inline size_t relay_out_identities(const relay_out_index_t *ix,
                                          const relay_slots_t *rec,
                                          const relay_slot_t **m)
{
        if (ix->slot[RELAY_OUT_IDENTITIES] < 0)
                return 0;
        *m = &rec->s[ix->slot[RELAY_OUT_IDENTITIES]];
        return (*m)->type == AVRO_MAP ? (*m)->n : 0;
}

/* How many operations rec carries (0 when none or null). */
static inline size_t relay_out_ops(const relay_out_index_t *ix,
                                   const relay_slots_t *rec)
{
        if (ix->slot[RELAY_OUT_OPERATIONS] < 0)
                return 0;
        const relay_slot_t *a = &rec->s[ix->slot[RELAY_OUT_OPERATIONS]];
        return a->type == AVRO_ARRAY ? a->n : 0;
}

/* Field f of operation k of rec (k < relay_out_ops): op a string; target
 * AVRO_NULL or a string; attributes a map (relay_out_map_key/_value,
 * values of the scalar union as in the envelope's attribute maps). */
static inline const relay_slot_t *
relay_out_op_get(const relay_out_index_t *ix, const relay_slots_t *rec,
                 size_t k, enum relay_out_op_field f)
{
        const relay_slot_t *a = &rec->s[ix->slot[RELAY_OUT_OPERATIONS]];
        return &rec->s[a->v.first + k * ix->op_esize + (size_t)ix->op_slot[f]];
}

/* The branch index (into relay_out_index_t.branch) of a value type:
 * its place in RELAY_OUT_NTYPES' order, a type not there counting as a
 * string. Inline: the mapping asks once per attribute it puts. */
static inline int relay_out_type_index(avro_type_t t)
{
        switch (t) {
        case AVRO_NULL:
                return 0;
        case AVRO_BOOLEAN:
                return 1;
        case AVRO_INT64:
                return 2;
        case AVRO_DOUBLE:
                return 3;
        default:
                return RELAY_OUT_NTYPES - 1;
        }
}

#endif
