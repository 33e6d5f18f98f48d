/*
 * JSON record → topic record (see relay/json_map.h): the mapping keys of
 * a source file, parsed and checked against the topic's schema with the
 * mapping module's loader helpers (mapping_int.h), so that a mistake reads
 * "file:line: what is wrong" as in a connection file; and one JSON record
 * mapped: the rules fill a JSON object of the record's shape, which
 * relay_avro_from_json checks field by field against the schema (so a
 * record that does not fit is refused naming the field) and the topic's
 * writer encodes. relay-ingest (common/mapping/ingest.c) and relay-poll
 * (common/poll/) each keep only what is theirs around it: the ingest's
 * routes, tokens and batches; the poll's windows, pages and checkpoints.
 */
#include "mapping_int.h"
#include "relay/json_map.h"
#include "relay/sign.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting flatten follows before the rest is cut (kept as its JSON text):
 * a bound on the recursion for input from outside. */
#define FLATTEN_DEPTH 16

enum itype {
        IT_KEEP,
        IT_STRING,
        IT_NUMBER,
        IT_BOOL,
        IT_TIMESTAMP,
        IT_ISO8601,
        IT_EPOCH_S,
        IT_EPOCH_MS,
        IT_FLATTEN
};
static const char *const type_names[] = {
    "keep",    "string",  "number",   "bool",   "timestamp",
    "iso8601", "epoch_s", "epoch_ms", "flatten"};
#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

struct ipart {
        int is_field;
        char *text;
        size_t len;
};

/* A template: literal and field parts (a literal alone has one part). */
struct itmpl {
        struct ipart *parts;
        size_t n;
};

struct rule {
        char *to;
        char *from;         /* a copy of one field, or */
        struct itmpl value; /* a template */
        char *defval;
        enum itype type;
        int required;
        int line;
};

struct relay_json_map {
        char *topic, *source;
        struct itmpl tenant; /* n 0: none */
        char *event_id;
        struct itmpl *keys; /* alternatives, over the output */
        size_t nkeys;
        struct rule *rules;
        size_t nrules;
        /* derived ids (relay_json_map_opts_t) */
        unsigned char ns[16];
        relay_buf_t id_prefix, id_infix;
        int id_from_content;
        /* which of the defaulted fields the topic's record has */
        int has_event_id, has_occurred, has_tenant, has_source, has_type;
        /* the record's map fields: empty when no rule fills them */
        char **maps;
        size_t nmaps;
        relay_avro_writer_t *writer;
        relay_buf_t scratch;
};

static void tmpl_free(struct itmpl *t)
{
        for (size_t i = 0; i < t->n; i++)
                free(t->parts[i].text);
        free(t->parts);
        t->parts = NULL;
        t->n = 0;
}

static int tmpl_part(void *arg, int is_field, const char *s, size_t n)
{
        struct itmpl *t = arg;
        t->parts = relay_realloc(t->parts, (t->n + 1) * sizeof(*t->parts));
        t->parts[t->n].is_field = is_field;
        t->parts[t->n].text = relay_strndup(s, n);
        t->parts[t->n++].len = n;
        return 0;
}

static void rule_free(struct rule *r)
{
        free(r->to);
        free(r->from);
        free(r->defval);
        tmpl_free(&r->value);
}

void relay_json_map_destroy(relay_json_map_t *m)
{
        if (!m)
                return;
        free(m->topic);
        free(m->source);
        tmpl_free(&m->tenant);
        free(m->event_id);
        for (size_t i = 0; i < m->nkeys; i++)
                tmpl_free(&m->keys[i]);
        free(m->keys);
        for (size_t i = 0; i < m->nrules; i++)
                rule_free(&m->rules[i]);
        free(m->rules);
        for (size_t i = 0; i < m->nmaps; i++)
                free(m->maps[i]);
        free(m->maps);
        relay_buf_free(&m->id_prefix);
        relay_buf_free(&m->id_infix);
        relay_avro_writer_destroy(m->writer);
        relay_buf_free(&m->scratch);
        free(m);
}

/* Check that `to` names a value of the topic's record: record fields by
 * name, one map key below a map field. *type is the type it names (a
 * union's first non-null branch). */
static int check_to(struct ctx *x, const config_setting_t *e, const char *to,
                    avro_type_t *type)
{
        avro_schema_t s = x->schema;
        char *copy = relay_strdup(to), *save = NULL;
        const char *prev = "the record";
        int rc = 0, below_map = 0;
        if (!*to)
                rc = map_fail_at(x, e, "'to' is empty");
        for (char *seg = strtok_r(copy, ".", &save); seg && !rc;
             seg = strtok_r(NULL, ".", &save)) {
                if (below_map) {
                        rc = map_fail_at(x, e,
                                         "to '%s': '%s' is a map of values, "
                                         "one key deep",
                                         to, prev);
                        break;
                }
                s = map_unwrap_schema(s);
                if (avro_typeof(s) == AVRO_MAP) {
                        below_map = 1;
                        s = map_unwrap_schema(avro_schema_map_values(s));
                        prev = seg;
                        continue;
                }
                if (avro_typeof(s) != AVRO_RECORD ||
                    !(s = map_field_schema(s, seg))) {
                        rc = map_fail_at(x, e,
                                         "to '%s': %s has no field '%s'", to,
                                         prev, seg);
                        break;
                }
                prev = seg;
        }
        if (!rc)
                *type = avro_typeof(map_unwrap_schema(s));
        free(copy);
        return rc;
}

static int parse_rule(struct ctx *x, const config_setting_t *e, struct rule *r)
{
        static const char *const keys[] = {"to",   "from",     "value",
                                           "type", "required", "default",
                                           NULL};
        char *value = NULL, *type = NULL;
        memset(r, 0, sizeof(*r));
        r->line = config_setting_source_line(e);
        if (!config_setting_is_group(e))
                return map_fail_at(x, e,
                                   "each entry of fields must be a group { }");
        if (map_check_keys(x, e, "a field", keys) ||
            map_get_str(x, e, "to", 1, "a field", &r->to) ||
            map_get_str(x, e, "from", 0, "a field", &r->from) ||
            map_get_str(x, e, "value", 0, "a field", &value) ||
            map_get_str(x, e, "type", 0, "a field", &type) ||
            map_get_str(x, e, "default", 0, "a field", &r->defval))
                goto fail;
        if (!!r->from == !!value) {
                map_fail_at(x, e,
                            "field '%s' needs exactly one of 'from' (a field "
                            "of the body) and 'value' (literal or {field} "
                            "template)",
                            r->to);
                goto fail;
        }
        if (value && map_template_split(x, e, value, tmpl_part, &r->value))
                goto fail;
        r->type = IT_KEEP;
        if (type) {
                size_t t = 0;
                while (t < NTYPES && strcmp(type, type_names[t]))
                        t++;
                if (t == NTYPES) {
                        map_fail_at(x, e,
                                    "field '%s': type '%s' is not one of "
                                    "keep, string, number, bool, timestamp, "
                                    "iso8601, epoch_s, epoch_ms, flatten",
                                    r->to, type);
                        goto fail;
                }
                r->type = (enum itype)t;
        }
        avro_type_t at;
        int req = 0;
        if (check_to(x, e, r->to, &at))
                goto fail;
        int composite = at == AVRO_RECORD || at == AVRO_MAP || at == AVRO_ARRAY;
        if (r->type == IT_FLATTEN && (at != AVRO_MAP || !r->from)) {
                map_fail_at(x, e,
                            "field '%s': flatten copies a field ('from') "
                            "into a map, and '%s' is not one",
                            r->to, r->to);
                goto fail;
        }
        if (composite && r->type != IT_FLATTEN &&
            (!r->from || r->type != IT_KEEP)) {
                map_fail_at(x, e,
                            "field '%s' is a record, map or array: only a "
                            "kept copy ('from', type keep) can fill it",
                            r->to);
                goto fail;
        }
        config_setting_lookup_bool(e, "required", &req);
        r->required = req;
        free(value);
        free(type);
        return 0;
fail:
        free(value);
        free(type);
        return -1;
}

/* One key alternative: a path of the output, or a template over it. */
static int parse_key(struct ctx *x, const config_setting_t *at,
                     const char *text, struct itmpl *t)
{
        avro_type_t type;
        if (!strchr(text, '{')) {
                tmpl_part(t, 1, text, strlen(text));
        } else if (map_template_split(x, at, text, tmpl_part, t)) {
                return -1;
        }
        for (size_t i = 0; i < t->n; i++)
                if (t->parts[i].is_field &&
                    check_to(x, at, t->parts[i].text, &type))
                        return -1;
        return 0;
}

static int parse_keys(struct ctx *x, const config_setting_t *g,
                      relay_json_map_t *m)
{
        config_setting_t *k = config_setting_get_member(g, "key");
        if (!k)
                return 0;
        int list = config_setting_is_aggregate(k);
        int n = list ? config_setting_length(k) : 1;
        if ((!list && config_setting_type(k) != CONFIG_TYPE_STRING) ||
            (list && !n))
                return map_fail_at(x, k, "'key' must be a string or a list "
                                   "of strings");
        m->keys = relay_calloc((size_t)n, sizeof(*m->keys));
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = list ? config_setting_get_elem(k, i)
                                                 : k;
                const char *text = config_setting_get_string(e);
                if (!text)
                        return map_fail_at(x, e, "'key' must hold strings");
                m->nkeys++;
                if (parse_key(x, e, text, &m->keys[i]))
                        return -1;
        }
        return 0;
}

relay_json_map_t *relay_json_map_load(const char *file,
                                      const config_setting_t *g,
                                      relay_schemas_t *schemas,
                                      const relay_json_map_opts_t *o,
                                      char *errstr, size_t errstr_size)
{
        struct ctx x = {file, NULL, NULL, errstr, errstr_size};
        relay_json_map_t *m = relay_calloc(1, sizeof(*m));
        char *tenant = NULL, why[512], subject[300];
        relay_buf_init(&m->scratch);
        relay_buf_init(&m->id_prefix);
        relay_buf_init(&m->id_infix);
        relay_buf_append(&m->id_prefix, o->id_prefix, o->id_prefix_len);
        relay_buf_append(&m->id_infix, o->id_infix, o->id_infix_len);
        if (o->id_ns)
                memcpy(m->ns, o->id_ns, sizeof(m->ns));
        m->id_from_content = o->id_from_content;
        m->source = o->source ? relay_strdup(o->source) : NULL;
        if (map_get_str(&x, g, "topic", !o->default_topic, "source",
                        &m->topic) ||
            map_get_str(&x, g, "tenant", 0, "source", &tenant) ||
            map_get_str(&x, g, "event_id", 0, "source", &m->event_id))
                goto fail;
        if (!m->topic)
                m->topic = relay_strdup(o->default_topic);
        snprintf(subject, sizeof(subject), "%s-value", m->topic);
        m->writer = relay_avro_writer_new(schemas, subject, why, sizeof(why));
        if (!m->writer) {
                const config_setting_t *t = config_setting_get_member(g,
                                                                      "topic");
                map_fail_at(&x, t ? t : g, "topic '%s': %s", m->topic, why);
                goto fail;
        }
        x.schema = relay_shape_schema(relay_avro_writer_shape(m->writer));
        m->has_event_id = !!map_field_schema(x.schema, "event_id");
        m->has_occurred = !!map_field_schema(x.schema, "occurred_at");
        m->has_tenant = !!map_field_schema(x.schema, "tenant");
        m->has_source = !!map_field_schema(x.schema, "source");
        m->has_type = !!map_field_schema(x.schema, "event_type");
        for (size_t i = 0; i < avro_schema_record_size(x.schema); i++) {
                avro_schema_t f = avro_schema_record_field_get_by_index(
                    x.schema, (int)i);
                if (avro_typeof(f) != AVRO_MAP)
                        continue;
                m->maps = relay_realloc(m->maps,
                                        (m->nmaps + 1) * sizeof(char *));
                m->maps[m->nmaps++] = relay_strdup(
                    avro_schema_record_field_name(x.schema, (int)i));
        }
        if (tenant && map_template_split(&x, config_setting_get_member(
                                                 g, "tenant"),
                                         tenant, tmpl_part, &m->tenant))
                goto fail;
        if (parse_keys(&x, g, m))
                goto fail;
        config_setting_t *fl = config_setting_get_member(g, "fields");
        if (fl && !config_setting_is_list(fl)) {
                map_fail_at(&x, fl, "fields must be a list ( { ... }, ... )");
                goto fail;
        }
        for (int i = 0; fl && i < config_setting_length(fl); i++) {
                m->rules = relay_realloc(m->rules,
                                         (m->nrules + 1) * sizeof(*m->rules));
                if (parse_rule(&x, config_setting_get_elem(fl, i),
                               &m->rules[m->nrules])) {
                        rule_free(&m->rules[m->nrules]);
                        goto fail;
                }
                m->nrules++;
        }
        free(tenant);
        return m;
fail:
        free(tenant);
        relay_json_map_destroy(m);
        return NULL;
}

const char *relay_json_map_topic(const relay_json_map_t *m)
{
        return m->topic;
}

json_t *relay_json_map_path(json_t *j, const char *path, size_t n)
{
        const char *p = path, *end = path + n;
        while (j && p < end) {
                const char *dot = memchr(p, '.', (size_t)(end - p));
                size_t sn = dot ? (size_t)(dot - p) : (size_t)(end - p);
                if (json_is_object(j)) {
                        j = json_object_getn(j, p, sn);
                } else if (json_is_array(j) && sn && sn < 10 &&
                           strspn(p, "0123456789") >= sn) {
                        j = json_array_get(j, strtoul(p, NULL, 10));
                } else {
                        return NULL;
                }
                p = dot ? dot + 1 : end;
        }
        return json_is_null(j) ? NULL : j;
}

/* A field of the record, the request or the batch: borrowed, or a new
 * string for the request's (then *owned is set). Without req, of the
 * record only. */
static json_t *lookup(const relay_json_map_req_t *req, json_t *item,
                      const char *path, size_t n, int *owned)
{
        *owned = 0;
        if (req && n == 11 && !memcmp(path, "path.tenant", 11)) {
                *owned = 1;
                return req->tenant ? json_string(req->tenant) : NULL;
        }
        if (req && n == 15 && !memcmp(path, "path.event_type", 15)) {
                *owned = 1;
                return req->event_type ? json_string(req->event_type) : NULL;
        }
        if (req && n > 6 && !memcmp(path, "batch.", 6))
                return relay_json_map_path(req->batch, path + 6, n - 6);
        return relay_json_map_path(item, path, n);
}

/* The text form of a scalar into b; -1 for objects, arrays and null. */
static int scalar_text(json_t *v, relay_buf_t *b)
{
        char num[64];
        switch (json_typeof(v)) {
        case JSON_STRING:
                relay_buf_append(b, json_string_value(v),
                                 json_string_length(v));
                return 0;
        case JSON_INTEGER:
                relay_buf_long(b, (int64_t)json_integer_value(v));
                return 0;
        case JSON_REAL:
                snprintf(num, sizeof(num), "%.17g", json_real_value(v));
                relay_buf_puts(b, num);
                return 0;
        case JSON_TRUE:
        case JSON_FALSE:
                relay_buf_puts(b, json_is_true(v) ? "true" : "false");
                return 0;
        default:
                return -1;
        }
}

/* An epoch count: an integer, or a string of one. */
static int epoch_of(json_t *v, int64_t *n)
{
        if (json_is_integer(v)) {
                *n = json_integer_value(v);
                return 0;
        }
        if (!json_is_string(v) || !json_string_length(v))
                return -1;
        char *end;
        errno = 0;
        long long l = strtoll(json_string_value(v), &end, 10);
        if (*end || errno)
                return -1;
        *n = l;
        return 0;
}

/* v's leaves into data under prefix: objects' keys joined with dots,
 * array items by index (the loyalty.events schema's data). */
static void flatten(json_t *data, relay_buf_t *prefix, json_t *v, int depth)
{
        size_t at = prefix->len;
        if ((json_is_object(v) || json_is_array(v)) &&
            depth >= FLATTEN_DEPTH) {
                char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                json_object_set_new(data, prefix->data,
                                    json_string(text ? text : ""));
                free(text);
        } else if (json_is_object(v)) {
                const char *k;
                size_t kn;
                json_t *e;
                json_object_keylen_foreach(v, k, kn, e)
                {
                        if (at)
                                relay_buf_append(prefix, ".", 1);
                        relay_buf_append(prefix, k, kn);
                        flatten(data, prefix, e, depth + 1);
                        prefix->len = at;
                        prefix->data[at] = '\0';
                }
        } else if (json_is_array(v)) {
                size_t i;
                json_t *e;
                json_array_foreach(v, i, e)
                {
                        if (at)
                                relay_buf_append(prefix, ".", 1);
                        relay_buf_long(prefix, (int64_t)i);
                        flatten(data, prefix, e, depth + 1);
                        prefix->len = at;
                        prefix->data[at] = '\0';
                }
        } else if (at) {
                /* A key with a NUL byte cannot be a map key here. */
                if (strlen(prefix->data) == at)
                        json_object_set(data, prefix->data, v);
        }
}

/* Convert v as rule r says. A new reference, or NULL + errstr. */
static json_t *convert(const struct rule *r, json_t *v, relay_buf_t *scratch,
                       char *errstr, size_t errstr_size)
{
        const char *what = "";
        int64_t ms;
        switch (r->type) {
        case IT_KEEP:
                return json_incref(v);
        case IT_STRING:
                relay_buf_reset(scratch);
                if (!scalar_text(v, scratch))
                        return json_stringn(scratch->data, scratch->len);
                what = "text";
                break;
        case IT_NUMBER:
                if (json_is_number(v))
                        return json_incref(v);
                if (json_is_string(v) && json_string_length(v) < 40) {
                        char *end;
                        const char *t = json_string_value(v);
                        errno = 0;
                        long long l = strtoll(t, &end, 10);
                        if (*t && !*end && !errno)
                                return json_integer(l);
                        double d = strtod(t, &end);
                        if (*t && !*end && !errno)
                                return json_real(d);
                }
                what = "a number";
                break;
        case IT_BOOL:
                if (json_is_boolean(v))
                        return json_incref(v);
                if (json_is_string(v) && !strcmp(json_string_value(v), "true"))
                        return json_true();
                if (json_is_string(v) &&
                    !strcmp(json_string_value(v), "false"))
                        return json_false();
                what = "true or false";
                break;
        case IT_TIMESTAMP:
        case IT_ISO8601:
                if (r->type == IT_TIMESTAMP && json_is_integer(v)) {
                        /* Before 1973-03-03 in ms is past 5138 in s: a
                         * number below 1e11 is seconds. */
                        json_int_t t = json_integer_value(v);
                        if (t >= 0 && t < 100000000000LL)
                                return json_integer(t * 1000);
                        return json_integer(t);
                }
                if (json_is_string(v) &&
                    !relay_iso_ms_parse(json_string_value(v),
                                        json_string_length(v), &ms))
                        return json_integer(ms);
                what = r->type == IT_ISO8601
                           ? "a time (ISO 8601)"
                           : "a time (ISO 8601, or epoch seconds or "
                             "milliseconds)";
                break;
        case IT_EPOCH_S:
                if (!epoch_of(v, &ms) && ms <= INT64_MAX / 1000 &&
                    ms >= INT64_MIN / 1000)
                        return json_integer(ms * 1000);
                what = "a time (epoch seconds)";
                break;
        case IT_EPOCH_MS:
                if (!epoch_of(v, &ms))
                        return json_integer(ms);
                what = "a time (epoch milliseconds)";
                break;
        case IT_FLATTEN:
                if (json_is_object(v) || json_is_array(v)) {
                        json_t *data = json_object();
                        relay_buf_reset(scratch);
                        relay_buf_puts(scratch, "");
                        flatten(data, scratch, v, 0);
                        return data;
                }
                what = "an object or array";
                break;
        }
        relay_seterr(errstr, errstr_size, "field '%s' (to %s) is not %s",
                     r->from ? r->from : "value", r->to, what);
        return NULL;
}

/* Fill b with template t over the record; -1 + errstr when a field in it
 * is missing or not a scalar (or, with nonempty, empty). */
static int render(const struct itmpl *t, const relay_json_map_req_t *req,
                  json_t *item, relay_buf_t *b, const char *to, int nonempty,
                  char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < t->n; i++) {
                const struct ipart *p = &t->parts[i];
                if (!p->is_field) {
                        relay_buf_append(b, p->text, p->len);
                        continue;
                }
                int owned;
                size_t before = b->len;
                json_t *v = lookup(req, item, p->text, p->len, &owned);
                int rc = v ? scalar_text(v, b) : -1;
                if (owned)
                        json_decref(v);
                if (rc || (nonempty && b->len == before)) {
                        relay_seterr(errstr, errstr_size,
                                     "%s: field '%s' is missing or not a "
                                     "value",
                                     to, p->text);
                        return -1;
                }
        }
        return 0;
}

/* Set root's dotted path to v (stolen), making objects on the way; a
 * flattened object is merged into what is there. */
static void set_path(json_t *root, const char *path, json_t *v, int merge)
{
        const char *p = path;
        const char *dot;
        while ((dot = strchr(p, '.'))) {
                json_t *next = json_object_getn(root, p, (size_t)(dot - p));
                if (!json_is_object(next)) {
                        next = json_object();
                        json_object_setn_new(root, p, (size_t)(dot - p), next);
                }
                root = next;
                p = dot + 1;
        }
        json_t *old = merge ? json_object_get(root, p) : NULL;
        if (json_is_object(old)) {
                json_object_update(old, v);
                json_decref(v);
        } else {
                json_object_set_new(root, p, v);
        }
}

/* The record's event id from v (see relay/json_map.h): kept when a UUID,
 * else named by prefix ‖ tenant ‖ infix ‖ (the id, or the record's
 * canonical JSON text), or random. */
static void event_id_of(const relay_json_map_t *m, json_t *v, json_t *item,
                        const char *tenant, char out[RELAY_UUID_SIZE])
{
        relay_buf_t *b = (relay_buf_t *)&m->scratch;
        relay_buf_reset(b);
        if (!v || scalar_text(v, b) || !b->len) {
                char *text = m->id_from_content
                                 ? json_dumps(item,
                                              JSON_COMPACT | JSON_SORT_KEYS)
                                 : NULL;
                if (!text) {
                        relay_uuid4(out);
                        return;
                }
                relay_buf_reset(b);
                relay_buf_puts(b, text);
                free(text);
        } else if (relay_uuid_valid(b->data, b->len)) {
                for (size_t i = 0; i < 36; i++)
                        out[i] = (char)tolower((unsigned char)b->data[i]);
                out[36] = '\0';
                return;
        }
        relay_buf_t name;
        relay_buf_init(&name);
        relay_buf_append(&name, m->id_prefix.data, m->id_prefix.len);
        relay_buf_append(&name, tenant, strlen(tenant));
        relay_buf_append(&name, m->id_infix.data, m->id_infix.len);
        relay_buf_append(&name, b->data, b->len);
        if (relay_sign_uuid5(m->ns, name.data, name.len, out))
                relay_uuid4(out);
        relay_buf_free(&name);
}

/* Apply the rules to item into root; 0 or -1 + errstr. */
static int apply_rules(const relay_json_map_t *m,
                       const relay_json_map_req_t *req, json_t *item,
                       json_t *root, char *errstr, size_t errstr_size)
{
        relay_buf_t *b = (relay_buf_t *)&m->scratch;
        for (size_t i = 0; i < m->nrules; i++) {
                const struct rule *r = &m->rules[i];
                json_t *v = NULL;
                if (r->from) {
                        int owned;
                        json_t *src = lookup(req, item, r->from,
                                             strlen(r->from), &owned);
                        if (src)
                                v = convert(r, src, b, errstr, errstr_size);
                        if (owned)
                                json_decref(src);
                        if (src && !v)
                                return -1;
                } else {
                        relay_buf_reset(b);
                        if (render(&r->value, req, item, b, r->to, 0, errstr,
                                   errstr_size)) {
                                if (r->required)
                                        return -1;
                        } else {
                                json_t *t = json_stringn(b->data, b->len);
                                v = t ? convert(r, t, b, errstr, errstr_size)
                                      : NULL;
                                json_decref(t);
                                if (!v) {
                                        if (!t)
                                                relay_seterr(errstr,
                                                             errstr_size,
                                                             "%s: not UTF-8",
                                                             r->to);
                                        return -1;
                                }
                        }
                }
                if (!v && r->defval)
                        v = json_string(r->defval);
                if (!v && r->required) {
                        relay_seterr(errstr, errstr_size,
                                     "required field '%s' (to %s) is missing",
                                     r->from ? r->from : "value", r->to);
                        return -1;
                }
                if (v)
                        set_path(root, r->to, v, r->type == IT_FLATTEN);
        }
        return 0;
}

/* The defaults of the fields every input topic has, and the event id. */
static int apply_defaults(const relay_json_map_t *m,
                          const relay_json_map_req_t *req, json_t *item,
                          json_t *root, char event_id[RELAY_UUID_SIZE],
                          char *errstr, size_t errstr_size)
{
        relay_buf_t *b = (relay_buf_t *)&m->scratch;
        for (size_t i = 0; i < m->nmaps; i++)
                if (!json_object_get(root, m->maps[i]))
                        json_object_set_new(root, m->maps[i], json_object());
        if (m->has_tenant && !json_object_get(root, "tenant")) {
                relay_buf_reset(b);
                if (!m->tenant.n && req->tenant)
                        relay_buf_puts(b, req->tenant);
                else if (render(&m->tenant, req, item, b, "tenant", 0, errstr,
                                errstr_size))
                        return -1;
                if (!b->len) {
                        relay_seterr(errstr, errstr_size,
                                     "the record has no tenant");
                        return -1;
                }
                json_object_set_new(root, "tenant",
                                    json_stringn(b->data, b->len));
        }
        if (m->has_source && m->source && !json_object_get(root, "source"))
                json_object_set_new(root, "source", json_string(m->source));
        if (m->has_type && req->event_type &&
            !json_object_get(root, "event_type"))
                json_object_set_new(root, "event_type",
                                    json_string(req->event_type));
        if (m->has_occurred && !json_object_get(root, "occurred_at"))
                json_object_set_new(root, "occurred_at",
                                    json_integer(relay_now_ms()));
        json_t *eid = json_object_get(root, "event_id");
        if (json_is_string(eid) &&
            relay_uuid_valid(json_string_value(eid), json_string_length(eid))) {
                memcpy(event_id, json_string_value(eid), 36);
                event_id[36] = '\0';
                return 0;
        }
        int owned = 0;
        json_t *v = eid        ? eid
                  : m->event_id ? lookup(req, item, m->event_id,
                                         strlen(m->event_id), &owned)
                               : NULL;
        json_t *t = json_object_get(root, "tenant");
        event_id_of(m, v, item, json_is_string(t) ? json_string_value(t) : "",
                    event_id);
        if (owned)
                json_decref(v);
        if (m->has_event_id)
                json_object_set_new(root, "event_id", json_string(event_id));
        return 0;
}

int relay_json_map_record(const relay_json_map_t *m,
                          const relay_json_map_req_t *req, json_t *item,
                          json_t **out, relay_buf_t *key,
                          char event_id[RELAY_UUID_SIZE], char *errstr,
                          size_t errstr_size)
{
        static const relay_json_map_req_t none = {NULL, NULL, NULL};
        *out = NULL;
        if (!req)
                req = &none;
        if (!json_is_object(item)) {
                relay_seterr(errstr, errstr_size, "a record must be a JSON "
                             "object");
                return -1;
        }
        json_t *root = json_object();
        if (apply_rules(m, req, item, root, errstr, errstr_size) ||
            apply_defaults(m, req, item, root, event_id, errstr,
                           errstr_size)) {
                json_decref(root);
                return -1;
        }
        /* The first key alternative whose fields are all there. */
        char ignored[8];
        size_t k = 0;
        for (; k < m->nkeys; k++) {
                relay_buf_reset(key);
                if (!render(&m->keys[k], NULL, root, key, "key", 1, ignored,
                            sizeof(ignored)) &&
                    key->len)
                        break;
        }
        if (k == m->nkeys) {
                relay_buf_reset(key);
                relay_buf_puts(key, event_id);
        }
        *out = root;
        return 0;
}

int relay_json_map_encode(const relay_json_map_t *m, json_t *rec,
                          const void **value, size_t *value_len, char *errstr,
                          size_t errstr_size)
{
        char why[512];
        avro_value_t *out = relay_avro_writer_value(m->writer);
        if (relay_avro_from_json(out, rec, why, sizeof(why)) ||
            relay_avro_writer_encode(m->writer, value, value_len, why,
                                     sizeof(why))) {
                relay_seterr(errstr, errstr_size, "the record does not fit "
                             "%s: %s", m->topic, why);
                return -1;
        }
        return 0;
}

int relay_json_map_apply(const relay_json_map_t *m,
                         const relay_json_map_req_t *req, json_t *item,
                         relay_buf_t *key, const void **value,
                         size_t *value_len, char event_id[RELAY_UUID_SIZE],
                         char *errstr, size_t errstr_size)
{
        json_t *rec;
        if (relay_json_map_record(m, req, item, &rec, key, event_id, errstr,
                                  errstr_size))
                return -1;
        int rc = relay_json_map_encode(m, rec, value, value_len, errstr,
                                       errstr_size);
        json_decref(rec);
        return rc;
}
