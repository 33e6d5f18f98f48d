/*
 * Configuration loader: checks a libconfig file, `-X` overrides and the
 * environment against declared property tables, so that a typo or a bad
 * value stops the worker at start-up with the file and line to fix, rather
 * than being silently ignored. Keys under `kafka` are not checked here; they
 * are collected as text for librdkafka, which validates them itself, except
 * that librdkafka's secrets are refused there and read from RELAY_KAFKA_*.
 * relay_conf_bind() copies values into a module's state by the offsets its
 * table declares, and relay_conf_reload_secrets() re-reads secrets for a
 * worker that must heal a rotated key without a restart.
 */
#include "relay/conf.h"
#include "relay/common.h"
#include "relay/log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libconfig.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* A value on its way into a slot; a string is borrowed until stored. */
union value {
        const char *s;
        long long i;
        int b;
        double d;
};

struct slot {
        const relay_conf_prop_t *prop;
        int set;
        char *str; /* STRING value, owned */
        union value v;
        char *origin; /* "path:line", "-X", "environment RELAY_X", "default" */
};

struct kafka_entry {
        char *name, *value, *origin;
};

struct relay_conf {
        struct slot *slots;
        size_t nslots;
        struct kafka_entry *kafka;
        size_t nkafka;
        /* Strings replaced by relay_conf_reload_secrets(): a module may
         * still hold them (bound or from a getter), so they live as long
         * as the conf. One per rotation, so this stays small. */
        char **retired;
        size_t nretired;
};

/* librdkafka's properties that hold a credential (those its
 * rdkafka_conf.c flags _RK_SENSITIVE, plus the OIDC client secret, which
 * it does not flag). Paths (ssl.key.location) and public material
 * (ssl.ca.pem) are left out on purpose: they belong in a config file. The
 * list is explicit rather than a RELAY_KAFKA_* prefix scan, because other
 * RELAY_KAFKA_* variables exist (the test broker's RELAY_KAFKA_DIR, ...)
 * and must not become librdkafka properties. */
static const char *const kafka_secrets[] = {"sasl.username",
                                            "sasl.password",
                                            "sasl.oauthbearer.client.secret",
                                            "sasl.oauthbearer.config",
                                            "ssl.key.password",
                                            "ssl.key.pem",
                                            "ssl.keystore.password",
                                            NULL};

static const char *type_expected[] = {"a string", "an integer", "a boolean",
                                      "a number"};
static const char *type_short[] = {"string", "int", "bool", "double"};
/* Indexed by CONFIG_TYPE_*. */
static const char *setting_type[] = {"nothing",    "a group",  "an integer",
                                     "an integer", "a float",  "a string",
                                     "a boolean",  "an array", "a list"};

static struct slot *find(const relay_conf_t *conf, const char *name)
{
        for (size_t i = 0; i < conf->nslots; i++)
                if (!strcmp(conf->slots[i].prop->name, name))
                        return &conf->slots[i];
        return NULL;
}

/* prefix "RELAY_", "deliver.max_attempts" → "RELAY_DELIVER_MAX_ATTEMPTS"
 * (+ suffix). */
static void env_of(const char *prefix, const char *name, const char *suffix,
                   char *buf, size_t size)
{
        size_t o = (size_t)snprintf(buf, size, "%s", prefix);
        for (const char *c = name; *c && o + 1 < size; c++)
                buf[o++] = isalnum((unsigned char)*c)
                               ? (char)toupper((unsigned char)*c)
                               : '_';
        buf[o] = '\0';
        snprintf(buf + o, size - o, "%s", suffix);
}

static void env_name(const relay_conf_prop_t *p, const char *suffix, char *buf,
                     size_t size)
{
        env_of("RELAY_", p->name, suffix, buf, size);
}

int relay_conf_kafka_secret(const char *name)
{
        for (size_t i = 0; kafka_secrets[i]; i++)
                if (!strcmp(kafka_secrets[i], name))
                        return 1;
        return 0;
}

static int check_range(const relay_conf_prop_t *p, long long i,
                       const char *where, char *errstr, size_t errstr_size)
{
        if (p->min > p->max || (i >= p->min && i <= p->max))
                return 0;
        relay_seterr(errstr, errstr_size,
                     "%s: key '%s': %lld is out of range [%lld, %lld]", where,
                     p->name, i, p->min, p->max);
        return -1;
}

/* Parse text by the property's type (for -X, the environment, defaults). */
static int parse_text(const relay_conf_prop_t *p, const char *text,
                      const char *where, union value *out, char *errstr,
                      size_t errstr_size)
{
        static const char *bools[] = {"false", "true", "no", "yes",
                                      "off",   "on",   "0",  "1"};
        char *end;

        errno = 0;
        switch (p->type) {
        case RELAY_CONF_STRING:
                out->s = text;
                return 0;
        case RELAY_CONF_INT:
                out->i = strtoll(text, &end, 10);
                if (*text && !*end && !errno)
                        return check_range(p, out->i, where, errstr,
                                           errstr_size);
                break;
        case RELAY_CONF_BOOL:
                for (int i = 0; i < 8; i++) {
                        if (!strcasecmp(text, bools[i])) {
                                out->b = i & 1;
                                return 0;
                        }
                }
                break;
        case RELAY_CONF_DOUBLE:
                out->d = strtod(text, &end);
                if (*text && !*end && !errno && isfinite(out->d))
                        return 0;
                break;
        }
        /* Never echo a secret, even a malformed one, into a log. */
        relay_seterr(errstr, errstr_size, "%s: key '%s': expected %s, got '%s'",
                     where, p->name, type_expected[p->type],
                     (p->flags & RELAY_CONF_SECRET) ? "(hidden)" : text);
        return -1;
}

static void slot_store(struct slot *s, const union value *v, const char *origin)
{
        if (s->prop->type == RELAY_CONF_STRING) {
                free(s->str);
                s->str = relay_strdup(v->s);
        } else {
                s->v = *v;
        }
        free(s->origin);
        s->origin = relay_strdup(origin);
        s->set = 1;
}

/* Later entries replace earlier ones in place, so -X overrides the file. */
static void kafka_add(relay_conf_t *conf, const char *name, const char *value,
                      const char *origin)
{
        struct kafka_entry *e = NULL;
        for (size_t i = 0; i < conf->nkafka && !e; i++)
                if (!strcmp(conf->kafka[i].name, name))
                        e = &conf->kafka[i];
        if (e) {
                free(e->value);
                free(e->origin);
        } else {
                conf->kafka =
                    relay_realloc(conf->kafka, (conf->nkafka + 1) * sizeof(*e));
                e = &conf->kafka[conf->nkafka++];
                e->name = relay_strdup(name);
        }
        e->value = relay_strdup(value);
        e->origin = relay_strdup(origin);
}

static int levenshtein(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        int row[128];

        if (lb >= sizeof(row) / sizeof(row[0]))
                return 1000; /* no declared name is that long */
        for (size_t j = 0; j <= lb; j++)
                row[j] = (int)j;
        for (size_t i = 1; i <= la; i++) {
                int diag = row[0];
                row[0] = (int)i;
                for (size_t j = 1; j <= lb; j++) {
                        int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[lb];
}

/* Equal once case and the separators '_', '.', '-' are ignored. */
static int same_stripped(const char *a, const char *b)
{
        for (;; a++, b++) {
                a += strspn(a, "_.-");
                b += strspn(b, "_.-");
                if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
                        return 0;
                if (!*a)
                        return 1;
        }
}

static const char *last_part(const char *name)
{
        const char *dot = strrchr(name, '.');
        return dot ? dot + 1 : name;
}

/* Suggest the closest declared name: a typo (distance <= 2), the same name
 * spelt with other separators, or the right key in the wrong group. */
static int unknown_key(const relay_conf_t *conf, const char *where,
                       const char *name, char *errstr, size_t errstr_size)
{
        const char *best = NULL;
        int best_d = 3;
        char hint[300] = "";

        for (size_t i = 0; i < conf->nslots; i++) {
                const char *cand = conf->slots[i].prop->name;
                int d = same_stripped(name, cand) ? 0 : levenshtein(name, cand);
                if (d > 2 && !strcmp(last_part(name), last_part(cand)))
                        d = 2;
                if (d < best_d) {
                        best_d = d;
                        best = cand;
                }
        }
        if (best)
                snprintf(hint, sizeof(hint), " (did you mean '%s'?)", best);
        relay_seterr(errstr, errstr_size, "%s: unknown key '%s'%s", where, name,
                     hint);
        return -1;
}

static int secret_refused(const relay_conf_prop_t *p, const char *where,
                          const char *source, char *errstr, size_t errstr_size)
{
        char env[256];
        env_name(p, "", env, sizeof(env));
        relay_seterr(errstr, errstr_size,
                     "%s: key '%s' is a secret and must come from the "
                     "environment (%s or %s_FILE), not from %s",
                     where, p->name, env, env, source);
        return -1;
}

static int kafka_secret_refused(const char *name, const char *where,
                                const char *source, char *errstr,
                                size_t errstr_size)
{
        char env[256];
        env_of("RELAY_KAFKA_", name, "", env, sizeof(env));
        relay_seterr(errstr, errstr_size,
                     "%s: kafka property '%s' is a secret and must come from "
                     "the environment (%s or %s_FILE), not from %s",
                     where, name, env, env, source);
        return -1;
}

static int load_leaf(struct slot *slot, const config_setting_t *s,
                     const char *where, char *errstr, size_t errstr_size)
{
        const relay_conf_prop_t *p = slot->prop;
        int t = config_setting_type(s);
        int is_int = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
        union value v;

        if (p->flags & RELAY_CONF_SECRET)
                return secret_refused(p, where, "a config file", errstr,
                                      errstr_size);
        if (p->type == RELAY_CONF_STRING && t == CONFIG_TYPE_STRING) {
                v.s = config_setting_get_string(s);
        } else if (p->type == RELAY_CONF_BOOL && t == CONFIG_TYPE_BOOL) {
                v.b = config_setting_get_bool(s);
        } else if (p->type == RELAY_CONF_DOUBLE &&
                   (is_int || t == CONFIG_TYPE_FLOAT)) {
                v.d = is_int ? (double)config_setting_get_int64(s)
                             : config_setting_get_float(s);
        } else if (p->type == RELAY_CONF_INT && is_int) {
                v.i = config_setting_get_int64(s);
                if (check_range(p, v.i, where, errstr, errstr_size))
                        return -1;
        } else {
                relay_seterr(errstr, errstr_size,
                             "%s: key '%s': expected %s, got %s%s", where,
                             p->name, type_expected[p->type],
                             setting_type[t > 8 ? 0 : t],
                             t == CONFIG_TYPE_LIST || t == CONFIG_TYPE_ARRAY
                                 ? " (lists and arrays are not supported)"
                                 : "");
                return -1;
        }
        slot_store(slot, &v, where);
        return 0;
}

/* librdkafka's text for a value; a list becomes its comma-separated form. */
static int kafka_text(const config_setting_t *s, relay_buf_t *out, int top)
{
        switch (config_setting_type(s)) {
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
                relay_buf_printf(out, "%lld", config_setting_get_int64(s));
                return 0;
        case CONFIG_TYPE_FLOAT:
                relay_buf_printf(out, "%.15g", config_setting_get_float(s));
                return 0;
        case CONFIG_TYPE_STRING:
                relay_buf_puts(out, config_setting_get_string(s));
                return 0;
        case CONFIG_TYPE_BOOL:
                relay_buf_puts(out,
                               config_setting_get_bool(s) ? "true" : "false");
                return 0;
        case CONFIG_TYPE_ARRAY:
        case CONFIG_TYPE_LIST:
                for (int i = 0; top && i < config_setting_length(s); i++) {
                        if (i)
                                relay_buf_puts(out, ",");
                        if (kafka_text(config_setting_get_elem(s, i), out, 0))
                                return -1;
                }
                return top ? 0 : -1;
        }
        return -1;
}

/* Walk a group. Outside `kafka` every leaf must be declared; inside it,
 * `_` in names stands for `.` and nested groups join with `.`. */
static int walk(relay_conf_t *conf, const config_setting_t *group,
                const char *prefix, int kafka, const char *path, char *errstr,
                size_t errstr_size)
{
        int n = config_setting_length(group), rc = 0;

        for (int i = 0; i < n && !rc; i++) {
                const config_setting_t *s = config_setting_get_elem(group, i);
                const char *file = config_setting_source_file(s);
                int is_group = config_setting_is_group(s);
                char where[512];
                relay_buf_t name, text;
                struct slot *slot = NULL;
                int kafka_root;

                /* The file may be an @include'd one, not path. */
                snprintf(where, sizeof(where), "%s:%u", file ? file : path,
                         config_setting_source_line(s));
                relay_buf_init(&name);
                relay_buf_init(&text);
                relay_buf_printf(&name, "%s%s%s", prefix ? prefix : "",
                                 prefix ? "." : "", config_setting_name(s));
                for (char *c = name.data; kafka && *c; c++)
                        if (*c == '_')
                                *c = '.';
                if (!kafka)
                        slot = find(conf, name.data);
                kafka_root = !kafka && !prefix && !strcmp(name.data, "kafka");

                if (kafka_root && is_group) {
                        rc = walk(conf, s, NULL, 1, path, errstr, errstr_size);
                } else if (kafka_root) {
                        relay_seterr(errstr, errstr_size,
                                     "%s: key 'kafka' must be a group of "
                                     "librdkafka properties",
                                     where);
                        rc = -1;
                } else if (is_group && !slot) {
                        rc = walk(conf, s, name.data, kafka, path, errstr,
                                  errstr_size);
                } else if (kafka && relay_conf_kafka_secret(name.data)) {
                        rc = kafka_secret_refused(name.data, where,
                                                  "a config file", errstr,
                                                  errstr_size);
                } else if (kafka) {
                        relay_buf_puts(&text, "");
                        if (!(rc = kafka_text(s, &text, 1)))
                                kafka_add(conf, name.data, text.data, where);
                        else
                                relay_seterr(errstr, errstr_size,
                                             "%s: kafka property '%s': "
                                             "expected a value or a list of "
                                             "values",
                                             where, name.data);
                } else if (slot && (slot->prop->flags & RELAY_CONF_OPAQUE)) {
                        slot->set = 1; /* where, for relay_conf_origin */
                        free(slot->origin);
                        slot->origin = relay_strdup(where);
                } else if (slot) {
                        rc = load_leaf(slot, s, where, errstr, errstr_size);
                } else {
                        rc = unknown_key(conf, where, name.data, errstr,
                                         errstr_size);
                }
                relay_buf_free(&name);
                relay_buf_free(&text);
        }
        return rc;
}

relay_conf_t *relay_conf_new(const relay_conf_prop_t *const *tables,
                             size_t ntables)
{
        relay_conf_t *conf = relay_calloc(1, sizeof(*conf));

        for (size_t t = 0; t < ntables; t++) {
                for (const relay_conf_prop_t *p = tables[t]; p->name; p++) {
                        char err[512] = "unknown type";
                        union value v;
                        /* Table mistakes abort on every start, not only
                         * when a bad default would be applied. */
                        if (find(conf, p->name)) {
                                relay_log(LOG_CRIT, "conf",
                                          "property '%s' declared twice",
                                          p->name);
                                abort();
                        }
                        if ((unsigned)p->type > RELAY_CONF_DOUBLE ||
                            (p->defval && parse_text(p, p->defval, "default",
                                                     &v, err, sizeof(err)))) {
                                relay_log(LOG_CRIT, "conf",
                                          "bad declaration of '%s': %s",
                                          p->name, err);
                                abort();
                        }
                        conf->slots = relay_realloc(conf->slots,
                                                    (conf->nslots + 1) *
                                                        sizeof(*conf->slots));
                        conf->slots[conf->nslots++] = (struct slot){.prop = p};
                }
        }
        return conf;
}

void relay_conf_destroy(relay_conf_t *conf)
{
        if (!conf)
                return;
        for (size_t i = 0; i < conf->nslots; i++) {
                free(conf->slots[i].str);
                free(conf->slots[i].origin);
        }
        for (size_t i = 0; i < conf->nkafka; i++) {
                free(conf->kafka[i].name);
                free(conf->kafka[i].value);
                free(conf->kafka[i].origin);
        }
        for (size_t i = 0; i < conf->nretired; i++)
                free(conf->retired[i]);
        free(conf->slots);
        free(conf->kafka);
        free(conf->retired);
        free(conf);
}

int relay_conf_load_file(relay_conf_t *conf, const char *path, char *errstr,
                         size_t errstr_size)
{
        config_t cfg;
        int rc = -1;

        config_init(&cfg);
        if (config_read_file(&cfg, path))
                rc = walk(conf, config_root_setting(&cfg), NULL, 0, path,
                          errstr, errstr_size);
        else if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
                relay_seterr(errstr, errstr_size, "%s: %s", path,
                             strerror(errno)); /* errno of its fopen() */
        else
                relay_seterr(errstr, errstr_size, "%s:%d: %s",
                             config_error_file(&cfg) ? config_error_file(&cfg)
                                                     : path,
                             config_error_line(&cfg), config_error_text(&cfg));
        config_destroy(&cfg);
        return rc;
}

int relay_conf_set(relay_conf_t *conf, const char *name, const char *value,
                   char *errstr, size_t errstr_size)
{
        struct slot *slot;
        union value v;

        if (!strncmp(name, "kafka.", 6) && name[6]) {
                /* A command line is visible to every user of the host. */
                if (relay_conf_kafka_secret(name + 6))
                        return kafka_secret_refused(name + 6, "-X",
                                                    "the command line", errstr,
                                                    errstr_size);
                kafka_add(conf, name + 6, value, "-X");
                return 0;
        }
        if (!(slot = find(conf, name)))
                return unknown_key(conf, "-X", name, errstr, errstr_size);
        if (slot->prop->flags & RELAY_CONF_SECRET)
                return secret_refused(slot->prop, "-X", "the command line",
                                      errstr, errstr_size);
        if (slot->prop->flags & RELAY_CONF_OPAQUE) {
                relay_seterr(errstr, errstr_size,
                             "-X: key '%s' is read from its file only", name);
                return -1;
        }
        if (parse_text(slot->prop, value, "-X", &v, errstr, errstr_size))
                return -1;
        slot_store(slot, &v, "-X");
        return 0;
}

/* Whole file into b; 0, or -1 with errno set. */
static int read_text(const char *path, relay_buf_t *b)
{
        char chunk[4096];
        size_t n;
        FILE *fp = fopen(path, "r");

        if (!fp)
                return -1;
        relay_buf_puts(b, "");
        while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
                relay_buf_append(b, chunk, n);
        int bad = ferror(fp);
        fclose(fp);
        if (bad)
                errno = EIO;
        return bad ? -1 : 0;
}

/* The secret in variable env or in the file named by variable envf: 1 with
 * its text in b and where it came from in origin, 0 when neither is set, or
 * -1 with errstr. An empty variable counts as unset (what an unfilled
 * template gives); an empty file is an error, since someone meant it to
 * hold the secret. Both set is an error: which one wins would be a guess,
 * and a variable that silently shadows a rotated file never heals. */
static int read_secret(const char *env, const char *envf, relay_buf_t *b,
                       char *origin, size_t origin_size, char *errstr,
                       size_t errstr_size)
{
        const char *val = getenv(env), *file = getenv(envf);

        if (val && !*val)
                val = NULL;
        if (file && !*file)
                file = NULL;
        if (val && file) {
                relay_seterr(errstr, errstr_size,
                             "%s and %s are both set: set only one", env, envf);
                return -1;
        }
        relay_buf_reset(b);
        relay_buf_puts(b, "");
        if (val) {
                relay_buf_puts(b, val);
                snprintf(origin, origin_size, "environment %s", env);
                return 1;
        }
        if (!file)
                return 0;
        if (read_text(file, b)) {
                relay_seterr(errstr, errstr_size, "%s: cannot read '%s': %s",
                             envf, file, strerror(errno));
                return -1;
        }
        /* Files written by echo or an editor end in a newline that is not
         * part of the secret. */
        if (b->len && b->data[b->len - 1] == '\n')
                b->data[--b->len] = '\0';
        if (b->len && b->data[b->len - 1] == '\r')
                b->data[--b->len] = '\0';
        if (!b->len) {
                relay_seterr(errstr, errstr_size, "%s: '%s' is empty", envf,
                             file);
                return -1;
        }
        snprintf(origin, origin_size, "environment %s", envf);
        return 1;
}

/* A secret slot's text from the environment, parsed: 1 with *v (a string
 * borrowed from b), 0 when unset, -1 with errstr. */
static int secret_value(const struct slot *slot, relay_buf_t *b, union value *v,
                        char *origin, size_t origin_size, char *errstr,
                        size_t errstr_size)
{
        char env[256], envf[264];
        env_name(slot->prop, "", env, sizeof(env));
        env_name(slot->prop, "_FILE", envf, sizeof(envf));
        int rc =
            read_secret(env, envf, b, origin, origin_size, errstr, errstr_size);
        if (rc == 1 &&
            parse_text(slot->prop, b->data, origin, v, errstr, errstr_size))
                rc = -1;
        return rc;
}

static int load_secret(struct slot *slot, char *errstr, size_t errstr_size)
{
        char origin[300];
        relay_buf_t b;
        union value v;

        relay_buf_init(&b);
        int rc = secret_value(slot, &b, &v, origin, sizeof(origin), errstr,
                              errstr_size);
        if (rc == 1)
                slot_store(slot, &v, origin);
        relay_buf_free(&b);
        return rc < 0 ? -1 : 0;
}

int relay_conf_secret_read(const char *env, relay_buf_t *out, char *errstr,
                           size_t errstr_size)
{
        char envf[300], origin[320];
        snprintf(envf, sizeof(envf), "%s_FILE", env);
        return read_secret(env, envf, out, origin, sizeof(origin), errstr,
                           errstr_size);
}

/* librdkafka's secrets from RELAY_KAFKA_<NAME>[_FILE] into the
 * pass-through list; they win over nothing, since the file and -X refuse
 * them. 0 or -1. */
static int load_kafka_secrets(relay_conf_t *conf, char *errstr,
                              size_t errstr_size)
{
        char env[256], envf[264], origin[300];
        relay_buf_t b;
        int rc = 0;

        relay_buf_init(&b);
        for (size_t i = 0; kafka_secrets[i] && rc == 0; i++) {
                env_of("RELAY_KAFKA_", kafka_secrets[i], "", env, sizeof(env));
                env_of("RELAY_KAFKA_", kafka_secrets[i], "_FILE", envf,
                       sizeof(envf));
                int got = read_secret(env, envf, &b, origin, sizeof(origin),
                                      errstr, errstr_size);
                if (got == 1)
                        kafka_add(conf, kafka_secrets[i], b.data, origin);
                rc = got < 0 ? -1 : 0;
        }
        relay_buf_free(&b);
        return rc;
}

/* The error for a key that has no value: its doc, and for a secret the
 * environment variables that would give it one. Returns -1. */
static int missing(const struct slot *s, char *errstr, size_t errstr_size)
{
        const relay_conf_prop_t *p = s->prop;
        char env[256], hint[600] = "";
        env_name(p, "", env, sizeof(env));
        if (p->flags & RELAY_CONF_SECRET)
                snprintf(hint, sizeof(hint), ": set %s or %s_FILE", env, env);
        relay_seterr(errstr, errstr_size, "missing required key '%s' (%s)%s",
                     p->name, p->doc ? p->doc : "", hint);
        return -1;
}

int relay_conf_require(const relay_conf_t *conf, const char *name, char *errstr,
                       size_t errstr_size)
{
        const struct slot *s = find(conf, name);
        if (!s) { /* a bug in the caller, as in the getters */
                relay_log(LOG_CRIT, "conf", "key '%s' is not declared", name);
                abort();
        }
        return s->set ? 0 : missing(s, errstr, errstr_size);
}

int relay_conf_finish(relay_conf_t *conf, char *errstr, size_t errstr_size)
{
        struct slot *s;
        union value v;
        char err[512];

        for (s = conf->slots; s < conf->slots + conf->nslots; s++)
                if ((s->prop->flags & RELAY_CONF_SECRET) &&
                    load_secret(s, errstr, errstr_size))
                        return -1;
        if (load_kafka_secrets(conf, errstr, errstr_size))
                return -1;
        for (s = conf->slots; s < conf->slots + conf->nslots; s++) {
                if (s->set || !s->prop->defval)
                        continue;
                if (parse_text(s->prop, s->prop->defval, "default", &v, err,
                               sizeof(err))) { /* checked in _new */
                        relay_log(LOG_CRIT, "conf", "%s", err);
                        abort();
                }
                slot_store(s, &v, "default");
        }
        for (s = conf->slots; s < conf->slots + conf->nslots; s++)
                if (!s->set && (s->prop->flags & RELAY_CONF_REQUIRED))
                        return missing(s, errstr, errstr_size);
        return 0;
}

static int same_value(const struct slot *s, const union value *v)
{
        switch (s->prop->type) {
        case RELAY_CONF_STRING:
                return s->str && !strcmp(s->str, v->s);
        case RELAY_CONF_INT:
                return s->v.i == v->i;
        case RELAY_CONF_BOOL:
                return s->v.b == v->b;
        case RELAY_CONF_DOUBLE:
                return s->v.d == v->d;
        }
        return 0;
}

int relay_conf_reload_secrets(relay_conf_t *conf, char *errstr,
                              size_t errstr_size)
{
        char origin[300], err[1024];
        relay_buf_t b;
        int changed = 0, failed = 0;

        relay_buf_init(&b);
        for (struct slot *s = conf->slots; s < conf->slots + conf->nslots;
             s++) {
                union value v;
                if (!(s->prop->flags & RELAY_CONF_SECRET))
                        continue;
                /* Go on past a failure: one unreadable file should not keep
                 * another platform's rotated key from healing. The first
                 * error is the one reported. */
                int rc = secret_value(s, &b, &v, origin, sizeof(origin),
                                      failed ? err : errstr,
                                      failed ? sizeof(err) : errstr_size);
                if (rc < 0)
                        failed = 1;
                if (rc != 1 || (s->set && same_value(s, &v)))
                        continue;
                if (s->str) { /* someone may still point at it */
                        conf->retired = relay_realloc(
                            conf->retired,
                            (conf->nretired + 1) * sizeof(*conf->retired));
                        conf->retired[conf->nretired++] = s->str;
                        s->str = NULL;
                }
                slot_store(s, &v, origin);
                changed = 1;
        }
        relay_buf_free(&b);
        return failed ? -1 : changed;
}

static const struct slot *find_prop(const relay_conf_t *conf,
                                    const relay_conf_prop_t *p)
{
        for (size_t i = 0; i < conf->nslots; i++)
                if (conf->slots[i].prop == p)
                        return &conf->slots[i];
        relay_log(LOG_CRIT, "conf", "key '%s' is not in this conf's tables",
                  p->name);
        abort();
}

int relay_conf_require_table(const relay_conf_t *conf,
                             const relay_conf_prop_t *table, char *errstr,
                             size_t errstr_size)
{
        for (const relay_conf_prop_t *p = table; p->name; p++) {
                const struct slot *s = find_prop(conf, p);
                if ((p->flags & RELAY_CONF_REQUIRED_IF_USED) && !s->set)
                        return missing(s, errstr, errstr_size);
        }
        return 0;
}

void relay_conf_bind(const relay_conf_t *conf, const relay_conf_prop_t *table,
                     void *state)
{
        char *base = state;

        for (const relay_conf_prop_t *p = table; p->name; p++) {
                const struct slot *s = find_prop(conf, p);
                if (!(p->flags & RELAY_CONF_BIND))
                        continue;
                /* memcpy, not a cast and a store: the field's alignment is
                 * the struct's business, not ours. */
                switch (p->type) {
                case RELAY_CONF_STRING: {
                        const char *str = s->set ? s->str : NULL;
                        memcpy(base + p->offset, &str, sizeof(str));
                        break;
                }
                case RELAY_CONF_INT: {
                        long long i = s->set ? s->v.i : 0;
                        memcpy(base + p->offset, &i, sizeof(i));
                        break;
                }
                case RELAY_CONF_BOOL: {
                        int bv = s->set ? s->v.b : 0;
                        memcpy(base + p->offset, &bv, sizeof(bv));
                        break;
                }
                case RELAY_CONF_DOUBLE: {
                        double d = s->set ? s->v.d : 0.0;
                        memcpy(base + p->offset, &d, sizeof(d));
                        break;
                }
                }
        }
}

/* A wrong name or type in a getter is a bug in the worker, not a config
 * problem, so it aborts instead of returning something plausible. */
static const struct slot *get(const relay_conf_t *conf, const char *name,
                              relay_conf_type_t type)
{
        const struct slot *s = find(conf, name);
        if (!s || s->prop->type != type) {
                relay_log(LOG_CRIT, "conf", "%s property '%s' read as %s",
                          s ? type_short[s->prop->type] : "undeclared", name,
                          type_short[type]);
                abort();
        }
        return s;
}

const char *relay_conf_origin(const relay_conf_t *conf, const char *name)
{
        const struct slot *s = find(conf, name);
        if (!s) { /* a bug in the caller, as in the getters */
                relay_log(LOG_CRIT, "conf", "key '%s' is not declared", name);
                abort();
        }
        return s->set ? s->origin : "unset";
}

const char *relay_conf_str(const relay_conf_t *conf, const char *name)
{
        return get(conf, name, RELAY_CONF_STRING)->str;
}

long long relay_conf_int(const relay_conf_t *conf, const char *name)
{
        const struct slot *s = get(conf, name, RELAY_CONF_INT);
        return s->set ? s->v.i : 0;
}

int relay_conf_bool(const relay_conf_t *conf, const char *name)
{
        const struct slot *s = get(conf, name, RELAY_CONF_BOOL);
        return s->set ? s->v.b : 0;
}

double relay_conf_double(const relay_conf_t *conf, const char *name)
{
        const struct slot *s = get(conf, name, RELAY_CONF_DOUBLE);
        return s->set ? s->v.d : 0.0;
}

size_t relay_conf_kafka_count(const relay_conf_t *conf)
{
        return conf->nkafka;
}

const char *relay_conf_kafka_name(const relay_conf_t *conf, size_t i)
{
        return i < conf->nkafka ? conf->kafka[i].name : NULL;
}

const char *relay_conf_kafka_value(const relay_conf_t *conf, size_t i)
{
        return i < conf->nkafka ? conf->kafka[i].value : NULL;
}

const char *relay_conf_kafka_origin(const relay_conf_t *conf, size_t i)
{
        return i < conf->nkafka ? conf->kafka[i].origin : NULL;
}

void relay_conf_describe(const relay_conf_t *conf, FILE *fp)
{
        int wname = 7, wdef = 7;

        for (size_t i = 0; i < conf->nslots; i++) {
                const relay_conf_prop_t *p = conf->slots[i].prop;
                if ((int)strlen(p->name) > wname)
                        wname = (int)strlen(p->name);
                if (p->defval && (int)strlen(p->defval) > wdef)
                        wdef = (int)strlen(p->defval);
        }
        fprintf(fp, "%-*s  %-6s  %-*s  %-23s  %-15s  %s\n", wname, "name",
                "type", wdef, "default", "range", "flags", "doc");
        for (size_t i = 0; i < conf->nslots; i++) {
                const relay_conf_prop_t *p = conf->slots[i].prop;
                char range[64] = "-", env[256], flags[64] = "";
                if (p->type == RELAY_CONF_INT && p->min <= p->max)
                        snprintf(range, sizeof(range), "[%lld, %lld]", p->min,
                                 p->max);
                /* Binding is the code's business, not the operator's. */
                snprintf(flags, sizeof(flags), "%s%s%s%s",
                         (p->flags & RELAY_CONF_REQUIRED) ? ",required" : "",
                         (p->flags & RELAY_CONF_REQUIRED_IF_USED)
                             ? ",required-if-used"
                             : "",
                         (p->flags & RELAY_CONF_SECRET) ? ",secret" : "",
                         (p->flags & RELAY_CONF_OPAQUE) ? ",file-only" : "");
                fprintf(fp, "%-*s  %-6s  %-*s  %-23s  %-15s  %s", wname,
                        p->name, type_short[p->type], wdef,
                        p->defval ? p->defval : "-", range,
                        *flags ? flags + 1 : "-", p->doc ? p->doc : "");
                env_name(p, "", env, sizeof(env));
                if (p->flags & RELAY_CONF_SECRET)
                        fprintf(fp, " (env %s or %s_FILE)", env, env);
                fputc('\n', fp);
        }
        fprintf(fp,
                "%-*s  librdkafka properties, passed through unchecked: "
                "kafka = { bootstrap_servers = \"...\"; } in the file "
                "('_' stands for '.'), or -X kafka.bootstrap.servers=...\n",
                wname, "kafka.*");
        for (size_t i = 0; kafka_secrets[i]; i++) {
                char env[256];
                env_of("RELAY_KAFKA_", kafka_secrets[i], "", env, sizeof(env));
                fprintf(fp,
                        "kafka.%-*s  librdkafka secret: only from env %s or "
                        "%s_FILE\n",
                        wname > 6 ? wname - 6 : 0, kafka_secrets[i], env, env);
        }
}

static int cmp_path(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int relay_cfg_files(const char *path, char ***files, size_t *n, char *errstr,
                    size_t errstr_size)
{
        struct stat st;
        *files = NULL;
        *n = 0;
        if (stat(path, &st)) {
                relay_seterr(errstr, errstr_size, "%s: %s", path,
                             strerror(errno));
                return -1;
        }
        if (!S_ISDIR(st.st_mode)) {
                *files = relay_malloc(sizeof(char *));
                (*files)[(*n)++] = relay_strdup(path);
                return 0;
        }
        DIR *d = opendir(path);
        if (!d) {
                relay_seterr(errstr, errstr_size, "%s: %s", path,
                             strerror(errno));
                return -1;
        }
        for (struct dirent *de; (de = readdir(d));) {
                size_t len = strlen(de->d_name);
                if (len < 5 || strcmp(de->d_name + len - 4, ".cfg") ||
                    de->d_name[0] == '.')
                        continue;
                *files = relay_realloc(*files, (*n + 1) * sizeof(char *));
                size_t m = strlen(path) + len + 2;
                (*files)[*n] = relay_malloc(m);
                snprintf((*files)[(*n)++], m, "%s/%s", path, de->d_name);
        }
        closedir(d);
        if (*n)
                qsort(*files, *n, sizeof(char *), cmp_path);
        return 0;
}

void relay_cfg_files_free(char **files, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(files[i]);
        free(files);
}
