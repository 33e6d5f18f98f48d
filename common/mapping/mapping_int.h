/*
 * Private to the mapping engine (common/mapping/): the parsed form of a
 * connection, shared by load.c, which builds it from a connection file and
 * checks it against the input schema and the destination's vocabulary, and
 * apply.c, which walks it for every record.
 *
 * Everything a record needs is resolved at load (paths normalised, templates
 * split, identity types checked), so applying a connection allocates nothing
 * but scratch text.
 */
#ifndef RELAY_MAPPING_INT_H
#define RELAY_MAPPING_INT_H

#include "relay/mapping.h"

enum conv { CONV_KEEP, CONV_STRING, CONV_NUMBER, CONV_BOOL };

struct tmpl_part {
        int is_field; /* 1: path into the record; 0: literal text */
        char *text;
};

/* A destination value: a template (literal when it has no {field}) or a
 * typed copy of one field, with an optional default and conversion. */
struct value_spec {
        char *name; /* destination attribute name */
        struct tmpl_part *parts;
        size_t nparts;
        char *from; /* typed copy when set */
        char *defval;
        enum conv conv;
        int required;
        int line;
};

struct event_rule {
        char **on;
        size_t non;
        int drop;
        char *name;
        char *category;
        struct value_spec *attrs;
        size_t nattrs;
        int line;
};

struct identity_rule {
        char *from;
        char *as;
};

struct relay_connection {
        char *file;
        int id_line; /* where id is set, for the duplicate-id error */
        char *id, *tenant, *source, *destination;
        int development;
        char *event_field;
        struct identity_rule *ids;
        size_t nids;
        struct value_spec *fields;
        size_t nfields;
        struct event_rule *events;
        size_t nevents;
};

struct relay_mapping {
        relay_connection_t **conns;
        size_t n;
};

#endif
