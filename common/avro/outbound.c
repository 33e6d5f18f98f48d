/*
 * The relay.out.Outbound envelope's slots (see relay/outbound.h).
 */
#include "relay/outbound.h"

#include <string.h>

const char *const relay_out_names[RELAY_OUT_NFIELDS] = {
    "event_id",       "occurred_at", "tenant",         "source",
    "connection",     "destination", "environment",    "identity_type",
    "identity_value", "event_name",  "event_category", "attributes",
    "user_attributes", "identities", "operations"};

/* In RELAY_OUT_NTYPES' order, as relay_out_type_index answers. */
static const avro_type_t value_types[RELAY_OUT_NTYPES] = {
    AVRO_NULL, AVRO_BOOLEAN, AVRO_INT64, AVRO_DOUBLE, AVRO_STRING};

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
        /* Version 2: the identities' map and the operations' array,
         * each the second branch of a ["null", ...] union. */
        int ids = relay_shape_field_node(sh, "identities"),
            ops = relay_shape_field_node(sh, "operations");
        ix->ids_branch =
            ids < 0 ? -1 : relay_shape_union_branch(sh, ids, AVRO_MAP);
        ix->ops_branch =
            ops < 0 ? -1 : relay_shape_union_branch(sh, ops, AVRO_ARRAY);
        if (ix->ids_branch < 0)
                ix->slot[RELAY_OUT_IDENTITIES] = -1;
        ix->op_esize = 0;
        ix->op_target_branch = ix->op_null_branch = -1;
        for (int t = 0; t < RELAY_OUT_NTYPES; t++)
                ix->op_branch[t] = -1;
        int arr = ix->ops_branch < 0
                      ? -1
                      : relay_shape_union_node(sh, ops, AVRO_ARRAY);
        int rec = arr < 0 ? -1 : relay_shape_items(sh, arr);
        static const char *const op_fields[] = {"op", "target", "attributes"};
        for (int f = 0; f < 3; f++) {
                int n = rec < 0 ? -1
                                : relay_shape_record_field(sh, rec, op_fields[f]);
                if (n < 0) {
                        rec = -1; /* not the Operation relay knows */
                        break;
                }
                ix->op_slot[f] = relay_shape_node_slot(sh, n);
                if (f == RELAY_OUT_OP_TARGET) {
                        ix->op_target_branch =
                            relay_shape_union_branch(sh, n, AVRO_STRING);
                        ix->op_null_branch =
                            relay_shape_union_branch(sh, n, AVRO_NULL);
                }
                if (f == RELAY_OUT_OP_ATTRIBUTES) {
                        int items = relay_shape_items(sh, n);
                        for (int t = 0; t < RELAY_OUT_NTYPES; t++)
                                ix->op_branch[t] =
                                    items < 0 ? -1
                                              : relay_shape_union_branch(
                                                    sh, items, value_types[t]);
                }
        }
        if (rec < 0) {
                ix->ops_branch = -1;
                ix->slot[RELAY_OUT_OPERATIONS] = -1;
        } else {
                ix->op_esize = relay_shape_esize(sh, arr);
        }
        ix->shape = sh;
        return ix;
}
