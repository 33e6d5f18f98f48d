/*
 * Ingest sources (see relay/ingest.h): each source file parsed and checked
 * against its topic's schema with the mapping module's loader helpers
 * (mapping_int.h), so that a mistake reads "file:line: what is wrong" as
 * in a connection file; and one posted JSON record mapped into the topic's
 * Avro record: the rules fill a JSON object of the record's shape, which
 * relay_avro_from_json checks field by field against the schema (so a
 * record that does not fit is refused naming the field) and the source's
 * writer encodes.
 */
#include "mapping_int.h"
#include "relay/ingest.h"
#include "relay/log.h"
#include "relay/sign.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* The namespace of ingest's name-based event ids (a random UUID,
 * 6f1e0c2a-8b4d-4f7e-9a35-2c1d7e5b9f40, fixed for ever: changing it would
 * change every derived id). */
static const unsigned char ingest_ns[16] = {0x6f, 0x1e, 0x0c, 0x2a, 0x8b, 0x4d, 0x4f, 0x7e, 0x9a, 0x35, 0x2c, 0x1d, 0x7e, 0x5b, 0x9f, 0x40};

enum itype { IT_KEEP, IT_STRING, IT_NUMBER, IT_BOOL, IT_TIMESTAMP };

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

struct relay_ingest_source {
        char *file;
        char *name, *topic;
        int route_tenant;
        struct itmpl tenant; /* n 0: none */
        char **tokens;
        size_t ntokens;
        char *token_header, *token_query;
        char **types; /* NULL: any */
        size_t ntypes;
        char *event_id, *items, *key;
        struct rule *rules;
        size_t nrules;
        /* which of the defaulted fields the topic's record has */
        int has_event_id, has_occurred, has_tenant, has_source, has_type;
        /* the record's map fields: empty when no rule fills them */
        char **maps;
        size_t nmaps;
        relay_avro_writer_t *writer;
        relay_buf_t scratch;
};

struct relay_ingest {
        relay_ingest_source_t **s;
        size_t n;
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

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void source_free(relay_ingest_source_t *s)
{
        if (!s)
                return;
        free(s->file);
        free(s->name);
        free(s->topic);
        tmpl_free(&s->tenant);
        for (size_t i = 0; i < s->ntokens; i++)
                memset(s->tokens[i], 0, strlen(s->tokens[i]));
        strv_free(s->tokens, s->ntokens);
        free(s->token_header);
        free(s->token_query);
        strv_free(s->types, s->ntypes);
        strv_free(s->maps, s->nmaps);
        free(s->event_id);
        free(s->items);
        free(s->key);
        for (size_t i = 0; i < s->nrules; i++) {
                free(s->rules[i].to);
                free(s->rules[i].from);
                free(s->rules[i].defval);
                tmpl_free(&s->rules[i].value);
        }
        free(s->rules);
        relay_avro_writer_destroy(s->writer);
        relay_buf_free(&s->scratch);
        free(s);
}

/* Check that `to` names a value of the topic's record: record fields by
 * name, one map key below a map field. *composite is set when it names a
 * record or map as a whole (only a kept copy may fill that). */
static int check_to(struct ctx *x, const config_setting_t *e, const char *to,
                    int *composite)
{
        avro_schema_t s = x->schema;
        char *copy = relay_strdup(to), *save = NULL;
        const char *prev = "the record";
        int rc = 0, below_map = 0;
        *composite = 0;
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
        if (!rc) {
                avro_type_t t = avro_typeof(map_unwrap_schema(s));
                *composite = t == AVRO_RECORD || t == AVRO_MAP ||
                             t == AVRO_ARRAY;
        }
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
        static const char *const types[] = {"keep", "string", "number", "bool",
                                            "timestamp"};
        r->type = IT_KEEP;
        if (type) {
                size_t t = 0;
                while (t < 5 && strcmp(type, types[t]))
                        t++;
                if (t == 5) {
                        map_fail_at(x, e,
                                    "field '%s': type '%s' is not one of "
                                    "keep, string, number, bool, timestamp",
                                    r->to, type);
                        goto fail;
                }
                r->type = (enum itype)t;
        }
        int composite, req = 0;
        if (check_to(x, e, r->to, &composite))
                goto fail;
        if (composite && (!r->from || r->type != IT_KEEP)) {
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

/* A string or list of strings of g (NULL when absent). */
static int get_strv(struct ctx *x, const config_setting_t *g, const char *key,
                    char ***out, size_t *n)
{
        config_setting_t *m = config_setting_get_member(g, key);
        *out = NULL;
        *n = 0;
        if (!m)
                return 0;
        if (config_setting_type(m) == CONFIG_TYPE_STRING) {
                *out = relay_malloc(sizeof(char *));
                (*out)[(*n)++] = relay_strdup(config_setting_get_string(m));
                return 0;
        }
        if (!config_setting_is_aggregate(m))
                return map_fail_at(x, m, "'%s' must be a string or a list of "
                                   "strings", key);
        *out = relay_calloc((size_t)config_setting_length(m) + 1,
                            sizeof(char *));
        for (int i = 0; i < config_setting_length(m); i++) {
                const char *v = config_setting_get_string_elem(m, i);
                if (!v)
                        return map_fail_at(x, m, "'%s' must hold strings",
                                           key);
                (*out)[(*n)++] = relay_strdup(v);
        }
        return 0;
}

/* The tokens of the environment variable (or its _FILE), split on ','. */
static int load_tokens(struct ctx *x, const config_setting_t *at,
                       const char *var, relay_ingest_source_t *s)
{
        char fvar[300], *text = NULL;
        snprintf(fvar, sizeof(fvar), "%s_FILE", var);
        const char *v = getenv(var), *f = getenv(fvar);
        if (v && f)
                return map_fail_at(x, at, "both %s and %s are set: set one",
                                   var, fvar);
        if (!v && !f)
                return map_fail_at(x, at,
                                   "the source's tokens: neither %s nor %s "
                                   "is set",
                                   var, fvar);
        if (f) {
                FILE *fp = fopen(f, "r");
                size_t cap = 0;
                if (!fp || getline(&text, &cap, fp) < 0) {
                        int err = errno;
                        if (fp)
                                fclose(fp);
                        free(text);
                        return map_fail_at(x, at, "%s: cannot read %s: %s",
                                           fvar, f, strerror(err));
                }
                fclose(fp);
        } else {
                text = relay_strdup(v);
        }
        for (char *save = NULL, *t = strtok_r(text, ",\r\n", &save); t;
             t = strtok_r(NULL, ",\r\n", &save)) {
                while (isspace((unsigned char)*t))
                        t++;
                size_t n = strlen(t);
                while (n && isspace((unsigned char)t[n - 1]))
                        t[--n] = '\0';
                if (!n)
                        continue;
                s->tokens = relay_realloc(s->tokens,
                                          (s->ntokens + 1) * sizeof(char *));
                s->tokens[s->ntokens++] = relay_strdup(t);
        }
        memset(text, 0, strlen(text));
        free(text);
        if (!s->ntokens)
                return map_fail_at(x, at, "%s holds no token", f ? fvar : var);
        return 0;
}

static relay_ingest_source_t *source_load(const char *file,
                                          relay_schemas_t *schemas,
                                          char *errstr, size_t errstr_size)
{
        config_t cfg;
        config_init(&cfg);
        struct ctx x = {file, NULL, NULL, errstr, errstr_size};
        relay_ingest_source_t *s = relay_calloc(1, sizeof(*s));
        s->file = relay_strdup(file);
        relay_buf_init(&s->scratch);
        if (!config_read_file(&cfg, file)) {
                relay_seterr(errstr, errstr_size, "%s:%d: %s", file,
                             config_error_line(&cfg), config_error_text(&cfg));
                goto fail;
        }
        config_setting_t *g = config_lookup(&cfg, "source");
        if (!g || !config_setting_is_group(g)) {
                relay_seterr(errstr, errstr_size,
                             "%s:1: wants one group: source = { ... };", file);
                goto fail;
        }
        static const char *const keys[] = {
            "name",        "topic",    "route", "tenant",   "tokens_env",
            "token_header", "token_query", "event_types", "event_id", "items",
            "key",         "fields",   NULL};
        char *route = NULL, *tenant = NULL, *tokens_env = NULL;
        if (map_check_keys(&x, g, "source", keys) ||
            map_get_str(&x, g, "name", 1, "source", &s->name) ||
            map_get_str(&x, g, "topic", 1, "source", &s->topic) ||
            map_get_str(&x, g, "route", 0, "source", &route) ||
            map_get_str(&x, g, "tenant", 0, "source", &tenant) ||
            map_get_str(&x, g, "tokens_env", 1, "source", &tokens_env) ||
            map_get_str(&x, g, "token_header", 0, "source", &s->token_header) ||
            map_get_str(&x, g, "token_query", 0, "source", &s->token_query) ||
            map_get_str(&x, g, "event_id", 0, "source", &s->event_id) ||
            map_get_str(&x, g, "items", 0, "source", &s->items) ||
            map_get_str(&x, g, "key", 0, "source", &s->key) ||
            get_strv(&x, g, "event_types", &s->types, &s->ntypes))
                goto fail_strs;
        for (const char *c = s->name; *c; c++)
                if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_') {
                        map_fail_at(&x, config_setting_get_member(g, "name"),
                                    "source name '%s' may hold only letters, "
                                    "digits, '-' and '_' (it is a URL "
                                    "segment)",
                                    s->name);
                        goto fail_strs;
                }
        if (route && strcmp(route, "v1") && strcmp(route, "tenant")) {
                map_fail_at(&x, config_setting_get_member(g, "route"),
                            "route '%s' is not v1 or tenant", route);
                goto fail_strs;
        }
        s->route_tenant = route && !strcmp(route, "tenant");
        if (!s->token_header && !s->token_query) {
                map_fail_at(&x, g, "source '%s' needs token_header, "
                            "token_query or both", s->name);
                goto fail_strs;
        }
        if (load_tokens(&x, config_setting_get_member(g, "tokens_env"),
                        tokens_env, s))
                goto fail_strs;
        for (size_t i = 0; i < s->ntypes; i++)
                if (!strcmp(s->types[i], "*")) {
                        strv_free(s->types, s->ntypes);
                        s->types = NULL;
                        s->ntypes = 0;
                        break;
                }
        char subject[300];
        snprintf(subject, sizeof(subject), "%s-value", s->topic);
        char why[512];
        s->writer = relay_avro_writer_new(schemas, subject, why, sizeof(why));
        if (!s->writer) {
                map_fail_at(&x, config_setting_get_member(g, "topic"),
                            "topic '%s': %s", s->topic, why);
                goto fail_strs;
        }
        x.schema = relay_shape_schema(relay_avro_writer_shape(s->writer));
        s->has_event_id = !!map_field_schema(x.schema, "event_id");
        s->has_occurred = !!map_field_schema(x.schema, "occurred_at");
        s->has_tenant = !!map_field_schema(x.schema, "tenant");
        s->has_source = !!map_field_schema(x.schema, "source");
        s->has_type = !!map_field_schema(x.schema, "event_type");
        for (size_t i = 0; i < avro_schema_record_size(x.schema); i++) {
                avro_schema_t f = avro_schema_record_field_get_by_index(
                    x.schema, (int)i);
                if (avro_typeof(f) != AVRO_MAP)
                        continue;
                s->maps = relay_realloc(s->maps,
                                        (s->nmaps + 1) * sizeof(char *));
                s->maps[s->nmaps++] = relay_strdup(
                    avro_schema_record_field_name(x.schema, (int)i));
        }
        if (tenant && map_template_split(&x, config_setting_get_member(
                                                 g, "tenant"),
                                         tenant, tmpl_part, &s->tenant))
                goto fail_strs;
        if (s->key) {
                int composite;
                if (check_to(&x, config_setting_get_member(g, "key"), s->key,
                             &composite))
                        goto fail_strs;
        }
        config_setting_t *fl = config_setting_get_member(g, "fields");
        if (fl && !config_setting_is_list(fl)) {
                map_fail_at(&x, fl, "fields must be a list ( { ... }, ... )");
                goto fail_strs;
        }
        for (int i = 0; fl && i < config_setting_length(fl); i++) {
                s->rules = relay_realloc(s->rules,
                                         (s->nrules + 1) * sizeof(*s->rules));
                if (parse_rule(&x, config_setting_get_elem(fl, i),
                               &s->rules[s->nrules])) {
                        struct rule *r = &s->rules[s->nrules];
                        free(r->to);
                        free(r->from);
                        free(r->defval);
                        tmpl_free(&r->value);
                        goto fail_strs;
                }
                s->nrules++;
        }
        free(route);
        free(tenant);
        free(tokens_env);
        config_destroy(&cfg);
        return s;
fail_strs:
        free(route);
        free(tenant);
        free(tokens_env);
fail:
        config_destroy(&cfg);
        source_free(s);
        return NULL;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

relay_ingest_t *relay_ingest_load(const char *path, relay_schemas_t *schemas,
                                  char *errstr, size_t errstr_size)
{
        struct stat st;
        char **files = NULL;
        size_t nfiles = 0;
        if (stat(path, &st)) {
                relay_seterr(errstr, errstr_size, "%s: %s", path,
                             strerror(errno));
                return NULL;
        }
        if (S_ISDIR(st.st_mode)) {
                DIR *d = opendir(path);
                struct dirent *de;
                while (d && (de = readdir(d))) {
                        size_t n = strlen(de->d_name);
                        if (n < 5 || strcmp(de->d_name + n - 4, ".cfg"))
                                continue;
                        files = relay_realloc(files,
                                              (nfiles + 1) * sizeof(char *));
                        size_t m = strlen(path) + n + 2;
                        files[nfiles] = relay_malloc(m);
                        snprintf(files[nfiles++], m, "%s/%s", path,
                                 de->d_name);
                }
                if (d)
                        closedir(d);
                qsort(files, nfiles, sizeof(char *), cmp_str);
        } else {
                files = relay_malloc(sizeof(char *));
                files[nfiles++] = relay_strdup(path);
        }
        relay_ingest_t *in = relay_calloc(1, sizeof(*in));
        int rc = 0;
        if (!nfiles) {
                relay_seterr(errstr, errstr_size, "%s: no source files (*.cfg)",
                             path);
                rc = -1;
        }
        for (size_t i = 0; i < nfiles && !rc; i++) {
                relay_ingest_source_t *s =
                    source_load(files[i], schemas, errstr, errstr_size);
                if (!s) {
                        rc = -1;
                        break;
                }
                for (size_t j = 0; j < in->n && !rc; j++) {
                        if (!strcmp(in->s[j]->name, s->name))
                                rc = -1, relay_seterr(
                                             errstr, errstr_size,
                                             "%s: source name '%s' is "
                                             "already used by %s",
                                             files[i], s->name, in->s[j]->file);
                        else if (s->route_tenant && in->s[j]->route_tenant)
                                rc = -1, relay_seterr(
                                             errstr, errstr_size,
                                             "%s: only one source may have "
                                             "route = \"tenant\" (%s has it)",
                                             files[i], in->s[j]->file);
                }
                in->s = relay_realloc(in->s, (in->n + 1) * sizeof(*in->s));
                in->s[in->n++] = s;
        }
        strv_free(files, nfiles);
        if (rc) {
                relay_ingest_destroy(in);
                return NULL;
        }
        return in;
}

void relay_ingest_destroy(relay_ingest_t *in)
{
        if (!in)
                return;
        for (size_t i = 0; i < in->n; i++)
                source_free(in->s[i]);
        free(in->s);
        free(in);
}

size_t relay_ingest_count(const relay_ingest_t *in)
{
        return in ? in->n : 0;
}

const relay_ingest_source_t *relay_ingest_get(const relay_ingest_t *in,
                                              size_t i)
{
        return in && i < in->n ? in->s[i] : NULL;
}

const relay_ingest_source_t *relay_ingest_find(const relay_ingest_t *in,
                                               const char *name, size_t n)
{
        for (size_t i = 0; in && i < in->n; i++)
                if (!in->s[i]->route_tenant && strlen(in->s[i]->name) == n &&
                    !memcmp(in->s[i]->name, name, n))
                        return in->s[i];
        return NULL;
}

const relay_ingest_source_t *relay_ingest_tenant_route(const relay_ingest_t *in)
{
        for (size_t i = 0; in && i < in->n; i++)
                if (in->s[i]->route_tenant)
                        return in->s[i];
        return NULL;
}

const char *relay_ingest_name(const relay_ingest_source_t *s)
{
        return s->name;
}

const char *relay_ingest_topic(const relay_ingest_source_t *s)
{
        return s->topic;
}

const char *relay_ingest_token_header(const relay_ingest_source_t *s)
{
        return s->token_header;
}

const char *relay_ingest_token_query(const relay_ingest_source_t *s)
{
        return s->token_query;
}

int relay_ingest_token_ok(const relay_ingest_source_t *s, const char *token)
{
        if (!token)
                return 0;
        size_t n = strlen(token);
        int ok = 0;
        /* Every token is compared, equal lengths in constant time, so the
         * time taken says neither which token nor how much matched. */
        for (size_t i = 0; i < s->ntokens; i++) {
                size_t tn = strlen(s->tokens[i]);
                ok |= tn == n && relay_sign_equal(s->tokens[i], token, n);
        }
        return ok;
}

int relay_ingest_event_type_ok(const relay_ingest_source_t *s, const char *t,
                               size_t n)
{
        if (!n)
                return 0;
        if (!s->types)
                return 1;
        for (size_t i = 0; i < s->ntypes; i++)
                if (strlen(s->types[i]) == n && !memcmp(s->types[i], t, n))
                        return 1;
        return 0;
}

/* A dotted path through objects (and arrays by index) of j. */
static json_t *walk(json_t *j, const char *path, size_t n)
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

/* A field of the record, the URL or the batch: borrowed, or a new string
 * for the URL's segments (then *owned is set). */
static json_t *lookup(const relay_ingest_req_t *req, json_t *item,
                      const char *path, size_t n, int *owned)
{
        *owned = 0;
        if (n == 11 && !memcmp(path, "path.tenant", 11)) {
                *owned = 1;
                return req->tenant ? json_string(req->tenant) : NULL;
        }
        if (n == 15 && !memcmp(path, "path.event_type", 15)) {
                *owned = 1;
                return json_string(req->event_type);
        }
        if (n > 6 && !memcmp(path, "batch.", 6))
                return walk(req->batch, path + 6, n - 6);
        return walk(item, path, n);
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

/* Convert v as rule r says. A new reference, or NULL + errstr. */
static json_t *convert(const struct rule *r, json_t *v, relay_buf_t *scratch,
                       char *errstr, size_t errstr_size)
{
        const char *what = "";
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
        case IT_TIMESTAMP: {
                int64_t ms;
                if (json_is_integer(v)) {
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
                what = "a time (ISO 8601, or epoch seconds or "
                       "milliseconds)";
                break;
        }
        }
        relay_seterr(errstr, errstr_size, "field '%s' (to %s) is not %s",
                     r->from ? r->from : "value", r->to, what);
        return NULL;
}

/* Fill b with template t over the record; -1 + errstr when a field in it
 * is missing or not a scalar. */
static int render(const struct itmpl *t, const relay_ingest_req_t *req,
                  json_t *item, relay_buf_t *b, const char *to, char *errstr,
                  size_t errstr_size)
{
        for (size_t i = 0; i < t->n; i++) {
                const struct ipart *p = &t->parts[i];
                if (!p->is_field) {
                        relay_buf_append(b, p->text, p->len);
                        continue;
                }
                int owned;
                json_t *v = lookup(req, item, p->text, p->len, &owned);
                int rc = v ? scalar_text(v, b) : -1;
                if (owned)
                        json_decref(v);
                if (rc) {
                        relay_seterr(errstr, errstr_size,
                                     "%s: field '%s' is missing or not a "
                                     "value",
                                     to, p->text);
                        return -1;
                }
        }
        return 0;
}

/* Set root's dotted path to v (stolen), making objects on the way. */
static void set_path(json_t *root, const char *path, json_t *v)
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
        json_object_set_new(root, p, v);
}

/* The record's event id: a UUID of the body's own as it is, another id
 * turned into a name-based UUID (version 5) of (source, tenant, id) in
 * relay's ingest namespace, so that the
 * platform's retry of one event is one id downstream, or a random one. */
static void event_id_of(const relay_ingest_source_t *s, json_t *v,
                        const char *tenant, char out[RELAY_UUID_SIZE])
{
        relay_buf_t *b = (relay_buf_t *)&s->scratch;
        relay_buf_reset(b);
        if (!v || scalar_text(v, b) || !b->len) {
                relay_uuid4(out);
                return;
        }
        if (relay_uuid_valid(b->data, b->len)) {
                for (size_t i = 0; i < 36; i++)
                        out[i] = (char)tolower((unsigned char)b->data[i]);
                out[36] = '\0';
                return;
        }
        /* name: source NUL tenant NUL id */
        relay_buf_t name;
        relay_buf_init(&name);
        relay_buf_append(&name, s->name, strlen(s->name) + 1);
        relay_buf_append(&name, tenant, strlen(tenant) + 1);
        relay_buf_append(&name, b->data, b->len);
        if (relay_sign_uuid5(ingest_ns, name.data, name.len,
                             out))
                relay_uuid4(out);
        relay_buf_free(&name);
}

json_t *relay_ingest_records(const relay_ingest_source_t *s, json_t *body,
                             int *single, char *errstr, size_t errstr_size)
{
        *single = 0;
        if (s->items) {
                json_t *arr = walk(body, s->items, strlen(s->items));
                if (!json_is_array(arr)) {
                        relay_seterr(errstr, errstr_size,
                                     "the body has no array '%s'", s->items);
                        return NULL;
                }
                return arr;
        }
        if (json_is_object(body)) {
                *single = 1;
                return body;
        }
        if (json_is_array(body))
                return body;
        relay_seterr(errstr, errstr_size,
                     "the body is neither an object nor an array of objects");
        return NULL;
}

int relay_ingest_map(const relay_ingest_source_t *s,
                     const relay_ingest_req_t *req, json_t *item,
                     relay_buf_t *key, const void **value, size_t *value_len,
                     char event_id[RELAY_UUID_SIZE], char *errstr,
                     size_t errstr_size)
{
        relay_buf_t *b = (relay_buf_t *)&s->scratch;
        if (!json_is_object(item)) {
                relay_seterr(errstr, errstr_size, "a record must be a JSON "
                             "object");
                return -1;
        }
        json_t *root = json_object();
        int rc = 0;
        for (size_t i = 0; i < s->nrules && !rc; i++) {
                const struct rule *r = &s->rules[i];
                json_t *v = NULL;
                if (r->from) {
                        int owned;
                        json_t *src = lookup(req, item, r->from,
                                             strlen(r->from), &owned);
                        if (src)
                                v = convert(r, src, b, errstr, errstr_size);
                        if (owned)
                                json_decref(src);
                        if (src && !v) {
                                rc = -1;
                                break;
                        }
                } else {
                        relay_buf_reset(b);
                        if (render(&r->value, req, item, b, r->to, errstr,
                                   errstr_size)) {
                                if (r->required) {
                                        rc = -1;
                                        break;
                                }
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
                                        rc = -1;
                                        break;
                                }
                        }
                }
                if (!v && r->defval)
                        v = json_string(r->defval);
                if (!v && r->required) {
                        relay_seterr(errstr, errstr_size,
                                     "required field '%s' (to %s) is missing",
                                     r->from ? r->from : "value", r->to);
                        rc = -1;
                }
                if (v)
                        set_path(root, r->to, v);
        }
        for (size_t i = 0; i < s->nmaps && !rc; i++)
                if (!json_object_get(root, s->maps[i]))
                        json_object_set_new(root, s->maps[i], json_object());
        /* Defaults of the fields every input topic has. */
        if (!rc && s->has_tenant && !json_object_get(root, "tenant")) {
                relay_buf_reset(b);
                if (!s->tenant.n && req->tenant)
                        relay_buf_puts(b, req->tenant);
                else if (render(&s->tenant, req, item, b, "tenant", errstr,
                                errstr_size))
                        rc = -1;
                if (!rc && !b->len) {
                        relay_seterr(errstr, errstr_size,
                                     "the record has no tenant");
                        rc = -1;
                }
                if (!rc)
                        json_object_set_new(root, "tenant",
                                            json_stringn(b->data, b->len));
        }
        if (!rc && s->has_source && !json_object_get(root, "source"))
                json_object_set_new(root, "source", json_string(s->name));
        if (!rc && s->has_type && !json_object_get(root, "event_type"))
                json_object_set_new(root, "event_type",
                                    json_string(req->event_type));
        if (!rc && s->has_occurred && !json_object_get(root, "occurred_at"))
                json_object_set_new(root, "occurred_at",
                                    json_integer(relay_now_ms()));
        json_t *eid = json_object_get(root, "event_id");
        if (!rc && json_is_string(eid) &&
            relay_uuid_valid(json_string_value(eid), json_string_length(eid))) {
                memcpy(event_id, json_string_value(eid), 36);
                event_id[36] = '\0';
        } else if (!rc) {
                int owned = 0;
                json_t *v = eid ? eid
                          : s->event_id
                              ? lookup(req, item, s->event_id,
                                       strlen(s->event_id), &owned)
                              : NULL;
                json_t *t = json_object_get(root, "tenant");
                event_id_of(s, v, json_is_string(t) ? json_string_value(t) : "",
                            event_id);
                if (owned)
                        json_decref(v);
                if (s->has_event_id)
                        json_object_set_new(root, "event_id",
                                            json_string(event_id));
        }
        char why[512];
        avro_value_t *out = relay_avro_writer_value(s->writer);
        if (!rc && relay_avro_from_json(out, root, why, sizeof(why))) {
                relay_seterr(errstr, errstr_size, "the record does not fit "
                             "%s: %s", s->topic, why);
                rc = -1;
        }
        if (!rc && relay_avro_writer_encode(s->writer, value, value_len, why,
                                            sizeof(why))) {
                relay_seterr(errstr, errstr_size, "the record does not fit "
                             "%s: %s", s->topic, why);
                rc = -1;
        }
        if (!rc) {
                relay_buf_reset(key);
                json_t *k = s->key ? walk(root, s->key, strlen(s->key)) : NULL;
                if (!k || scalar_text(k, key) || !key->len) {
                        relay_buf_reset(key);
                        relay_buf_puts(key, event_id);
                }
        }
        json_decref(root);
        return rc;
}
