/*
 * The schema catalogue: schemas/manifest.cfg loaded into entries (id,
 * version, subjects, the parsed schema and its text), and the lookups that
 * never call a registry: which schema an id is, which subjects it belongs
 * to, and each subject's local (newest manifest) schema. Registry mode
 * (wire ids from a registry, the id cache) is cache.c.
 */
#include "avro_int.h"

#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void relay_schemas_entry_free(struct schema_entry *e)
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
                relay_schemas_entry_free(&s->entries[i]);
        free(s->entries);
        for (size_t i = 0; i < s->ncache; i++)
                relay_schemas_entry_free(&s->cache[i]);
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
                relay_schemas_add_subject(e, config_setting_get_string(subj));
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
                        relay_schemas_add_subject(e, sv);
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
                        relay_schemas_entry_free(e);
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

/* The entry of a wire id already known (no registry call), or NULL. */
struct schema_entry *relay_schemas_find_id(const relay_schemas_t *s, int32_t id)
{
        struct schema_entry *v = s->reg ? s->cache : s->entries;
        size_t n = s->reg ? s->ncache : s->n;
        for (size_t i = 0; i < n; i++)
                if (v[i].id == id)
                        return &v[i];
        return NULL;
}

int relay_schemas_entry_has_subject(const struct schema_entry *e,
                                    const char *subject)
{
        for (int i = 0; i < e->nsubjects; i++)
                if (!strcmp(e->subjects[i], subject))
                        return 1;
        return 0;
}

void relay_schemas_add_subject(struct schema_entry *e, const char *subject)
{
        if (relay_schemas_entry_has_subject(e, subject))
                return;
        e->subjects = relay_realloc(e->subjects, ((size_t)e->nsubjects + 1) *
                                                     sizeof(*e->subjects));
        e->subjects[e->nsubjects++] = relay_strdup(subject);
}

/* The manifest's newest version of subject, or NULL. */
const struct schema_entry *relay_schemas_local_entry(const relay_schemas_t *s,
                                                     const char *subject)
{
        const struct schema_entry *best = NULL;
        for (size_t i = 0; i < s->n; i++)
                if (relay_schemas_entry_has_subject(&s->entries[i], subject) &&
                    (!best || s->entries[i].version > best->version))
                        best = &s->entries[i];
        return best;
}

avro_schema_t relay_schemas_get(const relay_schemas_t *s, int32_t id)
{
        const struct schema_entry *e = relay_schemas_find_id(s, id);
        return e ? e->schema : NULL;
}

avro_schema_t relay_schemas_local(const relay_schemas_t *s, const char *subject)
{
        const struct schema_entry *e = relay_schemas_local_entry(s, subject);
        return e ? e->schema : NULL;
}

const char *relay_schemas_local_text(const relay_schemas_t *s,
                                     const char *subject)
{
        const struct schema_entry *e = relay_schemas_local_entry(s, subject);
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
        const struct schema_entry *e = relay_schemas_local_entry(s, subject);
        return e ? e->id : -1;
}

const char *relay_schemas_subject(const relay_schemas_t *s, int32_t id)
{
        const struct schema_entry *e = relay_schemas_find_id(s, id);
        return e && e->nsubjects ? e->subjects[0] : NULL;
}

int relay_schemas_in_subject(const relay_schemas_t *s, int32_t id,
                             const char *subject)
{
        const struct schema_entry *e = relay_schemas_find_id(s, id);
        return e && relay_schemas_entry_has_subject(e, subject);
}

/* Whether entry e may be read as subject, whose reader schema is rs. */
int relay_schemas_entry_fits(const struct schema_entry *e, const char *subject,
                             avro_schema_t rs)
{
        if (!e->subjects_unknown)
                return relay_schemas_entry_has_subject(e, subject);
        /* Only the record's full name is left to go by. */
        const char *wn = avro_schema_name(e->schema),
                   *rn = avro_schema_name(rs);
        const char *wns = avro_schema_namespace(e->schema),
                   *rns = avro_schema_namespace(rs);
        return wn && rn && !strcmp(wn, rn) &&
               !strcmp(wns ? wns : "", rns ? rns : "");
}
