/*
 * relay-deliver: drains out.<platform> into the platform's HTTP API.
 *
 * Records are decoded (relay.out.Outbound), turned into request items by the
 * platform's adapter and sent in batches within the platform's limits. An
 * answer the adapter calls RETRY (timeout, 429, 5xx) is retried with
 * exponential backoff and jitter, honouring Retry-After, up to
 * deliver.max_attempts; a permanent answer for a multi-record request
 * (400, 413, 422) splits the request in halves until the bad records stand
 * alone; a record that still fails goes to dlq.<platform> with headers
 * saying why. Batches are sent one at a time and retried in place, so the
 * order of a person's records holds. An input offset is stored (and then
 * committed) only once its record was delivered or dead-lettered and the
 * dead letter is durable.
 */
#include "relay/adapter.h"
#include "relay/avro.h"
#include "relay/dlq.h"
#include "relay/http.h"
#include "relay/kafka.h"
#include "relay/log.h"
#include "relay/retry.h"
#include "relay/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const relay_conf_prop_t deliver_props[] = {
    {"deliver.platform", RELAY_CONF_STRING, NULL, 0, -1, RELAY_CONF_REQUIRED,
     "destination platform: the adapter, out.<platform> and dlq.<platform>"},
    {"deliver.topic", RELAY_CONF_STRING, NULL, 0, -1, 0,
     "input topic (default out.<platform>)"},
    {"deliver.dlq_topic", RELAY_CONF_STRING, NULL, 0, -1, 0,
     "dead-letter topic (default dlq.<platform>)"},
    {"deliver.group_id", RELAY_CONF_STRING, NULL, 0, -1, 0,
     "consumer group (default relay-deliver-<platform>)"},
    {"deliver.max_attempts", RELAY_CONF_INT, "5", 1, 100, 0,
     "attempts per request before its records are dead-lettered"},
    {"deliver.backoff_base_ms", RELAY_CONF_INT, "500", 1, 3600000, 0,
     "backoff before the second attempt; doubles each time, with jitter"},
    {"deliver.backoff_max_ms", RELAY_CONF_INT, "30000", 1, 3600000, 0,
     "longest wait between attempts, Retry-After included"},
    {"deliver.http_timeout_ms", RELAY_CONF_INT, "10000", 100, 600000, 0,
     "total time allowed for one request"},
    {"deliver.connect_timeout_ms", RELAY_CONF_INT, "5000", 100, 600000, 0,
     "time allowed to connect"},
    {"deliver.batch_wait_ms", RELAY_CONF_INT, "200", 0, 60000, 0,
     "longest wait for more records before a partial batch is sent"},
    {"deliver.max_record_bytes", RELAY_CONF_INT, "1048576", 64, 104857600, 0,
     "larger input records are dead-lettered"},
    {NULL, 0, NULL, 0, 0, 0, NULL}};

/* PENDING: to send; DONE: delivered or dead-lettered; HELD: not handled
 * (stopping while its schema could not be fetched), so neither it nor any
 * later record of its partition is stored. */
enum rec_state { REC_PENDING, REC_DONE, REC_HELD };

/* One input record of the batch in hand. */
struct rec {
        rd_kafka_message_t *msg;
        enum rec_state state;
        relay_buf_t item; /* the adapter's encoding */
};

struct deliver {
        const relay_conf_t *conf;
        const struct relay_adapter *adapter;
        void *ad;
        char worker[128];
        const char *dlq_topic;
        rd_kafka_t *consumer, *producer;
        relay_avro_reader_t *reader;
        relay_http_t *http;
        relay_retry_policy_t retry;
        size_t max_items, max_bytes;

        struct rec *recs; /* batch in hand */
        size_t nrecs;
        size_t bytes;            /* of its items, a separator each */
        struct rec **send;       /* scratch: its records still to send */
        relay_kafka_ack_t *acks; /* dead-letter acks of this batch */
        size_t nacks;
        relay_buf_t *items; /* scratch for one request */
        relay_buf_t body;
        relay_http_response_t resp;
        int fatal; /* a dead letter could not be written: stop */
        /* counters, logged at exit */
        unsigned long delivered, dead, requests, retries;
};

static void dead_letter(struct deliver *d, struct rec *r, const char *stage,
                        const char *why, long status, int attempts)
{
        relay_dlq_info_t info = {d->worker, stage, why, status, attempts};
        relay_kafka_ack_t *ack = &d->acks[d->nacks++];
        if (relay_dlq_produce(d->producer, d->dlq_topic, r->msg, &info, ack)) {
                ack->done = 1;
                ack->err = RD_KAFKA_RESP_ERR__FAIL;
        }
        r->state = REC_DONE;
        d->dead++;
}

/* Whether a permanent answer may be about single records of the request,
 * so that halving the request can isolate them. */
static int splittable(long status)
{
        return status == 400 || status == 413 || status == 422;
}

/* Send recs[0..n) (all pending, encoded) as one request, retrying, and
 * splitting on a record-level permanent answer. Returns 0 when every record
 * ended delivered or dead-lettered, -1 when stopped by a signal. */
static int send_range(struct deliver *d, struct rec **recs, size_t n)
{
        char why[600];
        for (int attempt = 1;; attempt++) {
                for (size_t i = 0; i < n; i++)
                        d->items[i] = recs[i]->item;
                relay_http_request_t req;
                relay_adapter_request(d->adapter, d->ad, d->items, n, &d->body,
                                      &req);
                relay_http_response_reset(&d->resp);
                relay_http_perform(d->http, &req, &d->resp);
                d->requests++;
                why[0] = '\0';
                enum relay_result r = relay_adapter_classify(
                    d->adapter, d->ad, &d->resp, why, sizeof(why));
                relay_log(LOG_DEBUG, d->worker,
                          "request of %zu record(s), attempt %d: HTTP %ld "
                          "(%s) %s",
                          n, attempt, d->resp.status, relay_result_name(r),
                          why);
                if (r == RELAY_OK) {
                        for (size_t i = 0; i < n; i++)
                                recs[i]->state = REC_DONE;
                        d->delivered += n;
                        return 0;
                }
                if (r == RELAY_FATAL && n > 1 && splittable(d->resp.status)) {
                        size_t half = n / 2;
                        relay_log(LOG_INFO, d->worker,
                                  "HTTP %ld for %zu records: splitting to "
                                  "find the bad ones",
                                  d->resp.status, n);
                        if (send_range(d, recs, half))
                                return -1;
                        return send_range(d, recs + half, n - half);
                }
                if (r == RELAY_FATAL || attempt >= d->retry.max_attempts) {
                        char reason[700];
                        if (r == RELAY_RETRY)
                                snprintf(reason, sizeof(reason),
                                         "gave up after %d attempts: %s",
                                         attempt, why);
                        else
                                snprintf(reason, sizeof(reason), "%s", why);
                        for (size_t i = 0; i < n; i++)
                                dead_letter(d, recs[i], "deliver", reason,
                                            d->resp.status, attempt);
                        return 0;
                }
                long wait = relay_retry_delay_ms(&d->retry, attempt,
                                                 d->resp.retry_after_ms,
                                                 relay_retry_random());
                d->retries++;
                relay_log(LOG_WARNING, d->worker,
                          "attempt %d of %d for %zu record(s) failed (%s); "
                          "retrying in %ld ms",
                          attempt, d->retry.max_attempts, n, why, wait);
                /* Serve the producer's delivery reports while waiting. The
                 * consumer is not polled (that would fetch): with the
                 * defaults, 5 attempts of 10 s plus waits of at most 30 s
                 * stay well inside max.poll.interval.ms (300 s). */
                int64_t until = relay_mono_ms() + wait;
                while (relay_run && relay_mono_ms() < until) {
                        rd_kafka_poll(d->producer, 0);
                        relay_sleep_ms(until - relay_mono_ms() > 100
                                           ? 100
                                           : (long)(until - relay_mono_ms()),
                                       &relay_run);
                }
                if (!relay_run)
                        return -1;
        }
}

/* Deliver the batch in hand, make its dead letters durable, store the
 * offsets of every finished record (up to the first unfinished one of each
 * partition) and release the batch. Returns -1 when a dead letter could
 * not be written: the worker must stop without storing. */
static int finish_batch(struct deliver *d)
{
        size_t ns = 0;
        for (size_t i = 0; i < d->nrecs; i++)
                if (d->recs[i].state == REC_PENDING)
                        d->send[ns++] = &d->recs[i];
        if (ns)
                send_range(d, d->send, ns);

        int rc = 0;
        size_t bad = relay_kafka_wait_acks(d->producer, d->acks, d->nacks, -1);
        if (bad) {
                relay_log(LOG_CRIT, d->worker,
                          "%zu dead letter(s) not written to %s; stopping "
                          "without committing so they are read again",
                          bad, d->dlq_topic);
                rc = -1;
        }
        /* A partition is blocked from its first unfinished record on: a
         * later offset must not be stored past it. Past 64 partitions with
         * unfinished records (only when stopping), nothing more is stored. */
        int32_t blocked[64];
        size_t nblocked = 0;
        int all_blocked = rc != 0;
        for (size_t i = 0; i < d->nrecs; i++) {
                struct rec *r = &d->recs[i];
                int is_blocked = all_blocked;
                for (size_t k = 0; k < nblocked && !is_blocked; k++)
                        is_blocked = blocked[k] == r->msg->partition;
                if (!is_blocked && r->state == REC_DONE)
                        relay_kafka_store(d->consumer, r->msg);
                else if (!is_blocked && nblocked < 64)
                        blocked[nblocked++] = r->msg->partition;
                else if (!is_blocked)
                        all_blocked = 1;
                rd_kafka_message_destroy(r->msg);
                relay_buf_free(&r->item);
        }
        if (rc == 0)
                relay_kafka_commit_stored(d->consumer);
        d->nrecs = 0;
        d->bytes = 0;
        d->nacks = 0;
        return rc;
}

/* Before partitions are handed back in a rebalance: finish the batch in
 * hand so its offsets are committed and the next owner starts after it. */
static void drain(void *opaque)
{
        struct deliver *d = opaque;
        if (d->nrecs && finish_batch(d))
                d->fatal = 1;
}

/* Take one consumed message into the batch: decode and encode it, or
 * dead-letter it at once when it can never be sent. */
static void take(struct deliver *d, rd_kafka_message_t *m)
{
        char why[600];
        struct rec *r = &d->recs[d->nrecs++];
        r->msg = m;
        r->state = REC_PENDING;
        relay_buf_init(&r->item);
        avro_value_t *v;
        enum relay_result res = relay_avro_reader_decode(
            d->reader, m->payload, m->len, &v, NULL, why, sizeof(why));
        if (res == RELAY_RETRY && !relay_run) {
                r->state = REC_HELD;
                return;
        }
        if (res != RELAY_OK) {
                dead_letter(d, r, "decode", why, 0, 0);
                return;
        }
        if (relay_adapter_encode(d->adapter, d->ad, v, &r->item, why,
                                 sizeof(why)) != RELAY_OK)
                dead_letter(d, r, "encode", why, 0, 0);
}

static int run(struct deliver *d)
{
        long wait_ms = (long)relay_conf_int(d->conf, "deliver.batch_wait_ms");
        rd_kafka_message_t *carry = NULL;
        int rc = 0;
        while (relay_run && rc == 0 && !d->fatal) {
                int64_t first = 0;
                while (relay_run && !d->fatal && d->nrecs < d->max_items) {
                        rd_kafka_message_t *m = carry;
                        carry = NULL;
                        if (!m) {
                                long left = 500;
                                if (d->nrecs)
                                        left = wait_ms -
                                               (long)(relay_mono_ms() - first);
                                if (d->nrecs && left <= 0)
                                        break;
                                m = rd_kafka_consumer_poll(d->consumer,
                                                           (int)left);
                        }
                        if (!m) {
                                if (d->nrecs)
                                        break;
                                continue;
                        }
                        if (m->err) {
                                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                        relay_log(LOG_WARNING, d->worker,
                                                  "consumer: %s",
                                                  rd_kafka_message_errstr(m));
                                rd_kafka_message_destroy(m);
                                continue;
                        }
                        if (!d->nrecs)
                                first = relay_mono_ms();
                        take(d, m);
                        struct rec *r = &d->recs[d->nrecs - 1];
                        if (d->nrecs > 1 && r->state == REC_PENDING &&
                            d->bytes + r->item.len + 1 > d->max_bytes) {
                                /* It does not fit: send it next time. Its
                                 * encoding is redone then; cheap and rare. */
                                relay_buf_free(&r->item);
                                d->nrecs--;
                                carry = m;
                                break;
                        }
                        d->bytes += r->item.len + 1;
                }
                if (d->nrecs)
                        rc = finish_batch(d);
        }
        if (carry)
                rd_kafka_message_destroy(carry);
        if (d->fatal)
                rc = -1;
        /* Stopped mid-batch: store what is finished, leave the rest. */
        if (d->nrecs && finish_batch(d))
                rc = -1;
        return rc;
}

int main(int argc, char **argv)
{
        char errstr[1024];
        char topic[256], dlq[256], group[256];
        struct deliver d;
        memset(&d, 0, sizeof(d));
        relay_schemas_t *schemas = NULL;
        int rc = 1;

        /* Every adapter's keys are declared, so that a config for any
         * platform loads; the other platforms' keys stay unset. */
        const relay_conf_prop_t *t[8];
        size_t nt = 0;
        t[nt++] = deliver_props;
        for (size_t i = 0; relay_adapters[i] && nt < 7; i++)
                t[nt++] = relay_adapters[i]->props;
        relay_conf_t *conf = relay_worker_conf(argc, argv, "deliver", t, nt);
        d.conf = conf;
        relay_worker_signals();
        relay_http_global_init();

        const char *platform = relay_conf_str(conf, "deliver.platform");
        d.adapter = relay_adapter_find(platform);
        if (!d.adapter) {
                fprintf(stderr, "relay-deliver: no adapter for platform '%s'\n",
                        platform);
                goto done;
        }
        snprintf(d.worker, sizeof(d.worker), "deliver-%s", platform);
        snprintf(topic, sizeof(topic), "out.%s", platform);
        snprintf(dlq, sizeof(dlq), "dlq.%s", platform);
        snprintf(group, sizeof(group), "relay-deliver-%s", platform);
        const char *in_topic = relay_conf_str(conf, "deliver.topic");
        if (!in_topic)
                in_topic = topic;
        d.dlq_topic = relay_conf_str(conf, "deliver.dlq_topic");
        if (!d.dlq_topic)
                d.dlq_topic = dlq;
        const char *group_id = relay_conf_str(conf, "deliver.group_id");
        if (!group_id)
                group_id = group;

        if (relay_adapter_init(d.adapter, &d.ad, conf, errstr, sizeof(errstr)))
                goto fail;
        char subject[300];
        snprintf(subject, sizeof(subject), "%s-value", in_topic);
        if (!(schemas =
                  relay_worker_schemas(conf, -1, errstr, sizeof(errstr))) ||
            !(d.reader = relay_avro_reader_new(
                  schemas, subject,
                  (size_t)relay_conf_int(conf, "deliver.max_record_bytes"),
                  errstr, sizeof(errstr))) ||
            !(d.producer =
                  relay_kafka_producer_new(conf, errstr, sizeof(errstr))) ||
            !(d.consumer = relay_kafka_consumer_new(conf, group_id, drain, &d,
                                                    errstr, sizeof(errstr))) ||
            relay_kafka_subscribe(d.consumer, in_topic, errstr, sizeof(errstr)))
                goto fail;

        d.http =
            relay_http_new(relay_conf_int(conf, "deliver.http_timeout_ms"),
                           relay_conf_int(conf, "deliver.connect_timeout_ms"));
        d.retry.max_attempts =
            (int)relay_conf_int(conf, "deliver.max_attempts");
        d.retry.base_ms = (long)relay_conf_int(conf, "deliver.backoff_base_ms");
        d.retry.max_ms = (long)relay_conf_int(conf, "deliver.backoff_max_ms");
        relay_adapter_limits(d.adapter, d.ad, &d.max_items, &d.max_bytes);
        d.recs = relay_calloc(d.max_items, sizeof(*d.recs));
        d.acks = relay_calloc(d.max_items, sizeof(*d.acks));
        d.items = relay_calloc(d.max_items, sizeof(*d.items));
        d.send = relay_calloc(d.max_items, sizeof(*d.send));
        relay_buf_init(&d.body);
        relay_http_response_init(&d.resp);

        relay_log(LOG_INFO, d.worker,
                  "consuming %s as %s; delivering to %s (up to %zu records, "
                  "%zu bytes a request); dead letters to %s",
                  in_topic, group_id, platform, d.max_items, d.max_bytes,
                  d.dlq_topic);
        rc = run(&d) ? 1 : 0;
        relay_log(LOG_INFO, d.worker,
                  "stopping: %lu delivered, %lu dead-lettered, %lu requests, "
                  "%lu retries",
                  d.delivered, d.dead, d.requests, d.retries);
        goto done;
fail:
        fprintf(stderr, "relay-deliver: %s\n", errstr);
        relay_log(LOG_ERR, "deliver", "%s", errstr);
done:
        relay_kafka_consumer_close(d.consumer);
        relay_kafka_producer_close(d.producer, 30000);
        relay_http_destroy(d.http);
        relay_http_response_reset(&d.resp);
        relay_buf_free(&d.body);
        free(d.recs);
        free(d.acks);
        free(d.items);
        free(d.send);
        relay_avro_reader_destroy(d.reader);
        relay_schemas_destroy(schemas);
        if (d.adapter)
                relay_adapter_term(d.adapter, d.ad);
        relay_conf_destroy(conf);
        relay_http_global_cleanup();
        return rc;
}
