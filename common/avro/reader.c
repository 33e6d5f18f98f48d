/*
 * Readers: Avro in the Confluent wire format, on avro-c's generic values.
 *
 * A reader owns one value of its subject's newest (reader) schema. Records
 * written with that same schema are read straight into it; records written
 * with another version of the subject go through a resolved writer for that
 * version (built once, cached by id), which is how producers can add an
 * optional field while consumers keep running on the old schema.
 */
#include "avro_int.h"
#include "relay/codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A resolved writer for one writer schema id, cached by the reader. */
struct resolved {
        int32_t writer_id;
        avro_schema_t wschema; /* the writer schema as resolved */
        avro_value_iface_t *iface;
        avro_value_t value;
        int enums_grew; /* a writer enum has symbols the reader lacks */
};

struct relay_avro_reader {
        relay_schemas_t *schemas;
        char *subject;
        avro_schema_t schema; /* the reader schema */
        int32_t reader_id;    /* its wire id */
        size_t max_bytes;
        avro_value_iface_t *iface;
        avro_value_t value;
        avro_reader_t in;
        struct resolved *resolved; /* oldest first */
        size_t nresolved, max_resolved;
        json_t *enum_defaults; /* reader enum name -> default symbol */
        /* the compiled path: plans by writer id, oldest first */
        relay_shape_t *shape;
        relay_slots_t slots;
        struct plan_entry {
                int32_t writer_id;
                relay_plan_t *plan;
        } * plans;
        size_t nplans;
        const char *const *want;
};

/* A generic value of schema (and its class): 0, or -1 with errstr. */
int relay_avro_generic_new(avro_schema_t schema, avro_value_iface_t **iface,
                           avro_value_t *value, const char *what,
                           const char *subject, char *errstr,
                           size_t errstr_size)
{
        *iface = avro_generic_class_from_schema(schema);
        if (*iface && avro_generic_value_new(*iface, value) == 0)
                return 0;
        relay_seterr(errstr, errstr_size, "cannot build a %s for '%s': %s",
                     what, subject, avro_strerror());
        return -1;
}

/*
 * Enums. avro-c's resolver copies a writer enum's index as it is, and
 * avro-c keeps no enum "default". Symbols appended at the end of a writer
 * enum are the usual evolution; for those the reader's value holds an
 * index past its own symbols, which decode maps to the reader enum's
 * default (read from the schema text) or refuses. Any other change of an
 * enum's symbols (reordered, inserted, removed) would shift indexes, so
 * such a writer schema is not resolved at all.
 */
static void collect_enum_defaults(json_t *j, json_t *out)
{
        size_t i;
        const char *k;
        json_t *v;
        if (json_is_array(j)) {
                json_array_foreach(j, i, v) collect_enum_defaults(v, out);
                return;
        }
        if (!json_is_object(j))
                return;
        const char *type = json_string_value(json_object_get(j, "type"));
        const char *name = json_string_value(json_object_get(j, "name"));
        const char *def = json_string_value(json_object_get(j, "default"));
        if (type && name && def && !strcmp(type, "enum")) {
                const char *dot = strrchr(name, '.');
                json_object_set_new(out, dot ? dot + 1 : name,
                                    json_string(def));
        }
        json_object_foreach(j, k, v) collect_enum_defaults(v, out);
}

/* Every enum reachable from schema, appended to a JSON object by name
 * (the pointer as an integer), named types visited once. */
static void collect_enums(avro_schema_t sc, json_t *out, int depth)
{
        if (!sc || depth > 64)
                return;
        switch (avro_typeof(sc)) {
        case AVRO_ENUM:
                json_object_set_new(out, avro_schema_name(sc),
                                    json_integer((json_int_t)(intptr_t)sc));
                break;
        case AVRO_RECORD:
                for (size_t i = 0; i < avro_schema_record_size(sc); i++)
                        collect_enums(
                            avro_schema_record_field_get_by_index(sc, (int)i),
                            out, depth + 1);
                break;
        case AVRO_UNION:
                for (size_t i = 0; i < avro_schema_union_size(sc); i++)
                        collect_enums(avro_schema_union_branch(sc, (int)i), out,
                                      depth + 1);
                break;
        case AVRO_ARRAY:
                collect_enums(avro_schema_array_items(sc), out, depth + 1);
                break;
        case AVRO_MAP:
                collect_enums(avro_schema_map_values(sc), out, depth + 1);
                break;
        default: /* links lead to types already visited */
                break;
        }
}

/* 0 when every enum of the writer keeps the reader's symbols in the
 * reader's order (*grew set when some has more at the end); -1 with
 * errstr otherwise. */
static int check_enums(avro_schema_t ws, avro_schema_t rs, int32_t writer_id,
                       int *grew, char *errstr, size_t errstr_size)
{
        json_t *we = json_object(), *re = json_object();
        const char *name;
        json_t *v;
        int rc = 0;
        collect_enums(ws, we, 0);
        collect_enums(rs, re, 0);
        *grew = 0;
        json_object_foreach(we, name, v)
        {
                json_t *rv = json_object_get(re, name);
                if (!rv)
                        continue;
                avro_schema_t w =
                    (avro_schema_t)(intptr_t)json_integer_value(v);
                avro_schema_t r =
                    (avro_schema_t)(intptr_t)json_integer_value(rv);
                int nw = avro_schema_enum_number_of_symbols(w);
                int nr = avro_schema_enum_number_of_symbols(r);
                for (int i = 0; i < nw && i < nr && !rc; i++)
                        if (strcmp(avro_schema_enum_get(w, i),
                                   avro_schema_enum_get(r, i))) {
                                relay_seterr(
                                    errstr, errstr_size,
                                    "writer schema id %d changes the order "
                                    "of enum %s's symbols (%s where the "
                                    "reader has %s): only appending symbols "
                                    "can be resolved",
                                    (int)writer_id, name,
                                    avro_schema_enum_get(w, i),
                                    avro_schema_enum_get(r, i));
                                rc = -1;
                        }
                if (nw > nr) /* fewer is fine: unused symbols */
                        *grew = 1;
        }
        json_decref(we);
        json_decref(re);
        return rc;
}

/* After a read through a resolver whose writer enums grew: map each enum
 * index past the reader's symbols to the reader's default. 0, or -1 with
 * errstr when the enum has no default. */
static int fix_enums(relay_avro_reader_t *r, avro_value_t *v, int32_t writer_id,
                     char *errstr, size_t errstr_size)
{
        avro_value_t child;
        size_t n;
        switch (avro_value_get_type(v)) {
        case AVRO_ENUM: {
                int idx = 0;
                avro_schema_t es = avro_value_get_schema(v);
                avro_value_get_enum(v, &idx);
                if (idx >= 0 && idx < avro_schema_enum_number_of_symbols(es))
                        return 0;
                const char *def = json_string_value(
                    json_object_get(r->enum_defaults, avro_schema_name(es)));
                int d = def ? avro_schema_enum_get_by_name(es, def) : -1;
                if (d < 0) {
                        relay_seterr(errstr, errstr_size,
                                     "enum %s: symbol %d of writer schema "
                                     "id %d is unknown to the reader schema, "
                                     "which has no default for it",
                                     avro_schema_name(es), idx, (int)writer_id);
                        return -1;
                }
                return avro_value_set_enum(v, d) ? -1 : 0;
        }
        case AVRO_UNION:
                if (avro_value_get_current_branch(v, &child))
                        return 0;
                return fix_enums(r, &child, writer_id, errstr, errstr_size);
        case AVRO_RECORD:
        case AVRO_MAP:
        case AVRO_ARRAY:
                avro_value_get_size(v, &n);
                for (size_t i = 0; i < n; i++) {
                        avro_value_get_by_index(v, i, &child, NULL);
                        if (fix_enums(r, &child, writer_id, errstr,
                                      errstr_size))
                                return -1;
                }
                return 0;
        default:
                return 0;
        }
}

relay_avro_reader_t *relay_avro_reader_new(relay_schemas_t *s,
                                           const char *subject,
                                           size_t max_bytes, char *errstr,
                                           size_t errstr_size)
{
        int32_t id;
        if (relay_schemas_bind(s, subject, &id, errstr, errstr_size) !=
            RELAY_OK)
                return NULL;
        relay_avro_reader_t *r = relay_calloc(1, sizeof(*r));
        r->schemas = s;
        r->subject = relay_strdup(subject);
        r->schema = avro_schema_incref(relay_schemas_local(s, subject));
        r->reader_id = id;
        r->max_bytes = max_bytes;
        r->max_resolved = s->reg ? s->rconf.cache_max : s->n;
        r->enum_defaults = json_object();
        json_t *text =
            json_loads(relay_schemas_local_text(s, subject), 0, NULL);
        collect_enum_defaults(text, r->enum_defaults);
        json_decref(text);
        if (relay_avro_generic_new(r->schema, &r->iface, &r->value, "reader",
                                   subject, errstr, errstr_size)) {
                relay_avro_reader_destroy(r);
                return NULL;
        }
        r->in = avro_reader_memory("", 0);
        if (!(r->shape = relay_shape_new(r->schema, errstr, errstr_size))) {
                relay_avro_reader_destroy(r);
                return NULL;
        }
        relay_slots_init(&r->slots, r->shape);
        return r;
}

static void resolved_free(struct resolved *res)
{
        avro_value_decref(&res->value);
        avro_value_iface_decref(res->iface);
        avro_schema_decref(res->wschema);
}

void relay_avro_reader_destroy(relay_avro_reader_t *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->nresolved; i++)
                resolved_free(&r->resolved[i]);
        free(r->resolved);
        for (size_t i = 0; i < r->nplans; i++)
                relay_plan_destroy(r->plans[i].plan);
        free(r->plans);
        if (r->shape)
                relay_slots_free(&r->slots);
        relay_shape_destroy(r->shape);
        json_decref(r->enum_defaults);
        if (r->schema)
                avro_schema_decref(r->schema);
        if (r->value.self)
                avro_value_decref(&r->value);
        if (r->iface)
                avro_value_iface_decref(r->iface);
        if (r->in)
                avro_reader_free(r->in);
        free(r->subject);
        free(r);
}

/* avro-c's resolver refuses a reader field the writer lacks, even one with
 * a default, so a reader on a newer schema could not read records of the
 * older one. For the usual change, a new optional field (a union whose
 * first branch is null, so its default can only be null), give the writer
 * schema that field with type "null": it takes no bytes, so the data is
 * unchanged, and the resolver reads it as the reader's null. Other missing
 * fields are still refused by the resolver. Returns a new reference. */
static avro_schema_t writer_with_reader_nulls(avro_schema_t ws,
                                              avro_schema_t rs)
{
        avro_schema_t out = NULL;
        if (avro_typeof(ws) != AVRO_RECORD || avro_typeof(rs) != AVRO_RECORD)
                return avro_schema_incref(ws);
        for (size_t i = 0; i < avro_schema_record_size(rs); i++) {
                const char *name = avro_schema_record_field_name(rs, (int)i);
                avro_schema_t fs =
                    avro_schema_record_field_get_by_index(rs, (int)i);
                if (avro_schema_record_field_get_index(ws, name) >= 0 ||
                    avro_typeof(fs) != AVRO_UNION ||
                    avro_schema_union_size(fs) == 0 ||
                    avro_typeof(avro_schema_union_branch(fs, 0)) != AVRO_NULL)
                        continue;
                if (!out)
                        out = avro_schema_copy(ws);
                avro_schema_t null = avro_schema_null();
                avro_schema_record_field_append(out, name, null);
                avro_schema_decref(null);
        }
        return out ? out : avro_schema_incref(ws);
}

/* The value to read a record of writer schema ws (id writer_id) into:
 * the reader's own value, or a resolved writer that fills it, built once
 * and kept for the reader's last max_resolved writer ids. NULL + errstr
 * if not resolvable. */
static avro_value_t *reader_target(relay_avro_reader_t *r, int32_t writer_id,
                                   avro_schema_t writer, int *enums_grew,
                                   char *errstr, size_t errstr_size)
{
        *enums_grew = 0;
        if (writer_id == r->reader_id)
                return &r->value;
        for (size_t i = 0; i < r->nresolved; i++)
                if (r->resolved[i].writer_id == writer_id) {
                        *enums_grew = r->resolved[i].enums_grew;
                        return &r->resolved[i].value;
                }

        int grew;
        if (check_enums(writer, r->schema, writer_id, &grew, errstr,
                        errstr_size))
                return NULL;
        avro_schema_t ws = writer_with_reader_nulls(writer, r->schema);
        avro_value_iface_t *iface = avro_resolved_writer_new(ws, r->schema);
        if (!iface) {
                relay_seterr(errstr, errstr_size,
                             "writer schema id %d cannot be read as reader "
                             "schema id %d: %s",
                             (int)writer_id, (int)r->reader_id,
                             avro_strerror());
                avro_schema_decref(ws);
                return NULL;
        }
        struct resolved res;
        if (avro_resolved_writer_new_value(iface, &res.value)) {
                relay_seterr(errstr, errstr_size, "resolver for id %d: %s",
                             (int)writer_id, avro_strerror());
                avro_value_iface_decref(iface);
                avro_schema_decref(ws);
                return NULL;
        }
        res.writer_id = writer_id;
        res.wschema = ws;
        res.iface = iface;
        res.enums_grew = *enums_grew = grew;
        avro_resolved_writer_set_dest(&res.value, &r->value);
        if (r->max_resolved && r->nresolved >= r->max_resolved) {
                resolved_free(&r->resolved[0]);
                memmove(r->resolved, r->resolved + 1,
                        --r->nresolved * sizeof(*r->resolved));
        }
        r->resolved = relay_realloc(r->resolved,
                                    (r->nresolved + 1) * sizeof(*r->resolved));
        r->resolved[r->nresolved] = res;
        return &r->resolved[r->nresolved++].value;
}

/* The writer schema of a framed record, checked as
 * relay_avro_reader_decode checks it. */
static enum relay_result writer_of(relay_avro_reader_t *r, const void *buf,
                                   size_t len, int32_t *id, int32_t *writer_id,
                                   struct schema_entry **e, char *errstr,
                                   size_t errstr_size)
{
        if (r->max_bytes && len > r->max_bytes) {
                relay_seterr(errstr, errstr_size,
                             "record of %zu bytes exceeds the limit of %zu",
                             len, r->max_bytes);
                return RELAY_FATAL;
        }
        if (relay_avro_frame_parse(buf, len, id, errstr, errstr_size))
                return RELAY_FATAL;
        if (writer_id)
                *writer_id = *id;
        enum relay_result lr =
            relay_schemas_lookup(r->schemas, *id, e, errstr, errstr_size);
        if (lr != RELAY_OK)
                return lr;
        if (!relay_schemas_entry_fits(*e, r->subject, r->schema)) {
                relay_seterr(errstr, errstr_size,
                             "schema id %d does not belong to subject '%s'",
                             (int)*id, r->subject);
                return RELAY_FATAL;
        }
        return RELAY_OK;
}

const relay_shape_t *relay_avro_reader_shape(const relay_avro_reader_t *r)
{
        return r->shape;
}

void relay_avro_reader_want(relay_avro_reader_t *r, const char *const *fields)
{
        r->want = fields;
}

/* The plan for writer_id, compiled on first use and kept for the last
 * max_resolved ids (as resolved writers are). NULL + errstr when the
 * writer cannot be read as the reader. */
static const relay_plan_t *plan_for(relay_avro_reader_t *r, int32_t writer_id,
                                    avro_schema_t ws, char *errstr,
                                    size_t errstr_size)
{
        for (size_t i = 0; i < r->nplans; i++)
                if (r->plans[i].writer_id == writer_id)
                        return r->plans[i].plan;
        char why[768];
        relay_plan_t *pl =
            relay_plan_new(ws, writer_id, r->shape, r->enum_defaults, r->want,
                           why, sizeof(why));
        if (!pl) {
                relay_seterr(errstr, errstr_size,
                             "writer schema id %d cannot be read as reader "
                             "schema id %d: %s",
                             (int)writer_id, (int)r->reader_id, why);
                return NULL;
        }
        if (r->max_resolved && r->nplans >= r->max_resolved) {
                relay_plan_destroy(r->plans[0].plan);
                memmove(r->plans, r->plans + 1,
                        --r->nplans * sizeof(*r->plans));
        }
        r->plans = relay_realloc(r->plans, (r->nplans + 1) * sizeof(*r->plans));
        r->plans[r->nplans].writer_id = writer_id;
        r->plans[r->nplans].plan = pl;
        r->nplans++;
        return pl;
}

enum relay_result relay_avro_reader_decode_slots(relay_avro_reader_t *r,
                                                 const void *buf, size_t len,
                                                 const relay_slots_t **out,
                                                 int32_t *writer_id,
                                                 char *errstr,
                                                 size_t errstr_size)
{
        int32_t id;
        struct schema_entry *e;
        enum relay_result res =
            writer_of(r, buf, len, &id, writer_id, &e, errstr, errstr_size);
        if (res != RELAY_OK)
                return res;
        const relay_plan_t *pl =
            plan_for(r, id, e->schema, errstr, errstr_size);
        if (!pl ||
            relay_plan_decode(pl, (const char *)buf + RELAY_AVRO_HEADER_LEN,
                              len - RELAY_AVRO_HEADER_LEN, &r->slots, errstr,
                              errstr_size))
                return RELAY_FATAL;
        *out = &r->slots;
        return RELAY_OK;
}

enum relay_result relay_avro_reader_decode(relay_avro_reader_t *r,
                                           const void *buf, size_t len,
                                           avro_value_t **out,
                                           int32_t *writer_id, char *errstr,
                                           size_t errstr_size)
{
        int32_t id;
        struct schema_entry *e;
        enum relay_result lr =
            writer_of(r, buf, len, &id, writer_id, &e, errstr, errstr_size);
        if (lr != RELAY_OK)
                return lr;
        avro_schema_t ws = e->schema;
        if (relay_avro_check_body(ws, id, buf, len, errstr, errstr_size))
                return RELAY_FATAL;
        int enums_grew;
        avro_value_t *target =
            reader_target(r, id, ws, &enums_grew, errstr, errstr_size);
        if (!target)
                return RELAY_FATAL;
        /* No reset here: avro_value_read resets its target (through the
         * resolver, the reader's value too). */
        /* avro-c prefixes its messages onto whatever the last error was;
         * start clean so the reason names only this record's problem. */
        avro_set_error("end of data");
        avro_reader_memory_set_source(r->in,
                                      (const char *)buf + RELAY_AVRO_HEADER_LEN,
                                      (int64_t)(len - RELAY_AVRO_HEADER_LEN));
        if (avro_value_read(r->in, target)) {
                relay_seterr(errstr, errstr_size,
                             "invalid Avro data for schema id %d: %s", (int)id,
                             avro_strerror());
                return RELAY_FATAL;
        }
        if (enums_grew && fix_enums(r, &r->value, id, errstr, errstr_size))
                return RELAY_FATAL;
        *out = &r->value;
        return RELAY_OK;
}

enum relay_result relay_avro_decode_written(relay_schemas_t *s, const void *buf,
                                            size_t len, json_t **out,
                                            char *errstr, size_t errstr_size)
{
        int32_t id;
        struct schema_entry *e;
        if (relay_avro_frame_parse(buf, len, &id, errstr, errstr_size))
                return RELAY_FATAL;
        enum relay_result r =
            relay_schemas_lookup(s, id, &e, errstr, errstr_size);
        if (r != RELAY_OK)
                return r;
        if (relay_avro_check_body(e->schema, id, buf, len, errstr, errstr_size))
                return RELAY_FATAL;
        avro_value_iface_t *iface;
        avro_value_t v;
        if (relay_avro_generic_new(e->schema, &iface, &v, "reader",
                                   e->nsubjects ? e->subjects[0] : "?", errstr,
                                   errstr_size))
                return RELAY_FATAL;
        avro_reader_t in =
            avro_reader_memory((const char *)buf + RELAY_AVRO_HEADER_LEN,
                               (int64_t)(len - RELAY_AVRO_HEADER_LEN));
        avro_set_error("end of data");
        if (avro_value_read(in, &v)) {
                relay_seterr(errstr, errstr_size,
                             "invalid Avro data for schema id %d: %s", (int)id,
                             avro_strerror());
                r = RELAY_FATAL;
        } else {
                *out = relay_avro_to_json(&v);
        }
        avro_reader_free(in);
        avro_value_decref(&v);
        avro_value_iface_decref(iface);
        return r;
}
