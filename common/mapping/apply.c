/*
 * Applying a connection to one decoded input record: the event type picks
 * a rule (or none: counted, then skipped or refused per the connection's
 * `unmapped`), the identity list picks the identifier the destination gets,
 * the person field (or that identifier) makes the Kafka key, and the rule's
 * attributes and the connection's field sync fill the relay.out.Outbound
 * value. The rules were checked at load (load.c); what can still be wrong
 * here is the record, and each such fault is a RELAY_MAP_ERROR whose reason
 * names the connection and the field, for the dead letter.
 */
#include "mapping_int.h"
#include "relay/avro.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What a path finds in a record. Absent and null are told apart only so
 * that an error can say which: both take a default, both fail a required
 * field. */
enum field_state { FIELD_PRESENT, FIELD_ABSENT, FIELD_NULL };

/* 1 when path leads to a null (a union holding its null branch) rather
 * than to nothing. Walks as relay_avro_path() does, map keys holding dots
 * included; only called once relay_avro_path() has failed, so off the hot
 * path. */
static int path_is_null(const avro_value_t *root, const char *path)
{
        avro_value_t cur = *root, next, b;
        const char *p = path;
        char seg[256];
        for (;;) {
                while (avro_value_get_type(&cur) == AVRO_UNION) {
                        if (avro_value_get_current_branch(&cur, &b))
                                return 0;
                        cur = b;
                }
                avro_type_t t = avro_value_get_type(&cur);
                if (t != AVRO_RECORD && t != AVRO_MAP)
                        return 0; /* null or a scalar above the leaf */
                const char *dot = strchr(p, '.');
                size_t n = dot ? (size_t)(dot - p) : strlen(p);
                if (n == 0 || n >= sizeof(seg))
                        return 0;
                memcpy(seg, p, n);
                seg[n] = '\0';
                if (t == AVRO_MAP && dot &&
                    avro_value_get_by_name(&cur, p, &next, NULL) == 0) {
                        cur = next;
                        break;
                }
                if (avro_value_get_by_name(&cur, seg, &next, NULL))
                        return 0;
                cur = next;
                if (!dot)
                        break;
                p = dot + 1;
        }
        while (avro_value_get_type(&cur) == AVRO_UNION) {
                if (avro_value_get_current_branch(&cur, &b))
                        return 0;
                cur = b;
        }
        return avro_value_get_type(&cur) == AVRO_NULL;
}

static enum field_state lookup(const avro_value_t *in, const char *path,
                               avro_value_t *v)
{
        if (relay_avro_path(in, path, v) == 0)
                return FIELD_PRESENT;
        return path_is_null(in, path) ? FIELD_NULL : FIELD_ABSENT;
}

static const char *absent_or_null(enum field_state st)
{
        return st == FIELD_NULL ? "is null" : "is missing";
}

/* Text of the field at path, appended to b; -1 when missing or not a
 * scalar. */
static int path_text(const avro_value_t *in, const char *path, relay_buf_t *b)
{
        avro_value_t v;
        return relay_avro_path(in, path, &v) ? -1 : relay_avro_to_text(&v, b);
}

/* 1 when s[0..n) is valid UTF-8. Avro strings should be, but no decoder
 * checks; an identity that is not would reach the platform with U+FFFD in
 * it and name a different person there. */
static int utf8_valid(const char *s, size_t n)
{
        const unsigned char *u = (const unsigned char *)s;
        for (size_t i = 0; i < n;) {
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

static void set_str(avro_value_t *rec, const char *field, const char *s,
                    size_t n)
{
        avro_value_t f, b;
        avro_value_get_by_name(rec, field, &f, NULL);
        if (avro_value_get_type(&f) == AVRO_UNION) {
                avro_value_set_branch(&f, 1, &b); /* ["null", "string"] */
                f = b;
        }
        avro_value_set_string_len(&f, s, n + 1);
}

/* Select the branch of a scalar union (the attribute maps' value type)
 * holding type t. */
static int union_set(avro_value_t *u, avro_type_t t, avro_value_t *branch)
{
        avro_schema_t us = avro_value_get_schema(u);
        for (size_t i = 0; i < avro_schema_union_size(us); i++)
                if (avro_typeof(avro_schema_union_branch(us, (int)i)) == t)
                        return avro_value_set_branch(u, (int)i, branch);
        return -1;
}

static int put_string(avro_value_t *map, const char *name, const char *s,
                      size_t n)
{
        avro_value_t e, b;
        if (avro_value_add(map, name, &e, NULL, NULL) ||
            union_set(&e, AVRO_STRING, &b))
                return -1;
        return avro_value_set_string_len(&b, s, n + 1);
}

/* Copy a scalar keeping its type (int → long, float → double, enum →
 * string). */
static int put_typed(avro_value_t *map, const char *name, avro_value_t *src,
                     relay_buf_t *scratch)
{
        avro_value_t e, b;
        if (avro_value_add(map, name, &e, NULL, NULL))
                return -1;
        switch (avro_value_get_type(src)) {
        case AVRO_BOOLEAN: {
                int x;
                avro_value_get_boolean(src, &x);
                return union_set(&e, AVRO_BOOLEAN, &b) ||
                       avro_value_set_boolean(&b, x);
        }
        case AVRO_INT32:
        case AVRO_INT64: {
                int64_t l = 0;
                int32_t i = 0;
                if (avro_value_get_type(src) == AVRO_INT32) {
                        avro_value_get_int(src, &i);
                        l = i;
                } else {
                        avro_value_get_long(src, &l);
                }
                return union_set(&e, AVRO_INT64, &b) ||
                       avro_value_set_long(&b, l);
        }
        case AVRO_FLOAT:
        case AVRO_DOUBLE: {
                double d = 0;
                float f = 0;
                if (avro_value_get_type(src) == AVRO_FLOAT) {
                        avro_value_get_float(src, &f);
                        d = f;
                } else {
                        avro_value_get_double(src, &d);
                }
                return union_set(&e, AVRO_DOUBLE, &b) ||
                       avro_value_set_double(&b, d);
        }
        default:
                relay_buf_reset(scratch);
                if (relay_avro_to_text(src, scratch))
                        return -1;
                return union_set(&e, AVRO_STRING, &b) ||
                       avro_value_set_string_len(&b, scratch->data,
                                                 scratch->len + 1);
        }
}

/* Convert text per conv and put it; -1 with errstr when it does not
 * convert. */
static int put_converted(avro_value_t *map, const struct value_spec *v,
                         const char *text, size_t n, char *errstr,
                         size_t errstr_size)
{
        avro_value_t e, b;
        if (v->conv == CONV_KEEP || v->conv == CONV_STRING)
                return put_string(map, v->name, text, n);
        if (avro_value_add(map, v->name, &e, NULL, NULL))
                return -1;
        char *end;
        if (v->conv == CONV_NUMBER) {
                errno = 0;
                long long l = strtoll(text, &end, 10);
                if (n && !*end && !errno)
                        return union_set(&e, AVRO_INT64, &b) ||
                               avro_value_set_long(&b, l);
                double d = strtod(text, &end);
                if (n && !*end)
                        return union_set(&e, AVRO_DOUBLE, &b) ||
                               avro_value_set_double(&b, d);
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
        return union_set(&e, AVRO_BOOLEAN, &b) || avro_value_set_boolean(&b, t);
}

/* Evaluate one value spec into map. 0 on success or deliberate skip, -1
 * with errstr. */
static int apply_value(const struct value_spec *v, const avro_value_t *in,
                       avro_value_t *map, relay_buf_t *scratch, char *errstr,
                       size_t errstr_size)
{
        relay_buf_reset(scratch);
        if (v->from) {
                avro_value_t src;
                enum field_state st = lookup(in, v->from, &src);
                if (st != FIELD_PRESENT) {
                        if (v->defval)
                                return put_converted(map, v, v->defval,
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
                        return put_typed(map, v->name, &src, scratch);
                if (relay_avro_to_text(&src, scratch)) {
                        relay_seterr(errstr, errstr_size,
                                     "'%s': field %s is not a scalar value",
                                     v->name, v->from);
                        return -1;
                }
        } else {
                for (size_t i = 0; i < v->nparts; i++) {
                        const struct tmpl_part *p = &v->parts[i];
                        if (!p->is_field) {
                                relay_buf_puts(scratch, p->text);
                                continue;
                        }
                        avro_value_t src;
                        enum field_state st = lookup(in, p->text, &src);
                        if (st == FIELD_PRESENT &&
                            relay_avro_to_text(&src, scratch) == 0)
                                continue;
                        if (v->defval) {
                                relay_buf_reset(scratch);
                                relay_buf_puts(scratch, v->defval);
                                break;
                        }
                        relay_seterr(errstr, errstr_size,
                                     "'%s': the template names field %s, "
                                     "which %s",
                                     v->name, p->text,
                                     st == FIELD_NULL     ? "is null"
                                     : st == FIELD_ABSENT ? "the record lacks"
                                                          : "is not a scalar "
                                                            "value");
                        return -1;
                }
        }
        return put_converted(map, v, scratch->data ? scratch->data : "",
                             scratch->len, errstr, errstr_size);
}

static int rule_matches(const struct event_rule *r, const char *type)
{
        for (size_t i = 0; i < r->non; i++)
                if (!strcmp(r->on[i], "*") || !strcmp(r->on[i], type))
                        return 1;
        return 0;
}

static int text_equals(const avro_value_t *in, const char *path,
                       const char *want, relay_buf_t *scratch)
{
        relay_buf_reset(scratch);
        return path_text(in, path, scratch) == 0 && scratch->data &&
               !strcmp(scratch->data, want);
}

enum relay_map_result relay_connection_apply(const relay_connection_t *c,
                                             const avro_value_t *in,
                                             avro_value_t *out,
                                             relay_buf_t *key, char *errstr,
                                             size_t errstr_size)
{
        relay_buf_t s;
        relay_buf_init(&s);
        enum relay_map_result res = RELAY_MAP_SKIP;
        const struct event_rule *rule = NULL;
        if (!text_equals(in, "tenant", c->tenant, &s) ||
            !text_equals(in, "source", c->source, &s))
                goto done;
        relay_buf_reset(&s);
        if (path_text(in, c->event_field, &s)) {
                relay_seterr(errstr, errstr_size,
                             "connection %s: the record has no %s", c->id,
                             c->event_field);
                res = RELAY_MAP_ERROR;
                goto done;
        }
        const char *type = s.data ? s.data : "";
        for (size_t i = 0; i < c->nevents && !rule; i++)
                if (rule_matches(&c->events[i], type))
                        rule = &c->events[i];
        if (!rule) {
                /* Unassociated, unlike a drop rule's types, which are
                 * skipped on purpose and quietly. */
                relay_connection_count_unmapped(c, type);
                if (c->unmapped_dead_letter) {
                        relay_seterr(errstr, errstr_size,
                                     "event type '%s' has no rule in "
                                     "connection '%s' (unmapped = "
                                     "dead_letter)",
                                     type, c->id);
                        res = RELAY_MAP_ERROR;
                }
                goto done;
        }
        if (rule->drop)
                goto done;

        res = RELAY_MAP_ERROR;
        const struct identity_rule *id = NULL;
        for (size_t i = 0; i < c->nids && !id; i++) {
                relay_buf_reset(&s);
                if (path_text(in, c->ids[i].from, &s) == 0 && s.len)
                        id = &c->ids[i];
        }
        if (!id) {
                relay_buf_t names;
                relay_buf_init(&names);
                for (size_t i = 0; i < c->nids; i++)
                        relay_buf_printf(&names, "%s%s", i ? ", " : "",
                                         c->ids[i].from);
                relay_seterr(errstr, errstr_size,
                             "connection %s: no identity for %s: none of "
                             "%s is present",
                             c->id, c->destination, names.data);
                relay_buf_free(&names);
                goto done;
        }
        if (!utf8_valid(s.data, s.len)) {
                /* Not repaired: with U+FFFD in it the value would name
                 * some other profile at the destination. */
                relay_seterr(errstr, errstr_size,
                             "connection %s: identity %s is not valid UTF-8",
                             c->id, id->from);
                goto done;
        }
        set_str(out, "identity_type", id->as, strlen(id->as));
        set_str(out, "identity_value", s.data, s.len);

        /* The key is the person, so that one person's records share a
         * partition and stay in order whichever identity each carries;
         * the identity type is left out for the same reason. */
        int fallback = 0;
        relay_buf_reset(key);
        relay_buf_printf(key, "%s/", c->tenant);
        if (c->person) {
                size_t at = key->len;
                avro_value_t pv;
                if (relay_avro_path(in, c->person, &pv) == 0 &&
                    relay_avro_to_text(&pv, key) == 0 && key->len > at) {
                        if (!utf8_valid(key->data + at, key->len - at)) {
                                relay_seterr(errstr, errstr_size,
                                             "connection %s: person %s is "
                                             "not valid UTF-8",
                                             c->id, c->person);
                                goto done;
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
                relay_buf_append(key, s.data, s.len);

        static const char *const copied[] = {"event_id", "tenant", "source",
                                             NULL};
        for (size_t i = 0; copied[i]; i++) {
                relay_buf_reset(&s);
                if (path_text(in, copied[i], &s)) {
                        relay_seterr(errstr, errstr_size,
                                     "the record has no %s", copied[i]);
                        goto done;
                }
                set_str(out, copied[i], s.data, s.len);
        }
        avro_value_t f, src;
        int64_t ts = 0;
        if (relay_avro_path(in, "occurred_at", &src) == 0)
                avro_value_get_long(&src, &ts);
        avro_value_get_by_name(out, "occurred_at", &f, NULL);
        avro_value_set_long(&f, ts);
        set_str(out, "connection", c->id, strlen(c->id));
        set_str(out, "destination", c->destination, strlen(c->destination));
        avro_value_get_by_name(out, "environment", &f, NULL);
        avro_value_set_enum(&f, c->development ? 1 : 0);

        set_str(out, "event_name", rule->name, strlen(rule->name));
        avro_value_t ec, b;
        avro_value_get_by_name(out, "event_category", &ec, NULL);
        if (rule->category)
                set_str(out, "event_category", rule->category,
                        strlen(rule->category));
        else
                avro_value_set_branch(&ec, 0, &b);

        avro_value_t attrs, uattrs;
        avro_value_get_by_name(out, "attributes", &attrs, NULL);
        avro_value_get_by_name(out, "user_attributes", &uattrs, NULL);
        char why[512];
        for (size_t i = 0; i < rule->nattrs; i++)
                if (apply_value(&rule->attrs[i], in, &attrs, &s, why,
                                sizeof(why))) {
                        relay_seterr(errstr, errstr_size,
                                     "connection %s, event '%s', attribute "
                                     "%s",
                                     c->id, rule->name, why);
                        goto done;
                }
        for (size_t i = 0; i < c->nfields; i++)
                if (apply_value(&c->fields[i], in, &uattrs, &s, why,
                                sizeof(why))) {
                        relay_seterr(errstr, errstr_size,
                                     "connection %s, field sync %s", c->id,
                                     why);
                        goto done;
                }
        if (fallback)
                relay_connection_count_fallback(c);
        res = RELAY_MAP_OUT;
done:
        relay_buf_free(&s);
        return res;
}
