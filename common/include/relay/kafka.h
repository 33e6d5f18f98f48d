/*
 * Kafka wrappers on librdkafka with relay's delivery promise built in:
 *
 * - consumers never store an offset by themselves
 *   (enable.auto.offset.store=false): the worker stores an offset only after
 *   the record was produced onward, delivered or dead-lettered, and the
 *   periodic auto-commit then commits only stored offsets;
 * - producers are idempotent (enable.idempotence=true), and every produce
 *   can carry an ack slot that the delivery report fills in, so a worker can
 *   wait until its outputs are durable before it stores the input offset.
 *
 * kafka.* keys of the worker's conf go to librdkafka; the conf's origin of
 * a bad key ("file:line") is named in the error.
 */
#ifndef RELAY_KAFKA_H
#define RELAY_KAFKA_H

#include "relay/conf.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* Filled in by the delivery report of one produced message. When keep is
 * set and the message failed, the report also keeps a copy of its topic,
 * key and value in kept (owned by the ack: free with
 * relay_kafka_ack_release), so that the caller can produce it again after
 * a transient or setup failure without holding a copy of every output. */
typedef struct relay_kafka_ack {
        volatile int done;       /* 1 once the report arrived */
        rd_kafka_resp_err_t err; /* its result */
        int32_t partition;
        int64_t offset;
        int keep;
        struct {
                char *topic;
                void *key, *value;
                size_t key_len, len;
        } kept;
} relay_kafka_ack_t;

/* What a produce error means for the record, so that no record can make
 * a worker crash-loop and no healthy record is dead-lettered:
 * - TRANSIENT: the cluster is slow or away (queue full, timeouts, no
 *   leader, transport): wait and produce again;
 * - RECORD: this record can never be written (too large, invalid): it is
 *   the record's fault, dead-letter it;
 * - SETUP: the deployment is wrong (unknown topic with auto-creation off,
 *   not authorised): pause, say why, produce again when it heals;
 * - FATAL: the producer itself is unusable (idempotence state lost): the
 *   worker stops without storing, and a restart recovers. */
enum relay_kafka_class {
        RELAY_KAFKA_OK = 0,
        RELAY_KAFKA_TRANSIENT,
        RELAY_KAFKA_RECORD,
        RELAY_KAFKA_SETUP,
        RELAY_KAFKA_FATAL
};

enum relay_kafka_class relay_kafka_err_class(rd_kafka_resp_err_t err);
const char *relay_kafka_class_name(enum relay_kafka_class c);

/* Free what a failed report kept (see keep above); the ack is reusable. */
void relay_kafka_ack_release(relay_kafka_ack_t *ack);

/* What a consumer calls back from its rebalances (either may be NULL).
 * revoke runs before partitions are handed back (not when they were lost)
 * so that the records in hand of those partitions can be settled and
 * stored; the stored offsets are then committed synchronously. assigned
 * runs after new partitions were assigned (e.g. to pause them while the
 * worker waits). stats gets each statistics report of the consumer
 * (statistics.interval.ms, librdkafka's JSON parsed; borrowed for the
 * call). None may block for long: they run inside a poll. */
struct json_t;
typedef struct relay_kafka_rebalance {
        void (*revoke)(void *opaque, rd_kafka_t *rk,
                       const rd_kafka_topic_partition_list_t *parts);
        void (*assigned)(void *opaque, rd_kafka_t *rk,
                         const rd_kafka_topic_partition_list_t *parts);
        void (*stats)(void *opaque, rd_kafka_t *rk, const struct json_t *stats);
        /* Read every assigned partition from its first offset, whatever
         * was committed: for a consumer whose group only shares out the
         * partitions of a compacted state topic that it reads whole on
         * each assignment (poll's checkpoints). */
        int from_beginning;
} relay_kafka_rebalance_t;

/* A consumer in group_id. The conf's kafka.* keys are applied, then the
 * at-least-once settings above (which the conf cannot override). cb (may
 * be NULL; borrowed, must outlive the consumer) is called from rebalances
 * with opaque, see relay_kafka_rebalance_t. Logs go through relay_log.
 * Returns NULL with errstr. */
rd_kafka_t *relay_kafka_consumer_new(const relay_conf_t *conf,
                                     const char *group_id,
                                     const relay_kafka_rebalance_t *cb,
                                     void *opaque, char *errstr,
                                     size_t errstr_size);

/* A client's effective value of a librdkafka property as a number (e.g.
 * "message.max.bytes", "max.poll.interval.ms"), or def when unknown. */
long long relay_kafka_conf_int(rd_kafka_t *rk, const char *name, long long def);

/* Subscribe to a comma-separated topic list. 0 or -1 with errstr. */
int relay_kafka_subscribe(rd_kafka_t *rk, const char *topics, char *errstr,
                          size_t errstr_size);

/* An idempotent producer. NULL with errstr. */
rd_kafka_t *relay_kafka_producer_new(const relay_conf_t *conf, char *errstr,
                                     size_t errstr_size);

/* How many delivery reports the producers of this process have served so
 * far: a pass over acks that found nothing done need not be repeated
 * while it has not moved. */
unsigned long relay_kafka_reports(void);

/* For a process whose only Kafka client is a producer (relay-ingest):
 * its readiness (relay/admin.h) says "not ready" from now until the
 * producer's statistics report a broker connection up, and again whenever
 * none is (consumers do this by themselves). */
void relay_kafka_producer_readiness(void);

/* Ask for topic's metadata before the producer's first record to it,
 * waiting at most timeout_ms (the answer is not needed: a failure is only
 * the warm-up missed). librdkafka 2.0.2 (Debian's) holds the first record
 * produced to a topic it has no metadata for until its broker thread next
 * wakes by itself, up to a second after the client started; asked first,
 * the record goes out after linger.ms. */
void relay_kafka_topic_warm(rd_kafka_t *rk, const char *topic, int timeout_ms);

/* Produce one message; the headers (may be NULL) are owned by the producer
 * from the call on, whatever the result. A full local queue is waited out
 * (serving delivery reports) rather than failed. ack may be NULL. Returns
 * RD_KAFKA_RESP_ERR_NO_ERROR or the error of the enqueue. */
rd_kafka_resp_err_t relay_kafka_produce(rd_kafka_t *rk, const char *topic,
                                        const void *key, size_t key_len,
                                        const void *value, size_t value_len,
                                        rd_kafka_headers_t *headers,
                                        relay_kafka_ack_t *ack);

/* Produce once: like relay_kafka_produce, but a full local queue is
 * returned (RD_KAFKA_RESP_ERR__QUEUE_FULL) rather than waited out, so that
 * the caller can wait while serving its consumer. The headers are owned by
 * the producer from the call on, whatever the result. With keep, a failed
 * report keeps a copy of the message in ack->kept (which the caller must
 * have initialised and releases); without, ack->kept is cleared. */
rd_kafka_resp_err_t relay_kafka_produce_once(rd_kafka_t *rk, const char *topic,
                                             const void *key, size_t key_len,
                                             const void *value,
                                             size_t value_len,
                                             rd_kafka_headers_t *headers,
                                             relay_kafka_ack_t *ack, int keep);

/* relay_kafka_produce_once to a topic handle of rk's (rd_kafka_topic_new,
 * kept by the caller): what a worker producing to a few topics record
 * after record uses, since librdkafka finds a topic named per message in
 * its topic list under a lock. The same results and ownership. */
rd_kafka_resp_err_t relay_kafka_produce_once_rkt(rd_kafka_t *rk,
                                                 rd_kafka_topic_t *rkt,
                                                 const void *key,
                                                 size_t key_len,
                                                 const void *value,
                                                 size_t value_len,
                                                 rd_kafka_headers_t *headers,
                                                 relay_kafka_ack_t *ack,
                                                 int keep);

/* Produce once to one partition (RD_KAFKA_PARTITION_UA: the
 * partitioner's), without headers; results as relay_kafka_produce_once
 * without keep. */
rd_kafka_resp_err_t relay_kafka_produce_to(rd_kafka_t *rk, const char *topic,
                                           int32_t partition, const void *key,
                                           size_t key_len, const void *value,
                                           size_t value_len,
                                           relay_kafka_ack_t *ack);

/* The partition of key among partitions as the Java client (and relay's
 * producers, murmur2_random) place it: murmur2(key) & 0x7fffffff modulo
 * partitions. */
int32_t relay_kafka_key_partition(const void *key, size_t key_len,
                                  int32_t partitions);

/* topic's partition count; a topic that does not exist is created with
 * partitions and the configs (name, value pairs, NULL-terminated; may be
 * NULL), e.g. {"cleanup.policy", "compact", NULL}. Waits up to about 30 s
 * for the broker. -1 with errstr. */
int32_t relay_kafka_topic_ensure(rd_kafka_t *rk, const char *topic,
                                 int partitions, const char *const *configs,
                                 char *errstr, size_t errstr_size);

/* Wait until every ack in acks[0..n) is done or timeout_ms passes (< 0:
 * until all are done; every message gets a report, a failure at the latest
 * after message.timeout.ms). Serves delivery reports meanwhile. Returns the
 * number of acks that are not done or failed (0 = all durable). */
size_t relay_kafka_wait_acks(rd_kafka_t *rk, relay_kafka_ack_t *acks, size_t n,
                             int timeout_ms);

/* Store the offset after msg for the next commit. 0 or -1 (logged). */
int relay_kafka_store(rd_kafka_t *rk, const rd_kafka_message_t *msg);

/* Commit the stored offsets now, asynchronously (after each batch, so lag
 * dashboards and a restarted replica see progress at once). */
void relay_kafka_commit_stored(rd_kafka_t *rk);

/* Wait (serving only their answers, up to timeout_ms) until at most `most`
 * of those commits are unanswered by the broker; returns how many are.
 * A crash re-delivers the batch in hand and those whose commit was not
 * answered, so this bounds the duplicates a kill -9 makes. */
int relay_kafka_commits_wait(rd_kafka_t *rk, int most, int timeout_ms);

/* Close a consumer: commit stored offsets, leave the group, destroy. */
void relay_kafka_consumer_close(rd_kafka_t *rk);

/* Flush (up to timeout_ms) and destroy a producer; logs what was left. */
void relay_kafka_producer_close(rd_kafka_t *rk, int timeout_ms);

/* Add a string header. */
void relay_kafka_header_add(rd_kafka_headers_t *h, const char *name,
                            const char *value);
void relay_kafka_header_addf(rd_kafka_headers_t *h, const char *name,
                             const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The end offsets of a consumer's partitions, asked of the broker every
 * interval_ms by a thread of their own (rd_kafka_query_watermark_offsets),
 * for lag: librdkafka's statistics learn a partition's end offset from
 * fetching it, and a paused partition is not fetched. The worker's thread
 * adds and removes partitions as they are assigned and revoked; get says
 * the largest end offset seen, -1 until one is known. All accept NULL.
 * interval_ms <= 0: no rounds, only what wake asks for.
 *
 * wake asks for one partition's end offsets at once, without waiting for
 * the answer: the request wakes the broker thread of the partition's
 * leader, which then looks again at what it may fetch (see the pipeline's
 * wake_fetchers for why librdkafka 2.0.2 needs it). A partition already
 * waiting to be asked is not asked twice. */
typedef struct relay_kafka_ends relay_kafka_ends_t;
relay_kafka_ends_t *relay_kafka_ends_new(rd_kafka_t *rk, long interval_ms);
void relay_kafka_ends_add(relay_kafka_ends_t *e, const char *topic,
                          int32_t partition);
void relay_kafka_ends_remove(relay_kafka_ends_t *e, const char *topic,
                             int32_t partition);
int64_t relay_kafka_ends_get(relay_kafka_ends_t *e, const char *topic,
                             int32_t partition);
void relay_kafka_ends_wake(relay_kafka_ends_t *e, const char *topic,
                           int32_t partition);
void relay_kafka_ends_destroy(relay_kafka_ends_t *e);

#endif
