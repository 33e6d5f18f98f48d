/*
 * Private to the mapping engine (common/mapping/): the parsed form of a
 * connection, shared by load.c, which builds it from a connection file and
 * checks it against the input schema and the destination's vocabulary, and
 * apply.c, which walks it for every record; and the per-connection
 * counters of stats.c (unmapped event types, fallback keys).
 *
 * Everything a record needs is resolved at load (paths normalised, templates
 * split, identity types checked), so applying a connection allocates nothing
 * but scratch text.
 */
#ifndef RELAY_MAPPING_INT_H
#define RELAY_MAPPING_INT_H

#include "relay/codec.h"
#include "relay/mapping.h"
#include "relay/outbound.h"

#include <libconfig.h>
#include <stdint.h>

/* Load context of a mapping file (load.c for connections, ingest.c for
 * ingest sources): what a parse error needs to name. */
struct ctx {
        const char *file;
        avro_schema_t schema;
        const struct relay_adapter *adapter;
        char *errstr;
        size_t errstr_size;
};

/* Shared by the loaders (load.c): set errstr to "file:line: <message>",
 * the line of setting s; returns -1. */
int map_fail_at(struct ctx *x, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Refuse keys of group g not in allowed (NULL-terminated). */
int map_check_keys(struct ctx *x, const config_setting_t *g, const char *what,
                   const char *const *allowed);
/* A string member key of g into *out (a copy, NULL when absent). */
int map_get_str(struct ctx *x, const config_setting_t *g, const char *key,
                int required, const char *what, char **out);
/* A record's field schema, or NULL; a union's first non-null branch. */
avro_schema_t map_field_schema(avro_schema_t rec, const char *name);
avro_schema_t map_unwrap_schema(avro_schema_t s);
/* Split a template ("Coupon {coupon_code}", '{{' and '}}' for braces)
 * into literal (unescaped) and field (the name between braces) parts,
 * calling part for each in order; a template without fields is one
 * literal part. 0, or -1 after map_fail_at or a part's -1. */
int map_template_split(struct ctx *x, const config_setting_t *where,
                       const char *t,
                       int (*part)(void *arg, int is_field, const char *s,
                                   size_t n),
                       void *arg);

enum conv { CONV_KEEP, CONV_STRING, CONV_NUMBER, CONV_BOOL };

struct tmpl_part {
        int is_field; /* 1: path into the record; 0: literal text */
        char *text;
        size_t len;
        relay_path_t path; /* is_field: text compiled */
};

/* A destination value: a template (literal when it has no {field}) or a
 * typed copy of one field, with an optional default and conversion. */
struct value_spec {
        char *name; /* destination attribute name */
        size_t name_len;
        struct tmpl_part *parts;
        size_t nparts;
        char *from; /* typed copy when set */
        relay_path_t from_path;
        char *defval;
        enum conv conv;
        int required;
        int line;
};

/* One operation an event asks of the destination (relay.out.Operation):
 * op from the adapter's vocabulary, an optional target template, and
 * its attributes. */
struct op_rule {
        char *op;
        size_t op_len;
        struct value_spec target; /* nparts 0: no target (null) */
        struct value_spec *attrs;
        size_t nattrs;
        int attrs_unique; /* no two attrs share a name (see omap_put) */
};

struct event_rule {
        char **on;
        size_t non;
        int drop;
        char *name;
        char *category;
        size_t name_len, category_len;
        size_t *on_len; /* of each on[], at load */
        int on_any;     /* one of on[] is "*" */
        struct value_spec *attrs;
        size_t nattrs;
        int attrs_unique; /* no two attrs share a name (see omap_put) */
        struct op_rule *ops;
        size_t nops;
        int line;
};

struct identity_rule {
        char *from;
        char *as;
        size_t as_len;
        relay_path_t path;
};

/* A count that is logged at most once per interval: the first occurrence
 * at once, later ones with the next occurrence after the interval. */
struct notice {
        uint64_t count;    /* since load */
        uint64_t logged;   /* count when last logged */
        int64_t logged_ms; /* relay_mono_ms() then; 0: never */
};

struct unmapped_type {
        char *type;
        struct notice n;
};

/* What applying a connection counts. Kept apart from the connection so that
 * a const relay_connection_t (the rules, never changed after load) can still
 * be counted on: the struct points here, and the pointee is not const. */
struct conn_stats {
        struct notice fallback; /* person absent: keyed by identity */
        /* Unassociated event types, in the order first seen. */
        struct unmapped_type *types;
        size_t ntypes;
        struct notice other; /* types past the cap, or too long to keep */
        int other_used;
        relay_buf_t scratch;   /* text of the record in hand */
        /* the identities found in the record in hand, by identity rule
         * (NULL: absent), for the envelope's identities map */
        const char **idv;
        size_t *idn;
        relay_out_index_t out; /* the output's fields, by slot */
};

struct relay_connection {
        char *file;
        int id_line; /* where id is set, for the duplicate-id error */
        char *id, *tenant, *source, *destination;
        /* their lengths, and of the texts below, settled at load: a
         * record measures nothing it was configured with */
        size_t id_len, tenant_len, source_len, destination_len;
        int development;
        char *event_field;
        char *person;             /* path of the person field, or NULL */
        int unmapped_dead_letter; /* unmapped = "dead_letter" */
        struct identity_rule *ids;
        size_t nids;
        struct value_spec *fields;
        size_t nfields;
        int fields_unique; /* no two fields share a name (see omap_put) */
        struct event_rule *events;
        size_t nevents;
        struct conn_stats *stats; /* owned; see struct conn_stats */
        /* the input schema's shape (the mapping's) and the paths every
         * record needs, compiled against it */
        const relay_shape_t *shape;
        relay_path_t p_tenant, p_source, p_event, p_person, p_event_id,
            p_occurred;
};

struct relay_mapping {
        relay_connection_t **conns;
        size_t n;
        relay_shape_t *shape;
        char **fields; /* the input's top-level fields any connection reads,
                        * NULL-terminated */
        size_t nfields;
};

/* How long a notice stays quiet after it was logged (default 60 s). Tests
 * set 0 to see every occurrence logged. */
extern int64_t relay_mapping_notice_interval_ms;

/* stats.c: count an event type no rule of c names (and log it when due,
 * if c skips such events), and a record keyed by its identity because it
 * lacks c's person field. */
void relay_connection_count_unmapped(const relay_connection_t *c,
                                     const char *type);
void relay_connection_count_fallback(const relay_connection_t *c);
void relay_conn_stats_free(struct conn_stats *s);

#endif
