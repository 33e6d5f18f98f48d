/*
 * Writing records to a dead-letter topic with the headers that explain
 * them (see relay/dlq.h).
 */
#include "relay/dlq.h"
#include "relay/common.h"
#include "relay/log.h"

#include <string.h>

rd_kafka_resp_err_t relay_dlq_produce(rd_kafka_t *producer,
                                      const char *dlq_topic,
                                      const rd_kafka_message_t *msg,
                                      const relay_dlq_info_t *info,
                                      relay_kafka_ack_t *ack)
{
        rd_kafka_headers_t *h = rd_kafka_headers_new(12);
        relay_kafka_header_add(h, RELAY_DLQ_H_ERROR, info->error);
        relay_kafka_header_add(h, RELAY_DLQ_H_STAGE, info->stage);
        if (info->http_status)
                relay_kafka_header_addf(h, RELAY_DLQ_H_STATUS, "%ld",
                                        info->http_status);
        relay_kafka_header_addf(h, RELAY_DLQ_H_ATTEMPTS, "%d", info->attempts);
        relay_kafka_header_add(h, RELAY_DLQ_H_TOPIC,
                               rd_kafka_topic_name(msg->rkt));
        relay_kafka_header_addf(h, RELAY_DLQ_H_PARTITION, "%d",
                                (int)msg->partition);
        relay_kafka_header_addf(h, RELAY_DLQ_H_OFFSET, "%lld",
                                (long long)msg->offset);
        relay_kafka_header_addf(h, RELAY_DLQ_H_FAILED_AT, "%lld",
                                (long long)relay_now_ms());
        relay_kafka_header_add(h, RELAY_DLQ_H_WORKER, info->worker);
        if (info->connection)
                relay_kafka_header_add(h, RELAY_DLQ_H_CONNECTION,
                                       info->connection);
        if (info->stub)
                relay_kafka_header_addf(
                    h, RELAY_DLQ_H_OMITTED,
                    "value of %zu bytes, key of %zu bytes and the record's "
                    "own headers left out: the dead letter would exceed the "
                    "producer's message.max.bytes",
                    msg->len, msg->key_len);

        rd_kafka_headers_t *orig = NULL;
        if (!info->stub && rd_kafka_message_headers(msg, &orig) ==
                               RD_KAFKA_RESP_ERR_NO_ERROR) {
                const char *name;
                const void *val;
                size_t size;
                for (size_t i = 0;
                     !rd_kafka_header_get_all(orig, i, &name, &val, &size); i++)
                        if (strncmp(name, "relay.", 6))
                                rd_kafka_header_add(h, name, -1, val,
                                                    (ssize_t)size);
        }
        relay_log(LOG_WARNING, info->worker,
                  "dead-lettering %s[%d]@%lld to %s at stage %s%s%s%s: %s",
                  rd_kafka_topic_name(msg->rkt), (int)msg->partition,
                  (long long)msg->offset, dlq_topic, info->stage,
                  info->connection ? " (connection " : "",
                  info->connection ? info->connection : "",
                  info->connection ? ")" : "", info->error);
        if (info->stub)
                return relay_kafka_produce_once(
                    producer, dlq_topic, msg->key_len > 1024 ? NULL : msg->key,
                    msg->key_len > 1024 ? 0 : msg->key_len, NULL, 0, h, ack, 0);
        return relay_kafka_produce_once(producer, dlq_topic, msg->key,
                                        msg->key_len, msg->payload, msg->len, h,
                                        ack, 0);
}
