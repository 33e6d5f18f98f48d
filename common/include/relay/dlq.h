/*
 * Dead-letter queues: a record that cannot be transformed or delivered is
 * produced, unchanged (key, value and its own headers), to dlq.<platform>
 * or dlq.transform, with relay.* headers saying why, so that an operator can
 * read the reason and replay the record to its original topic.
 */
#ifndef RELAY_DLQ_H
#define RELAY_DLQ_H

#include "relay/kafka.h"

/* Header names, also read by relayctl. */
#define RELAY_DLQ_H_ERROR     "relay.error"
#define RELAY_DLQ_H_STAGE     "relay.stage"
#define RELAY_DLQ_H_STATUS    "relay.http_status"
#define RELAY_DLQ_H_ATTEMPTS  "relay.attempts"
#define RELAY_DLQ_H_TOPIC     "relay.original_topic"
#define RELAY_DLQ_H_PARTITION "relay.original_partition"
#define RELAY_DLQ_H_OFFSET    "relay.original_offset"
#define RELAY_DLQ_H_FAILED_AT "relay.failed_at"
#define RELAY_DLQ_H_WORKER    "relay.worker"
/* transform: the one connection that failed (one dead letter per failed
 * connection). A replayed record carries it too, so that the transform
 * re-applies only that connection and destinations that already took the
 * record get no duplicate. */
#define RELAY_DLQ_H_CONNECTION "relay.connection"
/* Set on a stub dead letter: the record's dead letter would have been too
 * large to write, so it carries the relay.* headers and the origin but not
 * the value; the header says how many bytes were left out and why. */
#define RELAY_DLQ_H_OMITTED "relay.value_omitted"
/* Set by relayctl dlq replay on the record it puts back:
 * "<dlq topic>/<partition>/<offset>". */
#define RELAY_DLQ_H_REPLAYED "relay.replayed_from"

typedef struct relay_dlq_info {
        const char *worker;     /* e.g. "deliver-mparticle" */
        const char *stage;      /* "decode", "map", "encode", "deliver" */
        const char *error;      /* the reason, for a person */
        long http_status;       /* last HTTP status, 0 when none */
        int attempts;           /* delivery attempts made, 0 when none */
        const char *connection; /* transform: the failed connection, or NULL */
        int stub; /* write a stub: headers and origin, no value (see below) */
} relay_dlq_info_t;

/* Room kept for the relay.* headers of a dead letter within the
 * producer's message.max.bytes: a record up to message.max.bytes minus
 * this always fits in its dead letter (workers refuse a max_record_bytes
 * that breaks this at start). */
#define RELAY_DLQ_HEADROOM 10240

/* Produce msg to dlq_topic with the relay.* headers above (replacing any
 * relay.* headers from an earlier trip) plus the message's other headers.
 * With info->stub, the value and the message's own headers are left out
 * (and a key over 1 KiB), and RELAY_DLQ_H_OMITTED says how many bytes
 * and why: for a record whose dead letter the producer refused as too
 * large. Does not wait on a full queue (RD_KAFKA_RESP_ERR__QUEUE_FULL is
 * returned). The result arrives in ack (may be NULL). Returns the enqueue
 * error. */
rd_kafka_resp_err_t relay_dlq_produce(rd_kafka_t *producer,
                                      const char *dlq_topic,
                                      const rd_kafka_message_t *msg,
                                      const relay_dlq_info_t *info,
                                      relay_kafka_ack_t *ack);

#endif
