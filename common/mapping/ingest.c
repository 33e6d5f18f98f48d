/*
 * Ingest sources (see relay/ingest.h): each source file parsed with the
 * mapping module's loader helpers (mapping_int.h), so that a mistake reads
 * "file:line: what is wrong" as in a connection file. What is an ingest
 * source's own is here: its name and route, its tokens, the event types
 * it serves and how a body holds its records (`items`). How one record
 * becomes its topic's Avro record (topic, tenant, event_id, key, fields)
 * is the JSON mapping relay-poll uses too (relay/json_map.h).
 */
#include "mapping_int.h"
#include "relay/conf.h"
#include "relay/ingest.h"
#include "relay/json_map.h"
#include "relay/sign.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The namespace of ingest's name-based event ids (a random UUID,
 * 6f1e0c2a-8b4d-4f7e-9a35-2c1d7e5b9f40, fixed for ever: changing it would
 * change every derived id). */
static const unsigned char ingest_ns[16] = {0x6f, 0x1e, 0x0c, 0x2a, 0x8b, 0x4d, 0x4f, 0x7e, 0x9a, 0x35, 0x2c, 0x1d, 0x7e, 0x5b, 0x9f, 0x40};

struct relay_ingest_source {
        char *file;
        char *name;
        int route_tenant;
        char **tokens;
        size_t ntokens;
        char *token_header, *token_query;
        char **types; /* NULL: any */
        size_t ntypes;
        char *items;
        relay_json_map_t *map;
};

struct relay_ingest {
        relay_ingest_source_t **s;
        size_t n;
};

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
        for (size_t i = 0; i < s->ntokens; i++)
                memset(s->tokens[i], 0, strlen(s->tokens[i]));
        strv_free(s->tokens, s->ntokens);
        free(s->token_header);
        free(s->token_query);
        strv_free(s->types, s->ntypes);
        free(s->items);
        relay_json_map_destroy(s->map);
        free(s);
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
            "name",        "route",       "tokens_env", "token_header",
            "token_query", "event_types", "items",      RELAY_JSON_MAP_KEYS,
            NULL};
        char *route = NULL, *tokens_env = NULL;
        if (map_check_keys(&x, g, "source", keys) ||
            map_get_str(&x, g, "name", 1, "source", &s->name) ||
            map_get_str(&x, g, "route", 0, "source", &route) ||
            map_get_str(&x, g, "tokens_env", 1, "source", &tokens_env) ||
            map_get_str(&x, g, "token_header", 0, "source", &s->token_header) ||
            map_get_str(&x, g, "token_query", 0, "source", &s->token_query) ||
            map_get_str(&x, g, "items", 0, "source", &s->items) ||
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
        /* Derived event ids: name-based in ingest's own namespace, of
         * source NUL tenant NUL id; a record without an id gets a random
         * one (a platform's retry of it cannot be told from a new one). */
        const char nul = '\0';
        relay_json_map_opts_t o = {.source = s->name,
                                   .id_ns = ingest_ns,
                                   .id_prefix = s->name,
                                   .id_prefix_len = strlen(s->name) + 1,
                                   .id_infix = &nul,
                                   .id_infix_len = 1};
        if (!(s->map = relay_json_map_load(file, g, schemas, &o, errstr,
                                           errstr_size)))
                goto fail_strs;
        free(route);
        free(tokens_env);
        config_destroy(&cfg);
        return s;
fail_strs:
        free(route);
        free(tokens_env);
fail:
        config_destroy(&cfg);
        source_free(s);
        return NULL;
}

relay_ingest_t *relay_ingest_load(const char *path, relay_schemas_t *schemas,
                                  char *errstr, size_t errstr_size)
{
        char **files;
        size_t nfiles;
        if (relay_cfg_files(path, &files, &nfiles, errstr, errstr_size))
                return NULL;
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
        relay_cfg_files_free(files, nfiles);
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
        return relay_json_map_topic(s->map);
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

json_t *relay_ingest_records(const relay_ingest_source_t *s, json_t *body,
                             int *single, char *errstr, size_t errstr_size)
{
        *single = 0;
        if (s->items) {
                json_t *arr = relay_json_map_path(body, s->items,
                                                  strlen(s->items));
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
        relay_json_map_req_t r = {req->tenant, req->event_type, req->batch};
        return relay_json_map_apply(s->map, &r, item, key, value, value_len,
                                    event_id, errstr, errstr_size);
}
