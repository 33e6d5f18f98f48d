/*
 * The catalogue in registry mode: the wire id of each subject bound at
 * start (looked up or registered, waiting out an unreachable registry with
 * backoff), and the ids records name, fetched from the registry without
 * ever waiting and kept in a bounded LRU cache; ids the registry does not
 * know are remembered for negative_ttl_ms (struct relay_schemas in
 * avro_int.h says why).
 */
#include "avro_int.h"
#include "relay/metrics.h"
#include "relay/log.h"
#include "relay/retry.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

void relay_schemas_use_registry(relay_schemas_t *s, relay_registry_t *reg,
                                const relay_schemas_registry_conf_t *conf)
{
        relay_registry_destroy(s->reg);
        s->reg = reg;
        s->rconf = *conf;
        if (s->rconf.cache_max < 1)
                s->rconf.cache_max = 1;
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
                        s->unknown =
                            relay_realloc(s->unknown, (s->nunknown + 1) *
                                                          sizeof(*s->unknown));
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
                        relay_schemas_entry_free(old);
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
        const struct schema_entry *local =
            relay_schemas_local_entry(s, subject);
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
                    relay_schemas_entry_has_subject(&s->cache[i], subject)) {
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
        struct schema_entry *e = relay_schemas_find_id(s, *id);
        if (!e) {
                e = cache_insert(s, *id);
                e->schema = avro_schema_incref(local->schema);
                e->version = version;
        }
        e->pinned = 1;
        e->subjects_unknown = 0;
        relay_schemas_add_subject(e, subject);
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
                relay_schemas_add_subject(e, subjects[i]);
        relay_registry_strv_free(subjects, nsubjects);
        relay_log(LOG_INFO, "schemas", "fetched schema id %d (%s)", (int)id,
                  e->nsubjects ? e->subjects[0] : "subjects unknown");
        *out = e;
        return RELAY_OK;
}

/* The entry of a wire id: known, or fetched from the registry. */
enum relay_result relay_schemas_lookup(relay_schemas_t *s, int32_t id,
                                       struct schema_entry **out, char *errstr,
                                       size_t errstr_size)
{
        static relay_series_t *hits, *misses;
        static int once;
        if (!once) {
                once = 1;
                relay_metric_t *m = relay_metric(
                    RELAY_METRIC_COUNTER, "relay_schema_cache_lookups_total",
                    "schema id lookups: found in memory (hit) or not (miss: "
                    "the registry is asked, or the id is unknown)",
                    "result", NULL, 0);
                hits = relay_series(m, "hit");
                misses = relay_series(m, "miss");
        }
        struct schema_entry *e = relay_schemas_find_id(s, id);
        if (e) {
                relay_metric_add(hits, 1);
                e->used = ++s->tick;
                *out = e;
                return RELAY_OK;
        }
        relay_metric_add(misses, 1);
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

enum relay_result relay_schemas_resolve(relay_schemas_t *s, int32_t id,
                                        avro_schema_t *schema,
                                        const char **subject, char *errstr,
                                        size_t errstr_size)
{
        struct schema_entry *e;
        enum relay_result r =
            relay_schemas_lookup(s, id, &e, errstr, errstr_size);
        if (r != RELAY_OK)
                return r;
        *schema = e->schema;
        if (subject)
                *subject = e->nsubjects ? e->subjects[0] : NULL;
        return RELAY_OK;
}
