/*
 * The relay.out.Outbound envelope's slots (see relay/outbound.h).
 */
#include "relay/outbound.h"

#include <string.h>

const char *const relay_out_names[RELAY_OUT_NFIELDS] = {
    "event_id",       "occurred_at", "tenant",         "source",
    "connection",     "destination", "environment",    "identity_type",
    "identity_value", "event_name",  "event_category", "attributes",
    "user_attributes"};

static const avro_type_t value_types[RELAY_OUT_NTYPES] = {
    AVRO_NULL, AVRO_BOOLEAN, AVRO_INT64, AVRO_DOUBLE, AVRO_STRING};

int relay_out_type_index(avro_type_t t)
{
        for (int i = 0; i < RELAY_OUT_NTYPES; i++)
                if (value_types[i] == t)
                        return i;
        return RELAY_OUT_NTYPES - 1;
}

const relay_out_index_t *relay_out_index(relay_out_index_t *ix,
                                         const relay_shape_t *sh)
{
        if (ix->shape == sh)
                return ix;
        for (int i = 0; i < RELAY_OUT_NFIELDS; i++)
                ix->slot[i] = relay_shape_field(sh, relay_out_names[i]);
        for (int m = 0; m < 2; m++) {
                int node = relay_shape_field_node(
                    sh, relay_out_names[RELAY_OUT_ATTRIBUTES + m]);
                int items = node < 0 ? -1 : relay_shape_items(sh, node);
                for (int t = 0; t < RELAY_OUT_NTYPES; t++)
                        ix->branch[m][t] = items < 0
                                               ? -1
                                               : relay_shape_union_branch(
                                                     sh, items, value_types[t]);
        }
        ix->shape = sh;
        return ix;
}
