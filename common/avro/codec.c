/*
 * The compiled codec (see relay/codec.h): shapes, plans, the encoder and
 * compiled paths.
 *
 * A shape is an array of nodes, one per schema node reachable from the
 * root (named types reached twice are laid out twice, as their slots
 * differ), children of a node next to each other. A plan is an array of
 * ops, one per writer schema node, each naming the slot it fills; running
 * it is a walk of the writer's bytes in order, with the same bounds the
 * pre-scan (scan.c) applies and avro-c's own limits on varints, so that
 * both paths accept and refuse the same records.
 */
#include "avro_int.h"
#include "relay/codec.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE_MAX_DEPTH 32

struct node {
        avro_type_t type;
        avro_schema_t schema; /* links followed; borrowed from the root */
        const char *name;     /* as a record field (owned by the schema) */
        uint32_t slot;        /* in its block */
        uint32_t nslots;      /* of the subtree, in the block */
        uint32_t child, nchild;
        uint32_t esize; /* a collection's element block */
        int null_branch;
        /* what the encoder needs, settled at layout so that a record
         * costs no schema call: the field its errors name (the nearest
         * named node, this one or above), an enum's symbols or a
         * fixed's size, and a record's leaves */
        const char *field;
        int64_t size;
        uint32_t leaf, nleaf;
};

struct relay_shape {
        avro_schema_t schema;
        struct node *nodes;
        size_t nnodes;
        uint32_t top;
        /* Each record node's leaves, in field order: the nodes that are
         * not records, reached through nested record fields (never
         * through a union), which share the record's block. The encoder
         * walks a record as one loop over them. */
        uint32_t *leaves;
        size_t nleaves;
};

static avro_schema_t deref(avro_schema_t s)
{
        while (s && avro_typeof(s) == AVRO_LINK)
                s = avro_schema_link_target(s);
        return s;
}

/* ---- shapes ------------------------------------------------------------ */

static size_t nodes_reserve(relay_shape_t *sh, size_t n)
{
        size_t first = sh->nnodes;
        sh->nodes = relay_realloc(sh->nodes, (first + n) * sizeof(*sh->nodes));
        memset(sh->nodes + first, 0, n * sizeof(*sh->nodes));
        sh->nnodes += n;
        return first;
}

/* Lay out schema s as node idx at slot; field is what the errors of an
 * unnamed node name. 0, or -1 with errstr. */
static int layout(relay_shape_t *sh, avro_schema_t s, size_t idx, uint32_t slot,
                  const char *field, int depth, char *errstr,
                  size_t errstr_size)
{
        s = deref(s);
        if (!s || depth > SHAPE_MAX_DEPTH) {
                relay_seterr(errstr, errstr_size,
                             "schema nests deeper than %d levels (recursive "
                             "types are not supported)",
                             SHAPE_MAX_DEPTH);
                return -1;
        }
        avro_type_t t = avro_typeof(s);
        sh->nodes[idx].type = t;
        sh->nodes[idx].schema = s;
        sh->nodes[idx].slot = slot;
        sh->nodes[idx].null_branch = -1;
        sh->nodes[idx].nslots = 1;
        if (sh->nodes[idx].name)
                field = sh->nodes[idx].name;
        sh->nodes[idx].field = field;
        switch (t) {
        case AVRO_RECORD: {
                size_t nf = avro_schema_record_size(s);
                size_t first = nodes_reserve(sh, nf);
                uint32_t cur = slot;
                for (size_t i = 0; i < nf; i++) {
                        sh->nodes[first + i].name =
                            avro_schema_record_field_name(s, (int)i);
                        if (layout(sh,
                                   avro_schema_record_field_get_by_index(
                                       s, (int)i),
                                   first + i, cur, field, depth + 1, errstr,
                                   errstr_size))
                                return -1;
                        cur += sh->nodes[first + i].nslots;
                }
                sh->nodes[idx].child = (uint32_t)first;
                sh->nodes[idx].nchild = (uint32_t)nf;
                sh->nodes[idx].nslots = cur - slot;
                return 0;
        }
        case AVRO_UNION: {
                size_t nb = avro_schema_union_size(s);
                size_t first = nodes_reserve(sh, nb);
                uint32_t cur = slot + 1;
                for (size_t i = 0; i < nb; i++) {
                        avro_schema_t b =
                            deref(avro_schema_union_branch(s, (int)i));
                        int rec = b && avro_typeof(b) == AVRO_RECORD;
                        if (layout(sh, b, first + i, rec ? cur : slot, field,
                                   depth + 1, errstr, errstr_size))
                                return -1;
                        if (rec)
                                cur += sh->nodes[first + i].nslots;
                        else
                                sh->nodes[first + i].nslots = 0;
                        if (b && avro_typeof(b) == AVRO_NULL &&
                            sh->nodes[idx].null_branch < 0)
                                sh->nodes[idx].null_branch = (int)i;
                }
                sh->nodes[idx].child = (uint32_t)first;
                sh->nodes[idx].nchild = (uint32_t)nb;
                sh->nodes[idx].nslots = cur - slot;
                return 0;
        }
        case AVRO_MAP:
        case AVRO_ARRAY: {
                int map = t == AVRO_MAP;
                size_t first = nodes_reserve(sh, 1);
                if (layout(sh,
                           map ? avro_schema_map_values(s)
                               : avro_schema_array_items(s),
                           first, map ? 1 : 0, field, depth + 1, errstr,
                           errstr_size))
                        return -1;
                sh->nodes[idx].child = (uint32_t)first;
                sh->nodes[idx].nchild = 1;
                sh->nodes[idx].esize =
                    (map ? 1 : 0) +
                    (sh->nodes[first].nslots ? sh->nodes[first].nslots : 1);
                return 0;
        }
        case AVRO_NULL:
        case AVRO_BOOLEAN:
        case AVRO_INT32:
        case AVRO_INT64:
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
        case AVRO_STRING:
        case AVRO_BYTES:
                return 0;
        case AVRO_FIXED:
                sh->nodes[idx].size = avro_schema_fixed_size(s);
                return 0;
        case AVRO_ENUM:
                sh->nodes[idx].size = avro_schema_enum_number_of_symbols(s);
                return 0;
        default:
                relay_seterr(errstr, errstr_size, "unsupported schema type %d",
                             (int)t);
                return -1;
        }
}

/* Append the leaves of record node rec (see struct relay_shape). */
static void leaves_of(relay_shape_t *sh, uint32_t rec)
{
        const struct node *r = &sh->nodes[rec];
        for (uint32_t i = 0; i < r->nchild; i++) {
                uint32_t c = r->child + i;
                if (sh->nodes[c].type == AVRO_RECORD) {
                        leaves_of(sh, c);
                        continue;
                }
                sh->leaves = relay_realloc(sh->leaves, (sh->nleaves + 1) *
                                                           sizeof(*sh->leaves));
                sh->leaves[sh->nleaves++] = c;
        }
}

relay_shape_t *relay_shape_new(avro_schema_t schema, char *errstr,
                               size_t errstr_size)
{
        relay_shape_t *sh = relay_calloc(1, sizeof(*sh));
        sh->schema = avro_schema_incref(schema);
        nodes_reserve(sh, 1);
        if (layout(sh, schema, 0, 0, "(root)", 0, errstr, errstr_size)) {
                relay_shape_destroy(sh);
                return NULL;
        }
        sh->top = sh->nodes[0].nslots;
        for (size_t i = 0; i < sh->nnodes; i++) {
                if (sh->nodes[i].type != AVRO_RECORD)
                        continue;
                sh->nodes[i].leaf = (uint32_t)sh->nleaves;
                leaves_of(sh, (uint32_t)i);
                sh->nodes[i].nleaf =
                    (uint32_t)(sh->nleaves - sh->nodes[i].leaf);
        }
        return sh;
}

void relay_shape_destroy(relay_shape_t *sh)
{
        if (!sh)
                return;
        avro_schema_decref(sh->schema);
        free(sh->nodes);
        free(sh->leaves);
        free(sh);
}

avro_schema_t relay_shape_schema(const relay_shape_t *sh)
{
        return sh->schema;
}

int relay_shape_field_node(const relay_shape_t *sh, const char *name)
{
        return relay_shape_record_field(sh, 0, name);
}

int relay_shape_field(const relay_shape_t *sh, const char *name)
{
        int n = relay_shape_field_node(sh, name);
        return n < 0 ? -1 : (int)sh->nodes[n].slot;
}

int relay_shape_items(const relay_shape_t *sh, int node)
{
        const struct node *n = &sh->nodes[node];
        return n->type == AVRO_MAP || n->type == AVRO_ARRAY ? (int)n->child
                                                            : -1;
}

int relay_shape_record_field(const relay_shape_t *sh, int node,
                             const char *name)
{
        const struct node *r = &sh->nodes[node];
        if (r->type != AVRO_RECORD)
                return -1;
        for (uint32_t i = 0; i < r->nchild; i++)
                if (!strcmp(sh->nodes[r->child + i].name, name))
                        return (int)(r->child + i);
        return -1;
}

int relay_shape_union_node(const relay_shape_t *sh, int node, avro_type_t t)
{
        int b = relay_shape_union_branch(sh, node, t);
        return b < 0 ? -1 : (int)sh->nodes[node].child + b;
}

int relay_shape_node_slot(const relay_shape_t *sh, int node)
{
        return (int)sh->nodes[node].slot;
}

size_t relay_shape_esize(const relay_shape_t *sh, int node)
{
        return sh->nodes[node].esize;
}

int relay_shape_union_branch(const relay_shape_t *sh, int node, avro_type_t t)
{
        const struct node *n = &sh->nodes[node];
        if (n->type != AVRO_UNION)
                return -1;
        for (uint32_t i = 0; i < n->nchild; i++)
                if (sh->nodes[n->child + i].type == t)
                        return (int)i;
        return -1;
}

/* ---- slots ------------------------------------------------------------- */

void relay_slots_init(relay_slots_t *s, const relay_shape_t *sh)
{
        memset(s, 0, sizeof(*s));
        s->shape = sh;
        s->top = sh->top;
        s->cap = s->top > 16 ? s->top * 2 : 32;
        s->s = relay_malloc(s->cap * sizeof(*s->s));
        relay_slots_reset(s);
}

void relay_slots_reset(relay_slots_t *s)
{
        memset(s->s, 0xff, s->top * sizeof(*s->s));
        s->n = s->top;
        s->chunk = 0;
        s->used = 0;
}

void relay_slots_free(relay_slots_t *s)
{
        for (size_t i = 0; i < s->nchunks; i++)
                free(s->chunks[i]);
        free(s->chunks);
        free(s->chunk_size);
        free(s->keys);
        free(s->s);
        memset(s, 0, sizeof(*s));
}

void relay_slots_grow(relay_slots_t *s, size_t need)
{
        size_t cap = s->cap;
        while (cap < need)
                cap *= 2;
        s->s = relay_realloc(s->s, cap * sizeof(*s->s));
        s->cap = cap;
}

char *relay_slots_text(relay_slots_t *s, size_t n)
{
        if (s->nchunks && s->used + n <= s->chunk_size[s->chunk]) {
                char *p = s->chunks[s->chunk] + s->used;
                s->used += n;
                return p;
        }
        /* The next chunk, replaced by a larger one when too small: after
         * the first records, no chunk is ever allocated again. */
        size_t next = s->nchunks ? s->chunk + 1 : 0;
        if (next == s->nchunks) {
                s->chunks =
                    relay_realloc(s->chunks, (next + 1) * sizeof(*s->chunks));
                s->chunk_size = relay_realloc(
                    s->chunk_size, (next + 1) * sizeof(*s->chunk_size));
                s->chunks[next] = NULL;
                s->chunk_size[next] = 0;
                s->nchunks++;
        }
        if (s->chunk_size[next] < n) {
                size_t size = n > 4096 ? n * 2 : 4096;
                free(s->chunks[next]);
                s->chunks[next] = relay_malloc(size);
                s->chunk_size[next] = size;
        }
        s->chunk = next;
        s->used = n;
        return s->chunks[next];
}

/* ---- plans ------------------------------------------------------------- */

enum op_kind {
        OP_SKIP,    /* read past a writer value nobody wants */
        OP_FAIL,    /* a writer union branch the reader cannot take */
        OP_SETNULL, /* a reader field the writer lacks: null */
        OP_NULL,
        OP_BOOL,
        OP_INT,
        OP_LONG,
        OP_FLOAT,
        OP_DOUBLE,
        OP_BYTES, /* string or bytes */
        OP_FIXED,
        OP_ENUM,
        OP_RECORD,
        OP_UNION,
        OP_MAP,
        OP_ARRAY
};

struct op {
        uint8_t kind;
        uint8_t rtype;   /* the type stored (a promotion's target) */
        uint8_t ubranch; /* with uslot: the reader union's branch */
        int32_t rslot;   /* the slot filled, in its block */
        int32_t uslot;   /* the reader union around it, or -1 */
        uint32_t child, nchild;
        uint32_t esize;
        avro_schema_t ws; /* the writer's node */
        int *symbols;     /* enum: writer index -> reader index, -1 none */
        int nsymbols;
        char *why; /* OP_FAIL, and enum symbols without a place */
};

struct relay_plan {
        int32_t writer_id;
        avro_schema_t ws;
        const relay_shape_t *rs;
        struct op *ops;
        size_t nops;
};

static size_t ops_reserve(relay_plan_t *pl, size_t n)
{
        size_t first = pl->nops;
        pl->ops = relay_realloc(pl->ops, (first + n) * sizeof(*pl->ops));
        memset(pl->ops + first, 0, n * sizeof(*pl->ops));
        for (size_t i = 0; i < n; i++)
                pl->ops[first + i].uslot = -1;
        pl->nops += n;
        return first;
}

static const char *type_name(avro_schema_t s)
{
        switch (avro_typeof(s)) {
        case AVRO_RECORD:
        case AVRO_ENUM:
        case AVRO_FIXED:
                return avro_schema_name(s);
        default:
                return avro_schema_type_name(s);
        }
}

/* Whether a writer value of type w can be read as reader type r
 * (the same, or one of Avro's promotions), named types by name. */
static int fits(avro_schema_t w, avro_schema_t r, int exact)
{
        avro_type_t wt = avro_typeof(w), rt = avro_typeof(r);
        if (wt == rt) {
                if (wt == AVRO_RECORD || wt == AVRO_ENUM || wt == AVRO_FIXED)
                        return !strcmp(avro_schema_name(w),
                                       avro_schema_name(r));
                return 1;
        }
        if (exact)
                return 0;
        switch (wt) {
        case AVRO_INT32:
                return rt == AVRO_INT64 || rt == AVRO_FLOAT ||
                       rt == AVRO_DOUBLE;
        case AVRO_INT64:
                return rt == AVRO_FLOAT || rt == AVRO_DOUBLE;
        case AVRO_FLOAT:
                return rt == AVRO_DOUBLE;
        case AVRO_STRING:
                return rt == AVRO_BYTES;
        case AVRO_BYTES:
                return rt == AVRO_STRING;
        default:
                return 0;
        }
}

static int compile(relay_plan_t *pl, avro_schema_t ws, int rnode, size_t at,
                   const json_t *enum_defaults, const char *const *wanted,
                   int depth, char *errstr, size_t errstr_size);

static int compile_record(relay_plan_t *pl, avro_schema_t ws, int rnode,
                          size_t at, const json_t *enum_defaults,
                          const char *const *wanted, int depth, char *errstr,
                          size_t errstr_size)
{
        const struct node *rn = &pl->rs->nodes[rnode];
        size_t nw = avro_schema_record_size(ws);
        /* Writer fields first, then the reader's null defaults. */
        size_t nmissing = 0;
        for (uint32_t i = 0; i < rn->nchild; i++)
                if (avro_schema_record_field_get_index(
                        ws, pl->rs->nodes[rn->child + i].name) < 0)
                        nmissing++;
        size_t first = ops_reserve(pl, nw + nmissing);
        pl->ops[at].kind = OP_RECORD;
        pl->ops[at].child = (uint32_t)first;
        pl->ops[at].nchild = (uint32_t)(nw + nmissing);
        for (size_t i = 0; i < nw; i++) {
                const char *name = avro_schema_record_field_name(ws, (int)i);
                int target = -1;
                for (uint32_t k = 0; k < rn->nchild && target < 0; k++)
                        if (!strcmp(pl->rs->nodes[rn->child + k].name, name))
                                target = (int)(rn->child + k);
                if (target >= 0 && wanted && depth == 0) {
                        int want = 0;
                        for (size_t k = 0; wanted[k] && !want; k++)
                                want = !strcmp(wanted[k], name);
                        if (!want)
                                target = -1;
                }
                if (compile(pl,
                            avro_schema_record_field_get_by_index(ws, (int)i),
                            target, first + i, enum_defaults, wanted, depth + 1,
                            errstr, errstr_size)) {
                        char why[512];
                        snprintf(why, sizeof(why), "%s", errstr);
                        relay_seterr(errstr, errstr_size, "field %s: %s", name,
                                     why);
                        return -1;
                }
                rn = &pl->rs->nodes[rnode];
        }
        size_t k = first + nw;
        for (uint32_t i = 0; i < rn->nchild; i++) {
                const struct node *f = &pl->rs->nodes[rn->child + i];
                if (avro_schema_record_field_get_index(ws, f->name) >= 0)
                        continue;
                /* The usual evolution: a new optional field, whose
                 * default can only be null. */
                if (f->type != AVRO_UNION || f->null_branch != 0) {
                        relay_seterr(errstr, errstr_size,
                                     "reader field %s is missing from "
                                     "writer schema id %d and is not "
                                     "optional (a union with null first)",
                                     f->name, (int)pl->writer_id);
                        return -1;
                }
                pl->ops[k].kind = OP_SETNULL;
                pl->ops[k].rslot = (int32_t)f->slot;
                k++;
        }
        return 0;
}

static int compile_enum(relay_plan_t *pl, avro_schema_t ws, avro_schema_t rs,
                        struct op *op, const json_t *enum_defaults,
                        char *errstr, size_t errstr_size)
{
        int nw = avro_schema_enum_number_of_symbols(ws);
        int nr = avro_schema_enum_number_of_symbols(rs);
        const char *def = json_string_value(
            json_object_get(enum_defaults, avro_schema_name(rs)));
        int d = def ? avro_schema_enum_get_by_name(rs, def) : -1;
        op->symbols = relay_calloc(nw ? (size_t)nw : 1, sizeof(int));
        op->nsymbols = nw;
        for (int i = 0; i < nw; i++) {
                const char *sym = avro_schema_enum_get(ws, i);
                if (i < nr && strcmp(sym, avro_schema_enum_get(rs, i))) {
                        relay_seterr(errstr, errstr_size,
                                     "writer schema id %d changes the order "
                                     "of enum %s's symbols (%s where the "
                                     "reader has %s): only appending symbols "
                                     "can be resolved",
                                     (int)pl->writer_id, avro_schema_name(rs),
                                     sym, avro_schema_enum_get(rs, i));
                        return -1;
                }
                op->symbols[i] = i < nr ? i : d;
        }
        return 0;
}

static int compile(relay_plan_t *pl, avro_schema_t ws, int rnode, size_t at,
                   const json_t *enum_defaults, const char *const *wanted,
                   int depth, char *errstr, size_t errstr_size)
{
        ws = deref(ws);
        pl->ops[at].ws = ws;
        if (depth > SHAPE_MAX_DEPTH) {
                relay_seterr(errstr, errstr_size,
                             "writer schema nests deeper than %d levels",
                             SHAPE_MAX_DEPTH);
                return -1;
        }
        if (rnode < 0) {
                pl->ops[at].kind = OP_SKIP;
                return 0;
        }
        avro_type_t wt = avro_typeof(ws);
        if (wt == AVRO_UNION) {
                size_t nb = avro_schema_union_size(ws);
                size_t first = ops_reserve(pl, nb);
                pl->ops[at].kind = OP_UNION;
                pl->ops[at].child = (uint32_t)first;
                pl->ops[at].nchild = (uint32_t)nb;
                for (size_t i = 0; i < nb; i++) {
                        char why[512];
                        if (!compile(pl, avro_schema_union_branch(ws, (int)i),
                                     rnode, first + i, enum_defaults, NULL,
                                     depth + 1, why, sizeof(why)))
                                continue;
                        /* Refused only if a record takes it. */
                        pl->ops[first + i].kind = OP_FAIL;
                        pl->ops[first + i].why = relay_strdup(why);
                }
                return 0;
        }
        const struct node *rn = &pl->rs->nodes[rnode];
        if (rn->type == AVRO_UNION) {
                int b = -1;
                for (int exact = 1; exact >= 0 && b < 0; exact--)
                        for (uint32_t i = 0; i < rn->nchild && b < 0; i++)
                                if (fits(ws,
                                         pl->rs->nodes[rn->child + i].schema,
                                         exact))
                                        b = (int)i;
                if (b < 0) {
                        relay_seterr(errstr, errstr_size,
                                     "writer type %s is not in the reader's "
                                     "union",
                                     type_name(ws));
                        return -1;
                }
                int32_t uslot = (int32_t)rn->slot;
                if (compile(pl, ws, (int)(rn->child + (uint32_t)b), at,
                            enum_defaults, wanted, depth + 1, errstr,
                            errstr_size))
                        return -1;
                pl->ops[at].uslot = uslot;
                pl->ops[at].ubranch = (uint8_t)b;
                return 0;
        }
        avro_schema_t rs = rn->schema;
        if (!fits(ws, rs, 0)) {
                relay_seterr(errstr, errstr_size,
                             "writer type %s cannot be read as %s",
                             type_name(ws), type_name(rs));
                return -1;
        }
        struct op *op = &pl->ops[at];
        op->rtype = (uint8_t)rn->type;
        op->rslot = (int32_t)rn->slot;
        switch (wt) {
        case AVRO_NULL:
                op->kind = OP_NULL;
                return 0;
        case AVRO_BOOLEAN:
                op->kind = OP_BOOL;
                return 0;
        case AVRO_INT32:
                op->kind = OP_INT;
                return 0;
        case AVRO_INT64:
                op->kind = OP_LONG;
                return 0;
        case AVRO_FLOAT:
                op->kind = OP_FLOAT;
                return 0;
        case AVRO_DOUBLE:
                op->kind = OP_DOUBLE;
                return 0;
        case AVRO_STRING:
        case AVRO_BYTES:
                op->kind = OP_BYTES;
                return 0;
        case AVRO_FIXED:
                if (avro_schema_fixed_size(ws) != avro_schema_fixed_size(rs)) {
                        relay_seterr(errstr, errstr_size,
                                     "fixed %s has %lld bytes in the writer, "
                                     "%lld in the reader",
                                     avro_schema_name(ws),
                                     (long long)avro_schema_fixed_size(ws),
                                     (long long)avro_schema_fixed_size(rs));
                        return -1;
                }
                op->kind = OP_FIXED;
                return 0;
        case AVRO_ENUM:
                op->kind = OP_ENUM;
                return compile_enum(pl, ws, rs, op, enum_defaults, errstr,
                                    errstr_size);
        case AVRO_RECORD:
                return compile_record(pl, ws, rnode, at, enum_defaults, wanted,
                                      depth, errstr, errstr_size);
        case AVRO_MAP:
        case AVRO_ARRAY: {
                uint32_t item = rn->child, esize = rn->esize;
                size_t first = ops_reserve(pl, 1);
                pl->ops[at].kind = wt == AVRO_MAP ? OP_MAP : OP_ARRAY;
                pl->ops[at].child = (uint32_t)first;
                pl->ops[at].nchild = 1;
                pl->ops[at].esize = esize;
                return compile(pl,
                               wt == AVRO_MAP ? avro_schema_map_values(ws)
                                              : avro_schema_array_items(ws),
                               (int)item, first, enum_defaults, NULL, depth + 1,
                               errstr, errstr_size);
        }
        default:
                relay_seterr(errstr, errstr_size,
                             "unsupported writer schema type %d", (int)wt);
                return -1;
        }
}

relay_plan_t *relay_plan_new(avro_schema_t ws, int32_t writer_id,
                             const relay_shape_t *rs,
                             const json_t *enum_defaults,
                             const char *const *wanted, char *errstr,
                             size_t errstr_size)
{
        relay_plan_t *pl = relay_calloc(1, sizeof(*pl));
        pl->writer_id = writer_id;
        pl->ws = avro_schema_incref(ws);
        pl->rs = rs;
        ops_reserve(pl, 1);
        if (compile(pl, ws, 0, 0, enum_defaults, wanted, 0, errstr,
                    errstr_size)) {
                relay_plan_destroy(pl);
                return NULL;
        }
        return pl;
}

void relay_plan_destroy(relay_plan_t *pl)
{
        if (!pl)
                return;
        for (size_t i = 0; i < pl->nops; i++) {
                free(pl->ops[i].symbols);
                free(pl->ops[i].why);
        }
        free(pl->ops);
        avro_schema_decref(pl->ws);
        free(pl);
}

/* ---- decoding ---------------------------------------------------------- */

struct dec {
        const unsigned char *p, *start, *end;
        relay_slots_t *out;
        const relay_plan_t *pl;
        const char *why; /* static text, or an op's */
        int depth;
        /* keys of the maps being skipped, a stack (the slots' scratch) */
        struct relay_key **keys;
        size_t *keys_cap, nkeys;
};

static int key_cmp(const void *a, const void *b);

/* Varints as avro-c reads them: a long in at most 10 bytes, an int in at
 * most 5 (its bits past 32 dropped). */
static int rd_long_slow(struct dec *d, int64_t *out)
{
        uint64_t v = 0;
        for (int shift = 0; shift < 70; shift += 7) {
                if (d->p >= d->end)
                        return -1;
                unsigned char b = *d->p++;
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
                        return 0;
                }
        }
        return -1;
}

static int rd_int_slow(struct dec *d, int64_t *out)
{
        uint32_t v = 0;
        for (int shift = 0; shift < 35; shift += 7) {
                if (d->p >= d->end)
                        return -1;
                unsigned char b = *d->p++;
                v |= (uint32_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *out = (int32_t)((v >> 1) ^ -(v & 1));
                        return 0;
                }
        }
        return -1;
}

/* Most varints of a record are one byte (lengths, branches, small
 * numbers): that case inline, the others as above. */
static inline int rd_long(struct dec *d, int64_t *out)
{
        if (d->p < d->end && !(*d->p & 0x80)) {
                uint64_t v = *d->p++;
                *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
                return 0;
        }
        return rd_long_slow(d, out);
}

static inline int rd_int(struct dec *d, int64_t *out)
{
        if (d->p < d->end && !(*d->p & 0x80)) {
                uint32_t v = *d->p++;
                *out = (int32_t)((v >> 1) ^ -(v & 1));
                return 0;
        }
        return rd_int_slow(d, out);
}

static int rd_skip(struct dec *d, int64_t n)
{
        if (n < 0 || n > d->end - d->p)
                return -1;
        d->p += n;
        return 0;
}

/* A block's item count (and byte size when negative), bounded by the
 * bytes left, which bounds what the slots grow by. 0 ends the list. */
static inline int rd_block(struct dec *d, int64_t *n)
{
        int64_t size;
        if (rd_long(d, n) || *n == INT64_MIN || (*n < 0 && rd_long(d, &size)))
                return -1;
        if (*n < 0)
                *n = -*n;
        return *n > d->end - d->p ? -1 : 0;
}

/* Read past a value of writer schema ws. */
static int skip(struct dec *d, avro_schema_t ws, int depth)
{
        int64_t n;
        if (depth > SHAPE_MAX_DEPTH + 32)
                return -1;
        ws = deref(ws);
        switch (avro_typeof(ws)) {
        case AVRO_NULL:
                return 0;
        case AVRO_BOOLEAN:
                return d->p < d->end && *d->p <= 1 ? rd_skip(d, 1) : -1;
        case AVRO_INT32:
                return rd_int(d, &n);
        case AVRO_INT64:
                return rd_long(d, &n);
        case AVRO_FLOAT:
                return rd_skip(d, 4);
        case AVRO_DOUBLE:
                return rd_skip(d, 8);
        case AVRO_STRING:
        case AVRO_BYTES:
                return rd_long(d, &n) || rd_skip(d, n);
        case AVRO_FIXED:
                return rd_skip(d, avro_schema_fixed_size(ws));
        case AVRO_ENUM:
                return rd_long(d, &n) || n < 0 ||
                               n >= avro_schema_enum_number_of_symbols(ws)
                           ? -1
                           : 0;
        case AVRO_UNION:
                if (rd_long(d, &n) || n < 0 ||
                    n >= (int64_t)avro_schema_union_size(ws))
                        return -1;
                return skip(d, avro_schema_union_branch(ws, (int)n), depth + 1);
        case AVRO_RECORD:
                for (size_t i = 0; i < avro_schema_record_size(ws); i++)
                        if (skip(d,
                                 avro_schema_record_field_get_by_index(ws,
                                                                       (int)i),
                                 depth + 1))
                                return -1;
                return 0;
        case AVRO_MAP:
        case AVRO_ARRAY: {
                int map = avro_typeof(ws) == AVRO_MAP;
                avro_schema_t item = map ? avro_schema_map_values(ws)
                                         : avro_schema_array_items(ws);
                size_t k0 = d->nkeys; /* this map's keys start here */
                for (;;) {
                        if (rd_block(d, &n))
                                return -1;
                        if (!n)
                                break;
                        for (int64_t i = 0; i < n; i++) {
                                int64_t klen;
                                if (map && (rd_long(d, &klen) || klen < 0 ||
                                            klen > d->end - d->p ||
                                            memchr(d->p, 0, (size_t)klen)))
                                        return -1;
                                if (map) {
                                        if (d->nkeys == *d->keys_cap) {
                                                *d->keys_cap =
                                                    *d->keys_cap
                                                        ? *d->keys_cap * 2
                                                        : 64;
                                                *d->keys = relay_realloc(
                                                    *d->keys,
                                                    *d->keys_cap *
                                                        sizeof(**d->keys));
                                        }
                                        (*d->keys)[d->nkeys].p =
                                            (const char *)d->p;
                                        (*d->keys)[d->nkeys++].n = (size_t)klen;
                                        d->p += klen;
                                }
                                if (skip(d, item, depth + 1))
                                        return -1;
                        }
                }
                /* Inner maps' keys were popped: this map's are in a row. */
                if (map && d->nkeys - k0 > 1 &&
                    relay_avro_keys_repeat(*d->keys + k0, d->nkeys - k0)) {
                        d->why = "a map has a key twice";
                        return -1;
                }
                d->nkeys = k0;
                return 0;
        }
        default:
                return -1;
        }
}

int relay_avro_skip_body(avro_schema_t ws, const void *body, size_t len,
                         size_t *at)
{
        struct relay_key *keys = NULL;
        size_t cap = 0;
        struct dec d = {body, body,  (const unsigned char *)body + len,
                        NULL, NULL,  NULL,
                        0,    &keys, &cap,
                        0};
        int rc = skip(&d, ws, 0);
        free(keys);
        *at = (size_t)(d.p - d.start);
        return rc ? -1 : d.p == d.end ? 0 : 1;
}

static int run(struct dec *d, const struct op *op, size_t base);

/* One op: the scalars here, inlined into the loops over a record's
 * fields and a collection's items (a call per value cost more than
 * reading it); records, unions, collections and the rare kinds in
 * run(). */
static inline __attribute__((always_inline)) int
op_scalar(struct dec *d, const struct op *op, size_t base)
{
        relay_slot_t *s;
        int64_t n;
        switch ((enum op_kind)op->kind) {
        case OP_NULL:
        case OP_BOOL:
        case OP_INT:
        case OP_LONG:
        case OP_FLOAT:
        case OP_DOUBLE:
        case OP_BYTES:
        case OP_ENUM:
                break;
        default:
                return run(d, op, base);
        }
        if (op->uslot >= 0)
                d->out->s[base + (size_t)op->uslot].branch = op->ubranch;
        switch ((enum op_kind)op->kind) {
        case OP_NULL:
                d->out->s[base + (size_t)op->rslot].type = AVRO_NULL;
                return 0;
        case OP_BOOL:
                /* 0 or 1, as the pre-scan checks: avro-c would keep any
                 * other byte and write it back. */
                if (d->p >= d->end || *d->p > 1)
                        return -1;
                s = &d->out->s[base + (size_t)op->rslot];
                s->type = AVRO_BOOLEAN;
                s->v.l = *d->p++;
                return 0;
        case OP_INT:
        case OP_LONG:
                if (op->kind == OP_INT ? rd_int(d, &n) : rd_long(d, &n))
                        return -1;
                s = &d->out->s[base + (size_t)op->rslot];
                s->type = op->rtype;
                if (op->rtype == AVRO_FLOAT || op->rtype == AVRO_DOUBLE)
                        s->v.d = op->rtype == AVRO_FLOAT ? (double)(float)n
                                                         : (double)n;
                else
                        s->v.l = n;
                return 0;
        case OP_FLOAT: {
                float f;
                if (d->end - d->p < 4)
                        return -1;
                memcpy(&f, d->p, 4); /* little-endian machines only */
                d->p += 4;
                s = &d->out->s[base + (size_t)op->rslot];
                s->type = op->rtype;
                s->v.d = f;
                return 0;
        }
        case OP_DOUBLE:
                if (d->end - d->p < 8)
                        return -1;
                s = &d->out->s[base + (size_t)op->rslot];
                s->type = AVRO_DOUBLE;
                memcpy(&s->v.d, d->p, 8);
                d->p += 8;
                return 0;
        case OP_BYTES:
                if (rd_long(d, &n) || n < 0 || n > d->end - d->p)
                        return -1;
                s = &d->out->s[base + (size_t)op->rslot];
                s->type = op->rtype;
                s->v.p = (const char *)d->p;
                s->n = (uint32_t)n;
                d->p += n;
                return 0;
        case OP_ENUM:
                if (rd_long(d, &n) || n < 0 || n >= op->nsymbols)
                        return -1;
                if (op->symbols[n] < 0) {
                        d->why = "an enum symbol the reader schema lacks, "
                                 "and it has no default";
                        return -1;
                }
                s = &d->out->s[base + (size_t)op->rslot];
                s->type = AVRO_ENUM;
                s->v.l = op->symbols[n];
                return 0;
        default:
                return -1;
        }
}

/* op_scalar, and a union whose branch is a scalar (a map of scalars'
 * values: most of a record's items) without a call either. The depth is
 * counted as run() counts it. */
static inline __attribute__((always_inline)) int
op_run(struct dec *d, const struct op *op, size_t base)
{
        if (op->kind != OP_UNION)
                return op_scalar(d, op, base);
        int64_t n;
        if (op->uslot >= 0)
                d->out->s[base + (size_t)op->uslot].branch = op->ubranch;
        if (rd_long(d, &n) || n < 0 || n >= op->nchild)
                return -1;
        if (++d->depth > SHAPE_MAX_DEPTH + 32)
                return -1;
        int rc = op_scalar(d, &d->pl->ops[op->child + (size_t)n], base);
        d->depth--;
        return rc;
}

static int key_cmp(const void *a, const void *b)
{
        const struct relay_key *x = a, *y = b;
        if (x->n != y->n)
                return x->n < y->n ? -1 : 1;
        return memcmp(x->p, y->p, x->n);
}

int relay_avro_keys_repeat(struct relay_key *keys, size_t n)
{
        qsort(keys, n, sizeof(*keys), key_cmp);
        for (size_t i = 1; i < n; i++)
                if (!key_cmp(&keys[i - 1], &keys[i]))
                        return 1;
        return 0;
}

/* 1 when two of a map's count elements have the same key: pairwise for a
 * few, else sorted in the slots' reusable key array. */
static int map_keys_repeat(relay_slots_t *out, size_t first, size_t count,
                           size_t esize)
{
        if (count <= 16) {
                for (size_t i = 0; i < count; i++) {
                        const relay_slot_t *k = &out->s[first + i * esize];
                        for (size_t j = i + 1; j < count; j++) {
                                const relay_slot_t *o =
                                    &out->s[first + j * esize];
                                if (o->n == k->n &&
                                    !memcmp(o->v.p, k->v.p, k->n))
                                        return 1;
                        }
                }
                return 0;
        }
        if (out->keys_cap < count) {
                free(out->keys);
                out->keys = relay_malloc(count * sizeof(*out->keys));
                out->keys_cap = count;
        }
        for (size_t i = 0; i < count; i++) {
                out->keys[i].p = out->s[first + i * esize].v.p;
                out->keys[i].n = out->s[first + i * esize].n;
        }
        return relay_avro_keys_repeat(out->keys, count);
}

static int run_collection(struct dec *d, const struct op *op, size_t base)
{
        relay_slots_t *out = d->out;
        const struct op *item = &d->pl->ops[op->child];
        size_t first = 0, count = 0, esize = op->esize;
        int map = op->kind == OP_MAP;
        for (;;) {
                int64_t n;
                if (rd_block(d, &n))
                        return -1;
                if (!n)
                        break;
                if (!count) {
                        first = relay_slots_append(out, esize, (size_t)n);
                } else if (first + count * esize == out->n) {
                        relay_slots_append(out, esize, (size_t)n);
                } else {
                        /* Another block after nested elements were laid
                         * out: move this collection's elements to the end
                         * (their own references are indexes, still
                         * good). */
                        size_t moved =
                            relay_slots_append(out, esize, count + (size_t)n);
                        memcpy(out->s + moved, out->s + first,
                               count * esize * sizeof(*out->s));
                        first = moved;
                }
                for (int64_t i = 0; i < n; i++) {
                        size_t e = first + count * esize;
                        if (map) {
                                int64_t klen;
                                if (rd_long(d, &klen) || klen < 0 ||
                                    klen > d->end - d->p)
                                        return -1;
                                if (memchr(d->p, 0, (size_t)klen)) {
                                        /* As the pre-scan refuses it. */
                                        d->why = "a map key holds a NUL byte";
                                        return -1;
                                }
                                relay_slot_t *k = &out->s[e];
                                k->type = AVRO_STRING;
                                k->v.p = (const char *)d->p;
                                k->n = (uint32_t)klen;
                                d->p += klen;
                        }
                        if (op_run(d, item, e))
                                return -1;
                        count++;
                }
        }
        if (map && count > 1 && map_keys_repeat(out, first, count, esize)) {
                /* As the pre-scan refuses it: avro-c would keep the first
                 * place and merge or replace the values. */
                d->why = "a map has a key twice";
                return -1;
        }
        relay_slot_t *s = &out->s[base + (size_t)op->rslot];
        s->type = map ? AVRO_MAP : AVRO_ARRAY;
        s->n = (uint32_t)count;
        s->v.first = first;
        return 0;
}

static int run(struct dec *d, const struct op *op, size_t base)
{
        relay_slot_t *s;
        int64_t n;
        if (op->uslot >= 0)
                d->out->s[base + (size_t)op->uslot].branch = op->ubranch;
        switch ((enum op_kind)op->kind) {
        case OP_SKIP:
                return skip(d, op->ws, d->depth);
        case OP_FAIL:
                d->why = op->why;
                return -1;
        case OP_SETNULL:
                s = &d->out->s[base + (size_t)op->rslot];
                s->type = AVRO_NULL;
                s->branch = 0;
                return 0;
        case OP_FIXED:
                n = avro_schema_fixed_size(op->ws);
                if (n > d->end - d->p)
                        return -1;
                s = &d->out->s[base + (size_t)op->rslot];
                s->type = AVRO_FIXED;
                s->v.p = (const char *)d->p;
                s->n = (uint32_t)n;
                d->p += n;
                return 0;
        case OP_RECORD: {
                if (op->uslot >= 0)
                        d->out->s[base + (size_t)op->uslot].type = AVRO_RECORD;
                const struct op *f = &d->pl->ops[op->child];
                for (uint32_t i = 0; i < op->nchild; i++)
                        if (op_run(d, &f[i], base))
                                return -1;
                return 0;
        }
        case OP_UNION:
                if (rd_long(d, &n) || n < 0 || n >= op->nchild)
                        return -1;
                if (++d->depth > SHAPE_MAX_DEPTH + 32)
                        return -1;
                n = op_scalar(d, &d->pl->ops[op->child + (size_t)n], base);
                d->depth--;
                return (int)n;
        case OP_MAP:
        case OP_ARRAY:
                if (++d->depth > SHAPE_MAX_DEPTH + 32)
                        return -1;
                n = run_collection(d, op, base);
                d->depth--;
                return (int)n;
        case OP_NULL:
        case OP_BOOL:
        case OP_INT:
        case OP_LONG:
        case OP_FLOAT:
        case OP_DOUBLE:
        case OP_BYTES:
        case OP_ENUM:
                return op_scalar(d, op, base); /* a scalar root */
        }
        return -1;
}

int relay_plan_decode(const relay_plan_t *pl, const void *body, size_t len,
                      relay_slots_t *out, char *errstr, size_t errstr_size)
{
        struct dec d = {body, body,       (const unsigned char *)body + len,
                        out,  pl,         NULL,
                        0,    &out->keys, &out->keys_cap,
                        0};
        relay_slots_reset(out);
        if (run(&d, &pl->ops[0], 0)) {
                relay_seterr(errstr, errstr_size,
                             "invalid Avro data for schema id %d: %s at body "
                             "byte %zu",
                             (int)pl->writer_id,
                             d.why ? d.why : "bad or truncated value",
                             (size_t)(d.p - d.start));
                return -1;
        }
        if (d.p != d.end) {
                relay_seterr(errstr, errstr_size,
                             "invalid Avro data for schema id %d: %zu bytes "
                             "left after the record",
                             (int)pl->writer_id, (size_t)(d.end - d.p));
                return -1;
        }
        return 0;
}

/* ---- encoding ---------------------------------------------------------- */

/* Room for n more bytes at the end of b. The encoder appends with these
 * and writes b's closing NUL once, at the end. */
static inline unsigned char *room(relay_buf_t *b, size_t n)
{
        if (b->cap - b->len < n + 1)
                relay_buf_reserve(b, n);
        return (unsigned char *)b->data + b->len;
}

static inline size_t varint(unsigned char *p, int64_t l)
{
        uint64_t v = ((uint64_t)l << 1) ^ (uint64_t)(l >> 63);
        size_t k = 0;
        while (v > 0x7f) {
                p[k++] = (unsigned char)((v & 0x7f) | 0x80);
                v >>= 7;
        }
        p[k++] = (unsigned char)v;
        return k;
}

/* Copy n bytes as memcpy does; most strings of a record are short, and
 * a call to memcpy cost more than copying them with two overlapping
 * loads and stores of a fixed size (which stay within [s, s + n)). */
static inline void copy_bytes(unsigned char *d, const char *s, size_t n)
{
        if (n >= 8 && n <= 16) {
                uint64_t a, b;
                memcpy(&a, s, 8);
                memcpy(&b, s + n - 8, 8);
                memcpy(d, &a, 8);
                memcpy(d + n - 8, &b, 8);
        } else if (n >= 4 && n < 8) {
                uint32_t a, b;
                memcpy(&a, s, 4);
                memcpy(&b, s + n - 4, 4);
                memcpy(d, &a, 4);
                memcpy(d + n - 4, &b, 4);
        } else if (n > 16) {
                memcpy(d, s, n);
        } else {
                for (size_t i = 0; i < n; i++)
                        d[i] = (unsigned char)s[i];
        }
}

/* Every value but a string, bytes or fixed takes at most this many bytes
 * (a union's branch and a long, two varints), so that one room check per
 * value covers it; those three add their length. */
#define ENC_MAX_FIXED 20

/* What every value of one record's encoding shares. */
struct enc {
        const relay_shape_t *sh;
        const relay_slots_t *s;
        relay_buf_t *b;
        char *errstr;
        size_t errstr_size;
};

static int enc_record(const struct enc *e, const struct node *rec,
                      size_t base);
static int enc_items(const struct enc *e, const struct node *nd,
                     const relay_slot_t *v);

/* Node nd, not a record, whose slot is in the block at base. The
 * errors name the field as avro-c's writer would be asked for it.
 * Inlined into the loops over a record's leaves and a collection's
 * items: a call per value cost more than the value's bytes. */
static inline __attribute__((always_inline)) int
enc_leaf(const struct enc *e, const struct node *nd, size_t base)
{
        relay_buf_t *b = e->b;
        const relay_slot_t *v = &e->s->s[base + nd->slot];
        size_t n = v->type == AVRO_STRING || v->type == AVRO_BYTES ||
                           v->type == AVRO_FIXED
                       ? v->n
                       : 0;
        unsigned char *p = room(b, n + ENC_MAX_FIXED);
        size_t k = 0;
        if (nd->type == AVRO_UNION) {
                if (v->type == RELAY_SLOT_UNSET || v->branch >= nd->nchild) {
                        relay_seterr(e->errstr, e->errstr_size,
                                     "field %s: no union branch is set",
                                     nd->field);
                        return -1;
                }
                const struct node *br = &e->sh->nodes[nd->child + v->branch];
                k = varint(p, v->branch);
                if (br->type == AVRO_RECORD) {
                        b->len += k;
                        if (v->type != AVRO_RECORD) {
                                relay_seterr(e->errstr, e->errstr_size,
                                             "field %s: branch %d is a record",
                                             nd->field, (int)v->branch);
                                return -1;
                        }
                        return enc_record(e, br, base);
                }
                nd = br;
        }
        if (v->type != nd->type) {
                b->len += k;
                if (v->type == RELAY_SLOT_UNSET)
                        relay_seterr(e->errstr, e->errstr_size,
                                     "field %s is not set", nd->field);
                else
                        relay_seterr(e->errstr, e->errstr_size,
                                     "field %s holds a value of type %d, not "
                                     "%s",
                                     nd->field, (int)v->type,
                                     avro_schema_type_name(nd->schema));
                return -1;
        }
        switch (nd->type) {
        case AVRO_NULL:
                break;
        case AVRO_BOOLEAN:
                p[k++] = v->v.l ? 1 : 0;
                break;
        case AVRO_INT32:
        case AVRO_INT64:
                k += varint(p + k, v->v.l);
                break;
        case AVRO_FLOAT: {
                float f = (float)v->v.d;
                memcpy(p + k, &f, 4);
                k += 4;
                break;
        }
        case AVRO_DOUBLE:
                memcpy(p + k, &v->v.d, 8);
                k += 8;
                break;
        case AVRO_STRING:
        case AVRO_BYTES:
                k += varint(p + k, (int64_t)n);
                copy_bytes(p + k, v->v.p, n);
                k += n;
                break;
        case AVRO_FIXED:
                if ((int64_t)n != nd->size) {
                        b->len += k;
                        relay_seterr(e->errstr, e->errstr_size,
                                     "field %s: %u bytes for a fixed of %lld",
                                     nd->field, (unsigned)n,
                                     (long long)nd->size);
                        return -1;
                }
                if (n)
                        memcpy(p + k, v->v.p, n);
                k += n;
                break;
        case AVRO_ENUM:
                if (v->v.l < 0 || v->v.l >= nd->size) {
                        b->len += k;
                        relay_seterr(e->errstr, e->errstr_size,
                                     "field %s: enum index %lld out of range",
                                     nd->field, (long long)v->v.l);
                        return -1;
                }
                k += varint(p + k, v->v.l);
                break;
        case AVRO_MAP:
        case AVRO_ARRAY:
                b->len += k;
                return enc_items(e, nd, v);
        default:
                b->len += k;
                relay_seterr(e->errstr, e->errstr_size, "field %s: type %d",
                             nd->field, (int)nd->type);
                return -1;
        }
        b->len += k;
        return 0;
}

/* A record whose slots are in the block at base: one loop over its
 * leaves, nested records included. */
static int enc_record(const struct enc *e, const struct node *rec,
                      size_t base)
{
        const uint32_t *leaf = e->sh->leaves + rec->leaf;
        for (uint32_t i = 0; i < rec->nleaf; i++)
                if (enc_leaf(e, &e->sh->nodes[leaf[i]], base))
                        return -1;
        return 0;
}

/* A map's or an array's elements, one block, then the end block. */
static int enc_items(const struct enc *e, const struct node *nd,
                     const relay_slot_t *v)
{
        const struct node *item = &e->sh->nodes[nd->child];
        relay_buf_t *b = e->b;
        int map = nd->type == AVRO_MAP;
        if (v->n) {
                b->len += varint(room(b, ENC_MAX_FIXED), v->n);
                for (size_t i = 0; i < v->n; i++) {
                        size_t at = v->v.first + i * nd->esize;
                        if (map) {
                                const relay_slot_t *k = &e->s->s[at];
                                if (k->type != AVRO_STRING) {
                                        relay_seterr(e->errstr, e->errstr_size,
                                                     "field %s: a map key is "
                                                     "not set",
                                                     nd->field);
                                        return -1;
                                }
                                unsigned char *p =
                                    room(b, k->n + ENC_MAX_FIXED);
                                size_t w = varint(p, k->n);
                                copy_bytes(p + w, k->v.p, k->n);
                                b->len += w + k->n;
                        }
                        if (item->type == AVRO_RECORD
                                ? enc_record(e, item, at)
                                : enc_leaf(e, item, at))
                                return -1;
                }
        }
        *room(b, 1) = 0; /* the end block: a count of 0 */
        b->len++;
        return 0;
}

/* A root that is not a record (tests encode such shapes). */
static int enc_root_leaf(const struct enc *e, const struct node *root)
{
        return enc_leaf(e, root, 0);
}

int relay_shape_encode(const relay_shape_t *sh, const relay_slots_t *s,
                       relay_buf_t *b, char *errstr, size_t errstr_size)
{
        const struct enc e = {sh, s, b, errstr, errstr_size};
        const struct node *root = &sh->nodes[0];
        int rc = root->type == AVRO_RECORD ? enc_record(&e, root, 0)
                                           : enc_root_leaf(&e, root);
        room(b, 0)[0] = '\0';
        return rc;
}

/* ---- paths ------------------------------------------------------------- */

/* The record or map branch of a union a path goes through, or -1. */
static int path_branch(const relay_shape_t *sh, const struct node *u)
{
        for (uint32_t i = 0; i < u->nchild; i++) {
                avro_type_t t = sh->nodes[u->child + i].type;
                if (t == AVRO_RECORD || t == AVRO_MAP)
                        return (int)i;
        }
        return -1;
}

int relay_path_compile(const relay_shape_t *sh, const char *path,
                       relay_path_t *out)
{
        memset(out, 0, sizeof(*out));
        out->owned = relay_strdup(path);
        char *p = out->owned;
        uint32_t node = 0;
        for (;;) {
                const struct node *nd = &sh->nodes[node];
                if (nd->type == AVRO_UNION) {
                        int b = path_branch(sh, nd);
                        if (b < 0 || out->nsteps >= RELAY_PATH_MAX_STEPS)
                                goto fail;
                        struct relay_path_step *st = &out->step[out->nsteps++];
                        st->kind = 1;
                        st->branch = (uint8_t)b;
                        st->slot = nd->slot;
                        node = nd->child + (uint32_t)b;
                        continue;
                }
                if (!*p)
                        goto fail;
                char *dot = strchr(p, '.');
                if (nd->type == AVRO_RECORD) {
                        size_t n = dot ? (size_t)(dot - p) : strlen(p);
                        int found = -1;
                        for (uint32_t i = 0; i < nd->nchild && found < 0; i++) {
                                const char *name =
                                    sh->nodes[nd->child + i].name;
                                if (strlen(name) == n && !memcmp(name, p, n))
                                        found = (int)(nd->child + i);
                        }
                        if (found < 0)
                                goto fail;
                        node = (uint32_t)found;
                } else if (nd->type == AVRO_MAP) {
                        const struct node *item = &sh->nodes[nd->child];
                        int deeper = item->type == AVRO_RECORD ||
                                     item->type == AVRO_MAP ||
                                     (item->type == AVRO_UNION &&
                                      path_branch(sh, item) >= 0);
                        if (!deeper)
                                dot = NULL; /* the key holds the dots */
                        if (out->nsteps >= RELAY_PATH_MAX_STEPS)
                                goto fail;
                        struct relay_path_step *st = &out->step[out->nsteps++];
                        st->kind = 2;
                        st->slot = nd->slot;
                        st->esize = nd->esize;
                        st->key = p;
                        st->key_len = dot ? (size_t)(dot - p) : strlen(p);
                        node = nd->child;
                } else {
                        goto fail;
                }
                if (!dot)
                        break;
                *dot = '\0';
                p = dot + 1;
        }
        out->leaf = (int)node;
        out->leaf_slot = sh->nodes[node].slot;
        return 0;
fail:
        relay_path_free(out);
        return -1;
}

void relay_path_free(relay_path_t *p)
{
        free(p->owned);
        p->owned = NULL;
}

const relay_slot_t *relay_path_walk(const relay_path_t *p,
                                    const relay_slots_t *s,
                                    enum relay_found *st)
{
        const relay_shape_t *sh = s->shape;
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
                size_t k = 0;
                const relay_slot_t *key = &s->s[v->v.first];
                for (; k < v->n; k++, key += step->esize)
                        if (key->n == step->key_len &&
                            (!key->n ||
                             (key->v.p[0] == step->key[0] &&
                              !memcmp(key->v.p, step->key, step->key_len))))
                                break;
                if (k == v->n) {
                        *st = RELAY_FOUND_ABSENT;
                        return NULL;
                }
                base = v->v.first + k * step->esize;
        }
        const relay_slot_t *v = &s->s[base + sh->nodes[p->leaf].slot];
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

int relay_slot_scalar_text(const relay_slot_t *v, relay_buf_t *b)
{
        switch (v->type) {
        case AVRO_STRING:
                relay_buf_append(b, v->v.p, v->n);
                return 0;
        case AVRO_INT32:
        case AVRO_INT64:
                relay_buf_long(b, v->v.l);
                return 0;
        case AVRO_FLOAT:
                relay_avro_append_number(b, v->v.d, 6, 9, 1);
                return 0;
        case AVRO_DOUBLE:
                relay_avro_append_number(b, v->v.d, 15, 17, 0);
                return 0;
        case AVRO_BOOLEAN:
                relay_buf_puts(b, v->v.l ? "true" : "false");
                return 0;
        default:
                return -1;
        }
}

void relay_slot_json(const relay_slot_t *v, relay_buf_t *b)
{
        if (v->type == AVRO_STRING)
                relay_buf_json_str(b, v->v.p, v->n);
        else if ((v->type == AVRO_DOUBLE || v->type == AVRO_FLOAT) &&
                 !isfinite(v->v.d))
                relay_buf_puts(b, "null"); /* JSON has no NaN, no infinity */
        else if (relay_slot_scalar_text(v, b))
                relay_buf_puts(b, "null");
}

int relay_slot_text(const relay_shape_t *sh, const relay_path_t *p,
                    const relay_slot_t *v, relay_buf_t *b)
{
        if (v->type != AVRO_ENUM)
                return relay_slot_scalar_text(v, b);
        const struct node *nd = &sh->nodes[p->leaf];
        if (nd->type == AVRO_UNION) {
                if (v->branch >= nd->nchild)
                        return -1;
                nd = &sh->nodes[nd->child + v->branch];
        }
        const char *sym = avro_schema_enum_get(nd->schema, (int)v->v.l);
        if (!sym)
                return -1;
        relay_buf_puts(b, sym);
        return 0;
}
