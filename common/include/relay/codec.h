/*
 * The compiled Avro codec: the hot path's decoder and encoder.
 *
 * A shape is a reader (or output) schema laid out as a flat array of
 * slots, compiled once: each record field, at any depth, has a fixed slot
 * index; a union takes one slot (its branch, and the value when the branch
 * is not a record) plus the slots of its record branches; a map or an
 * array takes one slot (how many elements, and where their blocks start),
 * its elements living in blocks of slots appended after the record's own
 * (a map's block: the key, then the value's slots).
 *
 * A plan decodes Avro binary written with one writer schema straight into
 * a shape's slots: strings and bytes as pointer + length into the input
 * (no copy: the slots are valid while the input is), numbers as values,
 * fields of a union that took another branch left unset. Schema
 * resolution (promotions, writer fields the reader lacks, new optional
 * fields, appended enum symbols) is decided when the plan is compiled,
 * not per record; top-level fields nobody asked for are skipped. Every
 * length, count and index is checked against the bytes before it is
 * used, so a plan needs no pre-scan.
 *
 * The encoder writes a shape's slots as Avro binary, byte for byte what
 * avro-c writes for the same value.
 *
 * Nothing here allocates per record once the slots and buffers have grown
 * to the size of the records seen. avro-c stays the reference: it parses
 * the schemas, and tests and the differential fuzz target hold every
 * answer of this codec against avro-c's.
 */
#ifndef RELAY_CODEC_H
#define RELAY_CODEC_H

#include "relay/common.h"

#include <avro.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* What a slot holds: RELAY_SLOT_UNSET, or the avro_type_t of the value
 * (AVRO_NULL for a union's null branch, AVRO_RECORD for a union holding a
 * record branch, AVRO_MAP / AVRO_ARRAY for a collection). */
#define RELAY_SLOT_UNSET 0xff

typedef struct relay_slot {
        uint8_t type;
        uint8_t branch; /* a union's branch, in its schema's order */
        uint32_t n;     /* bytes of a string, bytes or fixed; elements */
        union {
                int64_t l;     /* boolean, int, long, enum index */
                double d;      /* float, double */
                const char *p; /* string, bytes, fixed */
                size_t first;  /* a collection's first element block */
        } v;
} relay_slot_t;

typedef struct relay_shape relay_shape_t;

/* A map key, for the check that no key is given twice. */
struct relay_key {
        const char *p;
        size_t n;
};

/* A record's slots: [0, top) its own, then the element blocks of its
 * maps and arrays. Addressed by index, since the array may move as it
 * grows. Text made for the record (relay_slots_text) lives in chunks
 * that never move, until the next reset. */
typedef struct relay_slots {
        const relay_shape_t *shape;
        relay_slot_t *s;
        size_t n, cap, top;
        char **chunks;
        size_t *chunk_size;
        size_t nchunks, chunk, used;
        struct relay_key *keys; /* scratch of the decoder */
        size_t keys_cap;
} relay_slots_t;

/* Compile a shape of schema (borrowed for the call; the shape keeps a
 * reference). NULL + errstr for a schema it cannot lay out (recursive
 * types, nesting deeper than 32). */
relay_shape_t *relay_shape_new(avro_schema_t schema, char *errstr,
                               size_t errstr_size);
void relay_shape_destroy(relay_shape_t *sh);
avro_schema_t relay_shape_schema(const relay_shape_t *sh);

/* The slot of a top-level field of a record shape, or -1. */
int relay_shape_field(const relay_shape_t *sh, const char *name);

void relay_slots_init(relay_slots_t *s, const relay_shape_t *sh);
/* Unset every slot of the record, drop its element blocks and text. */
void relay_slots_reset(relay_slots_t *s);
void relay_slots_free(relay_slots_t *s);
/* Make room for need slots in all (the array may move). */
void relay_slots_grow(relay_slots_t *s, size_t need);

/* n new element blocks of size slots each, unset; their first index.
 * Inline: the decoder and the mapping append a block or two per value
 * of a map, where memset's call cost more than the slots. */
static inline size_t relay_slots_append(relay_slots_t *s, size_t size,
                                        size_t n)
{
        size_t first = s->n, need = s->n + size * n;
        if (need > s->cap)
                relay_slots_grow(s, need);
        for (size_t i = first; i < need; i++)
                memset(&s->s[i], 0xff, sizeof(s->s[i]));
        s->n = need;
        return first;
}
/* n bytes of text that stay put until the next reset. */
char *relay_slots_text(relay_slots_t *s, size_t n);

/* ---- decoding ---------------------------------------------------------- */

typedef struct relay_plan relay_plan_t;

/* Compile the decoding of writer schema ws (wire id writer_id, for the
 * reasons given) into shape rs. enum_defaults (may be NULL): the reader's
 * enum defaults, enum name -> default symbol, for symbols appended to a
 * writer enum. wanted (may be NULL: all): the top-level fields to read,
 * NULL-terminated; the others are skipped (left unset). NULL + errstr
 * when the writer cannot be read as the reader: a reader field the writer
 * lacks that is not optional (a union whose first branch is null), types
 * that do not resolve, an enum whose symbols changed order (errstr says
 * which, and where). */
relay_plan_t *relay_plan_new(avro_schema_t ws, int32_t writer_id,
                             const relay_shape_t *rs,
                             const json_t *enum_defaults,
                             const char *const *wanted, char *errstr,
                             size_t errstr_size);
void relay_plan_destroy(relay_plan_t *pl);

/* Decode one Avro body (no frame) into out (reset first; its shape must
 * be the plan's). 0, or -1 with the reason and the body byte it was
 * found at: truncated, a length, count or index out of range, bytes left
 * over, a writer union branch or enum symbol the reader has no place
 * for, a boolean byte other than 0 or 1, a map key with a NUL byte or
 * given twice (as the pre-scan refuses them for avro-c). */
int relay_plan_decode(const relay_plan_t *pl, const void *body, size_t len,
                      relay_slots_t *out, char *errstr, size_t errstr_size);

/* Walk an Avro body of writer schema ws with every check a plan makes
 * (for avro-c's path, whose reader trusts the bytes): 0 when it is one
 * value exactly, 1 when bytes are left after it, -1 when it is bad or
 * truncated; *at is the body byte where the walk stopped. */
int relay_avro_skip_body(avro_schema_t ws, const void *body, size_t len,
                         size_t *at);

/* 1 when two of keys[0..n) are equal (they are sorted). A map whose key
 * is given twice is refused by both decoding paths: no writer writes one,
 * and avro-c would quietly merge or replace values. */
int relay_avro_keys_repeat(struct relay_key *keys, size_t n);

/* ---- encoding ---------------------------------------------------------- */

/* Append the Avro binary of s (of shape sh) to b. 0, or -1 naming the
 * field: unset, holding a type its schema does not have, an enum index
 * or fixed size out of range. */
int relay_shape_encode(const relay_shape_t *sh, const relay_slots_t *s,
                       relay_buf_t *b, char *errstr, size_t errstr_size);

/* ---- paths ------------------------------------------------------------- */

#define RELAY_PATH_MAX_STEPS 16

/* A dotted path ("identities.email", "lookalike.similarity") compiled
 * against a shape: through records by slot, unions into their record
 * branch, maps by key (the rest of the path, dots included, when the
 * map's values are not records or maps). */
typedef struct relay_path {
        struct relay_path_step {
                uint8_t kind; /* field, branch, key */
                uint8_t branch;
                uint32_t slot;  /* within the current block */
                uint32_t esize; /* a map's element block */
                const char *key;
                size_t key_len;
        } step[RELAY_PATH_MAX_STEPS];
        int nsteps;
        int leaf;           /* the node of the value: for its enum symbols */
        uint32_t leaf_slot; /* its slot, in the block the steps end in */
        char *owned;        /* the keys' text */
} relay_path_t;

/* Compile path against sh: 0, or -1 when the schema has no such path. */
int relay_path_compile(const relay_shape_t *sh, const char *path,
                       relay_path_t *out);
void relay_path_free(relay_path_t *p);

/* What a path finds in a record. */
enum relay_found { RELAY_FOUND, RELAY_FOUND_ABSENT, RELAY_FOUND_NULL };

/* The slot at path in s, or NULL (*st says whether absent or null).
 * Inline: a mapping asks a dozen paths a record, most of them a
 * top-level field or one map key, where a call cost more than the walk;
 * the leaf's slot is in the path, not looked up in the shape. */
static inline const relay_slot_t *relay_path_get(const relay_path_t *p,
                                                 const relay_slots_t *s,
                                                 enum relay_found *st)
{
        size_t base = 0;
        for (int i = 0; i < p->nsteps; i++) {
                const struct relay_path_step *step = &p->step[i];
                const relay_slot_t *v = &s->s[base + step->slot];
                if (step->kind == 1) {
                        if (v->type == RELAY_SLOT_UNSET ||
                            v->branch != step->branch) {
                                *st = RELAY_FOUND_ABSENT;
                                return NULL;
                        }
                        continue;
                }
                if (v->type != AVRO_MAP) {
                        *st = RELAY_FOUND_ABSENT;
                        return NULL;
                }
                const relay_slot_t *key = &s->s[v->v.first];
                uint32_t k = 0;
                /* Length and first byte here, the rest (nearly always
                 * the key sought) by memcmp. */
                for (; k < v->n; k++, key += step->esize)
                        if (key->n == step->key_len &&
                            (!key->n || (key->v.p[0] == step->key[0] &&
                                         !memcmp(key->v.p, step->key,
                                                 key->n))))
                                break;
                if (k == v->n) {
                        *st = RELAY_FOUND_ABSENT;
                        return NULL;
                }
                base = v->v.first + (size_t)k * step->esize;
        }
        const relay_slot_t *v = &s->s[base + p->leaf_slot];
        if (v->type == RELAY_SLOT_UNSET) {
                *st = RELAY_FOUND_ABSENT;
                return NULL;
        }
        if (v->type == AVRO_NULL) {
                *st = RELAY_FOUND_NULL;
                return NULL;
        }
        *st = RELAY_FOUND;
        return v;
}

/* What relay_path_get answers, by the plain walk (the leaf's slot read
 * from the shape): the reference the tests hold the inline one to. */
const relay_slot_t *relay_path_walk(const relay_path_t *p,
                                    const relay_slots_t *s,
                                    enum relay_found *st);

/* Append the text of a scalar slot (string, enum, number, boolean) found
 * at path p, as relay_avro_to_text writes it. 0, or -1 for null, bytes,
 * records and collections. */
int relay_slot_text(const relay_shape_t *sh, const relay_path_t *p,
                    const relay_slot_t *v, relay_buf_t *b);

/* The same for a slot that is not an enum (its symbols are the
 * schema's): -1 for enums too. */
int relay_slot_scalar_text(const relay_slot_t *v, relay_buf_t *b);

/* Append a scalar slot as a JSON value: a string quoted and escaped, a
 * number or boolean as relay_slot_scalar_text writes it; null for a
 * NaN or infinite double (JSON has neither), null, and anything else. */
void relay_slot_json(const relay_slot_t *v, relay_buf_t *b);

/* A union node's branch holding type t (the first), or -1; node is what
 * relay_shape_map_values gives, or a top-level field's node. */
int relay_shape_union_branch(const relay_shape_t *sh, int node, avro_type_t t);
/* The node of a top-level field, and of a map's or array's values. */
int relay_shape_field_node(const relay_shape_t *sh, const char *name);
int relay_shape_items(const relay_shape_t *sh, int node);
/* The node of field name of record node, or -1. */
int relay_shape_record_field(const relay_shape_t *sh, int node,
                             const char *name);
/* The node of the branch of union node holding type t, or -1. */
int relay_shape_union_node(const relay_shape_t *sh, int node, avro_type_t t);
/* A node's slot in its block (the record's own slots, or an element
 * block), and a collection node's element block size in slots. */
int relay_shape_node_slot(const relay_shape_t *sh, int node);
size_t relay_shape_esize(const relay_shape_t *sh, int node);

#endif
