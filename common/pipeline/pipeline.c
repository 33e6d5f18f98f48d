/*
 * The pipeline engine (see relay/pipeline.h for the promise): batches are
 * consumed, handed to the processor record by record and flushed; a
 * flushed batch is sealed into a ring of batches in flight while the next
 * one is taken, and the oldest sealed batches are settled (every output
 * and dead letter durable, or replaced by one that is), stored and
 * released in order as their acknowledgements come in. With one batch in
 * flight this is one batch at a time.
 *
 * Waiting is always done here, by serve(): it pauses every assigned
 * partition (librdkafka then drops what it prefetched and, on resume,
 * fetches again from the last record the application took, so nothing is
 * skipped) and polls the consumer, which keeps the member alive in the
 * group and runs rebalances, while delivery reports are served from the
 * producer. The partitions are resumed when the batch is over, so a batch
 * that never waits never pays for a pause.
 */
#include "relay/pipeline.h"
#include "relay/admin.h"
#include "relay/log.h"
#include "relay/metrics.h"
#include "relay/worker.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum prec_state { PREC_PENDING, PREC_DONE, PREC_DROPPED };

/* One input record of a batch. */
struct prec {
        rd_kafka_message_t *msg;
        unsigned char state;
        unsigned char bad; /* scratch of store_batches: not storable */
};

enum slot_kind { SLOT_OUTPUT, SLOT_DLQ };

/* One message produced for a batch: an output or a dead letter. Slots
 * live in fixed chunks that never move (not when the batch is sealed
 * either), because the delivery report writes into slot->ack through the
 * pointer given at produce time. */
struct slot {
        relay_kafka_ack_t ack;
        size_t rec;
        unsigned char kind;
        unsigned char settled; /* durable, or replaced by another slot */
        unsigned char stub;
        unsigned char in_flight; /* produced, report not yet seen */
        /* connection, or NULL: interned for outputs (their tags are the
         * configured connections); a dead letter's is its own copy, since
         * it may come from the record (a replay's relay.connection) */
        const char *tag;
        char *own_tag;
        /* a dead letter's reason, kept to produce it again */
        char *why;
        const char *stage; /* static strings */
        long status;
        int attempts;
        int64_t retry_at;
        int tries;
        relay_series_t *count; /* what it counts once durable */
};

#define SLOT_CHUNK 256

/* A batch: its records and every message produced for them. The one in
 * hand is being filled; a sealed one was flushed and waits for its acks. */
struct batch {
        struct prec *recs; /* batch_size of them */
        size_t nrecs;
        struct slot **chunks;
        size_t nchunks, nslots;
        size_t open_from; /* slots before it are settled */
        int open;         /* a slot not settled (at the last pass) */
        /* The last pass found only slots waiting for their reports (no
         * failure, no retry due), with quiet_reports reports served and
         * quiet_drops revokes seen: until either moves, another pass
         * would find the same. */
        int quiet;
        unsigned long quiet_reports, quiet_drops;
};

/* The least time between two wakes of a partition's fetcher
 * (wake_fetchers). */
#define WAKE_GAP_MS 10

/* An assigned partition, for its lag and for storing. */
struct ppart {
        char *topic;
        int32_t partition;
        int64_t stored_ts; /* timestamp of the last record stored, or 0 */
        relay_series_t *lag, *lag_s, *in;
        /* offset after the last record taken, in batch fill_gen */
        int64_t next;
        unsigned long taken_gen;
        /* the fetcher's last wake (relay_mono_ms): see wake_fetchers */
        int64_t woke_ms;
        /* the offset stored last (0: none yet); no store goes below it */
        int64_t stored_off;
        /* scratch of store: the offset to store, or blocked past */
        int64_t st_offset, st_ts;
        unsigned char st_have, st_blocked;
};

/* An output topic, what counts its durable outputs, and the producer's
 * handle of it (produced to without a lookup by name). */
struct otopic {
        char *topic;
        relay_series_t *out;
        rd_kafka_topic_t *rkt; /* NULL: produce by name */
};

/* The engine's metrics (relay/metrics.h); all NULL-safe. */
struct pmetrics {
        relay_metric_t *in, *out, *failed, *dlq, *lag, *lag_s, *rebalances;
        relay_series_t *batch, *paused, *assigned;
};

struct relay_pipeline {
        relay_pipeline_conf_t pc;
        char *worker, *dlq_topic, *group, *topics;
        const relay_processor_t *proc;
        void *opaque;
        rd_kafka_t *consumer, *producer;
        volatile sig_atomic_t *running;
        relay_kafka_rebalance_t rebalance;

        /* The batches in flight: a ring of nring; nsealed of them from
         * head are sealed, the next one is in hand (cur, NULL while
         * every one is sealed). */
        struct batch *ring;
        size_t nring, head, nsealed;
        struct batch *cur;
        struct batch **scratch;       /* nring of them, for held_batches */
        unsigned long fill_gen;       /* batches filled so far */
        unsigned long drops;          /* revokes that dropped records */
        rd_kafka_message_t **backlog; /* consumed while paused (rare) */
        size_t nbacklog, backlog_cap, backlog_head;

        int paused;            /* the assignment is paused */
        int64_t last_serve;    /* last consumer poll */
        int64_t progress_ms;   /* last relay_pipeline_store_progress */
        unsigned long stores;  /* offsets stored (calls to librdkafka) */
        long serve_ms;         /* poll the consumer at least this often */
        int commits_in_flight; /* unanswered batch commits, at most */
        relay_log_limit_t commit_log;
        long revoke_wait_ms;
        int64_t wake;
        int fatal;

        char reason[600];   /* why the work is paused, "" when it is not */
        int produce_paused; /* the reason is the engine's (a produce) */
        int64_t paused_since;
        relay_pipeline_stats_t stats;

        struct ppart *parts; /* assigned */
        size_t nparts, part_hint;
        struct otopic *otopics; /* output topics seen */
        size_t notopics, otopic_hint;
        char **tags; /* interned output tags */
        size_t ntags, tag_hint;
        relay_kafka_ends_t *ends; /* their end offsets, for lag */
        struct pmetrics m;
        long grace_ms;
        int64_t stop_at; /* stopping: finish by then */
        relay_log_limit_t consumer_log;
};

/* ---- small helpers ----------------------------------------------------- */

/* Sealed batch k, from the oldest. */
static struct batch *sealed_at(relay_pipeline_t *p, size_t k)
{
        return &p->ring[(p->head + k) % p->nring];
}

/* Records held: in hand and in the sealed batches. */
static size_t held(const relay_pipeline_t *p)
{
        size_t n = p->cur ? p->cur->nrecs : 0;
        for (size_t k = 0; k < p->nsealed; k++)
                n += p->ring[(p->head + k) % p->nring].nrecs;
        return n;
}

int relay_pipeline_running(const relay_pipeline_t *p)
{
        return *p->running != 0;
}

/* Stopping, and the grace to finish the batch in hand has run out. */
int relay_pipeline_stopping(relay_pipeline_t *p)
{
        if (*p->running)
                return 0;
        if (!p->stop_at) {
                /* From the stop signal when there was one. */
                int64_t at = relay_worker_stop_deadline(p->grace_ms);
                p->stop_at = at ? at : relay_mono_ms() + p->grace_ms;
                relay_ready_set(RELAY_READY_DRAINING,
                                "stopping: finishing the batch in hand");
                relay_log(LOG_INFO, p->worker,
                          "stopping: fetching no more, finishing the %zu "
                          "record(s) in hand within %ld ms",
                          held(p), p->grace_ms);
        }
        return relay_mono_ms() >= p->stop_at;
}

/* The consumer was polled: the worker is alive. */
static void polled(relay_pipeline_t *p)
{
        p->last_serve = relay_mono_ms();
        relay_heartbeat();
}

static struct slot *slot_at(struct batch *b, size_t i)
{
        return &b->chunks[i / SLOT_CHUNK][i % SLOT_CHUNK];
}

/* A new slot of batch b. Chunks are kept when the batch is released, so
 * a steady worker allocates none. */
static struct slot *slot_new(struct batch *b, size_t rec, enum slot_kind kind)
{
        if (b->nslots == b->nchunks * SLOT_CHUNK) {
                b->chunks = relay_realloc(b->chunks, (b->nchunks + 1) *
                                                         sizeof(*b->chunks));
                b->chunks[b->nchunks++] =
                    relay_calloc(SLOT_CHUNK, sizeof(struct slot));
        }
        struct slot *s = slot_at(b, b->nslots++);
        memset(s, 0, sizeof(*s));
        s->rec = rec;
        s->kind = (unsigned char)kind;
        s->ack.keep = kind == SLOT_OUTPUT;
        return s;
}

static void slots_clear(struct batch *b)
{
        for (size_t i = 0; i < b->nslots; i++) {
                struct slot *s = slot_at(b, i);
                relay_kafka_ack_release(&s->ack);
                free(s->why);
                free(s->own_tag);
        }
        b->nslots = b->open_from = 0;
        b->open = b->quiet = 0;
}

/* Any slot of b still waiting for its delivery report? */
static int in_flight(struct batch *b)
{
        for (size_t i = 0; i < b->nslots; i++)
                if (slot_at(b, i)->in_flight && !slot_at(b, i)->ack.done)
                        return 1;
        return 0;
}

/* The held batches, oldest first (the sealed ones, then the one in hand),
 * for a revoke and for storing what is left when stopping. */
static size_t held_batches(relay_pipeline_t *p, struct batch **out)
{
        size_t n = 0;
        for (size_t k = 0; k < p->nsealed; k++)
                out[n++] = sealed_at(p, k);
        if (p->cur)
                out[n++] = p->cur;
        return n;
}

/* The interned copy of tag (NULL for NULL): outputs name their connection
 * without a copy each; the set is the configured connections. */
static const char *intern(relay_pipeline_t *p, const char *tag)
{
        if (!tag)
                return NULL;
        if (p->tag_hint < p->ntags && !strcmp(p->tags[p->tag_hint], tag))
                return p->tags[p->tag_hint];
        for (size_t i = 0; i < p->ntags; i++)
                if (!strcmp(p->tags[i], tag)) {
                        p->tag_hint = i;
                        return p->tags[i];
                }
        p->tags = relay_realloc(p->tags, (p->ntags + 1) * sizeof(*p->tags));
        p->tag_hint = p->ntags;
        return p->tags[p->ntags++] = relay_strdup(tag);
}

static struct ppart *ppart_find(relay_pipeline_t *p, const char *topic,
                                int32_t partition);

/* The assigned partition of m, or NULL (it was revoked). Records come in
 * runs of one partition: the last one found is tried first. */
static struct ppart *ppart_of(relay_pipeline_t *p, const rd_kafka_message_t *m)
{
        const char *t = rd_kafka_topic_name(m->rkt);
        if (p->part_hint < p->nparts) {
                struct ppart *pp = &p->parts[p->part_hint];
                if (pp->partition == m->partition && !strcmp(pp->topic, t))
                        return pp;
        }
        struct ppart *pp = ppart_find(p, t, m->partition);
        if (pp)
                p->part_hint = (size_t)(pp - p->parts);
        return pp;
}

/* What counts the durable outputs to topic: looked up once per topic.
 * A topic seen for the first time is warmed up before its first record
 * (relay_kafka_topic_warm: otherwise librdkafka holds that record about a
 * second); at most half a second, once per topic and process. */
static struct otopic *otopic_of(relay_pipeline_t *p, const char *topic)
{
        if (p->otopic_hint < p->notopics &&
            !strcmp(p->otopics[p->otopic_hint].topic, topic))
                return &p->otopics[p->otopic_hint];
        for (size_t i = 0; i < p->notopics; i++)
                if (!strcmp(p->otopics[i].topic, topic)) {
                        p->otopic_hint = i;
                        return &p->otopics[i];
                }
        p->otopics =
            relay_realloc(p->otopics, (p->notopics + 1) * sizeof(*p->otopics));
        struct otopic *o = &p->otopics[p->notopics];
        o->topic = relay_strdup(topic);
        o->out = relay_series(p->m.out, topic);
        p->otopic_hint = p->notopics++;
        relay_kafka_topic_warm(p->producer, topic, 500);
        o->rkt = rd_kafka_topic_new(p->producer, topic, NULL);
        return o;
}


static int same_partition(const rd_kafka_message_t *m,
                          const rd_kafka_topic_partition_list_t *parts)
{
        const char *t = rd_kafka_topic_name(m->rkt);
        for (int i = 0; i < parts->cnt; i++)
                if (parts->elems[i].partition == m->partition &&
                    !strcmp(parts->elems[i].topic, t))
                        return 1;
        return 0;
}

/* ---- pausing and serving the consumer --------------------------------- */

static void pause_list(relay_pipeline_t *p,
                       rd_kafka_topic_partition_list_t *parts, int pause)
{
        if (!parts || !parts->cnt)
                return;
        rd_kafka_resp_err_t err =
            pause ? rd_kafka_pause_partitions(p->consumer, parts)
                  : rd_kafka_resume_partitions(p->consumer, parts);
        if (err)
                relay_log(LOG_WARNING, p->worker, "%s partitions: %s",
                          pause ? "pause" : "resume", rd_kafka_err2str(err));
}

static void pause_all(relay_pipeline_t *p, int pause)
{
        rd_kafka_topic_partition_list_t *parts = NULL;
        if (rd_kafka_assignment(p->consumer, &parts) == 0)
                pause_list(p, parts, pause);
        if (parts)
                rd_kafka_topic_partition_list_destroy(parts);
        p->paused = pause;
}

static void backlog_push(relay_pipeline_t *p, rd_kafka_message_t *m)
{
        if (p->backlog_head == p->nbacklog)
                p->backlog_head = p->nbacklog = 0;
        if (p->nbacklog == p->backlog_cap) {
                p->backlog_cap = p->backlog_cap ? 2 * p->backlog_cap : 64;
                p->backlog = relay_realloc(p->backlog, p->backlog_cap *
                                                           sizeof(*p->backlog));
        }
        p->backlog[p->nbacklog++] = m;
}

static rd_kafka_message_t *backlog_pop(relay_pipeline_t *p)
{
        if (p->backlog_head == p->nbacklog)
                return NULL;
        return p->backlog[p->backlog_head++];
}

/* Poll the consumer once (up to ms), paused, so that the group sees a live
 * member and rebalances run; serve the producer's reports too. */
static void serve(relay_pipeline_t *p, long ms)
{
        if (!p->paused)
                pause_all(p, 1);
        rd_kafka_poll(p->producer, 0);
        rd_kafka_message_t *m =
            rd_kafka_consumer_poll(p->consumer, (int)(ms > 0 ? ms : 0));
        polled(p);
        if (!m)
                return;
        if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        relay_log_limited(&p->consumer_log, 10000, LOG_WARNING,
                                          p->worker, "consumer: %s",
                                          rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                return;
        }
        /* A record of a partition assigned while pausing: keep it for the
         * next batch, in order. */
        backlog_push(p, m);
}

/* Serve the consumer when it is due, so that a processor doing a long
 * series of steps never starves it. */
static void serve_if_due(relay_pipeline_t *p)
{
        if (relay_mono_ms() - p->last_serve >= p->serve_ms)
                serve(p, 0);
}

/* Wait until `until` (relay_mono_ms), serving; an interruptible wait
 * also ends when pc.interrupt is set. -1 when stopped (a wait of the
 * batch's flush goes on, when stopping, until the grace runs out). */
static int wait_until(relay_pipeline_t *p, int64_t until, int interruptible,
                      int graceful)
{
        serve_if_due(p);
        for (;;) {
                if (graceful ? relay_pipeline_stopping(p) : !*p->running)
                        return -1;
                /* Stopping, a wait past the grace cannot end in time. */
                if (graceful && !*p->running && until > p->stop_at)
                        return -1;
                if (interruptible && p->pc.interrupt && *p->pc.interrupt)
                        return 0; /* e.g. a SIGHUP: the caller sees to it */
                int64_t left = until - relay_mono_ms();
                if (left <= 0)
                        return 0;
                serve(p, left < 100 ? left : 100);
        }
}

/* ---- pause reasons ----------------------------------------------------- */

void relay_pipeline_paused(relay_pipeline_t *p, const char *fmt, ...)
{
        char why[sizeof(p->reason)];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        if (!strcmp(why, p->reason))
                return;
        if (!p->paused_since)
                p->paused_since = relay_mono_ms();
        relay_metric_set(p->m.paused, 1);
        snprintf(p->reason, sizeof(p->reason), "%s", why);
        relay_log(LOG_WARNING, p->worker,
                  "paused (%lld s so far), nothing stored past the records "
                  "in hand: %s",
                  (long long)(relay_mono_ms() - p->paused_since) / 1000, why);
}

void relay_pipeline_resumed(relay_pipeline_t *p)
{
        if (!p->paused_since)
                return;
        relay_log(LOG_WARNING, p->worker,
                  "resumed after %.1f s paused (last reason: %s)",
                  (double)(relay_mono_ms() - p->paused_since) / 1000.0,
                  p->reason);
        p->paused_since = 0;
        p->reason[0] = '\0';
        relay_metric_set(p->m.paused, 0);
}

int64_t relay_pipeline_paused_since(const relay_pipeline_t *p)
{
        return p->paused_since;
}

/* ---- producing --------------------------------------------------------- */

/* What to do with a failed slot of batch b, by class. */
static void slot_failed(relay_pipeline_t *p, struct batch *b, struct slot *s,
                        rd_kafka_resp_err_t err);

static void slot_produce(relay_pipeline_t *p, struct batch *b, struct slot *s)
{
        rd_kafka_resp_err_t err;
        s->in_flight = 0;
        if (s->kind == SLOT_OUTPUT) {
                /* From the copy its failed report (or the failed enqueue)
                 * kept. */
                err = relay_kafka_produce_once(
                    p->producer, s->ack.kept.topic, s->ack.kept.key,
                    s->ack.kept.key_len, s->ack.kept.value, s->ack.kept.len,
                    NULL, &s->ack, 1);
        } else {
                relay_dlq_info_t info = {p->worker, s->stage,    s->why,
                                         s->status, s->attempts, s->tag,
                                         s->stub};
                err = relay_dlq_produce(p->producer, p->dlq_topic,
                                        b->recs[s->rec].msg, &info, &s->ack);
        }
        if (!err) {
                s->in_flight = 1;
                if (s->kind == SLOT_OUTPUT)
                        relay_kafka_ack_release(&s->ack);
                return;
        }
        s->ack.done = 1;
        s->ack.err = err;
}

void relay_pipeline_produce(relay_pipeline_t *p, size_t i, const char *topic,
                            const void *key, size_t key_len, const void *value,
                            size_t len, const char *tag)
{
        struct slot *s = slot_new(p->cur, i, SLOT_OUTPUT);
        struct otopic *o = otopic_of(p, topic);
        s->tag = intern(p, tag);
        s->count = o->out;
        p->stats.outputs++;
        rd_kafka_resp_err_t err =
            o->rkt ? relay_kafka_produce_once_rkt(p->producer, o->rkt, key,
                                                  key_len, value, len, NULL,
                                                  &s->ack, 1)
                   : relay_kafka_produce_once(p->producer, topic, key, key_len,
                                              value, len, NULL, &s->ack, 1);
        if (!err) {
                s->in_flight = 1;
                return;
        }
        /* Not enqueued: keep a copy so it can be produced again. */
        s->ack.kept.topic = relay_strdup(topic);
        s->ack.kept.key = relay_malloc(key_len ? key_len : 1);
        s->ack.kept.value = relay_malloc(len ? len : 1);
        memcpy(s->ack.kept.key, key, key_len);
        memcpy(s->ack.kept.value, value, len);
        s->ack.kept.key_len = key_len;
        s->ack.kept.len = len;
        s->ack.done = 1;
        s->ack.err = err;
}

/* A dead letter of record i of batch b (the one in hand, or a sealed one
 * whose output was refused): it belongs to that batch. */
static struct slot *dead_letter_slot(relay_pipeline_t *p, struct batch *b,
                                     size_t i, const char *stage,
                                     const char *why, long status, int attempts,
                                     const char *tag, int stub)
{
        struct slot *s = slot_new(b, i, SLOT_DLQ);
        s->stage = stage;
        s->why = relay_strdup(why ? why : "");
        s->status = status;
        s->attempts = attempts;
        s->tag = s->own_tag = tag ? relay_strdup(tag) : NULL;
        s->stub = (unsigned char)stub;
        s->count = relay_series(p->m.dlq, p->dlq_topic, stage);
        if (stub)
                p->stats.stubs++;
        else
                p->stats.dead_letters++;
        slot_produce(p, b, s);
        return s;
}

void relay_pipeline_dead_letter(relay_pipeline_t *p, size_t i,
                                const relay_dlq_info_t *info)
{
        struct batch *b = p->cur;
        if (b->recs[i].state == PREC_DROPPED)
                return; /* its next owner decides */
        /* The stage names are string literals of the workers. */
        dead_letter_slot(p, b, i, info->stage, info->error, info->http_status,
                         info->attempts, info->connection, info->stub);
        b->recs[i].state = PREC_DONE;
}

static void slot_failed(relay_pipeline_t *p, struct batch *b, struct slot *s,
                        rd_kafka_resp_err_t err)
{
        char why[700];
        enum relay_kafka_class cls = relay_kafka_err_class(err);
        const rd_kafka_message_t *m = b->recs[s->rec].msg;
        const char *topic = s->kind == SLOT_OUTPUT && s->ack.kept.topic
                                ? s->ack.kept.topic
                                : p->dlq_topic;
        if (cls == RELAY_KAFKA_FATAL) {
                relay_log(LOG_CRIT, p->worker,
                          "the producer failed fatally (%s); stopping without "
                          "storing past the records in hand",
                          rd_kafka_err2str(err));
                p->fatal = 1;
                return;
        }
        if (cls == RELAY_KAFKA_RECORD && s->kind == SLOT_OUTPUT) {
                /* The output can never be written: the input record is at
                 * fault for that destination. Its dead letter names the
                 * connection, so that a replay redoes only it. */
                snprintf(why, sizeof(why),
                         "%s refused the output (%zu bytes of value): %s",
                         topic, s->ack.kept.len, rd_kafka_err2str(err));
                s->settled = 1;
                relay_kafka_ack_release(&s->ack);
                /* s may move no more, but the new slot may be in a new
                 * chunk: take what is needed first. */
                size_t rec = s->rec;
                const char *tag = s->tag;
                dead_letter_slot(p, b, rec, "produce", why, 0, 0, tag, 0);
                return;
        }
        if (cls == RELAY_KAFKA_RECORD && !s->stub) {
                /* The dead letter is too large (the record plus the relay
                 * headers): write the stub, which always fits. */
                relay_log(LOG_WARNING, p->worker,
                          "the dead letter of %s[%d]@%lld (%zu bytes) was "
                          "refused (%s); writing a stub without the value",
                          rd_kafka_topic_name(m->rkt), (int)m->partition,
                          (long long)m->offset, m->len, rd_kafka_err2str(err));
                s->settled = 1;
                dead_letter_slot(p, b, s->rec, s->stage, s->why, s->status,
                                 s->attempts, s->tag, 1);
                return;
        }
        /* Transient, setup, or a stub refused (setup: the dead-letter
         * topic's own limit is below the headers): produce it again later,
         * storing nothing past it meanwhile. */
        int setup = cls != RELAY_KAFKA_TRANSIENT;
        long base = setup ? 1000 : 100, max = setup ? 30000 : 5000;
        long delay = base;
        for (int k = 0; k < s->tries && delay < max; k++)
                delay *= 2;
        s->tries++;
        s->retry_at = relay_mono_ms() + (delay < max ? delay : max);
        p->stats.produce_retries++;
        p->produce_paused = setup || s->tries >= 3;
        if (setup) {
                relay_pipeline_paused(
                    p,
                    "cannot write to %s: %s (%s); check that the topic "
                    "exists and this worker may write to it",
                    topic, rd_kafka_err2str(err), rd_kafka_err2name(err));
                relay_ready_set(RELAY_READY_OUTPUT, "%s", p->reason);
        } else if (s->tries == 3)
                relay_pipeline_paused(p, "cannot write to %s: %s; retrying",
                                      topic, rd_kafka_err2str(err));
}

/* Slot s of batch b is durable: count it (once). */
static void durable(relay_pipeline_t *p, struct batch *b, struct slot *s)
{
        if (s->settled)
                return;
        s->settled = 1;
        relay_metric_add(s->count, 1);
        if (s->kind == SLOT_DLQ)
                relay_metric_add(
                    relay_series(p->m.failed,
                                 rd_kafka_topic_name(b->recs[s->rec].msg->rkt)),
                    1);
}

/* One pass over batch b's slots, without waiting: count the durable ones,
 * produce failed ones again as their class says. Sets and returns b->open:
 * 1 while a slot is not settled. A sealed batch changes only by delivery
 * reports and revokes: while neither came since a pass that found its
 * slots only waiting, the walk is skipped (filling while every batch slot
 * is taken reaps every 32 records, and would walk every unacknowledged
 * slot of every sealed batch each time). */
static int settle_pass(relay_pipeline_t *p, struct batch *b)
{
        unsigned long reports = relay_kafka_reports();
        if (b->quiet && b->quiet_reports == reports &&
            b->quiet_drops == p->drops && !p->fatal)
                return b->open;
        int open = 0, waiting_only = 1;
        int64_t now = relay_mono_ms();
        /* slot_failed may add slots: loop on the live count. */
        for (size_t i = b->open_from; i < b->nslots && !p->fatal; i++) {
                struct slot *s = slot_at(b, i);
                if (!s->settled) {
                        if (b->recs[s->rec].state == PREC_DROPPED) {
                                /* Its partition went to another member,
                                 * which redoes the record: writing this
                                 * again would only duplicate it. */
                                s->settled = 1;
                        } else if (!s->ack.done) {
                                open = 1;
                        } else if (!s->ack.err) {
                                durable(p, b, s);
                        } else {
                                open = 1;
                                waiting_only = 0;
                                if (s->in_flight || !s->retry_at) {
                                        /* A fresh failure. */
                                        rd_kafka_resp_err_t err = s->ack.err;
                                        s->in_flight = 0;
                                        slot_failed(p, b, s, err);
                                        s = slot_at(b, i);
                                }
                                if (!s->settled && s->retry_at &&
                                    now >= s->retry_at) {
                                        s->retry_at = 0;
                                        slot_produce(p, b, s);
                                        if (s->ack.done && s->ack.err) {
                                                rd_kafka_resp_err_t err =
                                                    s->ack.err;
                                                slot_failed(p, b, s, err);
                                        }
                                }
                        }
                }
                if (!open && s->settled)
                        b->open_from = i + 1;
        }
        b->open = open || p->fatal;
        b->quiet = b->open && waiting_only && !p->fatal;
        b->quiet_reports = reports;
        b->quiet_drops = p->drops;
        return b->open;
}

/* ---- partitions and their lag ------------------------------------------ */

static struct ppart *ppart_find(relay_pipeline_t *p, const char *topic,
                                int32_t partition)
{
        for (size_t i = 0; i < p->nparts; i++)
                if (p->parts[i].partition == partition &&
                    !strcmp(p->parts[i].topic, topic))
                        return &p->parts[i];
        return NULL;
}

static void parts_add(relay_pipeline_t *p,
                      const rd_kafka_topic_partition_list_t *parts)
{
        for (int i = 0; i < parts->cnt; i++) {
                const rd_kafka_topic_partition_t *e = &parts->elems[i];
                if (ppart_find(p, e->topic, e->partition))
                        continue;
                p->parts = relay_realloc(p->parts,
                                         (p->nparts + 1) * sizeof(*p->parts));
                struct ppart *pp = &p->parts[p->nparts++];
                char num[16];
                snprintf(num, sizeof(num), "%d", (int)e->partition);
                pp->topic = relay_strdup(e->topic);
                pp->partition = e->partition;
                pp->stored_ts = 0;
                relay_kafka_ends_add(p->ends, e->topic, e->partition);
                pp->lag = relay_series(p->m.lag, p->group, e->topic, num);
                pp->lag_s = relay_series(p->m.lag_s, p->group, e->topic, num);
                pp->in = relay_series(p->m.in, e->topic);
                pp->st_have = pp->st_blocked = 0;
                pp->next = 0;
                pp->taken_gen = 0;
                pp->woke_ms = 0;
                pp->stored_off = 0;
        }
}

static void parts_remove(relay_pipeline_t *p,
                         const rd_kafka_topic_partition_list_t *parts)
{
        size_t keep = 0;
        for (size_t i = 0; i < p->nparts; i++) {
                struct ppart *pp = &p->parts[i];
                if (rd_kafka_topic_partition_list_find(parts, pp->topic,
                                                       pp->partition)) {
                        /* Its lag is its next owner's to say. */
                        relay_metric_hide(pp->lag);
                        relay_metric_hide(pp->lag_s);
                        relay_kafka_ends_remove(p->ends, pp->topic,
                                                pp->partition);
                        free(pp->topic);
                        continue;
                }
                p->parts[keep++] = *pp;
        }
        p->nparts = keep;
}

static void assignment_changed(relay_pipeline_t *p)
{
        relay_metric_set(p->m.assigned, (double)p->nparts);
        if (p->nparts)
                relay_ready_set(RELAY_READY_ASSIGNED, NULL);
        else
                relay_ready_set(RELAY_READY_ASSIGNED,
                                "no partitions of %s assigned to this member "
                                "of group %s",
                                p->topics, p->group);
}

/* The timestamp of the oldest record of a partition the worker holds
 * (none of them is committed), or 0: in the sealed batches, oldest first,
 * then in the one in hand and the backlog. */
static int64_t oldest_held(relay_pipeline_t *p, const struct ppart *pp)
{
        size_t nb = p->nsealed + (p->cur ? 1 : 0);
        for (size_t k = 0; k < nb; k++) {
                const struct batch *bt =
                    k < p->nsealed ? sealed_at(p, k) : p->cur;
                for (size_t i = 0; i < bt->nrecs; i++) {
                        const rd_kafka_message_t *m = bt->recs[i].msg;
                        if (bt->recs[i].state != PREC_DROPPED &&
                            m->partition == pp->partition &&
                            !strcmp(rd_kafka_topic_name(m->rkt), pp->topic))
                                return rd_kafka_message_timestamp(m, NULL);
                }
        }
        for (size_t i = p->backlog_head; i < p->nbacklog; i++) {
                const rd_kafka_message_t *m = p->backlog[i];
                if (m->partition == pp->partition &&
                    !strcmp(rd_kafka_topic_name(m->rkt), pp->topic))
                        return rd_kafka_message_timestamp(m, NULL);
        }
        return 0;
}

/* Lag of each assigned partition from a statistics report: in records,
 * the end offset less the committed one (the end offset asked of the
 * broker too, see relay_kafka_ends_t); in
 * seconds, the age of the oldest record not committed: the oldest the
 * worker holds of that partition or, holding none (between batches),
 * the last one it stored, whose age bounds that of the next. */
static void on_stats(void *opaque, rd_kafka_t *rk, const json_t *stats)
{
        relay_pipeline_t *p = opaque;
        (void)rk;
        json_t *topics = json_object_get(stats, "topics");
        int64_t now = relay_now_ms();
        for (size_t i = 0; i < p->nparts; i++) {
                struct ppart *pp = &p->parts[i];
                char num[16];
                snprintf(num, sizeof(num), "%d", (int)pp->partition);
                json_t *tp = json_object_get(
                    json_object_get(json_object_get(topics, pp->topic),
                                    "partitions"),
                    num);
                if (!tp)
                        continue;
                /* The end offset: the statistics' (from fetches) or the
                 * broker's (asked apart, for paused partitions). */
                long long end =
                    json_integer_value(json_object_get(tp, "ls_offset"));
                long long asked =
                    relay_kafka_ends_get(p->ends, pp->topic, pp->partition);
                if (asked > end)
                        end = asked;
                long long done =
                    json_integer_value(json_object_get(tp, "committed_offset"));
                long long lag;
                if (end >= 0 && done >= 0)
                        lag = end > done ? end - done : 0;
                else if ((lag = json_integer_value(
                              json_object_get(tp, "consumer_lag"))) < 0)
                        continue; /* not known yet */
                relay_metric_set(pp->lag, (double)lag);
                if (!lag) {
                        relay_metric_set(pp->lag_s, 0);
                        continue;
                }
                int64_t ts = oldest_held(p, pp);
                if (ts <= 0)
                        ts = pp->stored_ts;
                if (ts > 0)
                        relay_metric_set(pp->lag_s,
                                         now > ts ? (double)(now - ts) / 1000.0
                                                  : 0);
        }
}

/* ---- storing ----------------------------------------------------------- */

/* Mark the records of b that are not storable: unfinished, or with a slot
 * that did not settle. */
static void mark_bad(struct batch *b)
{
        for (size_t i = 0; i < b->nrecs; i++)
                b->recs[i].bad = b->recs[i].state != PREC_DONE;
        for (size_t i = b->open_from; i < b->nslots; i++) {
                struct slot *s = slot_at(b, i);
                if (!s->settled)
                        b->recs[s->rec].bad = 1;
        }
}

/* Store, for each partition, the offset after its last record in the
 * batches bs (oldest first) that is preceded only by storable records of
 * that partition, in any of them: nothing is stored past a record that is
 * not storable, across batches. parts (may be NULL = all) limits it to
 * those partitions. Dropped records are skipped. One offset per partition
 * goes to librdkafka, in one call. */
static void store_batches(relay_pipeline_t *p, struct batch *const *bs,
                          size_t nb,
                          const rd_kafka_topic_partition_list_t *parts)
{
        for (size_t i = 0; i < p->nparts; i++)
                p->parts[i].st_have = p->parts[i].st_blocked = 0;
        for (size_t k = 0; k < nb; k++) {
                struct batch *b = bs[k];
                mark_bad(b);
                for (size_t i = 0; i < b->nrecs; i++) {
                        struct prec *r = &b->recs[i];
                        if (r->state == PREC_DROPPED)
                                continue;
                        struct ppart *pp = ppart_of(p, r->msg);
                        if (!pp || pp->st_blocked)
                                continue; /* not assigned: not ours */
                        if (r->bad) {
                                pp->st_blocked = 1;
                                continue;
                        }
                        pp->st_have = 1;
                        pp->st_offset = r->msg->offset + 1;
                        pp->st_ts = rd_kafka_message_timestamp(r->msg, NULL);
                }
        }
        rd_kafka_topic_partition_list_t *st = NULL;
        for (size_t i = 0; i < p->nparts; i++) {
                struct ppart *pp = &p->parts[i];
                if (!pp->st_have)
                        continue;
                pp->st_have = 0;
                if (parts && !rd_kafka_topic_partition_list_find(
                                 parts, pp->topic, pp->partition))
                        continue;
                /* Stored already, by relay_pipeline_store_progress. */
                if (pp->st_offset <= pp->stored_off)
                        continue;
                pp->stored_off = pp->st_offset;
                if (!st)
                        st = rd_kafka_topic_partition_list_new(
                            (int)(p->nparts < 64 ? p->nparts : 64));
                rd_kafka_topic_partition_list_add(st, pp->topic, pp->partition)
                    ->offset = pp->st_offset;
                pp->stored_ts = pp->st_ts;
        }
        if (!st)
                return;
        p->stores++;
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(p->consumer, st);
        for (int i = 0; !err && i < st->cnt; i++)
                if (st->elems[i].err)
                        err = st->elems[i].err;
        if (err)
                /* The partition was revoked meanwhile: its new owner reads
                 * the records again (not a loss). */
                relay_log(LOG_WARNING, p->worker, "cannot store offsets: %s",
                          rd_kafka_err2str(err));
        else if (parts)
                /* A revoke: where the next owner starts (once committed). */
                for (int i = 0; i < st->cnt; i++)
                        relay_log(LOG_INFO, p->worker,
                                  "%s[%d]: stored offset %lld before handing "
                                  "it back",
                                  st->elems[i].topic,
                                  (int)st->elems[i].partition,
                                  (long long)st->elems[i].offset);
        rd_kafka_topic_partition_list_destroy(st);
}

/* The least time between two stores of relay_pipeline_store_progress. */
#define PROGRESS_MS 50

void relay_pipeline_store_progress(relay_pipeline_t *p)
{
        int64_t now = relay_mono_ms();
        if (now - p->progress_ms < PROGRESS_MS)
                return;
        p->progress_ms = now;
        unsigned long before = p->stores;
        store_batches(p, p->scratch, held_batches(p, p->scratch), NULL);
        if (p->stores != before)
                relay_kafka_commit_stored(p->consumer);
}

/* ---- rebalances -------------------------------------------------------- */

static void on_assigned(void *opaque, rd_kafka_t *rk,
                        const rd_kafka_topic_partition_list_t *parts)
{
        relay_pipeline_t *p = opaque;
        relay_metric_add(relay_series(p->m.rebalances, p->group, "assign"), 1);
        parts_add(p, parts);
        assignment_changed(p);
        /* While waiting, new partitions stay paused too; otherwise they are
         * resumed explicitly, because librdkafka keeps a partition's pause
         * across a rebalance: one revoked while this worker waited would
         * come back paused and never be fetched again. */
        rd_kafka_topic_partition_list_t *copy =
            rd_kafka_topic_partition_list_copy(parts);
        pause_list(p, copy, p->paused);
        rd_kafka_topic_partition_list_destroy(copy);
}

/* A revoke while batches are in flight: wait (bounded) for the acks of
 * every held batch, sealed or in hand, count what is durable, store what
 * is finished of the revoked partitions in order across the batches, and
 * drop the rest of their records from every batch. */
static void on_revoke(void *opaque, rd_kafka_t *rk,
                      const rd_kafka_topic_partition_list_t *parts)
{
        relay_pipeline_t *p = opaque;
        int lost = rd_kafka_assignment_lost(rk);
        struct batch **bs = p->scratch;
        size_t nb = held_batches(p, bs);
        if (!lost) {
                /* Only Kafka is waited for here, never a platform. */
                int64_t until = relay_mono_ms() + p->revoke_wait_ms;
                for (size_t k = 0; k < nb; k++)
                        while (in_flight(bs[k]) && relay_mono_ms() < until)
                                rd_kafka_poll(p->producer, 50);
                /* Settle what reported, without producing again. */
                for (size_t k = 0; k < nb; k++)
                        for (size_t i = bs[k]->open_from; i < bs[k]->nslots;
                             i++) {
                                struct slot *s = slot_at(bs[k], i);
                                if (s->ack.done && !s->ack.err)
                                        durable(p, bs[k], s);
                        }
                store_batches(p, bs, nb, parts);
        }
        size_t dropped = 0;
        for (size_t k = 0; k < nb; k++)
                for (size_t i = 0; i < bs[k]->nrecs; i++) {
                        struct prec *r = &bs[k]->recs[i];
                        if (r->state != PREC_DROPPED &&
                            same_partition(r->msg, parts)) {
                                r->state = PREC_DROPPED;
                                dropped++;
                        }
                }
        if (dropped)
                p->drops++;
        /* Records consumed while paused of those partitions go too. */
        size_t keep = p->backlog_head;
        for (size_t i = p->backlog_head; i < p->nbacklog; i++) {
                if (same_partition(p->backlog[i], parts)) {
                        rd_kafka_message_destroy(p->backlog[i]);
                        dropped++;
                } else {
                        p->backlog[keep++] = p->backlog[i];
                }
        }
        p->nbacklog = keep;
        p->stats.dropped += dropped;
        relay_metric_add(
            relay_series(p->m.rebalances, p->group, lost ? "lost" : "revoke"),
            1);
        parts_remove(p, parts);
        assignment_changed(p);
        if (dropped)
                relay_log(LOG_INFO, p->worker,
                          "%zu record(s) in hand of %d revoked partition(s) "
                          "left for their next owner",
                          dropped, parts->cnt);
}

/* ---- the batch --------------------------------------------------------- */

size_t relay_pipeline_count(const relay_pipeline_t *p)
{
        return p->cur ? p->cur->nrecs : 0;
}

const rd_kafka_message_t *relay_pipeline_msg(const relay_pipeline_t *p,
                                             size_t i)
{
        return p->cur->recs[i].msg;
}

int relay_pipeline_dropped(const relay_pipeline_t *p, size_t i)
{
        return p->cur->recs[i].state == PREC_DROPPED;
}

int relay_pipeline_is_done(const relay_pipeline_t *p, size_t i)
{
        return p->cur->recs[i].state == PREC_DONE;
}

void relay_pipeline_done(relay_pipeline_t *p, size_t i)
{
        if (p->cur->recs[i].state == PREC_PENDING)
                p->cur->recs[i].state = PREC_DONE;
}

void relay_pipeline_wake_at(relay_pipeline_t *p, int64_t mono_ms)
{
        p->wake = mono_ms;
}

rd_kafka_t *relay_pipeline_consumer(relay_pipeline_t *p)
{
        return p->consumer;
}

rd_kafka_t *relay_pipeline_producer(relay_pipeline_t *p)
{
        return p->producer;
}

const relay_pipeline_stats_t *relay_pipeline_stats(const relay_pipeline_t *p)
{
        return &p->stats;
}

/* Hand record i to the processor until it takes it. -1 when stopped
 * first (the record stays unfinished, so nothing is stored past it). */
static int take(relay_pipeline_t *p, size_t i)
{
        long backoff = 500;
        for (;;) {
                p->wake = 0;
                if (p->proc->record(p->opaque, p, i) == RELAY_OK) {
                        if (backoff > 500)
                                relay_ready_set(RELAY_READY_INPUT, NULL);
                        return 0;
                }
                relay_ready_set(RELAY_READY_INPUT, "%s",
                                p->reason[0] ? p->reason
                                             : "a record cannot be read now");
                int64_t until = p->wake ? p->wake : relay_mono_ms() + backoff;
                backoff = backoff < 5000 ? backoff * 2 : 10000;
                if (wait_until(p, until, 1, 0)) {
                        relay_ready_set(RELAY_READY_INPUT, NULL);
                        return -1;
                }
                if (p->cur->recs[i].state == PREC_DROPPED)
                        return 0;
                /* A wait can be long (the registry is away): let a reload
                 * through; record i holds nothing of the processor's. */
                if (p->proc->idle)
                        p->proc->idle(p->opaque, p);
        }
}

/* Before the next batch, wait until at most commits_in_flight batch
 * commits are unanswered (serving the consumer when due): what a crash
 * re-delivers is then the batches held and those. Bounded by
 * revoke_wait_ms: a Kafka that does not answer is said, and the work goes
 * on (its commits are answered with an error in the end). */
static void commits_wait(relay_pipeline_t *p)
{
        if (!p->commits_in_flight || relay_pipeline_stopping(p))
                return;
        int64_t until = relay_mono_ms() + p->revoke_wait_ms;
        int left;
        while ((left = relay_kafka_commits_wait(p->consumer,
                                                p->commits_in_flight, 50)) >
               p->commits_in_flight) {
                serve_if_due(p);
                if (relay_mono_ms() >= until || relay_pipeline_stopping(p))
                        break;
        }
        if (left > p->commits_in_flight && !relay_pipeline_stopping(p))
                relay_log_limited(&p->commit_log, 10000, LOG_WARNING, p->worker,
                                  "%d commit(s) unanswered by Kafka after "
                                  "%ld ms; going on",
                                  left, p->revoke_wait_ms);
}

/* Release the oldest sealed batch: its records and slots go (the chunks
 * stay for the batches to come). */
static void release(relay_pipeline_t *p)
{
        struct batch *b = sealed_at(p, 0);
        for (size_t i = 0; i < b->nrecs; i++)
                rd_kafka_message_destroy(b->recs[i].msg);
        b->nrecs = 0;
        slots_clear(b);
        p->head = (p->head + 1) % p->nring;
        p->nsealed--;
        p->stats.batches++;
        if (!p->cur)
                p->cur = &p->ring[(p->head + p->nsealed) % p->nring];
}

/* Without waiting: settle what reported in every sealed batch (producing
 * failed ones again by class), then store and release the oldest ones
 * that are settled, in order, one commit each. A batch is never stored
 * before an older one: the offsets move only past durable work. */
static void reap(relay_pipeline_t *p)
{
        int open = 0;
        rd_kafka_poll(p->producer, 0);
        for (size_t k = 0; k < p->nsealed && !p->fatal; k++)
                open |= settle_pass(p, sealed_at(p, k));
        if (p->fatal)
                return;
        while (p->nsealed && !sealed_at(p, 0)->open) {
                struct batch *b = sealed_at(p, 0);
                store_batches(p, &b, 1, NULL);
                release(p);
                relay_kafka_commit_stored(p->consumer);
                commits_wait(p);
        }
        if (!open && p->produce_paused) {
                p->produce_paused = 0;
                relay_pipeline_resumed(p);
                relay_ready_set(RELAY_READY_OUTPUT, NULL);
        }
}

/* Wait, serving, until at most keep batches are sealed (the older ones
 * settled, stored and released). Stopping, the wait goes on within the
 * grace (or stop_ms without one). 0 when done, -1 when not (or the
 * producer failed fatally). */
static int drain(relay_pipeline_t *p, size_t keep, long stop_ms)
{
        int64_t stop_until = 0;
        for (;;) {
                reap(p);
                if (p->fatal)
                        return -1;
                if (p->nsealed <= keep)
                        return 0;
                int64_t now = relay_mono_ms();
                if (!*p->running) {
                        if (!stop_until) {
                                relay_pipeline_stopping(p);
                                /* The grace, or stop_ms without one. */
                                stop_until = now + (p->grace_ms ? 0 : stop_ms);
                                if (p->stop_at > stop_until)
                                        stop_until = p->stop_at;
                        }
                        if (now >= stop_until)
                                return -1;
                }
                if (now - p->last_serve >= p->serve_ms || p->paused)
                        serve(p, 50);
                else
                        rd_kafka_poll(p->producer, 50);
                relay_heartbeat();
        }
}

/* librdkafka 2.0.2 (Debian's) stops fetching a partition once the
 * consumer's queue holds queued.max.messages.kbytes (or
 * queued.min.messages), and looks again only when its broker thread wakes:
 * on an answer, an operation for it, or after a second (the fixed
 * rd_kafka_max_block_ms; 2.2.0 made it fetch.queue.backoff.ms). A worker
 * slower than the fetch, one catching up above all, fills the queue, drains
 * it, and then waits up to that second with the broker known to hold more:
 * relay-deliver moved 88k records/s with a 16 MiB queue, and 323k with
 * the wake below (tests/bench/RESULTS.md, "Fourth pass").
 *
 * The wake: a ListOffsets request for the partition, which the broker
 * thread of its leader sends, and so loops once more and fetches. It reads
 * and moves nothing (a pause and resume, the other way in, restarts the
 * fetch from the consumer's position and drops what is queued). The thread
 * of the end offsets sends it (relay_kafka_ends_wake): this one does not
 * wait for the answer. Asked when a poll that waited found nothing while a
 * partition's high watermark is past its next record, at most every
 * WAKE_GAP_MS a partition; not while the pipeline holds its partitions
 * paused. */

/* 1 when the broker is known to hold records of pp past the last one
 * taken (its high watermark as of the last fetch is past it). */
static int lagging(relay_pipeline_t *p, struct ppart *pp)
{
        int64_t lo, hi;
        return pp->next > 0 &&
               !rd_kafka_get_watermark_offsets(p->consumer, pp->topic,
                                               pp->partition, &lo, &hi) &&
               hi > pp->next;
}

static int any_lagging(relay_pipeline_t *p)
{
        for (size_t i = 0; i < p->nparts; i++)
                if (lagging(p, &p->parts[i]))
                        return 1;
        return 0;
}

static void wake_fetchers(relay_pipeline_t *p)
{
        if (p->paused)
                return;
        int64_t now = relay_mono_ms();
        for (size_t i = 0; i < p->nparts; i++) {
                struct ppart *pp = &p->parts[i];
                if (now - pp->woke_ms < WAKE_GAP_MS || !lagging(p, pp))
                        continue;
                pp->woke_ms = now;
                relay_kafka_ends_wake(p->ends, pp->topic, pp->partition);
        }
}

/* 1 when the broker is known to hold more records of a partition of the
 * batch in hand than the consumer handed over: its high watermark (as of
 * the last fetch) is past the last record taken. They are on their way
 * (the consumer fetched one message set of several), and the batch waits
 * for them, within batch_wait_ms, rather than go out without them. */
static int more_coming(relay_pipeline_t *p)
{
        for (size_t i = 0; i < p->nparts; i++)
                if (p->parts[i].taken_gen == p->fill_gen &&
                    lagging(p, &p->parts[i]))
                        return 1;
        return 0;
}

/* Fill the batch in hand, up to batch_size records. Natural batching: it
 * goes out as soon as the consumer has nothing more ready and a batch
 * slot is free for the next one (what arrives meanwhile joins that one),
 * so a lone record does not wait. While every slot is taken it keeps
 * filling, at most batch_wait_ms after its first record, as the older
 * batches' acks come in. With one batch in flight no slot is ever free:
 * the batch waits batch_wait_ms for more, one batch at a time. */
static void fill(relay_pipeline_t *p)
{
        struct batch *b = p->cur;
        int64_t first = 0;
        unsigned since_reap = 0;
        p->fill_gen++;
        if (p->paused)
                pause_all(p, 0);
        while (*p->running && !p->fatal && b->nrecs < p->pc.batch_size) {
                rd_kafka_message_t *m = backlog_pop(p);
                if (!m && b->nrecs && p->nsealed + 1 < p->nring &&
                    p->pc.batch_wait_ms - (long)(relay_mono_ms() - first) > 0) {
                        /* A record the consumer has ready is taken below
                         * whatever more_coming says (with a slot free and
                         * time left, the wait is 0 or up to 10 ms): ask
                         * for one first, and only when none is ready look
                         * up the watermarks, as every record did before. */
                        if ((m = rd_kafka_consumer_poll(p->consumer, 0)))
                                polled(p);
                }
                if (!m) {
                        int room = p->nsealed + 1 < p->nring, more = 0;
                        long left = 500;
                        if (b->nrecs) {
                                if (room && !(more = more_coming(p)))
                                        left = 0; /* what is ready, no more */
                                else if ((left = p->pc.batch_wait_ms -
                                                 (long)(relay_mono_ms() -
                                                        first)) <= 0)
                                        break;
                                if (more && left > 10)
                                        left = 10;
                        }
                        /* Sealed batches wait for acks: back soon. */
                        if (p->nsealed && left > 5)
                                left = 5;
                        /* With records known to wait at the broker, a
                         * fetcher asleep is woken after a short wait. */
                        int short_wait = left > 10 && any_lagging(p);
                        if (short_wait)
                                left = 10;
                        m = rd_kafka_consumer_poll(p->consumer, (int)left);
                        polled(p);
                        if (!m && left >= 5)
                                wake_fetchers(p);
                        if (!m) {
                                if (b->nrecs && !room && p->nsealed) {
                                        /* Every slot taken: their acks
                                         * may free one. */
                                        reap(p);
                                        since_reap = 0;
                                        if (!p->produce_paused)
                                                continue;
                                } else if (more || (short_wait && b->nrecs)) {
                                        continue; /* on their way */
                                }
                                /* Nothing ready and a slot free: it goes.
                                 * Or quiet: back to the run loop, whose
                                 * idle hook (a SIGHUP reload) may have
                                 * work. */
                                break;
                        }
                }
                if (m->err) {
                        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                relay_log_limited(&p->consumer_log, 10000,
                                                  LOG_WARNING, p->worker,
                                                  "consumer: %s",
                                                  rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (!b->nrecs)
                        first = relay_mono_ms();
                size_t i = b->nrecs++;
                b->recs[i].msg = m;
                b->recs[i].state = PREC_PENDING;
                p->stats.records++;
                struct ppart *pp = ppart_of(p, m);
                if (pp) {
                        pp->next = m->offset + 1;
                        pp->taken_gen = p->fill_gen;
                }
                relay_metric_add(
                    pp ? pp->in
                       : relay_series(p->m.in, rd_kafka_topic_name(m->rkt)),
                    1);
                if (take(p, i))
                        break;
                /* A record taken after a wait: the backlog may hold more
                 * than the batch; the batch still ends at batch_size. */
                if (p->nsealed && p->nsealed + 1 >= p->nring &&
                    ++since_reap >= 32) {
                        /* Filling while every slot is taken: see to the
                         * acks now and then. */
                        reap(p);
                        since_reap = 0;
                }
        }
}

/* Flush the batch in hand and seal it: the processor is done with it (its
 * end hook runs), its acks may still be outstanding. */
static void flush_seal(relay_pipeline_t *p)
{
        /* Stopping, the batch in hand is still finished, within the
         * grace; what is not by then is left for the next owner. */
        while (!p->fatal && !relay_pipeline_stopping(p)) {
                p->wake = 0;
                if (p->proc->flush(p->opaque, p) == RELAY_OK)
                        break;
                if (wait_until(p, p->wake, 0, 1))
                        break;
        }
        struct batch *b = p->cur;
        relay_metric_observe(p->m.batch, (double)b->nrecs);
        if (p->proc->end)
                p->proc->end(p->opaque, p);
        b->open = 1;
        b->open_from = 0;
        b->quiet = 0;
        p->nsealed++;
        p->cur = p->nsealed < p->nring
                     ? &p->ring[(p->head + p->nsealed) % p->nring]
                     : NULL;
}

int relay_pipeline_run(relay_pipeline_t *p)
{
        while (*p->running && !p->fatal) {
                if (p->proc->idle)
                        p->proc->idle(p->opaque, p);
                fill(p);
                if (p->cur && p->cur->nrecs)
                        flush_seal(p);
                /* Wait while every batch slot is taken, or until every
                 * batch is settled when a produce fault must heal first. */
                drain(p, p->produce_paused ? 0 : p->nring - 1, 10000);
                if (p->paused && *p->running)
                        pause_all(p, 0);
        }
        /* Stopping: the batch in hand was flushed and sealed above; settle
         * them all within the grace, and store what is finished of those
         * that did not settle, in order across them. */
        if (!p->fatal && p->nsealed && drain(p, 0, 10000) && !p->fatal) {
                struct batch **bs = p->scratch;
                size_t nb = 0;
                for (size_t k = 0; k < p->nsealed; k++)
                        bs[nb++] = sealed_at(p, k);
                store_batches(p, bs, nb, NULL);
                relay_kafka_commit_stored(p->consumer);
        }
        while (p->nsealed)
                release(p);
        return p->fatal ? -1 : 0;
}

/* ---- life cycle -------------------------------------------------------- */

static void metrics_new(struct pmetrics *m)
{
        const enum relay_metric_type C = RELAY_METRIC_COUNTER,
                                     G = RELAY_METRIC_GAUGE;
        m->in =
            relay_metric(C, "relay_records_in_total",
                         "records consumed, per input topic", "topic", NULL, 0);
        m->out = relay_metric(C, "relay_records_out_total",
                              "outputs acknowledged by Kafka, per output topic",
                              "topic", NULL, 0);
        m->failed = relay_metric(C, "relay_records_failed_total",
                                 "input records dead-lettered (once per dead "
                                 "letter), per input topic",
                                 "topic", NULL, 0);
        m->dlq = relay_metric(C, "relay_dead_letters_total",
                              "dead letters acknowledged by Kafka, per "
                              "dead-letter topic and stage (decode, map, "
                              "encode, deliver, produce)",
                              "topic,reason", NULL, 0);
        m->lag = relay_metric(G, "relay_consumer_lag",
                              "records not yet committed: end offset less "
                              "committed offset, per assigned partition",
                              "group,topic,partition", NULL, 0);
        m->lag_s = relay_metric(G, "relay_consumer_lag_seconds",
                                "age of the oldest record not yet committed, "
                                "in seconds, per assigned partition",
                                "group,topic,partition", NULL, 0);
        m->rebalances = relay_metric(C, "relay_rebalances_total",
                                     "rebalances by kind (assign, revoke, "
                                     "lost)",
                                     "group,kind", NULL, 0);
        m->assigned = relay_metric_series(
            relay_metric(G, "relay_assigned_partitions",
                         "partitions assigned to this member", NULL, NULL, 0));
        m->paused = relay_metric_series(
            relay_metric(G, "relay_paused",
                         "1 while the work is paused (a platform down, "
                         "throttling, the registry or an output away)",
                         NULL, NULL, 0));
        relay_metric_set(m->paused, 0);
        m->batch = relay_metric_series(relay_metric(
            RELAY_METRIC_HISTOGRAM, "relay_batch_records", "records per batch",
            NULL, relay_size_buckets, relay_size_nbuckets));
}

relay_pipeline_t *relay_pipeline_new(const relay_conf_t *conf,
                                     const relay_pipeline_conf_t *pc,
                                     const relay_processor_t *proc,
                                     void *opaque, size_t *max_record_bytes_out,
                                     char *errstr, size_t errstr_size)
{
        relay_pipeline_t *p = relay_calloc(1, sizeof(*p));
        p->pc = *pc;
        p->worker = relay_strdup(pc->worker);
        p->dlq_topic = relay_strdup(pc->dlq_topic);
        p->group = relay_strdup(pc->group_id);
        p->topics = relay_strdup(pc->topics);
        p->grace_ms = pc->shutdown_grace_ms > 0 ? pc->shutdown_grace_ms : 0;
        metrics_new(&p->m);
        assignment_changed(p);
        p->pc.worker = p->worker;
        p->pc.dlq_topic = p->dlq_topic;
        p->pc.topics = p->pc.group_id = p->pc.max_record_key = NULL;
        p->proc = proc;
        p->opaque = opaque;
        p->running = pc->running;
        p->rebalance.revoke = on_revoke;
        p->rebalance.assigned = on_assigned;
        p->rebalance.stats = on_stats;
        if (!p->pc.batch_size)
                p->pc.batch_size = 1;
        p->nring =
            p->pc.batches_in_flight > 1 ? (size_t)p->pc.batches_in_flight : 1;
        p->ring = relay_calloc(p->nring, sizeof(*p->ring));
        for (size_t k = 0; k < p->nring; k++)
                p->ring[k].recs =
                    relay_calloc(p->pc.batch_size, sizeof(*p->ring[k].recs));
        p->cur = &p->ring[0];
        p->scratch = relay_calloc(p->nring, sizeof(*p->scratch));

        if (!(p->producer =
                  relay_kafka_producer_new(conf, errstr, errstr_size)))
                goto fail;
        /* Every record within the limit must fit its dead letter. */
        long long mmb =
            relay_kafka_conf_int(p->producer, "message.max.bytes", 1000000);
        long long room = mmb - RELAY_DLQ_HEADROOM;
        if (room < 64) {
                relay_seterr(errstr, errstr_size,
                             "kafka message.max.bytes (%lld) leaves no room "
                             "for records: it must be above %d",
                             mmb, RELAY_DLQ_HEADROOM + 64);
                goto fail;
        }
        if (!p->pc.max_record_bytes)
                p->pc.max_record_bytes = (size_t)room;
        else if ((long long)p->pc.max_record_bytes > room) {
                relay_seterr(
                    errstr, errstr_size,
                    "%s (%zu) is more than kafka message.max.bytes (%lld) "
                    "minus %d bytes kept for dead-letter headers: a record "
                    "that large could not be dead-lettered whole. Set it to "
                    "at most %lld, or raise kafka.message.max.bytes (and the "
                    "broker's limit for the dead-letter topic)",
                    pc->max_record_key ? pc->max_record_key
                                       : "max_record_bytes",
                    p->pc.max_record_bytes, mmb, RELAY_DLQ_HEADROOM, room);
                goto fail;
        }
        if (max_record_bytes_out)
                *max_record_bytes_out = p->pc.max_record_bytes;

        if (!(p->consumer = relay_kafka_consumer_new(
                  conf, pc->group_id, &p->rebalance, p, errstr, errstr_size)))
                goto fail;
        long stats_ms = (long)relay_kafka_conf_int(
            p->consumer, "statistics.interval.ms", 5000);
        /* Its rounds for lag; its wakes for fetching, always. */
        if (!(p->ends = relay_kafka_ends_new(
                  p->consumer, p->m.lag && stats_ms > 0 ? stats_ms : 0))) {
                relay_seterr(errstr, errstr_size,
                             "cannot start the end offsets' thread");
                goto fail;
        }
        long long mpi =
            relay_kafka_conf_int(p->consumer, "max.poll.interval.ms", 300000);
        /* Polled at least ten times per max.poll.interval.ms while
         * waiting; a revoke waits for Kafka at most a third of it. */
        p->serve_ms = (long)(mpi / 10 < 1000 ? mpi / 10 : 1000);
        p->commits_in_flight = pc->commits_in_flight;
        p->revoke_wait_ms = (long)(mpi / 3 < 10000 ? mpi / 3 : 10000);
        p->last_serve = relay_mono_ms();
        if (relay_kafka_subscribe(p->consumer, pc->topics, errstr, errstr_size))
                goto fail;
        return p;
fail:
        relay_pipeline_destroy(p);
        return NULL;
}

void relay_pipeline_destroy(relay_pipeline_t *p)
{
        if (!p)
                return;
        /* Closing revokes the partitions through on_revoke, which must see
         * no batch. */
        for (size_t k = 0; k < p->nring; k++) {
                struct batch *b = &p->ring[k];
                for (size_t i = 0; i < b->nrecs; i++)
                        rd_kafka_message_destroy(b->recs[i].msg);
                b->nrecs = 0;
                slots_clear(b);
        }
        p->nsealed = 0;
        p->cur = NULL;
        relay_kafka_ends_destroy(p->ends);
        p->ends = NULL;
        relay_kafka_consumer_close(p->consumer);
        /* The handles first: the producer is destroyed with none held. */
        for (size_t i = 0; i < p->notopics; i++)
                if (p->otopics[i].rkt)
                        rd_kafka_topic_destroy(p->otopics[i].rkt);
        relay_kafka_producer_close(p->producer, 10000);
        for (size_t i = p->backlog_head; i < p->nbacklog; i++)
                rd_kafka_message_destroy(p->backlog[i]);
        free(p->backlog);
        for (size_t k = 0; k < p->nring; k++) {
                for (size_t i = 0; i < p->ring[k].nchunks; i++)
                        free(p->ring[k].chunks[i]);
                free(p->ring[k].chunks);
                free(p->ring[k].recs);
        }
        free(p->ring);
        free(p->scratch);
        for (size_t i = 0; i < p->notopics; i++)
                free(p->otopics[i].topic);
        free(p->otopics);
        for (size_t i = 0; i < p->ntags; i++)
                free(p->tags[i]);
        free(p->tags);
        for (size_t i = 0; i < p->nparts; i++)
                free(p->parts[i].topic);
        free(p->parts);
        free(p->worker);
        free(p->dlq_topic);
        free(p->group);
        free(p->topics);
        free(p);
}

/* The maximum number of outputs a batch can have is not bounded here:
 * slots grow in chunks as records produce them. */
