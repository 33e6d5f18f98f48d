/*
 * Applying a connection to one decoded input record: the event type picks
 * a rule (or none: counted, then skipped or refused per the connection's
 * `unmapped`), the identity list picks the identifier the destination gets,
 * the person field (or that identifier) makes the Kafka key, and the rule's
 * attributes and the connection's field sync fill the relay.out.Outbound
 * value. The rules were checked at load (load.c); what can still be wrong
 * here is the record, and each such fault is a RELAY_MAP_ERROR whose reason
 * names the connection and the field, for the dead letter.
 *
 * Records come and go as slots (relay/codec.h): every path was compiled at
 * load, every output field is written by its slot, and strings of the
 * input are pointed at, not copied. Text the mapping makes (templates,
 * converted values) goes to the output's own text chunks; nothing is
 * allocated once the buffers have grown.
 */
#include "mapping_int.h"
#include "relay/avro.h"
#include "relay/outbound.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where the output's fields are, looked up once per shape. */
static const relay_out_index_t *out_index(const relay_connection_t *c,
                                          const relay_slots_t *out)
{
        return relay_out_index(&c->stats->out, out->shape);
}

static const relay_slot_t *lookup(const relay_path_t *p,
                                  const relay_slots_t *in, enum relay_found *st)
{
        return relay_path_get(p, in, st);
}

static const char *absent_or_null(enum relay_found st)
{
        return st == RELAY_FOUND_NULL ? "is null" : "is missing";
}

/* Text of the field at path, appended to b; -1 when missing or not a
 * scalar. */
static int path_text(const relay_connection_t *c, const relay_path_t *p,
                     const relay_slots_t *in, relay_buf_t *b)
{
        enum relay_found st;
        const relay_slot_t *v = lookup(p, in, &st);
        return v ? relay_slot_text(c->shape, p, v, b) : -1;
}

/* 1 when s[0..n) is valid UTF-8. Avro strings should be, but no decoder
 * checks; an identity that is not would reach the platform with U+FFFD in
 * it and name a different person there. */
static int utf8_valid(const char *s, size_t n)
{
        const unsigned char *u = (const unsigned char *)s;
        for (size_t i = 0; i < n;) {
                uint64_t w;
                if (n - i >= 8 &&
                    (memcpy(&w, u + i, 8), !(w & 0x8080808080808080ull))) {
                        i += 8; /* eight ASCII bytes at once */
                        continue;
                }
                if (u[i] < 0x80) {
                        i++;
                        continue;
                }
                size_t len = relay_utf8_len(u + i, n - i);
                if (!len)
                        return 0;
                i += len;
        }
        return 1;
}

/* A copy of n bytes in out's text, which lives as long as the record. */
static const char *keep(relay_slots_t *out, const char *s, size_t n)
{
        char *p = relay_slots_text(out, n ? n : 1);
        if (n)
                memcpy(p, s, n);
        return p;
}

/* Set output field f to a string (pointed at: it must live as long as the
 * record); a ["null", "string"] field takes its string branch. */
static void set_str(relay_slots_t *out, const relay_out_index_t *ix, int f,
                    const char *s, size_t n)
{
        relay_slot_t *v = &out->s[ix->slot[f]];
        v->type = AVRO_STRING;
        v->branch = 1;
        v->v.p = s;
        v->n = (uint32_t)n;
}

/* A map of scalars being filled: the map's slot (an envelope's
 * attribute map, or an operation's), the union branch of each value type
 * (by relay_out_type_index), its elements appended in a row. */
struct omap {
        size_t slot;
        const int *branch;
        size_t first, n;
        int unique; /* its specs' names all differ: no key is given twice */
};

static void omap_start(struct omap *om, const relay_slots_t *out, size_t slot,
                       const int *branch, int unique)
{
        om->slot = slot;
        om->branch = branch;
        om->first = out->n;
        om->n = 0;
        om->unique = unique;
}

static void omap_end(const struct omap *om, relay_slots_t *out)
{
        relay_slot_t *v = &out->s[om->slot];
        v->type = AVRO_MAP;
        v->n = (uint32_t)om->n;
        v->v.first = om->first;
}

/* The value slot for attribute name (a key given twice keeps its place
 * and takes the later value, as a map does), of type t; NULL when the
 * map's union has no such branch. */
static relay_slot_t *omap_put(struct omap *om, relay_slots_t *out,
                              const char *name, size_t n, avro_type_t t)
{
        int b = om->branch[relay_out_type_index(t)];
        if (b < 0)
                return NULL;
        size_t e = SIZE_MAX;
        for (size_t i = 0; !om->unique && i < om->n && e == SIZE_MAX; i++) {
                const relay_slot_t *k = &out->s[om->first + 2 * i];
                if (k->n == n && !memcmp(k->v.p, name, n))
                        e = om->first + 2 * i;
        }
        if (e == SIZE_MAX) {
                e = relay_slots_append(out, 2, 1);
                om->n++;
                out->s[e].type = AVRO_STRING;
                out->s[e].v.p = name;
                out->s[e].n = (uint32_t)n;
        }
        relay_slot_t *v = &out->s[e + 1];
        v->type = (uint8_t)t;
        v->branch = (uint8_t)b;
        return v;
}

static int put_string(struct omap *om, relay_slots_t *out,
                      const struct value_spec *spec, const char *s, size_t n)
{
        relay_slot_t *v =
            omap_put(om, out, spec->name, spec->name_len, AVRO_STRING);
        if (!v)
                return -1;
        v->v.p = s;
        v->n = (uint32_t)n;
        return 0;
}

/* Copy a scalar keeping its type (int → long, float → double, enum →
 * string). */
static int put_typed(const relay_connection_t *c, struct omap *om,
                     relay_slots_t *out, const struct value_spec *spec,
                     const relay_path_t *p,
                     const relay_slot_t *src, relay_buf_t *scratch)
{
        relay_slot_t *v;
        switch (src->type) {
        case AVRO_BOOLEAN:
                if (!(v = omap_put(om, out, spec->name, spec->name_len,
                                   AVRO_BOOLEAN)))
                        return -1;
                v->v.l = src->v.l;
                return 0;
        case AVRO_INT32:
        case AVRO_INT64:
                if (!(v = omap_put(om, out, spec->name, spec->name_len,
                                   AVRO_INT64)))
                        return -1;
                v->v.l = src->v.l;
                return 0;
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                if (!(v = omap_put(om, out, spec->name, spec->name_len,
                                   AVRO_DOUBLE)))
                        return -1;
                v->v.d = src->v.d;
                return 0;
        case AVRO_STRING:
                return put_string(om, out, spec, src->v.p, src->n);
        default:
                relay_buf_reset(scratch);
                if (relay_slot_text(c->shape, p, src, scratch))
                        return -1;
                return put_string(om, out, spec,
                                  keep(out, scratch->data, scratch->len),
                                  scratch->len);
        }
}

/* What strtoll reads, for text that is only an optional '-' and 1 to 18
 * digits (no overflow, nothing for strtoll to skip or stop at): 0 and
 * *l; -1 for any other text, which strtoll and strtod then read. Most
 * numbers a mapping converts are these. */
static int plain_integer(const char *s, size_t n, long long *l)
{
        size_t i = s[0] == '-' && n > 1;
        if (n - i < 1 || n - i > 18)
                return -1;
        long long v = 0;
        for (size_t k = i; k < n; k++) {
                if (s[k] < '0' || s[k] > '9')
                        return -1;
                v = v * 10 + (s[k] - '0');
        }
        *l = i ? -v : v;
        return 0;
}

/* 1 for a finite double that is not a whole number. Its text (the
 * shortest %g form that reads back as it, relay_slot_text) then holds a
 * '.' or an exponent, so strtoll refuses it and strtod gives it back: a
 * conversion to a number is the double itself. Whole ones may read as a
 * long ("3") or not ("1e+15"): those take the text. */
static int has_fraction(double d)
{
        return d > -4503599627370496.0 && d < 4503599627370496.0 &&
               d != (double)(int64_t)d; /* past 2^52 all are whole */
}

/* Convert text per conv and put it; -1 with errstr when it does not
 * convert. text is NUL-terminated and lives as long as the record. */
static int put_converted(struct omap *om, relay_slots_t *out,
                         const struct value_spec *v, const char *text, size_t n,
                         char *errstr, size_t errstr_size)
{
        relay_slot_t *e;
        if (v->conv == CONV_KEEP || v->conv == CONV_STRING)
                return put_string(om, out, v, text, n);
        char *end;
        if (v->conv == CONV_NUMBER) {
                long long l;
                if (n && plain_integer(text, n, &l) == 0) {
                        if (!(e = omap_put(om, out, v->name, v->name_len,
                                           AVRO_INT64)))
                                return -1;
                        e->v.l = l;
                        return 0;
                }
                errno = 0;
                l = strtoll(text, &end, 10);
                if (n && !*end && !errno) {
                        if (!(e = omap_put(om, out, v->name, v->name_len,
                                           AVRO_INT64)))
                                return -1;
                        e->v.l = l;
                        return 0;
                }
                double d = strtod(text, &end);
                if (n && !*end) {
                        if (!(e = omap_put(om, out, v->name, v->name_len,
                                           AVRO_DOUBLE)))
                                return -1;
                        e->v.d = d;
                        return 0;
                }
                relay_seterr(errstr, errstr_size,
                             "'%s': value \"%s\" is not a number", v->name,
                             text);
                return -1;
        }
        int t = !strcasecmp(text, "true") || !strcmp(text, "1") ||
                !strcasecmp(text, "yes");
        int f = !strcasecmp(text, "false") || !strcmp(text, "0") ||
                !strcasecmp(text, "no");
        if (!t && !f) {
                relay_seterr(errstr, errstr_size,
                             "'%s': value \"%s\" is not a boolean", v->name,
                             text);
                return -1;
        }
        if (!(e = omap_put(om, out, v->name, v->name_len, AVRO_BOOLEAN)))
                return -1;
        e->v.l = t;
        return 0;
}

/* The text of template v (literal and {field} parts) into scratch: 0, or
 * -1 with errstr when a field it names is missing and v has no default. */
static int template_text(const relay_connection_t *c,
                         const struct value_spec *v, const relay_slots_t *in,
                         relay_buf_t *scratch, char *errstr,
                         size_t errstr_size)
{
        relay_buf_reset(scratch);
        for (size_t i = 0; i < v->nparts; i++) {
                const struct tmpl_part *p = &v->parts[i];
                if (!p->is_field) {
                        relay_buf_append(scratch, p->text, p->len);
                        continue;
                }
                enum relay_found st;
                const relay_slot_t *src = lookup(&p->path, in, &st);
                if (src && relay_slot_text(c->shape, &p->path, src, scratch) ==
                               0)
                        continue;
                if (v->defval) {
                        relay_buf_reset(scratch);
                        relay_buf_puts(scratch, v->defval);
                        return 0;
                }
                relay_seterr(errstr, errstr_size,
                             "'%s': the template names field %s, which %s",
                             v->name, p->text,
                             st == RELAY_FOUND_NULL ? "is null"
                             : !src                 ? "the record lacks"
                                                    : "is not a scalar value");
                return -1;
        }
        return 0;
}

/* Evaluate one value spec into the map. 0 on success or deliberate skip,
 * -1 with errstr. */
static int apply_value(const relay_connection_t *c, const struct value_spec *v,
                       const relay_slots_t *in, struct omap *om,
                       relay_slots_t *out, relay_buf_t *scratch, char *errstr,
                       size_t errstr_size)
{
        if (v->from) {
                enum relay_found st;
                const relay_slot_t *src = lookup(&v->from_path, in, &st);
                if (!src) {
                        if (v->defval)
                                return put_converted(om, out, v, v->defval,
                                                     strlen(v->defval), errstr,
                                                     errstr_size);
                        if (!v->required)
                                return 0;
                        relay_seterr(errstr, errstr_size,
                                     "'%s': required field %s %s", v->name,
                                     v->from, absent_or_null(st));
                        return -1;
                }
                if (v->conv == CONV_KEEP)
                        return put_typed(c, om, out, v, &v->from_path, src,
                                         scratch);
                /* What the text below would give, without it: a whole
                 * number as its digits read back, a string as its own
                 * bytes (the input lives as long as the record). */
                long long l;
                relay_slot_t *e;
                if (v->conv == CONV_NUMBER &&
                    (src->type == AVRO_INT32 || src->type == AVRO_INT64 ||
                     (src->type == AVRO_STRING && src->n &&
                      plain_integer(src->v.p, src->n, &l) == 0))) {
                        if (!(e = omap_put(om, out, v->name, v->name_len,
                                           AVRO_INT64)))
                                return -1;
                        e->v.l = src->type == AVRO_STRING ? l : src->v.l;
                        return 0;
                }
                if (v->conv == CONV_NUMBER && src->type == AVRO_DOUBLE &&
                    has_fraction(src->v.d)) {
                        if (!(e = omap_put(om, out, v->name, v->name_len,
                                           AVRO_DOUBLE)))
                                return -1;
                        e->v.d = src->v.d;
                        return 0;
                }
                if (v->conv == CONV_STRING && src->type == AVRO_STRING)
                        return put_string(om, out, v, src->v.p, src->n);
                relay_buf_reset(scratch);
                if (relay_slot_text(c->shape, &v->from_path, src, scratch)) {
                        relay_seterr(errstr, errstr_size,
                                     "'%s': field %s is not a scalar value",
                                     v->name, v->from);
                        return -1;
                }
        } else if (v->nparts == 1 && !v->parts[0].is_field) {
                /* A literal: the connection's text, pointed at. */
                return put_converted(om, out, v, v->parts[0].text,
                                     v->parts[0].len, errstr, errstr_size);
        } else if (template_text(c, v, in, scratch, errstr, errstr_size)) {
                return -1;
        }
        const char *text = scratch->data ? scratch->data : "";
        /* Kept with its NUL: put_converted reads it as a C string. */
        char *kept = relay_slots_text(out, scratch->len + 1);
        memcpy(kept, text, scratch->len + 1);
        return put_converted(om, out, v, kept, scratch->len, errstr,
                             errstr_size);
}

static int rule_matches(const struct event_rule *r, const char *type, size_t n)
{
        if (r->on_any)
                return 1;
        for (size_t i = 0; i < r->non; i++)
                if (r->on_len[i] == n && !memcmp(r->on[i], type, n))
                        return 1;
        return 0;
}

static int text_equals(const relay_connection_t *c, const relay_path_t *p,
                       const relay_slots_t *in, const char *want,
                       size_t want_len, relay_buf_t *scratch)
{
        enum relay_found st;
        const relay_slot_t *v = lookup(p, in, &st);
        if (!v)
                return 0;
        if (v->type == AVRO_STRING)
                return v->n == want_len && !memcmp(v->v.p, want, want_len);
        relay_buf_reset(scratch);
        return relay_slot_text(c->shape, p, v, scratch) == 0 &&
               scratch->data && !strcmp(scratch->data, want);
}

/* The text at path: pointed at when it is a string, else rendered into
 * out's text. -1 when missing or not a scalar. */
static int field_text(const relay_connection_t *c, const relay_path_t *p,
                      const relay_slots_t *in, relay_slots_t *out,
                      relay_buf_t *scratch, const char **s, size_t *n)
{
        /* One lookup: a string is pointed at, another scalar written. */
        enum relay_found st;
        const relay_slot_t *v = lookup(p, in, &st);
        if (!v)
                return -1;
        if (v->type == AVRO_STRING) {
                *s = v->v.p;
                *n = v->n;
                return 0;
        }
        relay_buf_reset(scratch);
        if (relay_slot_text(c->shape, p, v, scratch))
                return -1;
        *n = scratch->len;
        *s = keep(out, scratch->data ? scratch->data : "", scratch->len);
        return 0;
}

/* The envelope's identities (version 2): every identity the record has,
 * under its rule's name; the first rule present wins a name given twice
 * (a map holds a key once). Invalid UTF-8 is left out. */
static void put_identities(const relay_connection_t *c, relay_slots_t *out,
                           const relay_out_index_t *ix)
{
        size_t first = out->n, n = 0;
        for (size_t i = 0; i < c->nids; i++) {
                const char *v = c->stats->idv[i];
                if (!v || !utf8_valid(v, c->stats->idn[i]))
                        continue;
                size_t as = c->ids[i].as_len, k;
                for (k = 0; k < n; k++) {
                        const relay_slot_t *key = &out->s[first + 2 * k];
                        if (key->n == as && !memcmp(key->v.p, c->ids[i].as, as))
                                break;
                }
                if (k < n)
                        continue;
                size_t e = relay_slots_append(out, 2, 1);
                out->s[e].type = AVRO_STRING;
                out->s[e].v.p = c->ids[i].as;
                out->s[e].n = (uint32_t)as;
                out->s[e + 1].type = AVRO_STRING;
                out->s[e + 1].v.p = v;
                out->s[e + 1].n = (uint32_t)c->stats->idn[i];
                n++;
        }
        relay_slot_t *m = &out->s[ix->slot[RELAY_OUT_IDENTITIES]];
        m->type = AVRO_MAP;
        m->branch = (uint8_t)ix->ids_branch;
        m->n = (uint32_t)n;
        m->v.first = first;
}

/* The envelope's operations (version 2): rule's, in order, or null when
 * it asks for none. 0, or -1 with errstr when a target or an attribute
 * cannot be made. */
static int put_operations(const relay_connection_t *c,
                          const struct event_rule *rule,
                          const relay_slots_t *in, relay_slots_t *out,
                          const relay_out_index_t *ix, relay_buf_t *s,
                          char *errstr, size_t errstr_size)
{
        size_t at = (size_t)ix->slot[RELAY_OUT_OPERATIONS];
        if (!rule->nops) {
                out->s[at].type = AVRO_NULL;
                out->s[at].branch = 0;
                return 0;
        }
        /* The blocks first, in a row; each operation's attributes then
         * append their own elements after them. */
        size_t first = relay_slots_append(out, ix->op_esize, rule->nops);
        char why[512];
        for (size_t k = 0; k < rule->nops; k++) {
                const struct op_rule *o = &rule->ops[k];
                size_t base = first + k * ix->op_esize;
                relay_slot_t *f = &out->s[base + (size_t)ix->op_slot[RELAY_OUT_OP]];
                f->type = AVRO_STRING;
                f->v.p = o->op;
                f->n = (uint32_t)o->op_len;
                size_t t = base + (size_t)ix->op_slot[RELAY_OUT_OP_TARGET];
                if (!o->target.nparts) {
                        out->s[t].type = AVRO_NULL;
                        out->s[t].branch = (uint8_t)ix->op_null_branch;
                } else if (template_text(c, &o->target, in, s, why,
                                         sizeof(why))) {
                        relay_seterr(errstr, errstr_size,
                                     "connection %s, event '%s', operation "
                                     "%s: %s",
                                     c->id, rule->name, o->op, why);
                        return -1;
                } else {
                        const char *text = keep(out, s->data ? s->data : "",
                                                s->len);
                        out->s[t].type = AVRO_STRING;
                        out->s[t].branch = (uint8_t)ix->op_target_branch;
                        out->s[t].v.p = text;
                        out->s[t].n = (uint32_t)s->len;
                }
                struct omap om;
                omap_start(&om, out,
                           base + (size_t)ix->op_slot[RELAY_OUT_OP_ATTRIBUTES],
                           ix->op_branch, o->attrs_unique);
                for (size_t i = 0; i < o->nattrs; i++)
                        if (apply_value(c, &o->attrs[i], in, &om, out, s,
                                        why, sizeof(why))) {
                                relay_seterr(errstr, errstr_size,
                                             "connection %s, event '%s', "
                                             "operation %s, attribute %s",
                                             c->id, rule->name, o->op, why);
                                return -1;
                        }
                omap_end(&om, out);
        }
        relay_slot_t *a = &out->s[at];
        a->type = AVRO_ARRAY;
        a->branch = (uint8_t)ix->ops_branch;
        a->n = (uint32_t)rule->nops;
        a->v.first = first;
        return 0;
}

enum relay_map_result relay_connection_apply(const relay_connection_t *c,
                                             const relay_slots_t *in,
                                             relay_slots_t *out,
                                             relay_buf_t *key, char *errstr,
                                             size_t errstr_size)
{
        relay_buf_t *s = &c->stats->scratch;
        const relay_out_index_t *ix = out_index(c, out);
        const struct event_rule *rule = NULL;
        if (!text_equals(c, &c->p_tenant, in, c->tenant, c->tenant_len, s) ||
            !text_equals(c, &c->p_source, in, c->source, c->source_len, s))
                return RELAY_MAP_SKIP;
        const char *type;
        size_t tlen;
        if (field_text(c, &c->p_event, in, out, s, &type, &tlen)) {
                relay_seterr(errstr, errstr_size,
                             "connection %s: the record has no %s", c->id,
                             c->event_field);
                return RELAY_MAP_ERROR;
        }
        for (size_t i = 0; i < c->nevents && !rule; i++)
                if (rule_matches(&c->events[i], type, tlen))
                        rule = &c->events[i];
        if (!rule) {
                /* Unassociated, unlike a drop rule's types, which are
                 * skipped on purpose and quietly. */
                relay_buf_reset(s);
                relay_buf_append(s, type, tlen);
                relay_connection_count_unmapped(c, s->data);
                if (c->unmapped_dead_letter) {
                        relay_seterr(errstr, errstr_size,
                                     "event type '%s' has no rule in "
                                     "connection '%s' (unmapped = "
                                     "dead_letter)",
                                     s->data, c->id);
                        return RELAY_MAP_ERROR;
                }
                return RELAY_MAP_SKIP;
        }
        if (rule->drop)
                return RELAY_MAP_SKIP;

        /* The destination's identity is the first present; the
         * envelope's identities map (version 2) takes every one. */
        const struct identity_rule *id = NULL;
        const char *idv = NULL;
        size_t idn = 0;
        int want_all = ix->slot[RELAY_OUT_IDENTITIES] >= 0;
        for (size_t i = 0; i < c->nids && (want_all || !id); i++) {
                const char *v;
                size_t n;
                c->stats->idv[i] = NULL;
                if (field_text(c, &c->ids[i].path, in, out, s, &v, &n) ||
                    !n)
                        continue;
                c->stats->idv[i] = v;
                c->stats->idn[i] = n;
                if (!id) {
                        id = &c->ids[i];
                        idv = v;
                        idn = n;
                }
        }
        if (!id) {
                relay_buf_reset(s);
                for (size_t i = 0; i < c->nids; i++)
                        relay_buf_printf(s, "%s%s", i ? ", " : "",
                                         c->ids[i].from);
                relay_seterr(errstr, errstr_size,
                             "connection %s: no identity for %s: none of "
                             "%s is present",
                             c->id, c->destination, s->data);
                return RELAY_MAP_ERROR;
        }
        if (!utf8_valid(idv, idn)) {
                /* Not repaired: with U+FFFD in it the value would name
                 * some other profile at the destination. */
                relay_seterr(errstr, errstr_size,
                             "connection %s: identity %s is not valid UTF-8",
                             c->id, id->from);
                return RELAY_MAP_ERROR;
        }
        set_str(out, ix, RELAY_OUT_IDENTITY_TYPE, id->as, id->as_len);
        set_str(out, ix, RELAY_OUT_IDENTITY_VALUE, idv, idn);

        /* The key is the person, so that one person's records share a
         * partition and stay in order whichever identity each carries;
         * the identity type is left out for the same reason. */
        int fallback = 0;
        relay_buf_reset(key);
        relay_buf_append(key, c->tenant, c->tenant_len);
        relay_buf_append(key, "/", 1);
        if (c->person) {
                size_t at = key->len;
                if (path_text(c, &c->p_person, in, key) == 0 && key->len > at) {
                        if (!utf8_valid(key->data + at, key->len - at)) {
                                relay_seterr(errstr, errstr_size,
                                             "connection %s: person %s is "
                                             "not valid UTF-8",
                                             c->id, c->person);
                                return RELAY_MAP_ERROR;
                        }
                } else {
                        /* Absent, null or empty: an empty person would
                         * put every such record under one key. */
                        key->len = at;
                        key->data[at] = '\0';
                        fallback = 1;
                }
        }
        if (!c->person || fallback)
                relay_buf_append(key, idv, idn);

        static const int copied[] = {RELAY_OUT_EVENT_ID, RELAY_OUT_TENANT,
                                     RELAY_OUT_SOURCE};
        const relay_path_t *from[] = {&c->p_event_id, &c->p_tenant,
                                      &c->p_source};
        for (size_t i = 0; i < 3; i++) {
                const char *t;
                size_t n;
                if (field_text(c, from[i], in, out, s, &t, &n)) {
                        relay_seterr(errstr, errstr_size,
                                     "the record has no %s",
                                     relay_out_names[copied[i]]);
                        return RELAY_MAP_ERROR;
                }
                set_str(out, ix, copied[i], t, n);
        }
        enum relay_found st;
        const relay_slot_t *ts = lookup(&c->p_occurred, in, &st);
        relay_slot_t *f = &out->s[ix->slot[RELAY_OUT_OCCURRED_AT]];
        f->type = AVRO_INT64;
        f->v.l = ts && (ts->type == AVRO_INT64 || ts->type == AVRO_INT32)
                     ? ts->v.l
                     : 0;
        set_str(out, ix, RELAY_OUT_CONNECTION, c->id, c->id_len);
        set_str(out, ix, RELAY_OUT_DESTINATION, c->destination,
                c->destination_len);
        f = &out->s[ix->slot[RELAY_OUT_ENVIRONMENT]];
        f->type = AVRO_ENUM;
        f->v.l = c->development ? 1 : 0;

        set_str(out, ix, RELAY_OUT_EVENT_NAME, rule->name, rule->name_len);
        if (rule->category) {
                set_str(out, ix, RELAY_OUT_EVENT_CATEGORY, rule->category,
                        rule->category_len);
        } else {
                f = &out->s[ix->slot[RELAY_OUT_EVENT_CATEGORY]];
                f->type = AVRO_NULL;
                f->branch = 0;
        }

        char why[512];
        struct omap om;
        omap_start(&om, out, (size_t)ix->slot[RELAY_OUT_ATTRIBUTES],
                   ix->branch[0], rule->attrs_unique);
        for (size_t i = 0; i < rule->nattrs; i++)
                if (apply_value(c, &rule->attrs[i], in, &om, out, s, why,
                                sizeof(why))) {
                        relay_seterr(errstr, errstr_size,
                                     "connection %s, event '%s', attribute "
                                     "%s",
                                     c->id, rule->name, why);
                        return RELAY_MAP_ERROR;
                }
        omap_end(&om, out);
        omap_start(&om, out, (size_t)ix->slot[RELAY_OUT_USER_ATTRIBUTES],
                   ix->branch[1], c->fields_unique);
        for (size_t i = 0; i < c->nfields; i++)
                if (apply_value(c, &c->fields[i], in, &om, out, s, why,
                                sizeof(why))) {
                        relay_seterr(errstr, errstr_size,
                                     "connection %s, field sync %s", c->id,
                                     why);
                        return RELAY_MAP_ERROR;
                }
        omap_end(&om, out);
        if (want_all)
                put_identities(c, out, ix);
        if (ix->slot[RELAY_OUT_OPERATIONS] >= 0 &&
            put_operations(c, rule, in, out, ix, s, errstr, errstr_size))
                return RELAY_MAP_ERROR;
        if (fallback)
                relay_connection_count_fallback(c);
        return RELAY_MAP_OUT;
}

/* ---- on avro-c values (tests and tools) -------------------------------- */

/* The Avro binary of a generic value, appended to b. */
static int value_bytes(const avro_value_t *v, relay_buf_t *b)
{
        size_t size;
        if (avro_value_sizeof((avro_value_t *)v, &size))
                return -1;
        relay_buf_reserve(b, size);
        avro_writer_t w = avro_writer_memory(b->data + b->len, (int64_t)size);
        int rc = avro_value_write(w, (avro_value_t *)v);
        avro_writer_free(w);
        b->len += size;
        return rc ? -1 : 0;
}

enum relay_map_result
relay_connection_apply_value(const relay_connection_t *c,
                             const avro_value_t *in, avro_value_t *out,
                             relay_buf_t *key, char *errstr, size_t errstr_size)
{
        enum relay_map_result res = RELAY_MAP_ERROR;
        relay_buf_t bin, obin;
        relay_buf_init(&bin);
        relay_buf_init(&obin);
        relay_slots_t is, os;
        int have_os = 0;
        relay_shape_t *osh = NULL;
        relay_plan_t *pl = NULL;
        relay_slots_init(&is, c->shape);
        if (value_bytes(in, &bin) ||
            !(pl = relay_plan_new(avro_value_get_schema((avro_value_t *)in), 0,
                                  c->shape, NULL, NULL, errstr, errstr_size)) ||
            relay_plan_decode(pl, bin.data, bin.len, &is, errstr, errstr_size))
                goto done;
        if (!(osh = relay_shape_new(avro_value_get_schema(out), errstr,
                                    errstr_size)))
                goto done;
        relay_slots_init(&os, osh);
        have_os = 1;
        res = relay_connection_apply(c, &is, &os, key, errstr, errstr_size);
        if (res != RELAY_MAP_OUT)
                goto done;
        res = RELAY_MAP_ERROR;
        if (relay_shape_encode(osh, &os, &obin, errstr, errstr_size))
                goto done;
        avro_reader_t r = avro_reader_memory(obin.data, (int64_t)obin.len);
        int rc = avro_value_read(r, out);
        avro_reader_free(r);
        if (rc)
                relay_seterr(errstr, errstr_size, "%s", avro_strerror());
        else
                res = RELAY_MAP_OUT;
done:
        if (have_os)
                relay_slots_free(&os);
        relay_shape_destroy(osh);
        relay_plan_destroy(pl);
        relay_slots_free(&is);
        relay_buf_free(&bin);
        relay_buf_free(&obin);
        return res;
}
