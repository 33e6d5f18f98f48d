/*
 * Avro in the Confluent wire format, on avro-c's generic values.
 *
 * A reader owns one value of its subject's newest (reader) schema. Records
 * written with that same schema are read straight into it; records written
 * with another version of the subject go through a resolved writer for that
 * version (built once, cached by id), which is how producers can add an
 * optional field while consumers keep running on the old schema.
 */
#include "relay/avro.h"
#include "relay/log.h"
#include "relay/retry.h"

#include <errno.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct schema_entry {
        int32_t id;
        int version;
        avro_schema_t schema;
        char *text; /* the .avsc as written (manifest entries only) */
        char **subjects;
        int nsubjects;
        int subjects_unknown; /* the registry could not say: match by name */
        int pinned;           /* this process's own reader/writer schema */
        uint64_t used;        /* LRU tick of cached registry entries */
};

/*
 * Without a registry the wire ids are the manifest's. With one, the
 * manifest only says which schema this process reads and writes for each
 * subject; wire ids are the registry's, kept in `cache`: pinned entries
 * for the subjects bound at start, and entries fetched by id as records
 * name them, the least recently used evicted beyond cache_max. Fetched
 * entries stay usable while the registry is down.
 *
 * `unknown` remembers ids the registry answered 404 for, until a deadline
 * negative_ttl_ms later: anyone who can produce to a topic can name any
 * id, and without it every such record would cost a registry request.
 * The TTL (rather than forever) lets an id registered later be read
 * without a restart. Bounded by cache_max too, the soonest to expire
 * going first.
 */
struct unknown_id {
        int32_t id;
        int64_t until_ms; /* relay_mono_ms() deadline */
};

struct relay_schemas {
        struct schema_entry *entries; /* the manifest */
        size_t n;

        relay_registry_t *reg;
        relay_schemas_registry_conf_t rconf;
        struct schema_entry *cache;
        size_t ncache;
        uint64_t tick;
        struct unknown_id *unknown;
        size_t nunknown;
};

static void entry_free(struct schema_entry *e)
{
        if (e->schema)
                avro_schema_decref(e->schema);
        free(e->text);
        for (int i = 0; i < e->nsubjects; i++)
                free(e->subjects[i]);
        free(e->subjects);
        memset(e, 0, sizeof(*e));
}

void relay_schemas_destroy(relay_schemas_t *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++)
                entry_free(&s->entries[i]);
        free(s->entries);
        for (size_t i = 0; i < s->ncache; i++)
                entry_free(&s->cache[i]);
        free(s->cache);
        free(s->unknown);
        relay_registry_destroy(s->reg);
        free(s);
}

/* Read a whole small file into a new NUL-terminated string. */
static char *read_file(const char *path, char *errstr, size_t errstr_size)
{
        FILE *fp = fopen(path, "rb");
        if (!fp) {
                relay_seterr(errstr, errstr_size, "%s: %s", path,
                             strerror(errno));
                return NULL;
        }
        relay_buf_t b;
        relay_buf_init(&b);
        char chunk[8192];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
                relay_buf_append(&b, chunk, n);
        int bad = ferror(fp);
        fclose(fp);
        if (bad) {
                relay_seterr(errstr, errstr_size, "%s: read error", path);
                relay_buf_free(&b);
                return NULL;
        }
        relay_buf_append(&b, "", 0);
        return b.data;
}

static void add_subject(struct schema_entry *e, const char *subject);

static int load_entry(config_setting_t *es, const char *manifest,
                      const char *dir, struct schema_entry *e, char *errstr,
                      size_t errstr_size)
{
        int line = config_setting_source_line(es);
        int id, version = 1;
        const char *file;
        if (!config_setting_lookup_int(es, "id", &id) || id < 0) {
                relay_seterr(errstr, errstr_size,
                             "%s:%d: schema entry needs a non-negative "
                             "integer 'id'",
                             manifest, line);
                return -1;
        }
        e->id = id;
        config_setting_lookup_int(es, "version", &version);
        e->version = version;
        if (!config_setting_lookup_string(es, "file", &file)) {
                relay_seterr(errstr, errstr_size,
                             "%s:%d: schema id %d needs a 'file'", manifest,
                             line, id);
                return -1;
        }
        config_setting_t *subj = config_setting_get_member(es, "subject");
        if (subj && config_setting_type(subj) == CONFIG_TYPE_STRING) {
                add_subject(e, config_setting_get_string(subj));
        } else if (subj && (config_setting_is_array(subj) ||
                            config_setting_is_list(subj))) {
                for (int i = 0; i < config_setting_length(subj); i++) {
                        const char *sv =
                            config_setting_get_string_elem(subj, i);
                        if (!sv) {
                                relay_seterr(errstr, errstr_size,
                                             "%s:%d: schema id %d: 'subject' "
                                             "must list strings",
                                             manifest, line, id);
                                return -1;
                        }
                        add_subject(e, sv);
                }
        }
        if (e->nsubjects == 0) {
                relay_seterr(errstr, errstr_size,
                             "%s:%d: schema id %d needs a 'subject'", manifest,
                             line, id);
                return -1;
        }

        relay_buf_t path;
        relay_buf_init(&path);
        relay_buf_printf(&path, "%s/%s", dir, file);
        char why[600];
        e->text = read_file(path.data, why, sizeof(why));
        int rc = -1;
        avro_schema_error_t aerr;
        if (!e->text) {
                relay_seterr(errstr, errstr_size, "%s:%d: schema id %d: %s",
                             manifest, line, id, why);
        } else if (avro_schema_from_json(e->text, (int32_t)strlen(e->text),
                                         &e->schema, &aerr) == 0) {
                rc = 0;
        } else {
                e->schema = NULL;
                relay_seterr(errstr, errstr_size,
                             "%s:%d: schema file %s is not a valid Avro "
                             "schema: %s",
                             manifest, line, path.data, avro_strerror());
        }
        relay_buf_free(&path);
        return rc;
}

relay_schemas_t *relay_schemas_load(const char *manifest, char *errstr,
                                    size_t errstr_size)
{
        config_t cfg;
        config_init(&cfg);
        relay_schemas_t *s = relay_calloc(1, sizeof(*s));
        if (!config_read_file(&cfg, manifest)) {
                relay_seterr(errstr, errstr_size, "%s:%d: %s", manifest,
                             config_error_line(&cfg), config_error_text(&cfg));
                goto fail;
        }
        config_setting_t *list = config_lookup(&cfg, "schemas");
        if (!list || !config_setting_is_list(list)) {
                relay_seterr(errstr, errstr_size,
                             "%s: needs a list 'schemas = ( {...}, ... );'",
                             manifest);
                goto fail;
        }
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s", manifest);
        char *slash = strrchr(dir, '/');
        if (slash)
                *slash = '\0';
        else
                snprintf(dir, sizeof(dir), ".");

        int n = config_setting_length(list);
        s->entries = relay_calloc((size_t)n, sizeof(*s->entries));
        for (int i = 0; i < n; i++) {
                struct schema_entry *e = &s->entries[s->n];
                config_setting_t *es = config_setting_get_elem(list, i);
                if (load_entry(es, manifest, dir, e, errstr, errstr_size)) {
                        entry_free(e);
                        goto fail;
                }
                s->n++;
                for (size_t k = 0; k + 1 < s->n; k++)
                        if (s->entries[k].id == e->id) {
                                relay_seterr(errstr, errstr_size,
                                             "%s:%d: schema id %d declared "
                                             "twice",
                                             manifest,
                                             config_setting_source_line(es),
                                             (int)e->id);
                                goto fail;
                        }
        }
        config_destroy(&cfg);
        return s;
fail:
        config_destroy(&cfg);
        relay_schemas_destroy(s);
        return NULL;
}

void relay_schemas_use_registry(relay_schemas_t *s, relay_registry_t *reg,
                                const relay_schemas_registry_conf_t *conf)
{
        relay_registry_destroy(s->reg);
        s->reg = reg;
        s->rconf = *conf;
        if (s->rconf.cache_max < 1)
                s->rconf.cache_max = 1;
}

/* The entry of a wire id already known (no registry call), or NULL. */
static struct schema_entry *find_id(const relay_schemas_t *s, int32_t id)
{
        struct schema_entry *v = s->reg ? s->cache : s->entries;
        size_t n = s->reg ? s->ncache : s->n;
        for (size_t i = 0; i < n; i++)
                if (v[i].id == id)
                        return &v[i];
        return NULL;
}

static int entry_has_subject(const struct schema_entry *e, const char *subject)
{
        for (int i = 0; i < e->nsubjects; i++)
                if (!strcmp(e->subjects[i], subject))
                        return 1;
        return 0;
}

static void add_subject(struct schema_entry *e, const char *subject)
{
        if (entry_has_subject(e, subject))
                return;
        e->subjects = relay_realloc(e->subjects, ((size_t)e->nsubjects + 1) *
                                                     sizeof(*e->subjects));
        e->subjects[e->nsubjects++] = relay_strdup(subject);
}

/* The manifest's newest version of subject, or NULL. */
static const struct schema_entry *local_latest(const relay_schemas_t *s,
                                               const char *subject)
{
        const struct schema_entry *best = NULL;
        for (size_t i = 0; i < s->n; i++)
                if (entry_has_subject(&s->entries[i], subject) &&
                    (!best || s->entries[i].version > best->version))
                        best = &s->entries[i];
        return best;
}

avro_schema_t relay_schemas_get(const relay_schemas_t *s, int32_t id)
{
        const struct schema_entry *e = find_id(s, id);
        return e ? e->schema : NULL;
}

avro_schema_t relay_schemas_local(const relay_schemas_t *s, const char *subject)
{
        const struct schema_entry *e = local_latest(s, subject);
        return e ? e->schema : NULL;
}

const char *relay_schemas_local_text(const relay_schemas_t *s,
                                     const char *subject)
{
        const struct schema_entry *e = local_latest(s, subject);
        return e ? e->text : NULL;
}

size_t relay_schemas_local_subjects(const relay_schemas_t *s, const char **out,
                                    size_t max)
{
        size_t n = 0;
        for (size_t i = 0; i < s->n; i++)
                for (int k = 0; k < s->entries[i].nsubjects; k++) {
                        const char *subj = s->entries[i].subjects[k];
                        size_t j = 0;
                        while (j < n && strcmp(out[j], subj))
                                j++;
                        if (j == n && n < max)
                                out[n++] = subj;
                }
        return n;
}

int32_t relay_schemas_latest(const relay_schemas_t *s, const char *subject)
{
        const struct schema_entry *e = local_latest(s, subject);
        return e ? e->id : -1;
}

const char *relay_schemas_subject(const relay_schemas_t *s, int32_t id)
{
        const struct schema_entry *e = find_id(s, id);
        return e && e->nsubjects ? e->subjects[0] : NULL;
}

int relay_schemas_in_subject(const relay_schemas_t *s, int32_t id,
                             const char *subject)
{
        const struct schema_entry *e = find_id(s, id);
        return e && entry_has_subject(e, subject);
}

/* After a bind's registry call failed with RETRY: wait with backoff and
 * return 0 to try again, or -1 when the wait is over (wait_ms passed, 0
 * included, or stopped). Only binds wait: a record's new id never does
 * (fetch_id), since a wait there would starve the caller's consumer. */
static int registry_backoff(relay_schemas_t *s, int failed, int64_t started,
                            long wait_ms, const char *why)
{
        static const relay_retry_policy_t policy = {1000000, 250, 10000};
        volatile sig_atomic_t *running = s->rconf.running;
        long left = wait_ms < 0 ? LONG_MAX
                                : wait_ms - (long)(relay_mono_ms() - started);
        if ((running && !*running) || left <= 0)
                return -1;
        long d =
            relay_retry_delay_ms(&policy, failed, -1, relay_retry_random());
        if (d > left)
                d = left;
        relay_log(LOG_WARNING, "schemas",
                  "schema registry unavailable (%s); retrying in %ld ms", why,
                  d);
        return relay_sleep_ms(d, running) ? -1 : 0;
}

/* The slot of id among the ids the registry did not know, or NULL. */
static struct unknown_id *unknown_find(relay_schemas_t *s, int32_t id)
{
        for (size_t i = 0; i < s->nunknown; i++)
                if (s->unknown[i].id == id)
                        return &s->unknown[i];
        return NULL;
}

static void unknown_forget(relay_schemas_t *s, int32_t id)
{
        struct unknown_id *u = unknown_find(s, id);
        if (u)
                *u = s->unknown[--s->nunknown];
}

/* Whether the registry said it had no id within negative_ttl_ms. An
 * expired entry is dropped, so the caller asks again. */
static int unknown_fresh(relay_schemas_t *s, int32_t id)
{
        struct unknown_id *u = unknown_find(s, id);
        if (!u)
                return 0;
        if (relay_mono_ms() < u->until_ms)
                return 1;
        unknown_forget(s, id);
        return 0;
}

/* Remember that the registry has no id, replacing the entry that expires
 * first when cache_max are remembered already. */
static void unknown_add(relay_schemas_t *s, int32_t id)
{
        struct unknown_id *u;
        if (s->rconf.negative_ttl_ms <= 0)
                return;
        if (!(u = unknown_find(s, id))) {
                if (s->nunknown >= s->rconf.cache_max) {
                        u = &s->unknown[0];
                        for (size_t i = 1; i < s->nunknown; i++)
                                if (s->unknown[i].until_ms < u->until_ms)
                                        u = &s->unknown[i];
                } else {
                        s->unknown = relay_realloc(
                            s->unknown,
                            (s->nunknown + 1) * sizeof(*s->unknown));
                        u = &s->unknown[s->nunknown++];
                }
        }
        u->id = id;
        u->until_ms = relay_mono_ms() + s->rconf.negative_ttl_ms;
}

/* Insert a registry entry, evicting the least recently used unpinned one
 * beyond cache_max. Returns the slot, zeroed but for id and used. */
static struct schema_entry *cache_insert(relay_schemas_t *s, int32_t id)
{
        if (s->ncache >= s->rconf.cache_max) {
                struct schema_entry *old = NULL;
                for (size_t i = 0; i < s->ncache; i++)
                        if (!s->cache[i].pinned &&
                            (!old || s->cache[i].used < old->used))
                                old = &s->cache[i];
                if (old) {
                        relay_log(LOG_DEBUG, "schemas",
                                  "schema cache full: evicting id %d",
                                  (int)old->id);
                        entry_free(old);
                        *old = s->cache[--s->ncache];
                }
        }
        s->cache = relay_realloc(s->cache, (s->ncache + 1) * sizeof(*s->cache));
        struct schema_entry *e = &s->cache[s->ncache++];
        memset(e, 0, sizeof(*e));
        e->id = id;
        e->used = ++s->tick;
        unknown_forget(s, id);
        return e;
}

enum relay_result relay_schemas_bind(relay_schemas_t *s, const char *subject,
                                     int32_t *id, char *errstr,
                                     size_t errstr_size)
{
        const struct schema_entry *local = local_latest(s, subject);
        if (!local) {
                relay_seterr(errstr, errstr_size,
                             "no schema for subject '%s' in the catalogue",
                             subject);
                return RELAY_FATAL;
        }
        if (!s->reg) {
                *id = local->id;
                return RELAY_OK;
        }
        for (size_t i = 0; i < s->ncache; i++)
                if (s->cache[i].pinned && s->cache[i].schema == local->schema &&
                    entry_has_subject(&s->cache[i], subject)) {
                        *id = s->cache[i].id;
                        return RELAY_OK;
                }

        char why[600];
        int version = 0, not_found = 0;
        enum relay_result r;
        int64_t started = relay_mono_ms();
        for (int failed = 1;; failed++) {
                r = relay_registry_lookup(s->reg, subject, local->text, id,
                                          &version, &not_found, why,
                                          sizeof(why));
                if (r == RELAY_FATAL && not_found && s->rconf.auto_register) {
                        r = relay_registry_register(
                            s->reg, subject, local->text, id, why, sizeof(why));
                        if (r == RELAY_OK)
                                relay_log(LOG_INFO, "schemas",
                                          "registered the local schema of "
                                          "'%s' as id %d",
                                          subject, (int)*id);
                }
                if (r != RELAY_RETRY ||
                    registry_backoff(s, failed, started, s->rconf.bind_wait_ms,
                                     why))
                        break;
        }
        if (r == RELAY_FATAL && not_found && !s->rconf.auto_register) {
                relay_seterr(errstr, errstr_size,
                             "the local schema of subject '%s' is not "
                             "registered (run 'relayctl schemas register' "
                             "or set schema_registry.auto_register)",
                             subject);
                return RELAY_FATAL;
        }
        if (r != RELAY_OK) {
                relay_seterr(errstr, errstr_size, "subject '%s': %s", subject,
                             why);
                return r;
        }
        struct schema_entry *e = find_id(s, *id);
        if (!e) {
                e = cache_insert(s, *id);
                e->schema = avro_schema_incref(local->schema);
                e->version = version;
        }
        e->pinned = 1;
        e->subjects_unknown = 0;
        add_subject(e, subject);
        relay_log(LOG_INFO, "schemas", "subject '%s' is schema id %d", subject,
                  (int)*id);
        return RELAY_OK;
}

/* Fetch an id the registry knows into the cache, without waiting: one
 * try (the schema, then its subjects). An id the registry does not have
 * is RELAY_FATAL and remembered (unknown_add). Any other failure is the
 * registry's or the setup's, never the record's, so it is RELAY_RETRY:
 * no usable answer, and also a refusal such as 401 or 403, since for a
 * GET of a valid id only "not found" can be about the id. */
static enum relay_result fetch_id(relay_schemas_t *s, int32_t id,
                                  struct schema_entry **out, char *errstr,
                                  size_t errstr_size)
{
        char why[600];
        char *text = NULL, **subjects = NULL;
        size_t nsubjects = 0;
        int not_found = 0, subjects_unknown = 0;
        enum relay_result r;
        if (id < 0) {
                /* Not sent: the client would refuse it, and a refusal
                 * must not read as the registry's. */
                relay_seterr(errstr, errstr_size,
                             "schema id %d is negative: no registry "
                             "assigns one",
                             (int)id);
                return RELAY_FATAL;
        }
        r = relay_registry_schema_by_id(s->reg, id, &text, &not_found, why,
                                        sizeof(why));
        if (r == RELAY_FATAL && not_found) {
                unknown_add(s, id);
                relay_seterr(errstr, errstr_size,
                             "unknown schema id %d (the registry has no such "
                             "id)",
                             (int)id);
                return RELAY_FATAL;
        }
        if (r == RELAY_OK) {
                r = relay_registry_subjects_of(s->reg, id, &subjects,
                                               &nsubjects, &not_found, why,
                                               sizeof(why));
                if (r == RELAY_FATAL && not_found) {
                        /* Not every registry answers this call. */
                        subjects_unknown = 1;
                        r = RELAY_OK;
                }
                if (r != RELAY_OK) {
                        free(text);
                        text = NULL;
                }
        }
        if (r != RELAY_OK) {
                relay_seterr(errstr, errstr_size,
                             "schema id %d: schema registry unavailable: "
                             "%s%s",
                             (int)id, why,
                             r == RELAY_FATAL
                                 ? " (the registry refuses this client: "
                                   "check schema_registry.url and "
                                   "schema_registry.basic_auth)"
                                 : "");
                return RELAY_RETRY;
        }
        avro_schema_t schema;
        avro_schema_error_t aerr;
        if (avro_schema_from_json(text, (int32_t)strlen(text), &schema,
                                  &aerr)) {
                relay_seterr(errstr, errstr_size,
                             "schema id %d from the registry is not an Avro "
                             "schema: %s",
                             (int)id, avro_strerror());
                free(text);
                relay_registry_strv_free(subjects, nsubjects);
                return RELAY_FATAL;
        }
        free(text);
        struct schema_entry *e = cache_insert(s, id);
        e->schema = schema;
        e->subjects_unknown = subjects_unknown;
        for (size_t i = 0; i < nsubjects; i++)
                add_subject(e, subjects[i]);
        relay_registry_strv_free(subjects, nsubjects);
        relay_log(LOG_INFO, "schemas", "fetched schema id %d (%s)", (int)id,
                  e->nsubjects ? e->subjects[0] : "subjects unknown");
        *out = e;
        return RELAY_OK;
}

/* The entry of a wire id: known, or fetched from the registry. */
static enum relay_result lookup_id(relay_schemas_t *s, int32_t id,
                                   struct schema_entry **out, char *errstr,
                                   size_t errstr_size)
{
        struct schema_entry *e = find_id(s, id);
        if (e) {
                e->used = ++s->tick;
                *out = e;
                return RELAY_OK;
        }
        if (!s->reg) {
                relay_seterr(errstr, errstr_size, "unknown schema id %d",
                             (int)id);
                return RELAY_FATAL;
        }
        /* The same reason as the 404 that put it there: a dead letter
         * should not depend on whether the registry was asked. */
        if (unknown_fresh(s, id)) {
                relay_seterr(errstr, errstr_size,
                             "unknown schema id %d (the registry has no such "
                             "id)",
                             (int)id);
                return RELAY_FATAL;
        }
        return fetch_id(s, id, out, errstr, errstr_size);
}

/* Whether entry e may be read as subject, whose reader schema is rs. */
static int entry_fits(const struct schema_entry *e, const char *subject,
                      avro_schema_t rs)
{
        if (!e->subjects_unknown)
                return entry_has_subject(e, subject);
        /* Only the record's full name is left to go by. */
        const char *wn = avro_schema_name(e->schema),
                   *rn = avro_schema_name(rs);
        const char *wns = avro_schema_namespace(e->schema),
                   *rns = avro_schema_namespace(rs);
        return wn && rn && !strcmp(wn, rn) &&
               !strcmp(wns ? wns : "", rns ? rns : "");
}

enum relay_result relay_schemas_resolve(relay_schemas_t *s, int32_t id,
                                        avro_schema_t *schema,
                                        const char **subject, char *errstr,
                                        size_t errstr_size)
{
        struct schema_entry *e;
        enum relay_result r = lookup_id(s, id, &e, errstr, errstr_size);
        if (r != RELAY_OK)
                return r;
        *schema = e->schema;
        if (subject)
                *subject = e->nsubjects ? e->subjects[0] : NULL;
        return RELAY_OK;
}

int relay_avro_frame_parse(const void *buf, size_t len, int32_t *id,
                           char *errstr, size_t errstr_size)
{
        const unsigned char *p = buf;
        if (len < RELAY_AVRO_HEADER_LEN) {
                relay_seterr(errstr, errstr_size,
                             "record of %zu bytes is shorter than the 5-byte "
                             "Confluent header",
                             len);
                return -1;
        }
        if (p[0] != RELAY_AVRO_MAGIC) {
                relay_seterr(errstr, errstr_size,
                             "wrong magic byte 0x%02x (Confluent wire format "
                             "starts with 0x00)",
                             p[0]);
                return -1;
        }
        *id = (int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
                        ((uint32_t)p[3] << 8) | (uint32_t)p[4]);
        return 0;
}

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
};

/* A generic value of schema (and its class): 0, or -1 with errstr. */
static int generic_new(avro_schema_t schema, avro_value_iface_t **iface,
                       avro_value_t *value, const char *what,
                       const char *subject, char *errstr, size_t errstr_size)
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
        if (generic_new(r->schema, &r->iface, &r->value, "reader", subject,
                        errstr, errstr_size)) {
                relay_avro_reader_destroy(r);
                return NULL;
        }
        r->in = avro_reader_memory("", 0);
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

/*
 * avro-c trusts the lengths, counts and indexes in the data: a string
 * length of -1 makes it write before its buffer, a huge one makes it
 * allocate that much, and an enum index out of range is kept and later
 * read as a symbol pointer that was never set. Records come from anyone
 * who can produce to the topic, so check the body against the writer
 * schema first: every length within the bytes left, every block count no
 * larger than them (which bounds what avro-c allocates by the record's
 * size), every index in range.
 */
struct scan {
        const unsigned char *p, *end;
        int depth;
};

#define SCAN_MAX_DEPTH 64

static int scan_long(struct scan *s, int64_t *out)
{
        uint64_t v = 0;
        for (int shift = 0; shift < 64 && s->p < s->end; shift += 7) {
                unsigned char b = *s->p++;
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
                        return 0;
                }
        }
        return -1;
}

static int scan_skip(struct scan *s, int64_t n)
{
        if (n < 0 || n > s->end - s->p)
                return -1;
        s->p += n;
        return 0;
}

static int scan_value(struct scan *s, avro_schema_t sc)
{
        int64_t n, size;
        int rc = 0;
        if (++s->depth > SCAN_MAX_DEPTH)
                return -1;
        switch (avro_typeof(sc)) {
        case AVRO_NULL:
                break;
        case AVRO_BOOLEAN:
                rc = scan_skip(s, 1);
                break;
        case AVRO_INT32:
        case AVRO_INT64:
                rc = scan_long(s, &n);
                break;
        case AVRO_FLOAT:
                rc = scan_skip(s, 4);
                break;
        case AVRO_DOUBLE:
                rc = scan_skip(s, 8);
                break;
        case AVRO_STRING:
        case AVRO_BYTES:
                rc = scan_long(s, &n) || scan_skip(s, n);
                break;
        case AVRO_FIXED:
                rc = scan_skip(s, avro_schema_fixed_size(sc));
                break;
        case AVRO_ENUM:
                rc = scan_long(s, &n) || n < 0 ||
                     n >= avro_schema_enum_number_of_symbols(sc);
                break;
        case AVRO_UNION:
                rc = scan_long(s, &n) || n < 0 ||
                     n >= (int64_t)avro_schema_union_size(sc) ||
                     scan_value(s, avro_schema_union_branch(sc, (int)n));
                break;
        case AVRO_RECORD:
                for (size_t i = 0; !rc && i < avro_schema_record_size(sc); i++)
                        rc = scan_value(
                            s,
                            avro_schema_record_field_get_by_index(sc, (int)i));
                break;
        case AVRO_MAP:
        case AVRO_ARRAY:
                /* Blocks of n items (n < 0: -n items after their byte
                 * size), ended by a block of 0. */
                for (;;) {
                        if (scan_long(s, &n) || n == INT64_MIN ||
                            (n < 0 && scan_long(s, &size))) {
                                rc = -1;
                                break;
                        }
                        if (n == 0)
                                break;
                        n = n < 0 ? -n : n;
                        if (n > s->end - s->p) {
                                rc = -1;
                                break;
                        }
                        avro_schema_t item = avro_typeof(sc) == AVRO_MAP
                                                 ? avro_schema_map_values(sc)
                                                 : avro_schema_array_items(sc);
                        for (int64_t i = 0; !rc && i < n; i++) {
                                if (avro_typeof(sc) == AVRO_MAP)
                                        rc = scan_long(s, &size) ||
                                             scan_skip(s, size);
                                if (!rc)
                                        rc = scan_value(s, item);
                        }
                        if (rc)
                                break;
                }
                break;
        case AVRO_LINK:
                rc = scan_value(s, avro_schema_link_target(sc));
                break;
        default:
                rc = -1;
        }
        s->depth--;
        return rc ? -1 : 0;
}

/* Whether the body after the frame is exactly one value of writer schema
 * ws (see struct scan): 0, or -1 with the reason. */
static int check_body(avro_schema_t ws, int32_t id, const void *buf, size_t len,
                      char *errstr, size_t errstr_size)
{
        const unsigned char *body =
            (const unsigned char *)buf + RELAY_AVRO_HEADER_LEN;
        struct scan sc = {body, body + (len - RELAY_AVRO_HEADER_LEN), 0};
        if (scan_value(&sc, ws)) {
                relay_seterr(errstr, errstr_size,
                             "invalid Avro data for schema id %d: bad or "
                             "truncated value at body byte %zu",
                             (int)id, (size_t)(sc.p - body));
                return -1;
        }
        if (sc.p != sc.end) {
                /* Typically bytes of another schema framed with this id. */
                relay_seterr(errstr, errstr_size,
                             "invalid Avro data for schema id %d: %zu bytes "
                             "left after the record",
                             (int)id, (size_t)(sc.end - sc.p));
                return -1;
        }
        return 0;
}

enum relay_result relay_avro_reader_decode(relay_avro_reader_t *r,
                                           const void *buf, size_t len,
                                           avro_value_t **out,
                                           int32_t *writer_id, char *errstr,
                                           size_t errstr_size)
{
        int32_t id;
        if (r->max_bytes && len > r->max_bytes) {
                relay_seterr(errstr, errstr_size,
                             "record of %zu bytes exceeds the limit of %zu",
                             len, r->max_bytes);
                return RELAY_FATAL;
        }
        if (relay_avro_frame_parse(buf, len, &id, errstr, errstr_size))
                return RELAY_FATAL;
        if (writer_id)
                *writer_id = id;
        struct schema_entry *e;
        enum relay_result lr =
            lookup_id(r->schemas, id, &e, errstr, errstr_size);
        if (lr != RELAY_OK)
                return lr;
        if (!entry_fits(e, r->subject, r->schema)) {
                relay_seterr(errstr, errstr_size,
                             "schema id %d does not belong to subject '%s'",
                             (int)id, r->subject);
                return RELAY_FATAL;
        }
        avro_schema_t ws = e->schema;
        if (check_body(ws, id, buf, len, errstr, errstr_size))
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
        enum relay_result r = lookup_id(s, id, &e, errstr, errstr_size);
        if (r != RELAY_OK)
                return r;
        if (check_body(e->schema, id, buf, len, errstr, errstr_size))
                return RELAY_FATAL;
        avro_value_iface_t *iface;
        avro_value_t v;
        if (generic_new(e->schema, &iface, &v, "reader",
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

struct relay_avro_writer {
        int32_t id;
        avro_value_iface_t *iface;
        avro_value_t value;
        avro_writer_t out;
        relay_buf_t buf;
};

relay_avro_writer_t *relay_avro_writer_new(relay_schemas_t *s,
                                           const char *subject, char *errstr,
                                           size_t errstr_size)
{
        int32_t id;
        if (relay_schemas_bind(s, subject, &id, errstr, errstr_size) !=
            RELAY_OK)
                return NULL;
        relay_avro_writer_t *w = relay_calloc(1, sizeof(*w));
        w->id = id;
        relay_buf_init(&w->buf);
        if (generic_new(relay_schemas_local(s, subject), &w->iface, &w->value,
                        "writer", subject, errstr, errstr_size)) {
                relay_avro_writer_destroy(w);
                return NULL;
        }
        w->out = avro_writer_memory("", 0);
        return w;
}

void relay_avro_writer_destroy(relay_avro_writer_t *w)
{
        if (!w)
                return;
        if (w->value.self)
                avro_value_decref(&w->value);
        if (w->iface)
                avro_value_iface_decref(w->iface);
        if (w->out)
                avro_writer_free(w->out);
        relay_buf_free(&w->buf);
        free(w);
}

avro_value_t *relay_avro_writer_value(relay_avro_writer_t *w)
{
        avro_value_reset(&w->value);
        return &w->value;
}

enum relay_result relay_avro_writer_encode(relay_avro_writer_t *w,
                                           const void **buf, size_t *len,
                                           char *errstr, size_t errstr_size)
{
        size_t size;
        avro_set_error("no detail");
        if (avro_value_sizeof(&w->value, &size)) {
                relay_seterr(errstr, errstr_size, "cannot encode record: %s",
                             avro_strerror());
                return RELAY_FATAL;
        }
        relay_buf_reset(&w->buf);
        relay_buf_reserve(&w->buf, RELAY_AVRO_HEADER_LEN + size);
        unsigned char *p = (unsigned char *)w->buf.data;
        p[0] = RELAY_AVRO_MAGIC;
        p[1] = (unsigned char)((uint32_t)w->id >> 24);
        p[2] = (unsigned char)((uint32_t)w->id >> 16);
        p[3] = (unsigned char)((uint32_t)w->id >> 8);
        p[4] = (unsigned char)w->id;
        avro_writer_memory_set_dest(w->out, w->buf.data + RELAY_AVRO_HEADER_LEN,
                                    (int64_t)size);
        if (avro_value_write(w->out, &w->value)) {
                relay_seterr(errstr, errstr_size, "cannot encode record: %s",
                             avro_strerror());
                return RELAY_FATAL;
        }
        w->buf.len = RELAY_AVRO_HEADER_LEN + size;
        *buf = w->buf.data;
        *len = w->buf.len;
        return RELAY_OK;
}

/* Bytes from Avro's JSON encoding (see json_bytes): 0 and the bytes in
 * out, or -1 for a code point past U+00FF. */
static int bytes_from_json(json_t *j, relay_buf_t *out)
{
        const unsigned char *p = (const unsigned char *)json_string_value(j);
        size_t n = json_string_length(j);
        for (size_t i = 0; i < n; i++) {
                unsigned char c = p[i];
                if (c >= 0x80) {
                        if ((c != 0xC2 && c != 0xC3) || i + 1 == n)
                                return -1;
                        c = (unsigned char)(((c & 0x03) << 6) |
                                            (p[++i] & 0x3F));
                }
                relay_buf_append(out, &c, 1);
        }
        return 0;
}

/* Which union branch fits a JSON value of this type; -1 when none does. */
static int union_branch_for(avro_schema_t us, json_t *j)
{
        static const avro_type_t by_kind[][4] = {
            [JSON_NULL] = {AVRO_NULL},
            [JSON_STRING] = {AVRO_STRING, AVRO_ENUM, AVRO_BYTES},
            [JSON_INTEGER] = {AVRO_INT64, AVRO_INT32, AVRO_DOUBLE, AVRO_FLOAT},
            [JSON_REAL] = {AVRO_DOUBLE, AVRO_FLOAT},
            [JSON_TRUE] = {AVRO_BOOLEAN},
            [JSON_FALSE] = {AVRO_BOOLEAN},
            [JSON_OBJECT] = {AVRO_RECORD, AVRO_MAP},
            [JSON_ARRAY] = {AVRO_ARRAY},
        };
        const avro_type_t *want = by_kind[json_typeof(j)];
        size_t nb = avro_schema_union_size(us);
        for (int k = 0; k < 4; k++) {
                if (k > 0 && want[k] == AVRO_STRING)
                        break; /* zero-filled tail of a short row */
                for (size_t b = 0; b < nb; b++) {
                        avro_schema_t bs = avro_schema_union_branch(us, (int)b);
                        /* A named type used again is a link to it. */
                        while (avro_typeof(bs) == AVRO_LINK)
                                bs = avro_schema_link_target(bs);
                        if (avro_typeof(bs) != want[k])
                                continue;
                        if (want[k] == AVRO_ENUM &&
                            avro_schema_enum_get_by_name(
                                bs, json_string_value(j)) < 0)
                                continue;
                        return (int)b;
                }
                if (json_typeof(j) == JSON_NULL ||
                    json_typeof(j) == JSON_TRUE || json_typeof(j) == JSON_FALSE)
                        break;
        }
        return -1;
}

static int null_branch(avro_schema_t s)
{
        if (avro_typeof(s) != AVRO_UNION)
                return -1;
        for (size_t b = 0; b < avro_schema_union_size(s); b++)
                if (avro_typeof(avro_schema_union_branch(s, (int)b)) ==
                    AVRO_NULL)
                        return (int)b;
        return -1;
}

static int from_json(avro_value_t *v, json_t *j, relay_buf_t *path,
                     char *errstr, size_t errstr_size);

static int json_err(char *errstr, size_t errstr_size, relay_buf_t *path,
                    const char *what)
{
        relay_seterr(errstr, errstr_size, "%s: %s",
                     path->len ? path->data : "(record)", what);
        return -1;
}

static int record_from_json(avro_value_t *v, json_t *j, relay_buf_t *path,
                            char *errstr, size_t errstr_size)
{
        avro_schema_t rs = avro_value_get_schema(v);
        size_t plen = path->len;
        if (!json_is_object(j))
                return json_err(errstr, errstr_size, path,
                                "expected a JSON object");
        const char *key;
        json_t *jv;
        json_object_foreach(j, key, jv)
        {
                if (avro_schema_record_field_get_index(rs, key) < 0) {
                        char what[300];
                        snprintf(what, sizeof(what), "unknown field '%s'", key);
                        return json_err(errstr, errstr_size, path, what);
                }
        }
        size_t nf = avro_schema_record_size(rs);
        for (size_t i = 0; i < nf; i++) {
                const char *name = avro_schema_record_field_name(rs, (int)i);
                avro_value_t field;
                avro_value_get_by_index(v, i, &field, NULL);
                if (plen)
                        relay_buf_puts(path, ".");
                relay_buf_puts(path, name);
                json_t *fj = json_object_get(j, name);
                int rc = 0;
                if (fj) {
                        rc = from_json(&field, fj, path, errstr, errstr_size);
                } else {
                        avro_schema_t fs =
                            avro_schema_record_field_get_by_index(rs, (int)i);
                        int nb = null_branch(fs);
                        avro_value_t branch;
                        if (nb >= 0)
                                avro_value_set_branch(&field, nb, &branch);
                        else if (avro_typeof(fs) != AVRO_NULL)
                                rc = json_err(errstr, errstr_size, path,
                                              "missing field");
                }
                if (rc)
                        return -1;
                path->len = plen;
                path->data[plen] = '\0';
        }
        return 0;
}

static int from_json(avro_value_t *v, json_t *j, relay_buf_t *path,
                     char *errstr, size_t errstr_size)
{
        avro_schema_t s = avro_value_get_schema(v);
        avro_value_t child;
        switch (avro_value_get_type(v)) {
        case AVRO_NULL:
                if (!json_is_null(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected null");
                return avro_value_set_null(v);
        case AVRO_BOOLEAN:
                if (!json_is_boolean(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected true or false");
                return avro_value_set_boolean(v, json_is_true(j));
        case AVRO_INT32: {
                json_int_t n = json_integer_value(j);
                if (!json_is_integer(j) || n < INT32_MIN || n > INT32_MAX)
                        return json_err(errstr, errstr_size, path,
                                        "expected a 32-bit integer");
                return avro_value_set_int(v, (int32_t)n);
        }
        case AVRO_INT64:
                if (!json_is_integer(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected an integer");
                return avro_value_set_long(v, json_integer_value(j));
        case AVRO_FLOAT:
                if (!json_is_number(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected a number");
                return avro_value_set_float(v, (float)json_number_value(j));
        case AVRO_DOUBLE:
                if (!json_is_number(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected a number");
                return avro_value_set_double(v, json_number_value(j));
        case AVRO_STRING:
                if (!json_is_string(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected a string");
                return avro_value_set_string_len(v, json_string_value(j),
                                                 json_string_length(j) + 1);
        case AVRO_BYTES:
        case AVRO_FIXED: {
                relay_buf_t b;
                relay_buf_init(&b);
                int rc;
                if (!json_is_string(j) || bytes_from_json(j, &b))
                        rc = json_err(errstr, errstr_size, path,
                                      "expected a string of code points "
                                      "U+0000..U+00FF, one per byte");
                else if (avro_typeof(s) == AVRO_BYTES)
                        rc = avro_value_set_bytes(v, b.data ? b.data : "",
                                                  b.len);
                else if ((int64_t)b.len != avro_schema_fixed_size(s))
                        rc = json_err(errstr, errstr_size, path,
                                      "expected the fixed size in bytes");
                else
                        rc = avro_value_set_fixed(v, b.data, b.len);
                relay_buf_free(&b);
                return rc;
        }
        case AVRO_ENUM: {
                int idx =
                    json_is_string(j)
                        ? avro_schema_enum_get_by_name(s, json_string_value(j))
                        : -1;
                if (idx < 0)
                        return json_err(errstr, errstr_size, path,
                                        "not a symbol of the enum");
                return avro_value_set_enum(v, idx);
        }
        case AVRO_UNION: {
                int b = union_branch_for(s, j);
                if (b < 0)
                        return json_err(errstr, errstr_size, path,
                                        "JSON type fits no branch of the "
                                        "union");
                if (avro_value_set_branch(v, b, &child))
                        return json_err(errstr, errstr_size, path,
                                        avro_strerror());
                return from_json(&child, j, path, errstr, errstr_size);
        }
        case AVRO_RECORD:
                return record_from_json(v, j, path, errstr, errstr_size);
        case AVRO_MAP: {
                if (!json_is_object(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected a JSON object (map)");
                const char *key;
                json_t *jv;
                size_t plen = path->len;
                json_object_foreach(j, key, jv)
                {
                        if (avro_value_add(v, key, &child, NULL, NULL))
                                return json_err(errstr, errstr_size, path,
                                                avro_strerror());
                        relay_buf_printf(path, "%s%s", plen ? "." : "", key);
                        if (from_json(&child, jv, path, errstr, errstr_size))
                                return -1;
                        path->len = plen;
                        path->data[plen] = '\0';
                }
                return 0;
        }
        case AVRO_ARRAY: {
                if (!json_is_array(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected a JSON array");
                size_t i, plen = path->len;
                json_t *jv;
                json_array_foreach(j, i, jv)
                {
                        if (avro_value_append(v, &child, NULL))
                                return json_err(errstr, errstr_size, path,
                                                avro_strerror());
                        relay_buf_printf(path, "[%zu]", i);
                        if (from_json(&child, jv, path, errstr, errstr_size))
                                return -1;
                        path->len = plen;
                        path->data[plen] = '\0';
                }
                return 0;
        }
        default:
                return json_err(errstr, errstr_size, path,
                                "unsupported Avro type");
        }
}

int relay_avro_from_json(avro_value_t *v, json_t *j, char *errstr,
                         size_t errstr_size)
{
        relay_buf_t path;
        relay_buf_init(&path);
        relay_buf_append(&path, "", 0);
        int rc = from_json(v, j, &path, errstr, errstr_size);
        relay_buf_free(&path);
        return rc ? -1 : 0;
}

json_t *relay_json_text(const char *p, size_t n)
{
        json_t *j = json_stringn(p, n);
        if (j)
                return j;
        relay_buf_t b;
        relay_buf_init(&b);
        for (size_t i = 0; i < n;) {
                const unsigned char *u = (const unsigned char *)p + i;
                size_t l = *u < 0x80 ? 1 : relay_utf8_len(u, n - i);
                if (l)
                        relay_buf_append(&b, u, l);
                else
                        relay_buf_puts(&b, "\xEF\xBF\xBD");
                i += l ? l : 1;
        }
        j = json_stringn(b.data ? b.data : "", b.len);
        relay_buf_free(&b);
        return j;
}

/* Bytes as Avro's JSON encoding does: one code point U+0000..U+00FF per
 * byte. */
static json_t *json_bytes(const unsigned char *p, size_t n)
{
        relay_buf_t b;
        relay_buf_init(&b);
        for (size_t i = 0; i < n; i++) {
                unsigned char c[2] = {(unsigned char)(0xC0 | (p[i] >> 6)),
                                      (unsigned char)(0x80 | (p[i] & 0x3F))};
                if (p[i] < 0x80)
                        relay_buf_append(&b, p + i, 1);
                else
                        relay_buf_append(&b, c, 2);
        }
        json_t *j = json_stringn(b.data ? b.data : "", b.len);
        relay_buf_free(&b);
        return j;
}

json_t *relay_avro_to_json(const avro_value_t *v)
{
        avro_value_t child;
        const char *s;
        const void *p;
        size_t n;
        switch (avro_value_get_type(v)) {
        case AVRO_NULL:
                return json_null();
        case AVRO_BOOLEAN: {
                int b = 0;
                avro_value_get_boolean(v, &b);
                return json_boolean(b);
        }
        case AVRO_INT32: {
                int32_t i = 0;
                avro_value_get_int(v, &i);
                return json_integer(i);
        }
        case AVRO_INT64: {
                int64_t l = 0;
                avro_value_get_long(v, &l);
                return json_integer(l);
        }
        case AVRO_FLOAT: {
                float f = 0;
                avro_value_get_float(v, &f);
                return json_real(f);
        }
        case AVRO_DOUBLE: {
                double d = 0;
                avro_value_get_double(v, &d);
                return json_real(d);
        }
        case AVRO_STRING:
                if (avro_value_get_string(v, &s, &n) || !s)
                        return json_string("");
                return relay_json_text(s, n ? n - 1 : 0);
        case AVRO_BYTES:
                if (avro_value_get_bytes(v, &p, &n))
                        return json_string("");
                return json_bytes(p, n);
        case AVRO_FIXED:
                if (avro_value_get_fixed(v, &p, &n))
                        return json_string("");
                return json_bytes(p, n);
        case AVRO_ENUM: {
                int idx = 0;
                avro_value_get_enum(v, &idx);
                s = avro_schema_enum_get(avro_value_get_schema(v), idx);
                return json_string(s ? s : "");
        }
        case AVRO_UNION:
                if (avro_value_get_current_branch(v, &child))
                        return json_null();
                return relay_avro_to_json(&child);
        case AVRO_RECORD:
        case AVRO_MAP: {
                json_t *o = json_object();
                avro_value_get_size(v, &n);
                for (size_t i = 0; i < n; i++) {
                        const char *name = NULL;
                        avro_value_get_by_index(v, i, &child, &name);
                        json_object_set_new(o, name,
                                            relay_avro_to_json(&child));
                }
                return o;
        }
        case AVRO_ARRAY: {
                json_t *a = json_array();
                avro_value_get_size(v, &n);
                for (size_t i = 0; i < n; i++) {
                        avro_value_get_by_index(v, i, &child, NULL);
                        json_array_append_new(a, relay_avro_to_json(&child));
                }
                return a;
        }
        default:
                return json_null();
        }
}

/* Step through a union to its current branch; -1 if unset or null. */
static int unwrap(avro_value_t *v)
{
        while (avro_value_get_type(v) == AVRO_UNION) {
                avro_value_t b;
                if (avro_value_get_current_branch(v, &b))
                        return -1;
                *v = b;
        }
        return avro_value_get_type(v) == AVRO_NULL ? -1 : 0;
}

int relay_avro_path(const avro_value_t *root, const char *path,
                    avro_value_t *out)
{
        avro_value_t cur = *root;
        char seg[256];
        const char *p = path;
        for (;;) {
                if (unwrap(&cur))
                        return -1;
                const char *dot = strchr(p, '.');
                size_t n = dot ? (size_t)(dot - p) : strlen(p);
                if (n == 0 || n >= sizeof(seg))
                        return -1;
                memcpy(seg, p, n);
                seg[n] = '\0';
                avro_type_t t = avro_value_get_type(&cur);
                if (t != AVRO_RECORD && t != AVRO_MAP)
                        return -1;
                avro_value_t next;
                /* Map keys may hold dots (sources' nested fields, joined):
                 * "data.address.city" is the key "address.city" first. */
                if (t == AVRO_MAP && dot &&
                    avro_value_get_by_name(&cur, p, &next, NULL) == 0) {
                        cur = next;
                        break;
                }
                if (avro_value_get_by_name(&cur, seg, &next, NULL))
                        return -1;
                cur = next;
                if (!dot)
                        break;
                p = dot + 1;
        }
        if (unwrap(&cur))
                return -1;
        *out = cur;
        return 0;
}

/* The shortest %g form, from min digits up, that reads back as the same
 * number (as float when is_float): "19.99", not "19.989999999999998",
 * while a number that needs all 17 digits keeps them. */
static void append_number(relay_buf_t *b, double d, int min, int max,
                          int is_float)
{
        char t[64];
        for (int prec = min;; prec++) {
                snprintf(t, sizeof(t), "%.*g", prec, d);
                double back = strtod(t, NULL);
                if (prec >= max ||
                    (is_float ? (float)back == (float)d : back == d))
                        break;
        }
        relay_buf_puts(b, t);
}

int relay_avro_to_text(const avro_value_t *v, relay_buf_t *b)
{
        avro_value_t cur = *v;
        if (unwrap(&cur))
                return -1;
        switch (avro_value_get_type(&cur)) {
        case AVRO_STRING: {
                const char *s;
                size_t n;
                if (avro_value_get_string(&cur, &s, &n) || !s)
                        return -1;
                relay_buf_append(b, s, n ? n - 1 : 0);
                return 0;
        }
        case AVRO_ENUM: {
                int idx;
                avro_value_get_enum(&cur, &idx);
                const char *s =
                    avro_schema_enum_get(avro_value_get_schema(&cur), idx);
                if (!s)
                        return -1;
                relay_buf_puts(b, s);
                return 0;
        }
        case AVRO_INT32: {
                int32_t i;
                avro_value_get_int(&cur, &i);
                relay_buf_printf(b, "%" PRId32, i);
                return 0;
        }
        case AVRO_INT64: {
                int64_t l;
                avro_value_get_long(&cur, &l);
                relay_buf_printf(b, "%" PRId64, l);
                return 0;
        }
        case AVRO_FLOAT: {
                float f;
                avro_value_get_float(&cur, &f);
                append_number(b, (double)f, 6, 9, 1);
                return 0;
        }
        case AVRO_DOUBLE: {
                double d;
                avro_value_get_double(&cur, &d);
                append_number(b, d, 15, 17, 0);
                return 0;
        }
        case AVRO_BOOLEAN: {
                int x;
                avro_value_get_boolean(&cur, &x);
                relay_buf_puts(b, x ? "true" : "false");
                return 0;
        }
        default:
                return -1;
        }
}
