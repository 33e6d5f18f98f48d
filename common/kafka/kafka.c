/*
 * librdkafka consumers and producers configured for at-least-once delivery.
 * See relay/kafka.h for the promise; this file applies the worker's kafka.*
 * keys, pins the settings the promise depends on, and routes librdkafka's
 * logs and errors into relay_log.
 */
#include "relay/kafka.h"
#include "relay/admin.h"
#include "relay/common.h"
#include "relay/log.h"
#include "relay/metrics.h"

#include <jansson.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        /* Transport errors are retried by librdkafka itself; only a fatal
         * error (idempotence state lost) needs the worker to stop. */
        int level = err == RD_KAFKA_RESP_ERR__FATAL ? LOG_CRIT : LOG_WARNING;
        relay_log(level, "kafka", "%s: %s: %s", rd_kafka_name(rk),
                  rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static atomic_ulong reports;

unsigned long relay_kafka_reports(void)
{
        return atomic_load_explicit(&reports, memory_order_relaxed);
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        atomic_fetch_add_explicit(&reports, 1, memory_order_relaxed);
        relay_kafka_ack_t *ack = m->_private;
        /* During a broker outage every queued message fails alike. */
        static relay_log_limit_t lim;
        if (m->err)
                relay_log_limited(&lim, 10000, LOG_WARNING, "kafka",
                                  "delivery to %s failed: %s",
                                  rd_kafka_topic_name(m->rkt),
                                  rd_kafka_err2str(m->err));
        if (!ack)
                return;
        if (m->err && ack->keep) {
                /* The payload is only valid inside this callback. */
                relay_kafka_ack_release(ack);
                ack->kept.topic = relay_strdup(rd_kafka_topic_name(m->rkt));
                ack->kept.key_len = m->key_len;
                ack->kept.len = m->len;
                ack->kept.key = relay_malloc(m->key_len ? m->key_len : 1);
                ack->kept.value = relay_malloc(m->len ? m->len : 1);
                if (m->key_len)
                        memcpy(ack->kept.key, m->key, m->key_len);
                if (m->len)
                        memcpy(ack->kept.value, m->payload, m->len);
        }
        ack->err = m->err;
        ack->partition = m->partition;
        ack->offset = m->offset;
        ack->done = 1;
}

static int set(rd_kafka_conf_t *kc, const char *name, const char *value,
               const char *origin, char *errstr, size_t errstr_size)
{
        char why[512];
        if (rd_kafka_conf_set(kc, name, value, why, sizeof(why)) ==
            RD_KAFKA_CONF_OK)
                return 0;
        relay_seterr(errstr, errstr_size, "%s: kafka key '%s': %s", origin,
                     name, why);
        return -1;
}

/* One kafka group configures a worker's consumer and producer alike; the
 * properties that only make sense for the other kind are left out rather
 * than have librdkafka warn about them at every start. */
static const char *const consumer_only[] = {"auto.offset.reset",
                                            "enable.auto.commit",
                                            "auto.commit.interval.ms",
                                            "session.timeout.ms",
                                            "heartbeat.interval.ms",
                                            "max.poll.interval.ms",
                                            "group.",
                                            "partition.assignment.strategy",
                                            "isolation.level",
                                            "fetch.",
                                            "enable.partition.eof",
                                            "queued.",
                                            "check.crcs",
                                            NULL};
/* Set before the worker's keys, which may change them: statistics feed
 * the metrics (lag, queues). The assignment strategy stays librdkafka's
 * eager default: with cooperative-sticky, librdkafka 2.0.2 (Debian's) let
 * a member deliver from the partitions it kept during the second phase of
 * a rebalance, refused its commits (ILLEGAL_GENERATION) and declared those
 * partitions lost, so their next owner redid some 1,300 delivered records
 * (fault 0109; the README says more). kafka.partition.assignment.strategy
 * turns it on; the rebalance callback handles both protocols. */
static const char *const client_defaults[] = {"statistics.interval.ms", "5000",
                                              NULL};

/* The producer's defaults (kafka.* keys override them):
 * - partitioner murmur2_random: a key lands on the partition the Java
 *   client would choose (librdkafka's own default, consistent_random, is
 *   CRC32), so relay's outputs and a Java producer's agree on where a key
 *   lives; keyless records are spread at random as before;
 * - linger.ms 5, said here because it was measured: with batches in
 *   flight a longer linger only delays each batch's acks (transform over
 *   loyalty events, 4 batches of 500 in flight: 20 ms was 10% slower,
 *   50 ms half as fast); librdkafka's batch sizes (10000 messages, 1 MB)
 *   are already above a batch's outputs. */
static const char *const producer_defaults[] = {"statistics.interval.ms",
                                                "5000",
                                                "partitioner",
                                                "murmur2_random",
                                                "linger.ms",
                                                "5",
                                                NULL};

static const char *const producer_only[] = {"linger.ms",
                                            "partitioner",
                                            "queue.buffering.",
                                            "batch.",
                                            "acks",
                                            "request.required.acks",
                                            "message.timeout.ms",
                                            "delivery.timeout.ms",
                                            "compression.",
                                            "transactional.id",
                                            "message.send.max.retries",
                                            "retries",
                                            NULL};

static int other_kind(const char *name, const char *const *list)
{
        for (size_t i = 0; list && list[i]; i++) {
                size_t n = strlen(list[i]);
                if (list[i][n - 1] == '.' ? !strncmp(name, list[i], n)
                                          : !strcmp(name, list[i]))
                        return 1;
        }
        return 0;
}

/* What a consumer calls back from its rebalances. */
struct drain {
        const relay_kafka_rebalance_t *cb;
        void *opaque;
        rd_kafka_queue_t *commits; /* answers to relay_kafka_commit_stored */
        int unanswered;            /* of those commits */
};

/* Set by relay_kafka_producer_readiness: a process whose only client is
 * a producer (relay-ingest) is not ready while its producer has no broker
 * connection up. */
static atomic_int producer_ready_owner;

void relay_kafka_producer_readiness(void)
{
        atomic_store(&producer_ready_owner, 1);
        relay_ready_set(RELAY_READY_KAFKA,
                        "no connection to a Kafka broker is up yet");
}

/* Queue sizes and broker connections from a statistics report, as
 * metrics; a consumer's report then goes to its stats callback (lag). */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
        static relay_metric_t *queue, *up;
        static int once;
        if (!once) {
                once = 1;
                queue = relay_metric(RELAY_METRIC_GAUGE,
                                     "relay_kafka_queue_messages",
                                     "messages in librdkafka's queues: the "
                                     "producer's not yet acknowledged, the "
                                     "consumer's fetched not yet taken",
                                     "client", NULL, 0);
                up = relay_metric(RELAY_METRIC_GAUGE, "relay_kafka_brokers_up",
                                  "broker connections up", "client", NULL, 0);
        }
        json_error_t jerr;
        json_t *root = json_loadb(json, len, 0, &jerr);
        if (!root)
                return 0;
        int consumer = rd_kafka_type(rk) == RD_KAFKA_CONSUMER;
        const char *client = consumer ? "consumer" : "producer";
        long long nup = 0, queued = 0;
        const char *name;
        json_t *b, *t;
        json_object_foreach(json_object_get(root, "brokers"), name, b)
        {
                /* Logical brokers (the group coordinator) have no node. */
                if (json_integer_value(json_object_get(b, "nodeid")) >= 0 &&
                    !strcmp(json_string_value(json_object_get(b, "state"))
                                ? json_string_value(json_object_get(b, "state"))
                                : "",
                            "UP"))
                        nup++;
        }
        if (consumer || atomic_load(&producer_ready_owner)) {
                if (!nup)
                        relay_ready_set(RELAY_READY_KAFKA,
                                        "no connection to a Kafka broker is "
                                        "up (%s)",
                                        rd_kafka_name(rk));
                else
                        relay_ready_set(RELAY_READY_KAFKA, NULL);
        }
        if (consumer) {
                json_object_foreach(json_object_get(root, "topics"), name, t)
                {
                        const char *pn;
                        json_t *part;
                        json_object_foreach(json_object_get(t, "partitions"),
                                            pn, part)
                        {
                                queued += json_integer_value(
                                    json_object_get(part, "fetchq_cnt"));
                        }
                }
        } else {
                queued = json_integer_value(json_object_get(root, "msg_cnt"));
        }
        relay_metric_set(relay_series(queue, client), (double)queued);
        relay_metric_set(relay_series(up, client), (double)nup);
        struct drain *d = opaque;
        if (consumer && d && d->cb && d->cb->stats)
                d->cb->stats(d->opaque, rk, root);
        json_decref(root);
        return 0; /* librdkafka frees json */
}

/* A librdkafka conf with the worker's kafka.* keys (less those in skip),
 * then the pinned ones. */
static rd_kafka_conf_t *conf_new(const relay_conf_t *conf,
                                 const char *const *skip,
                                 const char *const *defaults,
                                 const char *const *pinned, char *errstr,
                                 size_t errstr_size)
{
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        for (size_t i = 0; defaults && defaults[i]; i += 2)
                if (set(kc, defaults[i], defaults[i + 1], "relay", errstr,
                        errstr_size))
                        goto fail;
        for (size_t i = 0; i < relay_conf_kafka_count(conf); i++)
                if (!other_kind(relay_conf_kafka_name(conf, i), skip) &&
                    set(kc, relay_conf_kafka_name(conf, i),
                        relay_conf_kafka_value(conf, i),
                        relay_conf_kafka_origin(conf, i), errstr, errstr_size))
                        goto fail;
        for (size_t i = 0; pinned && pinned[i]; i += 2)
                if (set(kc, pinned[i], pinned[i + 1], "relay", errstr,
                        errstr_size))
                        goto fail;
        rd_kafka_conf_set_log_cb(kc, relay_log_rdkafka_cb);
        rd_kafka_conf_set_error_cb(kc, error_cb);
        rd_kafka_conf_set_stats_cb(kc, stats_cb);
        return kc;
fail:
        rd_kafka_conf_destroy(kc);
        return NULL;
}

static void commit_sync(rd_kafka_t *rk, const char *when)
{
        rd_kafka_resp_err_t err = rd_kafka_commit(rk, NULL, 0);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
                relay_log(LOG_WARNING, "kafka", "commit %s: %s", when,
                          rd_kafka_err2str(err));
}

/* The answer to a commit: a failed one is said (its offsets go again with
 * the next commit). */
static void commit_answered(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *offsets)
{
        static relay_log_limit_t lim;
        if (!err || err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
                if (relay_log_level >= LOG_DEBUG && offsets && offsets->cnt)
                        relay_log(LOG_DEBUG, "kafka",
                                  "%s: committed %d partition(s), %s [%d] "
                                  "at %" PRId64,
                                  rd_kafka_name(rk), offsets->cnt,
                                  offsets->elems[0].topic,
                                  (int)offsets->elems[0].partition,
                                  offsets->elems[0].offset);
                return;
        }
        relay_log_limited(&lim, 10000, LOG_WARNING, "kafka", "%s: commit: %s",
                          rd_kafka_name(rk), rd_kafka_err2str(err));
}

/* Auto-commits and synchronous ones. */
static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets,
                             void *opaque)
{
        (void)opaque;
        commit_answered(rk, err, offsets);
}

/* The commits after each batch, answered on their own queue. */
static void batch_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *offsets,
                            void *opaque)
{
        struct drain *d = opaque;
        d->unanswered--;
        commit_answered(rk, err, offsets);
}

static void error_free(rd_kafka_error_t *e)
{
        if (e) {
                relay_log(LOG_WARNING, "kafka", "rebalance: %s",
                          rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
        }
}

/* On a revoke, the records in hand of those partitions are settled and
 * their offsets committed before the partitions go to another member,
 * which then starts exactly where this one stopped. Partitions that were
 * lost (session timed out) are already someone else's: nothing is
 * committed then, but the worker is still told so that it drops them. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
        struct drain *d = opaque;
        int coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                relay_log(LOG_INFO, "kafka", "%s: assigned %d partition(s)",
                          rd_kafka_name(rk), parts->cnt);
                for (int i = 0; d && d->cb && d->cb->from_beginning &&
                                i < parts->cnt;
                     i++)
                        parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
                if (coop)
                        error_free(rd_kafka_incremental_assign(rk, parts));
                else
                        rd_kafka_assign(rk, parts);
                if (d && d->cb && d->cb->assigned)
                        d->cb->assigned(d->opaque, rk, parts);
                return;
        }
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
                int lost = rd_kafka_assignment_lost(rk);
                relay_log(lost ? LOG_WARNING : LOG_INFO, "kafka",
                          "%s: %s %d partition(s)", rd_kafka_name(rk),
                          lost ? "lost" : "handing back", parts->cnt);
                if (d && d->cb && d->cb->revoke)
                        d->cb->revoke(d->opaque, rk, parts);
                if (!lost)
                        commit_sync(rk, "before handing back partitions");
        } else {
                relay_log(LOG_WARNING, "kafka", "%s: rebalance: %s",
                          rd_kafka_name(rk), rd_kafka_err2str(err));
        }
        if (coop)
                error_free(rd_kafka_incremental_unassign(rk, parts));
        else
                rd_kafka_assign(rk, NULL);
}

rd_kafka_t *relay_kafka_consumer_new(const relay_conf_t *conf,
                                     const char *group_id,
                                     const relay_kafka_rebalance_t *cb,
                                     void *opaque, char *errstr,
                                     size_t errstr_size)
{
        static const char *const pinned[] = {
            "enable.auto.offset.store", "false", /* store after processing */
            "enable.auto.commit", "true",        /* commits stored ones */
            NULL};
        rd_kafka_conf_t *kc = conf_new(conf, producer_only, client_defaults,
                                       pinned, errstr, errstr_size);
        if (!kc)
                return NULL;
        if (set(kc, "group.id", group_id, "relay", errstr, errstr_size)) {
                rd_kafka_conf_destroy(kc);
                return NULL;
        }
        struct drain *d = relay_calloc(1, sizeof(*d));
        d->cb = cb;
        d->opaque = opaque;
        rd_kafka_conf_set_opaque(kc, d);
        rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
        rd_kafka_conf_set_offset_commit_cb(kc, offset_commit_cb);
        char why[512];
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, why, sizeof(why));
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                free(d);
                relay_seterr(errstr, errstr_size, "kafka consumer: %s", why);
                return NULL;
        }
        rd_kafka_poll_set_consumer(rk);
        d->commits = rd_kafka_queue_new(rk);
        return rk;
}

int relay_kafka_subscribe(rd_kafka_t *rk, const char *topics, char *errstr,
                          size_t errstr_size)
{
        rd_kafka_topic_partition_list_t *tl =
            rd_kafka_topic_partition_list_new(4);
        char *copy = relay_strdup(topics), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t;
             t = strtok_r(NULL, ",", &save))
                rd_kafka_topic_partition_list_add(tl, t, RD_KAFKA_PARTITION_UA);
        free(copy);
        rd_kafka_resp_err_t err = tl->cnt ? rd_kafka_subscribe(rk, tl)
                                          : RD_KAFKA_RESP_ERR__INVALID_ARG;
        rd_kafka_topic_partition_list_destroy(tl);
        if (err) {
                relay_seterr(errstr, errstr_size, "subscribe to '%s': %s",
                             topics, rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

rd_kafka_t *relay_kafka_producer_new(const relay_conf_t *conf, char *errstr,
                                     size_t errstr_size)
{
        static const char *const pinned[] = {"enable.idempotence", "true",
                                             NULL};
        rd_kafka_conf_t *kc = conf_new(conf, consumer_only, producer_defaults,
                                       pinned, errstr, errstr_size);
        if (!kc)
                return NULL;
        rd_kafka_conf_set_dr_msg_cb(kc, dr_msg_cb);
        char why[512];
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why));
        if (!rk) {
                rd_kafka_conf_destroy(kc);
                relay_seterr(errstr, errstr_size, "kafka producer: %s", why);
                return NULL;
        }
        return rk;
}

void relay_kafka_topic_warm(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        if (!rkt)
                return;
        const struct rd_kafka_metadata *md = NULL;
        if (!rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms))
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
}

/* One enqueue, to topic by name or to the handle rkt; on a full queue
 * the headers are still the caller's. */
static rd_kafka_resp_err_t producev(rd_kafka_t *rk, const char *topic,
                                    rd_kafka_topic_t *rkt, int32_t partition,
                                    const void *key,
                                    size_t key_len, const void *value,
                                    size_t value_len,
                                    rd_kafka_headers_t *headers,
                                    relay_kafka_ack_t *ack, int keep)
{
        if (ack) {
                ack->done = 0;
                ack->err = RD_KAFKA_RESP_ERR_NO_ERROR;
                ack->keep = keep;
                /* A caller's ack may be fresh stack memory: only a kept
                 * copy the caller owns may be there. */
                if (!keep)
                        memset(&ack->kept, 0, sizeof(ack->kept));
        }
        rd_kafka_resp_err_t err =
            rkt ? rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt),
                                    RD_KAFKA_V_PARTITION(partition),
                                    RD_KAFKA_V_KEY((void *)key, key_len),
                                    RD_KAFKA_V_VALUE((void *)value, value_len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_HEADERS(headers),
                                    RD_KAFKA_V_OPAQUE(ack), RD_KAFKA_V_END)
                : rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                    RD_KAFKA_V_PARTITION(partition),
                                    RD_KAFKA_V_KEY((void *)key, key_len),
                                    RD_KAFKA_V_VALUE((void *)value, value_len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_HEADERS(headers),
                                    RD_KAFKA_V_OPAQUE(ack), RD_KAFKA_V_END);
        /* On success the headers now belong to the message. */
        if (err && err != RD_KAFKA_RESP_ERR__QUEUE_FULL && headers)
                rd_kafka_headers_destroy(headers);
        return err;
}

rd_kafka_resp_err_t relay_kafka_produce(rd_kafka_t *rk, const char *topic,
                                        const void *key, size_t key_len,
                                        const void *value, size_t value_len,
                                        rd_kafka_headers_t *headers,
                                        relay_kafka_ack_t *ack)
{
        for (;;) {
                rd_kafka_resp_err_t err =
                    producev(rk, topic, NULL, RD_KAFKA_PARTITION_UA, key,
                             key_len, value, value_len, headers, ack, 0);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        return err;
                rd_kafka_poll(rk, 100);
        }
}

rd_kafka_resp_err_t relay_kafka_produce_once(rd_kafka_t *rk, const char *topic,
                                             const void *key, size_t key_len,
                                             const void *value,
                                             size_t value_len,
                                             rd_kafka_headers_t *headers,
                                             relay_kafka_ack_t *ack, int keep)
{
        rd_kafka_resp_err_t err =
            producev(rk, topic, NULL, RD_KAFKA_PARTITION_UA, key, key_len,
                     value, value_len, headers, ack, keep);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && headers)
                rd_kafka_headers_destroy(headers);
        return err;
}

rd_kafka_resp_err_t relay_kafka_produce_once_rkt(rd_kafka_t *rk,
                                                 rd_kafka_topic_t *rkt,
                                                 const void *key,
                                                 size_t key_len,
                                                 const void *value,
                                                 size_t value_len,
                                                 rd_kafka_headers_t *headers,
                                                 relay_kafka_ack_t *ack,
                                                 int keep)
{
        rd_kafka_resp_err_t err =
            producev(rk, NULL, rkt, RD_KAFKA_PARTITION_UA, key, key_len, value,
                     value_len, headers, ack, keep);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && headers)
                rd_kafka_headers_destroy(headers);
        return err;
}

rd_kafka_resp_err_t relay_kafka_produce_to(rd_kafka_t *rk, const char *topic,
                                           int32_t partition, const void *key,
                                           size_t key_len, const void *value,
                                           size_t value_len,
                                           relay_kafka_ack_t *ack)
{
        return producev(rk, topic, NULL, partition, key, key_len, value,
                        value_len, NULL, ack, 0);
}

int32_t relay_kafka_key_partition(const void *key, size_t key_len,
                                  int32_t partitions)
{
        /* librdkafka's murmur2 reads neither the topic nor the opaques. */
        return rd_kafka_msg_partitioner_murmur2(NULL, key, key_len, partitions,
                                                NULL, NULL);
}

/* topic's partition count from the cluster's metadata: > 0, or -1 with
 * *err (UNKNOWN_TOPIC_OR_PART when it does not exist). */
static int32_t partition_count(rd_kafka_t *rk, const char *topic,
                               rd_kafka_resp_err_t *err)
{
        /* Every topic's, not this one's: a producer asking for one topic
         * has the broker auto-create it (one partition, not compacted). */
        const struct rd_kafka_metadata *md = NULL;
        int32_t n = -1;
        *err = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
        for (int i = 0; !*err && i < md->topic_cnt; i++)
                if (!strcmp(md->topics[i].topic, topic)) {
                        *err = md->topics[i].err;
                        n = md->topics[i].partition_cnt;
                }
        if (!*err && n < 0)
                *err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
        if (md)
                rd_kafka_metadata_destroy(md);
        return n > 0 ? n : -1;
}

int32_t relay_kafka_topic_ensure(rd_kafka_t *rk, const char *topic,
                                 int partitions, const char *const *configs,
                                 char *errstr, size_t errstr_size)
{
        rd_kafka_resp_err_t err;
        int32_t n = partition_count(rk, topic, &err);
        if (n > 0)
                return n;
        if (err && err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
            err != RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
                relay_seterr(errstr, errstr_size, "metadata of %s: %s", topic,
                             rd_kafka_err2str(err));
                return -1;
        }
        /* Missing: create it as configured. */
        rd_kafka_NewTopic_t *nt =
            rd_kafka_NewTopic_new(topic, partitions, -1, errstr, errstr_size);
        if (!nt)
                return -1;
        for (size_t i = 0; configs && configs[i]; i += 2)
                rd_kafka_NewTopic_set_config(nt, configs[i], configs[i + 1]);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *ao =
            rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_request_timeout(ao, 15000, NULL, 0);
        rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
        const char *why = ev ? rd_kafka_event_error_string(ev) : "no answer";
        if (ev && !rd_kafka_event_error(ev)) {
                size_t cnt;
                const rd_kafka_topic_result_t **tr =
                    rd_kafka_CreateTopics_result_topics(
                        rd_kafka_event_CreateTopics_result(ev), &cnt);
                err = cnt ? rd_kafka_topic_result_error(tr[0])
                          : RD_KAFKA_RESP_ERR__FAIL;
                why = cnt && rd_kafka_topic_result_error_string(tr[0])
                          ? rd_kafka_topic_result_error_string(tr[0])
                          : rd_kafka_err2str(err);
                /* Another replica may have made it meanwhile. */
                if (!err || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                        n = partitions;
        }
        if (n < 0) {
                relay_seterr(errstr, errstr_size, "create %s: %s", topic, why);
        } else {
                relay_log(LOG_INFO, "kafka", "created topic %s (%d partitions)",
                          topic, partitions);
                /* Until the brokers' metadata has every partition, a
                 * consumer subscribing would be given fewer. */
                int32_t seen = -1;
                for (int i = 0; i < 100 && (seen = partition_count(
                                                rk, topic, &err)) < partitions;
                     i++)
                        rd_kafka_poll(rk, 100);
                /* Made meanwhile by another replica: as it was made. */
                if (seen > 0)
                        n = seen;
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(ao);
        rd_kafka_queue_destroy(q);
        rd_kafka_NewTopic_destroy(nt);
        return n;
}

void relay_kafka_ack_release(relay_kafka_ack_t *ack)
{
        free(ack->kept.topic);
        free(ack->kept.key);
        free(ack->kept.value);
        memset(&ack->kept, 0, sizeof(ack->kept));
}

enum relay_kafka_class relay_kafka_err_class(rd_kafka_resp_err_t err)
{
        switch (err) {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
                return RELAY_KAFKA_OK;
        /* The record itself cannot be written, now or ever. */
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        case RD_KAFKA_RESP_ERR__BAD_MSG:
                return RELAY_KAFKA_RECORD;
        /* The deployment is wrong; it heals when someone fixes it. */
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
                return RELAY_KAFKA_SETUP;
        case RD_KAFKA_RESP_ERR__FATAL:
        case RD_KAFKA_RESP_ERR__FENCED:
                return RELAY_KAFKA_FATAL;
        default:
                /* Timeouts, a full queue, no leader, transport errors:
                 * librdkafka's own retries ran out, the cluster may be
                 * back in a moment. */
                return RELAY_KAFKA_TRANSIENT;
        }
}

const char *relay_kafka_class_name(enum relay_kafka_class c)
{
        static const char *const names[] = {"ok", "transient", "record",
                                            "setup", "fatal"};
        return (unsigned)c < 5 ? names[c] : "?";
}

long long relay_kafka_conf_int(rd_kafka_t *rk, const char *name, long long def)
{
        char buf[64];
        size_t n = sizeof(buf);
        if (rd_kafka_conf_get(rd_kafka_conf(rk), name, buf, &n) !=
            RD_KAFKA_CONF_OK)
                return def;
        char *end;
        long long v = strtoll(buf, &end, 10);
        return end != buf ? v : def;
}

size_t relay_kafka_wait_acks(rd_kafka_t *rk, relay_kafka_ack_t *acks, size_t n,
                             int timeout_ms)
{
        int64_t until = relay_mono_ms() + timeout_ms;
        size_t first_open = 0;
        for (;;) {
                while (first_open < n && acks[first_open].done)
                        first_open++;
                if (first_open == n ||
                    (timeout_ms >= 0 && relay_mono_ms() >= until))
                        break;
                rd_kafka_poll(rk, 50);
        }
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
                if (!acks[i].done || acks[i].err)
                        bad++;
        return bad;
}

int relay_kafka_store(rd_kafka_t *rk, const rd_kafka_message_t *msg)
{
        rd_kafka_topic_partition_list_t *tl =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(tl, rd_kafka_topic_name(msg->rkt),
                                          msg->partition)
            ->offset = msg->offset + 1;
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(rk, tl);
        if (!err && tl->elems[0].err)
                err = tl->elems[0].err;
        rd_kafka_topic_partition_list_destroy(tl);
        if (err) {
                /* Typically the partition was revoked meanwhile: its new
                 * owner re-reads the record (at-least-once, not a loss). */
                relay_log(LOG_WARNING, "kafka",
                          "cannot store offset %s[%d]@%lld: %s",
                          rd_kafka_topic_name(msg->rkt), (int)msg->partition,
                          (long long)msg->offset + 1, rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

void relay_kafka_commit_stored(rd_kafka_t *rk)
{
        struct drain *d = rd_kafka_opaque(rk);
        rd_kafka_resp_err_t err =
            rd_kafka_commit_queue(rk, NULL, d->commits, batch_commit_cb, d);
        if (!err)
                d->unanswered++;
        else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET)
                relay_log(LOG_WARNING, "kafka", "commit: %s",
                          rd_kafka_err2str(err));
}

int relay_kafka_commits_wait(rd_kafka_t *rk, int most, int timeout_ms)
{
        struct drain *d = rd_kafka_opaque(rk);
        int64_t until = relay_mono_ms() + timeout_ms;
        rd_kafka_queue_poll_callback(d->commits, 0);
        while (d->unanswered > most) {
                int64_t left = until - relay_mono_ms();
                if (left <= 0)
                        break;
                rd_kafka_queue_poll_callback(d->commits,
                                             left < 100 ? (int)left : 100);
        }
        return d->unanswered;
}

void relay_kafka_consumer_close(rd_kafka_t *rk)
{
        if (!rk)
                return;
        /* Commit what was stored, synchronously, before leaving the group;
         * leaving revokes the partitions through rebalance_cb. */
        commit_sync(rk, "at close");
        rd_kafka_consumer_close(rk);
        struct drain *d = rd_kafka_opaque(rk);
        rd_kafka_queue_poll_callback(d->commits, 0);
        rd_kafka_queue_destroy(d->commits);
        rd_kafka_destroy(rk);
        free(d);
}

void relay_kafka_producer_close(rd_kafka_t *rk, int timeout_ms)
{
        if (!rk)
                return;
        rd_kafka_flush(rk, timeout_ms);
        int left = rd_kafka_outq_len(rk);
        if (left > 0)
                relay_log(LOG_ERR, "kafka",
                          "%d message(s) still undelivered at shutdown", left);
        rd_kafka_destroy(rk);
}

void relay_kafka_header_add(rd_kafka_headers_t *h, const char *name,
                            const char *value)
{
        rd_kafka_header_add(h, name, -1, value, -1);
}

void relay_kafka_header_addf(rd_kafka_headers_t *h, const char *name,
                             const char *fmt, ...)
{
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        rd_kafka_header_add(h, name, -1, buf, -1);
}
