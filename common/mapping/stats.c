/*
 * What applying a connection counts, for the log now and for metrics later:
 * event types that no rule of the connection names (per type), and records
 * keyed by their identity because they lack the connection's person field.
 *
 * Both are faults nobody would otherwise see: an unassociated event is
 * skipped by design (the seed's event association), and a fallback key
 * still delivers, only without the per-person order. So each is counted
 * and logged at most once per interval (relay_mapping_notice_interval_ms),
 * with the count, instead of once per record or never.
 *
 * The counters live in struct conn_stats, reached through a pointer in the
 * otherwise immutable connection. Like the rest of a connection they are
 * not locked: a connection is applied from one thread at a time (each
 * worker applies its mapping from its main loop). A reload builds new
 * connections, so the counts start again from zero.
 */
#include "mapping_int.h"
#include "relay/log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int64_t relay_mapping_notice_interval_ms = 60 * 1000;

/* Distinct types kept by name, and the longest name kept. A producer can
 * send any string as an event type; past these, types are counted together
 * under OTHER_TYPES so that neither memory nor a metric's label set grows
 * without bound. */
#define MAX_TYPES    256
#define MAX_TYPE_LEN 128
#define OTHER_TYPES  "(other types)"

/* Count one occurrence; 1 when it is due to be logged (and mark it
 * logged). */
static int notice_due(struct notice *n)
{
        int64_t now = relay_mono_ms();
        n->count++;
        if (n->logged_ms &&
            now - n->logged_ms < relay_mapping_notice_interval_ms)
                return 0;
        n->logged_ms = now ? now : 1; /* 0 means never */
        return 1;
}

/* Occurrences since the notice was last logged, this one included; and
 * note them as logged. */
static uint64_t notice_take(struct notice *n)
{
        uint64_t fresh = n->count - n->logged;
        n->logged = n->count;
        return fresh;
}

static struct notice *type_notice(struct conn_stats *st, const char *type)
{
        for (size_t i = 0; i < st->ntypes; i++)
                if (!strcmp(st->types[i].type, type))
                        return &st->types[i].n;
        if (st->ntypes == MAX_TYPES || strlen(type) > MAX_TYPE_LEN) {
                st->other_used = 1;
                return &st->other;
        }
        st->types =
            relay_realloc(st->types, (st->ntypes + 1) * sizeof(*st->types));
        struct unmapped_type *t = &st->types[st->ntypes++];
        memset(t, 0, sizeof(*t));
        t->type = relay_strdup(type);
        return &t->n;
}

void relay_connection_count_unmapped(const relay_connection_t *c,
                                     const char *type)
{
        struct notice *n = type_notice(c->stats, type);
        /* With dead_letter each record's dead letter carries the reason. */
        if (!notice_due(n) || c->unmapped_dead_letter)
                return;
        uint64_t fresh = notice_take(n);
        if (n == &c->stats->other)
                relay_log(LOG_WARNING, "mapping",
                          "connection '%s': event types beyond the first %d "
                          "that no rule names (or longer than %d bytes) are "
                          "counted together as '" OTHER_TYPES "': %" PRIu64
                          " skipped since last logged, %" PRIu64 " in all",
                          c->id, MAX_TYPES, MAX_TYPE_LEN, fresh, n->count);
        else
                relay_log(LOG_WARNING, "mapping",
                          "connection '%s': event type '%s' has no rule: "
                          "%" PRIu64 " record(s) skipped since last logged, "
                          "%" PRIu64 " in all (name it in a rule, or in one "
                          "with drop = true to skip it quietly)",
                          c->id, type, fresh, n->count);
}

void relay_connection_count_fallback(const relay_connection_t *c)
{
        struct notice *n = &c->stats->fallback;
        if (!notice_due(n))
                return;
        uint64_t fresh = notice_take(n);
        relay_log(LOG_WARNING, "mapping",
                  "connection '%s': record(s) without the person field %s "
                  "keyed by their first identity: %" PRIu64 " since last "
                  "logged, %" PRIu64 " in all (their order relative to the "
                  "person's other records is not kept)",
                  c->id, c->person, fresh, n->count);
}

void relay_conn_stats_free(struct conn_stats *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->ntypes; i++)
                free(s->types[i].type);
        free(s->types);
        relay_buf_free(&s->scratch);
        free(s->idv);
        free(s->idn);
        free(s);
}

uint64_t relay_connection_fallback_keys(const relay_connection_t *c)
{
        return c->stats->fallback.count;
}

size_t relay_connection_unmapped_types(const relay_connection_t *c)
{
        return c->stats->ntypes + (c->stats->other_used ? 1 : 0);
}

const char *relay_connection_unmapped_get(const relay_connection_t *c, size_t i,
                                          uint64_t *count)
{
        const struct conn_stats *st = c->stats;
        const struct notice *n;
        const char *type;
        if (i < st->ntypes) {
                n = &st->types[i].n;
                type = st->types[i].type;
        } else if (i == st->ntypes && st->other_used) {
                n = &st->other;
                type = OTHER_TYPES;
        } else {
                return NULL;
        }
        if (count)
                *count = n->count;
        return type;
}
