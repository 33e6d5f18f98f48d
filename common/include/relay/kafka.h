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

/* Filled in by the delivery report of one produced message. */
typedef struct relay_kafka_ack {
        volatile int done;       /* 1 once the report arrived */
        rd_kafka_resp_err_t err; /* its result */
        int32_t partition;
        int64_t offset;
} relay_kafka_ack_t;

/* A consumer in group_id. The conf's kafka.* keys are applied, then the
 * at-least-once settings above (which the conf cannot override). Before
 * partitions are handed back in a rebalance, drain(opaque) is called (if
 * not NULL) to finish and store the records in hand; the stored offsets are
 * then committed synchronously. Logs go through relay_log. Returns NULL
 * with errstr. */
rd_kafka_t *relay_kafka_consumer_new(const relay_conf_t *conf,
                                     const char *group_id,
                                     void (*drain)(void *opaque), void *opaque,
                                     char *errstr, size_t errstr_size);

/* Subscribe to a comma-separated topic list. 0 or -1 with errstr. */
int relay_kafka_subscribe(rd_kafka_t *rk, const char *topics, char *errstr,
                          size_t errstr_size);

/* An idempotent producer. NULL with errstr. */
rd_kafka_t *relay_kafka_producer_new(const relay_conf_t *conf, char *errstr,
                                     size_t errstr_size);

/* Produce one message; the headers (may be NULL) are owned by the producer
 * from the call on, whatever the result. A full local queue is waited out
 * (serving delivery reports) rather than failed. ack may be NULL. Returns
 * RD_KAFKA_RESP_ERR_NO_ERROR or the error of the enqueue. */
rd_kafka_resp_err_t relay_kafka_produce(rd_kafka_t *rk, const char *topic,
                                        const void *key, size_t key_len,
                                        const void *value, size_t value_len,
                                        rd_kafka_headers_t *headers,
                                        relay_kafka_ack_t *ack);

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

#endif
