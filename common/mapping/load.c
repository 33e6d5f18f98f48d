/*
 * Loading connections: each connection file parsed, checked against the
 * input topic's schema and the destination adapter's vocabulary, and turned
 * into the structs of mapping_int.h that apply.c walks (see relay/mapping.h).
 *
 * A connection file (deploy/config/connections/, one .cfg each) holds one
 * group:
 *
 *   connection = {
 *     id = "acme-antavo-mparticle"; tenant = "acme";
 *     source = "antavo"; destination = "mparticle";
 *     development = true;                       # destination environment
 *     person = "identities.customer_id";        # the Kafka key: ordering
 *     unmapped = "skip";                        # or "dead_letter"
 *     identity = ( { from = "identities.customer_id"; as = "customer_id"; },
 *                  { from = "identities.email"; as = "email"; } );
 *     fields = ( { from = "first_name"; to = "$firstname"; } );
 *     events = (
 *       { on = "coupon_issued"; name = "Coupon Issued"; category = "other";
 *         attributes = ( { name = "label"; value = "Coupon {coupon_code}"; },
 *                        { name = "points"; from = "points"; } ); },
 *       { on = [ "opt_out", "profile_view" ]; drop = true; } );
 *   };
 *
 * Paths name fields of the input record ("data.coupon_code",
 * "identities.email"); a bare name that is not a top-level field means a
 * field of the record's `data` map, as in Antavo's `{coupon_code}`.
 * Everything is parsed once at load into small structs so that applying a
 * connection to a record only walks them. Every mistake is reported as
 * "file:line: what is wrong", the line being that of the entry to fix.
 */
#include "mapping_int.h"
#include "relay/conf.h"
#include "relay/adapter.h"
#include "relay/avro.h"
#include "relay/log.h"

#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int map_fail_at(struct ctx *x, const config_setting_t *s, const char *fmt,
                   ...)
{
        char msg[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        relay_seterr(x->errstr, x->errstr_size, "%s:%d: %s", x->file,
                     s ? config_setting_source_line(s) : 0, msg);
        return -1;
}

/* Reject keys of group g not in allowed (typos must not pass silently). */
int map_check_keys(struct ctx *x, const config_setting_t *g,
                      const char *what, const char *const *allowed)
{
        for (int i = 0; i < config_setting_length(g); i++) {
                config_setting_t *m = config_setting_get_elem(g, i);
                const char *name = config_setting_name(m);
                int ok = 0;
                for (size_t k = 0; allowed[k] && !ok; k++)
                        ok = !strcmp(name, allowed[k]);
                if (!ok)
                        return map_fail_at(x, m, "unknown key '%s' in %s", name,
                                       what);
        }
        return 0;
}

int map_get_str(struct ctx *x, const config_setting_t *g, const char *key,
                   int required, const char *what, char **out)
{
        config_setting_t *m = config_setting_get_member(g, key);
        *out = NULL;
        if (!m) {
                if (required)
                        return map_fail_at(x, g, "%s needs '%s'", what, key);
                return 0;
        }
        if (config_setting_type(m) != CONFIG_TYPE_STRING)
                return map_fail_at(x, m, "'%s' of %s must be a string", key, what);
        *out = relay_strdup(config_setting_get_string(m));
        return 0;
}

/* The schema of a record's field, or NULL. (avro-c's
 * avro_schema_record_field_get() does not check that the field exists.) */
avro_schema_t map_field_schema(avro_schema_t rec, const char *name)
{
        int i = avro_schema_record_field_get_index(rec, name);
        return i < 0 ? NULL : avro_schema_record_field_get_by_index(rec, i);
}

avro_schema_t map_unwrap_schema(avro_schema_t s)
{
        if (avro_typeof(s) != AVRO_UNION)
                return s;
        for (size_t b = 0; b < avro_schema_union_size(s); b++) {
                avro_schema_t bs = avro_schema_union_branch(s, (int)b);
                if (avro_typeof(bs) != AVRO_NULL)
                        return bs;
        }
        return s;
}

/* Normalise a path (a bare name that is not a top-level field means
 * data.<name>) and check it against the input schema. Returns a new string
 * or NULL after fail_at. */
static char *resolve_path(struct ctx *x, const config_setting_t *where,
                          const char *path, const char *what)
{
        char *norm;
        if (!*path) {
                map_fail_at(x, where, "%s: empty field name", what);
                return NULL;
        }
        if (!strchr(path, '.') && !map_field_schema(x->schema, path) &&
            map_field_schema(x->schema, "data")) {
                size_t n = strlen(path) + 6;
                norm = relay_malloc(n);
                snprintf(norm, n, "data.%s", path);
        } else {
                norm = relay_strdup(path);
        }

        avro_schema_t s = x->schema;
        char *copy = relay_strdup(norm), *save = NULL, *seg;
        const char *prev = "the record";
        for (seg = strtok_r(copy, ".", &save); seg;
             seg = strtok_r(NULL, ".", &save)) {
                s = map_unwrap_schema(s);
                if (avro_typeof(s) == AVRO_MAP) {
                        s = NULL; /* any key below a map: checked per record */
                        break;
                }
                if (avro_typeof(s) != AVRO_RECORD ||
                    !(s = map_field_schema(s, seg))) {
                        map_fail_at(x, where,
                                "%s names field '%s', but %s has no field "
                                "'%s'",
                                what, norm, prev, seg);
                        goto fail;
                }
                prev = seg;
        }
        if (s) {
                avro_type_t t = avro_typeof(map_unwrap_schema(s));
                if (t == AVRO_RECORD || t == AVRO_MAP || t == AVRO_ARRAY) {
                        map_fail_at(x, where,
                                "%s names field '%s', which is a %s, not a "
                                "value",
                                what, norm, avro_schema_type_name(s));
                        goto fail;
                }
        }
        free(copy);
        return norm;
fail:
        free(copy);
        free(norm);
        return NULL;
}

static void value_spec_free(struct value_spec *v)
{
        for (size_t i = 0; i < v->nparts; i++) {
                free(v->parts[i].text);
                relay_path_free(&v->parts[i].path);
        }
        free(v->parts);
        relay_path_free(&v->from_path);
        free(v->name);
        free(v->from);
        free(v->defval);
}

int map_template_split(struct ctx *x, const config_setting_t *where,
                       const char *t,
                       int (*part)(void *arg, int is_field, const char *s,
                                   size_t n),
                       void *arg)
{
        relay_buf_t lit;
        relay_buf_init(&lit);
        relay_buf_append(&lit, "", 0);
        int nparts = 0, rc = 0;
        for (const char *p = t; *p && !rc;) {
                if ((p[0] == '{' && p[1] == '{') ||
                    (p[0] == '}' && p[1] == '}')) {
                        relay_buf_append(&lit, p, 1);
                        p += 2;
                        continue;
                }
                if (*p == '}') {
                        rc = map_fail_at(x, where,
                                         "template \"%s\" has an unmatched "
                                         "'}' (write '}}' for a literal "
                                         "brace)",
                                         t);
                        break;
                }
                if (*p != '{') {
                        relay_buf_append(&lit, p++, 1);
                        continue;
                }
                const char *end = strchr(p, '}');
                if (!end) {
                        rc = map_fail_at(x, where,
                                         "template \"%s\" has an unclosed "
                                         "'{'",
                                         t);
                        break;
                }
                if (lit.len) {
                        rc = part(arg, 0, lit.data, lit.len);
                        nparts++;
                        relay_buf_reset(&lit);
                }
                if (!rc) {
                        rc = part(arg, 1, p + 1, (size_t)(end - p - 1));
                        nparts++;
                }
                p = end + 1;
        }
        if (!rc && (lit.len || nparts == 0))
                rc = part(arg, 0, lit.data, lit.len);
        relay_buf_free(&lit);
        return rc;
}

struct tmpl_arg {
        struct ctx *x;
        const config_setting_t *where;
        const char *t;
        struct value_spec *v;
};

static int tmpl_part(void *arg, int is_field, const char *s, size_t n)
{
        struct tmpl_arg *a = arg;
        char *text;
        if (is_field) {
                char what[300], *name = relay_strndup(s, n);
                snprintf(what, sizeof(what), "template \"%s\"", a->t);
                text = resolve_path(a->x, a->where, name, what);
                free(name);
                if (!text)
                        return -1;
        } else {
                text = relay_strndup(s, n);
        }
        struct value_spec *v = a->v;
        v->parts = relay_realloc(v->parts, (v->nparts + 1) * sizeof(*v->parts));
        memset(v->parts + v->nparts, 0, sizeof(*v->parts));
        v->parts[v->nparts].is_field = is_field;
        v->parts[v->nparts++].text = text;
        return 0;
}

/* Parse "Coupon {coupon_code} issued" into literal and field parts. */
static int parse_template(struct ctx *x, const config_setting_t *where,
                          const char *t, struct value_spec *v)
{
        struct tmpl_arg a = {x, where, t, v};
        return map_template_split(x, where, t, tmpl_part, &a);
}

/* One attribute or field-sync entry: { name|to; value|from; default; type;
 * required }. name_key is "name" for attributes and "to" for fields. */
static int parse_value_spec(struct ctx *x, const config_setting_t *e,
                            const char *name_key, const char *what,
                            struct value_spec *v)
{
        static const char *const keys[] = {
            "name", "to", "value", "from", "default", "type", "required", NULL};
        char *value = NULL, *type = NULL;
        memset(v, 0, sizeof(*v));
        v->line = config_setting_source_line(e);
        if (!config_setting_is_group(e))
                return map_fail_at(x, e, "each entry of %s must be a group { }",
                               what);
        if (map_check_keys(x, e, what, keys) ||
            map_get_str(x, e, name_key, 1, what, &v->name) ||
            map_get_str(x, e, "value", 0, what, &value) ||
            map_get_str(x, e, "default", 0, what, &v->defval) ||
            map_get_str(x, e, "type", 0, what, &type))
                goto fail;
        char *from = NULL;
        if (map_get_str(x, e, "from", 0, what, &from))
                goto fail;
        if (!!from == !!value) {
                free(from);
                map_fail_at(x, e,
                        "%s '%s' needs exactly one of 'value' (literal "
                        "or {field} template) and 'from' (a field)",
                        what, v->name);
                goto fail;
        }
        if (from) {
                char w[300];
                snprintf(w, sizeof(w), "%s '%s'", what, v->name);
                v->from = resolve_path(x, e, from, w);
                free(from);
                if (!v->from)
                        goto fail;
        } else if (parse_template(x, e, value, v)) {
                goto fail;
        }
        int req = 0;
        config_setting_lookup_bool(e, "required", &req);
        v->required = req;
        if (!type || !strcmp(type, "keep"))
                v->conv = CONV_KEEP;
        else if (!strcmp(type, "string"))
                v->conv = CONV_STRING;
        else if (!strcmp(type, "number"))
                v->conv = CONV_NUMBER;
        else if (!strcmp(type, "bool"))
                v->conv = CONV_BOOL;
        else {
                map_fail_at(x, e,
                        "%s '%s': type '%s' is not one of keep, string, "
                        "number, bool",
                        what, v->name, type);
                goto fail;
        }
        free(type);
        free(value);
        return 0;
fail:
        free(type);
        free(value);
        value_spec_free(v);
        return -1;
}

static int parse_value_list(struct ctx *x, const config_setting_t *g,
                            const char *key, const char *name_key,
                            const char *what, struct value_spec **out,
                            size_t *nout)
{
        config_setting_t *l = config_setting_get_member(g, key);
        *out = NULL;
        *nout = 0;
        if (!l)
                return 0;
        if (!config_setting_is_list(l))
                return map_fail_at(x, l, "'%s' must be a list ( {...}, ... )", key);
        int n = config_setting_length(l);
        *out = relay_calloc((size_t)n, sizeof(**out));
        for (int i = 0; i < n; i++) {
                if (parse_value_spec(x, config_setting_get_elem(l, i), name_key,
                                     what, &(*out)[i]))
                        return -1;
                (*nout)++;
        }
        return 0;
}

static void op_rule_free(struct op_rule *o)
{
        free(o->op);
        value_spec_free(&o->target);
        for (size_t i = 0; i < o->nattrs; i++)
                value_spec_free(&o->attrs[i]);
        free(o->attrs);
}

static void event_rule_free(struct event_rule *r)
{
        for (size_t i = 0; i < r->non; i++)
                free(r->on[i]);
        free(r->on);
        free(r->on_len);
        for (size_t i = 0; i < r->nattrs; i++)
                value_spec_free(&r->attrs[i]);
        free(r->attrs);
        for (size_t i = 0; i < r->nops; i++)
                op_rule_free(&r->ops[i]);
        free(r->ops);
        free(r->name);
        free(r->category);
}

/* One entry of an event's operations: { op; target; attributes }. */
static int parse_op(struct ctx *x, const config_setting_t *e,
                    struct op_rule *o)
{
        static const char *const keys[] = {"op", "target", "attributes", NULL};
        char *target = NULL;
        if (!config_setting_is_group(e))
                return map_fail_at(x, e, "each operation must be a group { }");
        if (map_check_keys(x, e, "an operation", keys) ||
            map_get_str(x, e, "op", 1, "an operation", &o->op) ||
            map_get_str(x, e, "target", 0, "an operation", &target))
                return -1;
        if (!relay_adapter_has_operation(x->adapter, o->op)) {
                free(target);
                return map_fail_at(x, e, "operation '%s' is not one that %s performs",
                               o->op, x->adapter->name);
        }
        o->target.name = relay_strdup("target");
        o->target.conv = CONV_STRING;
        o->target.line = config_setting_source_line(e);
        int rc = target ? parse_template(x, e, target, &o->target) : 0;
        free(target);
        if (rc)
                return -1;
        return parse_value_list(x, e, "attributes", "name",
                                "an operation attribute", &o->attrs,
                                &o->nattrs);
}

static int parse_event(struct ctx *x, const config_setting_t *e,
                       struct event_rule *r)
{
        static const char *const keys[] = {"on",         "drop",
                                           "name",       "category",
                                           "attributes", "operations",
                                           NULL};
        memset(r, 0, sizeof(*r));
        r->line = config_setting_source_line(e);
        if (!config_setting_is_group(e))
                return map_fail_at(x, e, "each event entry must be a group { }");
        if (map_check_keys(x, e, "an event entry", keys))
                return -1;
        config_setting_t *on = config_setting_get_member(e, "on");
        if (!on)
                return map_fail_at(x, e,
                               "event entry needs 'on' (source event "
                               "type, list of them, or \"*\")");
        if (config_setting_type(on) == CONFIG_TYPE_STRING) {
                r->on = relay_malloc(sizeof(*r->on));
                r->on[r->non++] = relay_strdup(config_setting_get_string(on));
        } else if (config_setting_is_aggregate(on)) {
                int n = config_setting_length(on);
                r->on = relay_calloc((size_t)n, sizeof(*r->on));
                for (int i = 0; i < n; i++) {
                        const char *s = config_setting_get_string_elem(on, i);
                        if (!s)
                                return map_fail_at(x, on, "'on' must list strings");
                        r->on[r->non++] = relay_strdup(s);
                }
        } else {
                return map_fail_at(x, on, "'on' must be a string or a list");
        }
        config_setting_lookup_bool(e, "drop", &r->drop);
        if (r->drop)
                return 0;
        if (map_get_str(x, e, "name", 1, "an event entry that is not dropped",
                    &r->name) ||
            map_get_str(x, e, "category", 0, "an event entry", &r->category))
                return -1;
        if (r->category &&
            !relay_adapter_vocab_has(x->adapter->event_categories, r->category))
                return map_fail_at(x, e, "category '%s' is not a %s event category",
                               r->category, x->adapter->name);
        if (parse_value_list(x, e, "attributes", "name", "an event attribute",
                             &r->attrs, &r->nattrs))
                return -1;
        config_setting_t *ops = config_setting_get_member(e, "operations");
        if (!ops)
                return 0;
        if (!config_setting_is_list(ops))
                return map_fail_at(x, ops,
                               "'operations' must be a list ( { op = ...; "
                               "target = ...; }, ... )");
        int n = config_setting_length(ops);
        r->ops = relay_calloc((size_t)n, sizeof(*r->ops));
        for (int i = 0; i < n; i++) {
                r->nops++;
                if (parse_op(x, config_setting_get_elem(ops, i),
                             &r->ops[i]))
                        return -1;
        }
        return 0;
}

static void connection_free(relay_connection_t *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->nids; i++) {
                free(c->ids[i].from);
                free(c->ids[i].as);
                relay_path_free(&c->ids[i].path);
        }
        relay_path_t *paths[] = {&c->p_tenant, &c->p_source,   &c->p_event,
                                 &c->p_person, &c->p_event_id, &c->p_occurred};
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
                relay_path_free(paths[i]);
        free(c->ids);
        for (size_t i = 0; i < c->nfields; i++)
                value_spec_free(&c->fields[i]);
        free(c->fields);
        for (size_t i = 0; i < c->nevents; i++)
                event_rule_free(&c->events[i]);
        free(c->events);
        free(c->file);
        free(c->id);
        free(c->tenant);
        free(c->source);
        free(c->destination);
        free(c->event_field);
        free(c->person);
        relay_conn_stats_free(c->stats);
        free(c);
}

static int parse_identity(struct ctx *x, const config_setting_t *g,
                          relay_connection_t *c)
{
        static const char *const keys[] = {"from", "as", NULL};
        config_setting_t *l = config_setting_get_member(g, "identity");
        if (!l || !config_setting_is_list(l) || config_setting_length(l) < 1)
                return map_fail_at(x, l ? l : g,
                               "connection needs 'identity = ( { from = "
                               "\"identities.customer_id\"; as = "
                               "\"customer_id\"; }, ... )' with at least one "
                               "entry");
        int n = config_setting_length(l);
        c->ids = relay_calloc((size_t)n, sizeof(*c->ids));
        for (int i = 0; i < n; i++) {
                config_setting_t *e = config_setting_get_elem(l, i);
                struct identity_rule *r = &c->ids[c->nids];
                char *from = NULL;
                if (!config_setting_is_group(e))
                        return map_fail_at(x, e, "identity entries are groups");
                if (map_check_keys(x, e, "an identity entry", keys) ||
                    map_get_str(x, e, "from", 1, "an identity entry", &from))
                        return -1;
                if (map_get_str(x, e, "as", 1, "an identity entry", &r->as)) {
                        free(from);
                        return -1;
                }
                c->nids++;
                r->from = resolve_path(x, e, from, "identity");
                free(from);
                if (!r->from)
                        return -1;
                if (!relay_adapter_vocab_has(x->adapter->identity_types, r->as))
                        return map_fail_at(x, e,
                                       "identity type '%s' is not one that "
                                       "%s accepts",
                                       r->as, x->adapter->name);
        }
        c->stats->idv = relay_calloc(c->nids, sizeof(*c->stats->idv));
        c->stats->idn = relay_calloc(c->nids, sizeof(*c->stats->idn));
        return 0;
}

static relay_connection_t *connection_load(const char *file,
                                           avro_schema_t schema, char *errstr,
                                           size_t errstr_size)
{
        static const char *const keys[] = {
            "id",          "tenant",   "source",   "destination",
            "development", "identity", "fields",   "events",
            "event_field", "person",   "unmapped", NULL};
        struct ctx x = {file, schema, NULL, errstr, errstr_size};
        config_t cfg;
        config_init(&cfg);
        relay_connection_t *c = relay_calloc(1, sizeof(*c));
        char *person = NULL, *unmapped = NULL;
        c->file = relay_strdup(file);
        c->stats = relay_calloc(1, sizeof(*c->stats));
        if (!config_read_file(&cfg, file)) {
                relay_seterr(errstr, errstr_size, "%s:%d: %s", file,
                             config_error_line(&cfg), config_error_text(&cfg));
                goto fail;
        }
        config_setting_t *root = config_root_setting(&cfg);
        config_setting_t *g = config_setting_get_member(root, "connection");
        static const char *const top[] = {"connection", NULL};
        if (map_check_keys(&x, root, "the file", top))
                goto fail;
        if (!g || !config_setting_is_group(g)) {
                map_fail_at(&x, NULL, "needs a group 'connection = { ... };'");
                goto fail;
        }
        if (map_check_keys(&x, g, "connection", keys) ||
            map_get_str(&x, g, "id", 1, "connection", &c->id) ||
            map_get_str(&x, g, "tenant", 1, "connection", &c->tenant) ||
            map_get_str(&x, g, "source", 1, "connection", &c->source) ||
            map_get_str(&x, g, "destination", 1, "connection", &c->destination) ||
            map_get_str(&x, g, "event_field", 0, "connection", &c->event_field) ||
            map_get_str(&x, g, "person", 0, "connection", &person) ||
            map_get_str(&x, g, "unmapped", 0, "connection", &unmapped))
                goto fail;
        c->id_line =
            config_setting_source_line(config_setting_get_member(g, "id"));
        if (!c->event_field)
                c->event_field = relay_strdup("event_type");
        x.adapter = relay_adapter_find(c->destination);
        if (!x.adapter) {
                map_fail_at(&x, config_setting_get_member(g, "destination"),
                        "destination '%s' has no delivery adapter",
                        c->destination);
                goto fail;
        }
        config_setting_lookup_bool(g, "development", &c->development);
        char *ef = resolve_path(&x, g, c->event_field, "event_field");
        if (!ef)
                goto fail;
        free(c->event_field);
        c->event_field = ef;
        /* The person is checked like any path: a typo here would silently
         * key every record by its identity instead. */
        if (person && !(c->person = resolve_path(
                            &x, config_setting_get_member(g, "person"), person,
                            "person")))
                goto fail;
        if (unmapped) {
                if (!strcmp(unmapped, "dead_letter")) {
                        c->unmapped_dead_letter = 1;
                } else if (strcmp(unmapped, "skip")) {
                        map_fail_at(&x, config_setting_get_member(g, "unmapped"),
                                "unmapped = \"%s\" is not one of \"skip\" "
                                "(the default: events no rule names are "
                                "counted and skipped) and \"dead_letter\"",
                                unmapped);
                        goto fail;
                }
        }
        if (parse_identity(&x, g, c) ||
            parse_value_list(&x, g, "fields", "to", "a field-sync entry",
                             &c->fields, &c->nfields))
                goto fail;
        config_setting_t *ev = config_setting_get_member(g, "events");
        if (!ev || !config_setting_is_list(ev)) {
                map_fail_at(&x, ev ? ev : g,
                        "connection needs 'events = ( { on = ...; name = "
                        "...; }, ... )'");
                goto fail;
        }
        int n = config_setting_length(ev);
        c->events = relay_calloc((size_t)n ? (size_t)n : 1, sizeof(*c->events));
        for (int i = 0; i < n; i++) {
                if (parse_event(&x, config_setting_get_elem(ev, i),
                                &c->events[c->nevents])) {
                        event_rule_free(&c->events[c->nevents]);
                        goto fail;
                }
                c->nevents++;
        }
        free(person);
        free(unmapped);
        config_destroy(&cfg);
        return c;
fail:
        free(person);
        free(unmapped);
        config_destroy(&cfg);
        connection_free(c);
        return NULL;
}

/* Compile path against the mapping's shape into out; an empty path (an
 * optional one unset) compiles to nothing. 0, or -1 with errstr. */
static int compile_path(const relay_connection_t *c, const relay_shape_t *sh,
                        const char *path, relay_path_t *out, char *errstr,
                        size_t errstr_size)
{
        if (!path) {
                memset(out, 0, sizeof(*out));
                return 0;
        }
        if (relay_path_compile(sh, path, out) == 0)
                return 0;
        relay_seterr(errstr, errstr_size,
                     "%s: connection %s: field '%s' cannot be laid out in "
                     "the input schema",
                     c->file, c->id, path);
        return -1;
}

static int compile_spec(const relay_connection_t *c, const relay_shape_t *sh,
                        struct value_spec *v, char *errstr, size_t errstr_size)
{
        if (compile_path(c, sh, v->from, &v->from_path, errstr, errstr_size))
                return -1;
        v->name_len = strlen(v->name);
        for (size_t i = 0; i < v->nparts; i++) {
                v->parts[i].len = strlen(v->parts[i].text);
                if (v->parts[i].is_field &&
                    compile_path(c, sh, v->parts[i].text, &v->parts[i].path,
                                 errstr, errstr_size))
                        return -1;
        }
        return 0;
}

/* Note the top-level field of path as read by some connection. */
static void field_used(relay_mapping_t *m, const char *path)
{
        if (!path)
                return;
        size_t n = strcspn(path, ".");
        for (size_t i = 0; i < m->nfields; i++)
                if (strlen(m->fields[i]) == n &&
                    !strncmp(m->fields[i], path, n))
                        return;
        m->fields =
            relay_realloc(m->fields, (m->nfields + 2) * sizeof(*m->fields));
        m->fields[m->nfields++] = relay_strndup(path, n);
        m->fields[m->nfields] = NULL;
}

static void spec_fields(relay_mapping_t *m, const struct value_spec *v)
{
        field_used(m, v->from);
        for (size_t i = 0; i < v->nparts; i++)
                if (v->parts[i].is_field)
                        field_used(m, v->parts[i].text);
}

/* The fields c reads: what the workers decode (the others are skipped). */
static void fields_of(relay_mapping_t *m, const relay_connection_t *c)
{
        static const char *const always[] = {"tenant", "source", "event_id",
                                             "occurred_at", NULL};
        for (size_t i = 0; always[i]; i++)
                field_used(m, always[i]);
        field_used(m, c->event_field);
        field_used(m, c->person);
        for (size_t i = 0; i < c->nids; i++)
                field_used(m, c->ids[i].from);
        for (size_t i = 0; i < c->nfields; i++)
                spec_fields(m, &c->fields[i]);
        for (size_t i = 0; i < c->nevents; i++) {
                const struct event_rule *r = &c->events[i];
                for (size_t k = 0; k < r->nattrs; k++)
                        spec_fields(m, &r->attrs[k]);
                for (size_t o = 0; o < r->nops; o++) {
                        spec_fields(m, &r->ops[o].target);
                        for (size_t k = 0; k < r->ops[o].nattrs; k++)
                                spec_fields(m, &r->ops[o].attrs[k]);
                }
        }
}

/* 1 when no two of the n specs put the same name: their map then needs
 * no check, per value, that a key was given before. */
static int names_unique(const struct value_spec *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                for (size_t k = i + 1; k < n; k++)
                        if (!strcmp(v[i].name, v[k].name))
                                return 0;
        return 1;
}

/* Every path of c, compiled: applying it looks nothing up by name. */
static int compile_paths(relay_connection_t *c, const relay_shape_t *sh,
                         char *errstr, size_t errstr_size)
{
        c->shape = sh;
        c->id_len = strlen(c->id);
        c->tenant_len = strlen(c->tenant);
        c->source_len = strlen(c->source);
        c->destination_len = strlen(c->destination);
        if (compile_path(c, sh, "tenant", &c->p_tenant, errstr, errstr_size) ||
            compile_path(c, sh, "source", &c->p_source, errstr, errstr_size) ||
            compile_path(c, sh, "event_id", &c->p_event_id, errstr,
                         errstr_size) ||
            compile_path(c, sh, "occurred_at", &c->p_occurred, errstr,
                         errstr_size) ||
            compile_path(c, sh, c->event_field, &c->p_event, errstr,
                         errstr_size) ||
            compile_path(c, sh, c->person, &c->p_person, errstr, errstr_size))
                return -1;
        for (size_t i = 0; i < c->nids; i++) {
                c->ids[i].as_len = strlen(c->ids[i].as);
                if (compile_path(c, sh, c->ids[i].from, &c->ids[i].path, errstr,
                                 errstr_size))
                        return -1;
        }
        c->fields_unique = names_unique(c->fields, c->nfields);
        for (size_t i = 0; i < c->nfields; i++)
                if (compile_spec(c, sh, &c->fields[i], errstr, errstr_size))
                        return -1;
        for (size_t i = 0; i < c->nevents; i++) {
                struct event_rule *r = &c->events[i];
                r->name_len = r->name ? strlen(r->name) : 0;
                r->category_len = r->category ? strlen(r->category) : 0;
                r->attrs_unique = names_unique(r->attrs, r->nattrs);
                free(r->on_len);
                r->on_len = relay_calloc(r->non ? r->non : 1,
                                         sizeof(*r->on_len));
                for (size_t k = 0; k < r->non; k++) {
                        r->on_len[k] = strlen(r->on[k]);
                        if (!strcmp(r->on[k], "*"))
                                r->on_any = 1;
                }
                for (size_t k = 0; k < r->nattrs; k++)
                        if (compile_spec(c, sh, &r->attrs[k], errstr,
                                         errstr_size))
                                return -1;
                for (size_t o = 0; o < r->nops; o++) {
                        r->ops[o].op_len = strlen(r->ops[o].op);
                        r->ops[o].attrs_unique =
                            names_unique(r->ops[o].attrs, r->ops[o].nattrs);
                        if (compile_spec(c, sh, &r->ops[o].target, errstr,
                                         errstr_size))
                                return -1;
                        for (size_t k = 0; k < r->ops[o].nattrs; k++)
                                if (compile_spec(c, sh, &r->ops[o].attrs[k],
                                                 errstr, errstr_size))
                                        return -1;
                }
        }
        return 0;
}

relay_mapping_t *relay_mapping_load(const char *path, avro_schema_t schema,
                                    char *errstr, size_t errstr_size)
{
        relay_mapping_t *m = relay_calloc(1, sizeof(*m));
        char **files = NULL;
        size_t nfiles = 0;
        if (relay_cfg_files(path, &files, &nfiles, errstr, errstr_size))
                goto fail;
        m->conns = relay_calloc(nfiles ? nfiles : 1, sizeof(*m->conns));
        if (!(m->shape = relay_shape_new(schema, errstr, errstr_size)))
                goto fail;
        for (size_t i = 0; i < nfiles; i++) {
                relay_connection_t *c =
                    connection_load(files[i], schema, errstr, errstr_size);
                if (!c)
                        goto fail;
                if (compile_paths(c, m->shape, errstr, errstr_size)) {
                        connection_free(c);
                        goto fail;
                }
                fields_of(m, c);
                for (size_t k = 0; k < m->n; k++)
                        if (!strcmp(m->conns[k]->id, c->id)) {
                                relay_seterr(errstr, errstr_size,
                                             "%s:%d: connection id '%s' is "
                                             "also used by %s",
                                             files[i], c->id_line, c->id,
                                             m->conns[k]->file);
                                connection_free(c);
                                goto fail;
                        }
                m->conns[m->n++] = c;
        }
        relay_cfg_files_free(files, nfiles);
        return m;
fail:
        relay_cfg_files_free(files, nfiles);
        relay_mapping_destroy(m);
        return NULL;
}

void relay_mapping_destroy(relay_mapping_t *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->n; i++)
                connection_free(m->conns[i]);
        free(m->conns);
        relay_shape_destroy(m->shape);
        for (size_t i = 0; i < m->nfields; i++)
                free(m->fields[i]);
        free(m->fields);
        free(m);
}

const char *const *relay_mapping_fields(const relay_mapping_t *m)
{
        static const char *const none[] = {NULL};
        return m->fields ? (const char *const *)m->fields : none;
}

size_t relay_mapping_count(const relay_mapping_t *m)
{
        return m->n;
}

const relay_connection_t *relay_mapping_get(const relay_mapping_t *m, size_t i)
{
        return i < m->n ? m->conns[i] : NULL;
}

const relay_connection_t *relay_mapping_find(const relay_mapping_t *m,
                                             const char *id)
{
        for (size_t i = 0; id && i < m->n; i++)
                if (!strcmp(m->conns[i]->id, id))
                        return m->conns[i];
        return NULL;
}

const char *relay_connection_id(const relay_connection_t *c)
{
        return c->id;
}

const char *relay_connection_destination(const relay_connection_t *c)
{
        return c->destination;
}

const char *relay_connection_person(const relay_connection_t *c)
{
        return c->person;
}
