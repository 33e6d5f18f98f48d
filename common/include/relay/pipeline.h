/*
 * The pipeline: the one engine under every consuming worker (transform and
 * deliver today; match, poll and exactly-once later).
 *
 *   consume → batch → process (a processor vtable) → seal → (acks) →
 *   store and commit, in order, while the next batches are processed
 *
 * The engine owns the consumer, the producer, the batches held (the one
 * in hand and those in flight), every output and dead letter produced for
 * them, and the offsets. A processor
 * only says what a record becomes: outputs (relay_pipeline_produce), a
 * dead letter (relay_pipeline_dead_letter), or work left for flush (a
 * delivery). Whenever anything must be waited for (acks, a retry backoff, a
 * paused platform, the schema registry), the engine pauses the assigned
 * partitions and keeps polling the consumer, so that heartbeats,
 * rebalances and max.poll.interval.ms are always served; no processor
 * sleeps, and no processor work runs inside a rebalance callback.
 *
 * Produce errors are handled by class (relay_kafka_err_class): transient
 * ones are produced again after a backoff; a record the cluster refuses as
 * too large or invalid is dead-lettered, and a dead letter that is itself
 * too large is written as a stub (relay.* headers and origin, no value); a
 * setup fault (unknown topic, not authorised) pauses the batch, says why,
 * and is produced again until it heals. An offset is stored only past
 * records that are finished and whose outputs and dead letters are all
 * durable; nothing is stored past one that is not. No record can make the
 * worker crash-loop.
 *
 * Batches in flight: a flushed batch is sealed and the next one is read
 * and processed while its acks are outstanding, up to batches_in_flight
 * batches held; sealed batches are stored oldest first, each only once
 * every one before it was, so the promise above holds per partition
 * across batches. A batch goes out as soon as nothing more is ready and
 * a batch slot is free (batch_wait_ms is only an upper bound while every
 * slot is taken).
 *
 * A revoke settles the acks in flight of every batch held (bounded: it is
 * Kafka, not HTTP), stores and commits what is finished of the revoked
 * partitions, in order across the batches, and drops the rest of their
 * records from every batch: the next owner starts exactly there, so only
 * records that were in flight can be delivered twice.
 *
 * Exactly-once later: the store step is one function (store_batches in
 * pipeline.c); a transactional variant hands the same offsets to
 * rd_kafka_send_offsets_to_transaction instead.
 */
#ifndef RELAY_PIPELINE_H
#define RELAY_PIPELINE_H

#include "relay/common.h"
#include "relay/conf.h"
#include "relay/dlq.h"
#include "relay/kafka.h"

#include <signal.h>

typedef struct relay_pipeline relay_pipeline_t;

/* What a worker plugs into the engine. record and flush are required; the
 * others may be NULL. Every callback gets the processor's opaque. */
typedef struct relay_processor {
        /* Take record i of the batch in hand (relay_pipeline_msg). OK:
         * taken; it is finished when the processor calls
         * relay_pipeline_done (or dead-letters it), here or in flush.
         * RETRY: it cannot be taken now (the schema registry is away):
         * the engine waits, serving the consumer, until the time set with
         * relay_pipeline_wake_at (default: a growing backoff) and calls
         * again with the same record. FATAL is treated as RETRY. */
        enum relay_result (*record)(void *opaque, relay_pipeline_t *p,
                                    size_t i);
        /* Do the batch's remaining work, one step at a time (e.g. one
         * HTTP request). OK: nothing left. RETRY: call again, no earlier
         * than the time set with relay_pipeline_wake_at (default: at
         * once, after serving the consumer if it is due). */
        enum relay_result (*flush)(void *opaque, relay_pipeline_t *p);
        /* The batch in hand is over for the processor (flushed; its
         * outputs' acks may still be outstanding, and it may still be
         * stored or not): drop per-record state. The next batch starts
         * again at record 0. */
        void (*end)(void *opaque, relay_pipeline_t *p);
        /* Between batches, and between two tries at a record that record
         * answered RETRY for (e.g. a SIGHUP reload). */
        void (*idle)(void *opaque, relay_pipeline_t *p);
} relay_processor_t;

typedef struct relay_pipeline_conf {
        const char *worker;   /* for logs and relay.worker, e.g. "transform" */
        const char *topics;   /* input, comma-separated */
        const char *group_id; /* consumer group */
        const char *dlq_topic;
        size_t batch_size; /* records a batch holds at most */
        /* the longest a batch waits for more records after its first: a
         * batch goes out at once when nothing more is ready (nor known
         * to be on the broker) and another batch may be in flight; while
         * batches_in_flight are held, it fills meanwhile, at most this
         * long */
        long batch_wait_ms;
        size_t max_record_bytes;        /* 0: message.max.bytes - headroom */
        const char *max_record_key;     /* its config key, for the error */
        volatile sig_atomic_t *running; /* cleared: finish and stop */
        /* once running is cleared, how long the batch in hand may still
         * take to finish (0: stop at once; what is not finished is left
         * for the partitions' next owner) */
        long shutdown_grace_ms;
        /* batch commits Kafka may leave unanswered when the next batch is
         * taken (0: no wait); a crash re-delivers the batch in hand and
         * these */
        int commits_in_flight;
        /* batches held at once, the one in hand included (0 or 1: one at
         * a time): the next batch is read and processed while the acks
         * of up to this many less one flushed batches are outstanding;
         * offsets are still stored in order, only past durable work. A
         * crash re-delivers the batches held, and the records of the
         * commits_in_flight unanswered commits */
        int batches_in_flight;
        /* set (may be NULL): end a wait early so that the idle hook runs,
         * e.g. relay_reload for a SIGHUP */
        volatile sig_atomic_t *interrupt;
} relay_pipeline_conf_t;

/* The engine with its consumer (subscribed) and producer made from conf's
 * kafka.* keys. Refuses (NULL + errstr) a max_record_bytes whose dead
 * letter could not fit the producer's message.max.bytes. proc and opaque
 * are borrowed. On success *max_record_bytes_out (may be NULL) gets the
 * limit in force. */
relay_pipeline_t *relay_pipeline_new(const relay_conf_t *conf,
                                     const relay_pipeline_conf_t *pc,
                                     const relay_processor_t *proc,
                                     void *opaque, size_t *max_record_bytes_out,
                                     char *errstr, size_t errstr_size);

/* Run until *running is cleared, then finish: fetch no more, finish the
 * batch in hand within shutdown_grace_ms, settle every batch in flight
 * (bounded), store and commit what is finished. 0, or -1 when the
 * producer failed fatally (the worker should exit non-zero; nothing past
 * the unfinished records was stored). */
int relay_pipeline_run(relay_pipeline_t *p);

/* Close the consumer (committing) and the producer (flushing), free all.
 * Accepts NULL. */
void relay_pipeline_destroy(relay_pipeline_t *p);

/* ---- for processors ---------------------------------------------------- */

/* The batch in hand: its size and record i (owned by the engine). */
size_t relay_pipeline_count(const relay_pipeline_t *p);
const rd_kafka_message_t *relay_pipeline_msg(const relay_pipeline_t *p,
                                             size_t i);
/* 1 when record i's partition was revoked: leave it alone. */
int relay_pipeline_dropped(const relay_pipeline_t *p, size_t i);
/* 1 when record i is finished. */
int relay_pipeline_is_done(const relay_pipeline_t *p, size_t i);
/* Record i is finished (its outputs may still be in flight). */
void relay_pipeline_done(relay_pipeline_t *p, size_t i);

/* Store and commit what is finished of the batch in hand so far: per
 * partition, the offset after its last record preceded only by finished
 * ones (done, every output and dead letter durable), in it and in the
 * batches in flight before it. For a processor whose batch takes a while
 * (relay-deliver's: several round trips, longer while a platform fails),
 * so that a crash sends again what was unfinished, not the whole batch.
 * At most every PROGRESS_MS (pipeline.c); never moves an offset back. */
void relay_pipeline_store_progress(relay_pipeline_t *p);

/* Produce one output of record i (copied). tag (may be NULL; copied)
 * names what produced it, e.g. the connection: a dead letter that
 * replaces a refused output carries it as relay.connection. */
void relay_pipeline_produce(relay_pipeline_t *p, size_t i, const char *topic,
                            const void *key, size_t key_len, const void *value,
                            size_t len, const char *tag);

/* Dead-letter record i with info (copied; info->worker may be NULL for
 * the pipeline's worker name). Finishes the record once durable. */
void relay_pipeline_dead_letter(relay_pipeline_t *p, size_t i,
                                const relay_dlq_info_t *info);

/* When flush or record wants to be called again (relay_mono_ms time). */
void relay_pipeline_wake_at(relay_pipeline_t *p, int64_t mono_ms);

/* Say that the work is paused and why (logged at WARNING when the reason
 * changes, with how long it has been paused) and that it resumed
 * (logged once). */
void relay_pipeline_paused(relay_pipeline_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void relay_pipeline_resumed(relay_pipeline_t *p);
/* Since when (relay_mono_ms) the work is paused, 0 when it is not. */
int64_t relay_pipeline_paused_since(const relay_pipeline_t *p);

/* 1 while the worker runs (its running flag). */
int relay_pipeline_running(const relay_pipeline_t *p);
/* 1 once stopping and the shutdown grace has run out: abort what is
 * under way (an HTTP request) and leave the rest to the next owner. */
int relay_pipeline_stopping(relay_pipeline_t *p);

/* The engine's clients, for processors that need them (e.g. to read a
 * librdkafka setting). */
rd_kafka_t *relay_pipeline_consumer(relay_pipeline_t *p);
rd_kafka_t *relay_pipeline_producer(relay_pipeline_t *p);

/* Counters, for the stop line and later metrics. */
typedef struct relay_pipeline_stats {
        unsigned long records, outputs, dead_letters, stubs, produce_retries,
            batches, dropped;
} relay_pipeline_stats_t;
const relay_pipeline_stats_t *relay_pipeline_stats(const relay_pipeline_t *p);

#endif
