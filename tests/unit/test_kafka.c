/*
 * Unit tests for the Kafka wrappers and the dead-letter writer, against
 * librdkafka's in-process mock cluster (no broker needed). They check what
 * the delivery promise rests on: every produced record is acked with its
 * partition and offset and arrives once, also through injected broker
 * errors and acknowledgements lost after the broker appended (a control
 * without idempotence shows that staging does duplicate); a consumer commits
 * only the offsets the worker stored, so a restarted consumer resumes right
 * after them; and a dead-lettered record keeps its key, value and own headers
 * and carries the relay.* reasons. Every wait is bounded, and an alarm stops
 * the binary if one is not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "relay/common.h"
#include "relay/conf.h"
#include "relay/dlq.h"
#include "relay/kafka.h"
#include "relay/log.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Kafka protocol ApiKey of ProduceRequest (the RD_KAFKAP_* enums are not
 * public). */
#define APIKEY_PRODUCE 0
#define MOCK_BROKER_ID 1

#define WAIT_MS 10000 /* upper bound of any single wait */

struct fx {
        rd_kafka_t *host; /* runs the mock cluster's threads */
        rd_kafka_mock_cluster_t *mc;
        const char *bootstraps;
};

static int mock_setup(void **state)
{
        char why[256];
        struct fx *fx = calloc(1, sizeof(*fx));
        assert_non_null(fx);
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        /* The host never connects anywhere: no CONFWARN about it. */
        assert_int_equal(
            rd_kafka_conf_set(kc, "log_level", "0", why, sizeof(why)),
            RD_KAFKA_CONF_OK);
        fx->host = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why));
        assert_non_null(fx->host);
        fx->mc = rd_kafka_mock_cluster_new(fx->host, 1);
        assert_non_null(fx->mc);
        fx->bootstraps = rd_kafka_mock_cluster_bootstraps(fx->mc);
        *state = fx;
        return 0;
}

static int mock_teardown(void **state)
{
        struct fx *fx = *state;
        rd_kafka_mock_cluster_destroy(fx->mc);
        rd_kafka_destroy(fx->host);
        free(fx);
        return 0;
}

static const relay_conf_prop_t props[] = {
    {"name", RELAY_CONF_STRING, "test", 1, 0, 0, "worker name", 0},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};
static const relay_conf_prop_t *const tables[] = {props};

/* A finished conf pointing at the mock cluster, plus name/value pairs
 * ("kafka.x", "v", ..., NULL) set as with -X. */
static relay_conf_t *make_conf(const struct fx *fx, ...)
{
        char err[512];
        relay_conf_t *conf = relay_conf_new(tables, 1);
        assert_int_equal(relay_conf_set(conf, "kafka.bootstrap.servers",
                                        fx->bootstraps, err, sizeof(err)),
                         0);
        va_list ap;
        va_start(ap, fx);
        const char *name;
        while ((name = va_arg(ap, const char *))) {
                const char *value = va_arg(ap, const char *);
                if (relay_conf_set(conf, name, value, err, sizeof(err)))
                        fail_msg("set %s: %s", name, err);
        }
        va_end(ap);
        if (relay_conf_finish(conf, err, sizeof(err)))
                fail_msg("finish: %s", err);
        return conf;
}

static rd_kafka_t *producer(const relay_conf_t *conf)
{
        char err[512];
        rd_kafka_t *rk = relay_kafka_producer_new(conf, err, sizeof(err));
        if (!rk)
                fail_msg("producer: %s", err);
        return rk;
}

/* Everything in the topic's partitions, read from the start with assigned
 * partitions (no group join) until each partition reports its end. The
 * messages must be freed before their consumer: readback_free(). */
struct readback {
        rd_kafka_t *rk;
        rd_kafka_message_t *msgs[512];
        size_t n;
};

static void read_back(const struct fx *fx, const char *topic, int nparts,
                      struct readback *rb)
{
        char why[256];
        static const char *const kv[][2] = {{"group.id", "relay-test-readback"},
                                            {"enable.auto.commit", "false"},
                                            {"fetch.wait.max.ms", "20"},
                                            {"enable.partition.eof", "true"}};
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        assert_int_equal(rd_kafka_conf_set(kc, "bootstrap.servers",
                                           fx->bootstraps, why, sizeof(why)),
                         RD_KAFKA_CONF_OK);
        for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
                assert_int_equal(
                    rd_kafka_conf_set(kc, kv[i][0], kv[i][1], why, sizeof(why)),
                    RD_KAFKA_CONF_OK);
        rb->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, why, sizeof(why));
        assert_non_null(rb->rk);
        rb->n = 0;

        rd_kafka_topic_partition_list_t *tl =
            rd_kafka_topic_partition_list_new(nparts);
        for (int p = 0; p < nparts; p++)
                /* Offset 0, not BEGINNING: the mock's logs start at 0, and
                 * a logical offset costs an offset query that librdkafka
                 * may retry only after 500 ms. */
                rd_kafka_topic_partition_list_add(tl, topic, p)->offset = 0;
        assert_int_equal(rd_kafka_assign(rb->rk, tl), 0);
        rd_kafka_topic_partition_list_destroy(tl);

        unsigned eof = 0, all = (1u << nparts) - 1;
        int64_t until = relay_mono_ms() + WAIT_MS;
        while (eof != all && relay_mono_ms() < until) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rb->rk, 100);
                if (!m)
                        continue;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        eof |= 1u << m->partition;
                        rd_kafka_message_destroy(m);
                } else if (m->err) {
                        fprintf(stderr, "read back %s: %s\n", topic,
                                rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                } else {
                        assert_true(rb->n < 512);
                        rb->msgs[rb->n++] = m;
                }
        }
        if (eof != all)
                fail_msg("read back %s: no end of partition after %d ms", topic,
                         WAIT_MS);
}

static void readback_free(struct readback *rb)
{
        for (size_t i = 0; i < rb->n; i++)
                rd_kafka_message_destroy(rb->msgs[i]);
        rb->n = 0;
        rd_kafka_consumer_close(rb->rk);
        rd_kafka_destroy(rb->rk);
}

/* Number of headers called name, and the value of the first one. */
static int header_count(const rd_kafka_message_t *m, const char *name,
                        const void **val, size_t *size)
{
        rd_kafka_headers_t *h;
        if (rd_kafka_message_headers(m, &h))
                return 0;
        int n = 0;
        const void *v;
        size_t s;
        while (!rd_kafka_header_get(h, (size_t)n, name, &v, &s)) {
                if (n == 0 && val) {
                        *val = v;
                        *size = s;
                }
                n++;
        }
        return n;
}

/* Exactly one header called name, with exactly the bytes of want. */
static void assert_header(const rd_kafka_message_t *m, const char *name,
                          const char *want)
{
        const void *val = NULL;
        size_t size = 0;
        int n = header_count(m, name, &val, &size);
        if (n != 1)
                fail_msg("header %s: %d times, want once", name, n);
        if (size != strlen(want) || memcmp(val, want, size))
                fail_msg("header %s: '%.*s', want '%s'", name, (int)size,
                         (const char *)val, want);
}

static size_t headers_with_prefix(const rd_kafka_message_t *m,
                                  const char *prefix)
{
        rd_kafka_headers_t *h;
        if (rd_kafka_message_headers(m, &h))
                return 0;
        const char *name;
        const void *v;
        size_t s, n = 0;
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &v, &s); i++)
                n += !strncmp(name, prefix, strlen(prefix));
        return n;
}

/* Sum of the high watermarks: how many records the log holds. */
static int64_t log_size(rd_kafka_t *rk, const char *topic, int nparts)
{
        int64_t total = 0;
        for (int p = 0; p < nparts; p++) {
                int64_t lo, hi;
                assert_int_equal(rd_kafka_query_watermark_offsets(
                                     rk, topic, p, &lo, &hi, WAIT_MS),
                                 0);
                total += hi - lo;
        }
        return total;
}

/* Produce "k<i>"/"v<i>" for i in [0, n) with acks and headers, wait for
 * them, and check that each is acked without error. */
static void produce_n(rd_kafka_t *rk, const char *topic, int n,
                      relay_kafka_ack_t *acks)
{
        for (int i = 0; i < n; i++) {
                char key[32], val[32];
                int kl = snprintf(key, sizeof(key), "k%d", i);
                int vl = snprintf(val, sizeof(val), "v%d", i);
                rd_kafka_headers_t *h = rd_kafka_headers_new(2);
                relay_kafka_header_add(h, "h.str", "static");
                relay_kafka_header_addf(h, "h.fmt", "%d/%s", i, topic);
                assert_int_equal(relay_kafka_produce(rk, topic, key, (size_t)kl,
                                                     val, (size_t)vl, h,
                                                     &acks[i]),
                                 RD_KAFKA_RESP_ERR_NO_ERROR);
        }
        assert_int_equal(relay_kafka_wait_acks(rk, acks, (size_t)n, WAIT_MS),
                         0);
        for (int i = 0; i < n; i++) {
                assert_int_equal(acks[i].done, 1);
                assert_int_equal(acks[i].err, RD_KAFKA_RESP_ERR_NO_ERROR);
        }
}

static void test_produce_acks_and_headers(void **state)
{
        struct fx *fx = *state;
        enum { N = 40, NPARTS = 2 };
        assert_int_equal(rd_kafka_mock_topic_create(fx->mc, "t", NPARTS, 1), 0);
        /* A local queue of 4 messages: produce must wait it out, not fail. */
        relay_conf_t *conf = make_conf(
            fx, "kafka.queue.buffering.max.messages", "4", "kafka.linger.ms",
            "5", "kafka.message.timeout.ms", "10000", NULL);
        rd_kafka_t *rk = producer(conf);
        relay_kafka_ack_t acks[N];
        produce_n(rk, "t", N, acks);

        /* Per partition, the offsets acked are 0, 1, 2 ... without gaps. */
        int count[NPARTS] = {0};
        int64_t seen[NPARTS][N];
        for (int i = 0; i < N; i++) {
                assert_in_range(acks[i].partition, 0, NPARTS - 1);
                assert_true(acks[i].offset >= 0);
                seen[acks[i].partition][count[acks[i].partition]++] =
                    acks[i].offset;
        }
        for (int p = 0; p < NPARTS; p++)
                for (int j = 0; j < count[p]; j++)
                        assert_int_equal(seen[p][j], j);

        /* No ack and no headers: fire and forget still gets there. */
        assert_int_equal(
            relay_kafka_produce(rk, "t", NULL, 0, "last", 4, NULL, NULL), 0);
        assert_int_equal(rd_kafka_flush(rk, WAIT_MS), 0);

        struct readback rb;
        read_back(fx, "t", NPARTS, &rb);
        assert_int_equal(rb.n, N + 1);
        int got[N] = {0}, last = 0;
        for (size_t j = 0; j < rb.n; j++) {
                const rd_kafka_message_t *m = rb.msgs[j];
                if (m->len == 4 && !memcmp(m->payload, "last", 4)) {
                        assert_null(m->key);
                        rd_kafka_headers_t *h;
                        assert_int_equal(rd_kafka_message_headers(m, &h),
                                         RD_KAFKA_RESP_ERR__NOENT);
                        last++;
                        continue;
                }
                char val[32], key[32], fmt[64];
                int i;
                snprintf(val, sizeof(val), "%.*s", (int)m->len,
                         (const char *)m->payload);
                assert_int_equal(sscanf(val, "v%d", &i), 1);
                assert_in_range(i, 0, N - 1);
                got[i]++;
                snprintf(key, sizeof(key), "k%d", i);
                assert_int_equal(m->key_len, strlen(key));
                assert_memory_equal(m->key, key, m->key_len);
                /* Where the ack said it went. */
                assert_int_equal(m->partition, acks[i].partition);
                assert_int_equal(m->offset, acks[i].offset);
                assert_header(m, "h.str", "static");
                snprintf(fmt, sizeof(fmt), "%d/t", i);
                assert_header(m, "h.fmt", fmt);
        }
        assert_int_equal(last, 1);
        for (int i = 0; i < N; i++)
                assert_int_equal(got[i], 1);
        readback_free(&rb);

        relay_kafka_producer_close(rk, WAIT_MS);
        relay_conf_destroy(conf);
}

static void test_wait_acks_bounded(void **state)
{
        struct fx *fx = *state;
        relay_conf_t *conf = make_conf(fx, NULL);
        rd_kafka_t *rk = producer(conf);

        /* Acks no report will ever fill: the wait ends at its timeout and
         * counts them all. */
        relay_kafka_ack_t acks[3];
        memset(acks, 0, sizeof(acks));
        int64_t t0 = relay_mono_ms();
        assert_int_equal(relay_kafka_wait_acks(rk, acks, 3, 200), 3);
        int64_t took = relay_mono_ms() - t0;
        assert_true(took >= 200 && took < 2000);

        /* Done but failed counts as not durable; done and fine does not. */
        acks[0].done = 1;
        acks[1].done = 1;
        acks[1].err = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
        assert_int_equal(relay_kafka_wait_acks(rk, acks, 3, 0), 2);
        acks[2].done = 1;
        assert_int_equal(relay_kafka_wait_acks(rk, acks, 3, -1), 1);
        assert_int_equal(relay_kafka_wait_acks(rk, acks, 0, -1), 0);

        relay_kafka_producer_close(rk, 1000);
        relay_conf_destroy(conf);
}

static void test_delivery_failure_reaches_ack(void **state)
{
        struct fx *fx = *state;
        assert_int_equal(rd_kafka_mock_topic_create(fx->mc, "noleader", 1, 1),
                         0);
        assert_int_equal(
            rd_kafka_mock_partition_set_leader(fx->mc, "noleader", 0, -1), 0);
        relay_conf_t *conf =
            make_conf(fx, "kafka.message.timeout.ms", "1500", NULL);
        rd_kafka_t *rk = producer(conf);

        relay_kafka_ack_t ack;
        assert_int_equal(
            relay_kafka_produce(rk, "noleader", "k", 1, "v", 1, NULL, &ack), 0);
        assert_int_equal(ack.done, 0);
        assert_int_equal(relay_kafka_wait_acks(rk, &ack, 1, WAIT_MS), 1);
        assert_int_equal(ack.done, 1);
        assert_int_equal(ack.err, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);

        relay_kafka_producer_close(rk, 1000);
        relay_conf_destroy(conf);
}

/* Stage the failure idempotence exists for, a lost acknowledgement: the
 * broker appends a batch but its answer arrives after the client's request
 * timeout, so the client sends the batch again. (The mock applies an
 * injected round-trip time to the answer of a request it handled, so an
 * injected NO_ERROR with a long RTT is an append whose ack is lost.) The
 * refusals of the first requests (transient errors, a dropped connection)
 * stay in front so that retries of refused batches are covered too. */
#define LOST_ACK_RTT_MS          1500
#define LOST_ACK_REQUEST_TIMEOUT "500"
/* Small batches, so that 60 records make more Produce requests than there
 * are staged answers and every one of them is used. */
#define LOST_ACK_BATCH "5"

static void push_lost_acks(const struct fx *fx)
{
        assert_int_equal(rd_kafka_mock_broker_push_request_error_rtts(
                             fx->mc, MOCK_BROKER_ID, APIKEY_PRODUCE, 8,
                             RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 0,
                             RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, 0,
                             RD_KAFKA_RESP_ERR_NO_ERROR, LOST_ACK_RTT_MS,
                             RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 0,
                             RD_KAFKA_RESP_ERR__TRANSPORT, 0,
                             RD_KAFKA_RESP_ERR_NO_ERROR, LOST_ACK_RTT_MS,
                             RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 0,
                             RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, 0),
                         0);
}

/* Every injected answer was used up: the refusals and the lost acks all
 * happened, so the retries did. */
static void assert_errors_used(const struct fx *fx)
{
        size_t left = 99;
        assert_int_equal(rd_kafka_mock_broker_error_stack_cnt(
                             fx->mc, MOCK_BROKER_ID, APIKEY_PRODUCE, &left),
                         0);
        assert_int_equal(left, 0);
}

/* How many times each "v<i>" (i < n) is in the topic; returns the number
 * of records read. */
static size_t count_values(const struct fx *fx, const char *topic, int nparts,
                           int n, int *got)
{
        struct readback rb;
        read_back(fx, topic, nparts, &rb);
        memset(got, 0, sizeof(*got) * (size_t)n);
        for (size_t j = 0; j < rb.n; j++) {
                const rd_kafka_message_t *m = rb.msgs[j];
                char val[32];
                int i;
                snprintf(val, sizeof(val), "%.*s", (int)m->len,
                         (const char *)m->payload);
                assert_int_equal(sscanf(val, "v%d", &i), 1);
                assert_in_range(i, 0, n - 1);
                got[i]++;
        }
        size_t total = rb.n;
        assert_int_equal(log_size(rb.rk, topic, nparts), (int64_t)total);
        readback_free(&rb);
        return total;
}

/* The control: a plain librdkafka producer without idempotence, under the
 * same staging, does write records twice. Were the staging to stop losing
 * acks (a librdkafka that treats the injected RTT differently), this
 * fails, instead of the test below passing for nothing. */
static void test_lost_ack_duplicates_without_idempotence(void **state)
{
        struct fx *fx = *state;
        enum { N = 60, NPARTS = 2 };
        char why[256];
        static const char *const kv[][2] = {
            {"enable.idempotence", "false"},
            {"acks", "all"},
            {"retry.backoff.ms", "50"},
            {"linger.ms", "5"},
            {"batch.num.messages", LOST_ACK_BATCH},
            {"message.timeout.ms", "10000"},
            {"request.timeout.ms", LOST_ACK_REQUEST_TIMEOUT}};
        assert_int_equal(rd_kafka_mock_topic_create(fx->mc, "dup", NPARTS, 1),
                         0);
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        assert_int_equal(rd_kafka_conf_set(kc, "bootstrap.servers",
                                           fx->bootstraps, why, sizeof(why)),
                         RD_KAFKA_CONF_OK);
        for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
                assert_int_equal(
                    rd_kafka_conf_set(kc, kv[i][0], kv[i][1], why, sizeof(why)),
                    RD_KAFKA_CONF_OK);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why));
        assert_non_null(rk);
        /* Connected before the staging, so it hits Produce requests only. */
        const struct rd_kafka_metadata *md;
        assert_int_equal(rd_kafka_metadata(rk, 1, NULL, &md, WAIT_MS), 0);
        rd_kafka_metadata_destroy(md);
        push_lost_acks(fx);

        for (int i = 0; i < N; i++) {
                char val[32];
                int vl = snprintf(val, sizeof(val), "v%d", i);
                assert_int_equal(
                    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("dup"),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_VALUE(val, (size_t)vl),
                                      RD_KAFKA_V_END),
                    RD_KAFKA_RESP_ERR_NO_ERROR);
        }
        assert_int_equal(rd_kafka_flush(rk, WAIT_MS), 0);
        assert_errors_used(fx);

        int got[N];
        size_t total = count_values(fx, "dup", NPARTS, N, got);
        int missing = 0;
        for (int i = 0; i < N; i++)
                missing += got[i] == 0;
        assert_int_equal(missing, 0);
        if (total <= (size_t)N)
                fail_msg("the staging lost no ack: %zu records for %d sent "
                         "without idempotence",
                         total, N);
        rd_kafka_destroy(rk);
}

/* relay's producer (idempotence pinned on) through the same lost acks:
 * every record is in the log exactly once. */
static void test_idempotent_through_lost_acks(void **state)
{
        struct fx *fx = *state;
        enum { N = 60, NPARTS = 2 };
        assert_int_equal(rd_kafka_mock_topic_create(fx->mc, "idem", NPARTS, 1),
                         0);
        relay_conf_t *conf = make_conf(
            fx, "kafka.retry.backoff.ms", "50", "kafka.linger.ms", "5",
            "kafka.batch.num.messages", LOST_ACK_BATCH,
            "kafka.message.timeout.ms", "10000", "kafka.request.timeout.ms",
            LOST_ACK_REQUEST_TIMEOUT, NULL);
        rd_kafka_t *rk = producer(conf);
        /* Connected before the staging, as the control is. */
        const struct rd_kafka_metadata *md;
        assert_int_equal(rd_kafka_metadata(rk, 1, NULL, &md, WAIT_MS), 0);
        rd_kafka_metadata_destroy(md);
        push_lost_acks(fx);

        relay_kafka_ack_t acks[N];
        produce_n(rk, "idem", N, acks);
        assert_errors_used(fx);

        int got[N];
        size_t total = count_values(fx, "idem", NPARTS, N, got);
        for (int i = 0; i < N; i++)
                if (got[i] != 1)
                        fail_msg("record v%d is in the log %d times", i,
                                 got[i]);
        assert_int_equal(total, N);

        relay_kafka_producer_close(rk, WAIT_MS);
        relay_conf_destroy(conf);
}

static const char *conf_get(rd_kafka_t *rk, const char *name, char *buf,
                            size_t size)
{
        assert_int_equal(rd_kafka_conf_get(rd_kafka_conf(rk), name, buf, &size),
                         RD_KAFKA_CONF_OK);
        return buf;
}

static void test_pinned_settings(void **state)
{
        struct fx *fx = *state;
        char err[512], buf[64];
        /* The conf tries to switch off what the promise depends on. */
        relay_conf_t *conf = make_conf(fx, "kafka.enable.idempotence", "false",
                                       "kafka.enable.auto.offset.store", "true",
                                       "kafka.enable.auto.commit", "false",
                                       "kafka.client.id", "pinned", NULL);

        rd_kafka_t *p = producer(conf);
        assert_string_equal(conf_get(p, "enable.idempotence", buf, sizeof(buf)),
                            "true");
        /* Other keys do go through. */
        assert_string_equal(conf_get(p, "client.id", buf, sizeof(buf)),
                            "pinned");
        relay_kafka_producer_close(p, 1000);

        rd_kafka_t *c = relay_kafka_consumer_new(conf, "g-pinned", NULL, NULL,
                                                 err, sizeof(err));
        if (!c)
                fail_msg("consumer: %s", err);
        assert_string_equal(
            conf_get(c, "enable.auto.offset.store", buf, sizeof(buf)), "false");
        assert_string_equal(conf_get(c, "enable.auto.commit", buf, sizeof(buf)),
                            "true");
        assert_string_equal(conf_get(c, "group.id", buf, sizeof(buf)),
                            "g-pinned");
        relay_kafka_consumer_close(c);
        relay_conf_destroy(conf);
}

static void test_bad_property(void **state)
{
        struct fx *fx = *state;
        char err[512];
        relay_conf_t *conf = make_conf(fx, "kafka.no.such.prop", "1", NULL);

        strcpy(err, "unset");
        assert_null(relay_kafka_producer_new(conf, err, sizeof(err)));
        assert_non_null(strstr(err, "no.such.prop"));
        assert_non_null(strstr(err, "-X"));

        strcpy(err, "unset");
        assert_null(
            relay_kafka_consumer_new(conf, "g", NULL, NULL, err, sizeof(err)));
        assert_non_null(strstr(err, "no.such.prop"));
        assert_non_null(strstr(err, "-X"));

        /* No error buffer: still fails cleanly. */
        assert_null(relay_kafka_producer_new(conf, NULL, 0));
        relay_conf_destroy(conf);

        /* A known key with a bad value is named the same way. */
        conf = make_conf(fx, "kafka.acks", "banana", NULL);
        strcpy(err, "unset");
        assert_null(relay_kafka_producer_new(conf, err, sizeof(err)));
        assert_non_null(strstr(err, "acks"));
        assert_non_null(strstr(err, "-X"));
        relay_conf_destroy(conf);
}

static void test_subscribe(void **state)
{
        struct fx *fx = *state;
        char err[512];
        relay_conf_t *conf = make_conf(fx, NULL);
        rd_kafka_t *c = relay_kafka_consumer_new(conf, "g-sub", NULL, NULL, err,
                                                 sizeof(err));
        if (!c)
                fail_msg("consumer: %s", err);

        err[0] = '\0';
        assert_int_equal(relay_kafka_subscribe(c, "", err, sizeof(err)), -1);
        assert_non_null(strstr(err, "subscribe"));
        err[0] = '\0';
        assert_int_equal(relay_kafka_subscribe(c, ",,", err, sizeof(err)), -1);
        assert_true(err[0] != '\0');

        assert_int_equal(relay_kafka_subscribe(c, "a,b", err, sizeof(err)), 0);
        rd_kafka_topic_partition_list_t *tl;
        assert_int_equal(rd_kafka_subscription(c, &tl), 0);
        assert_int_equal(tl->cnt, 2);
        assert_string_equal(tl->elems[0].topic, "a");
        assert_string_equal(tl->elems[1].topic, "b");
        rd_kafka_topic_partition_list_destroy(tl);

        relay_kafka_consumer_close(c);
        relay_conf_destroy(conf);
}

/* Poll c until it returns a record (not an event), up to WAIT_MS. */
static rd_kafka_message_t *next_record(rd_kafka_t *c)
{
        int64_t until = relay_mono_ms() + WAIT_MS;
        while (relay_mono_ms() < until) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
                if (!m)
                        continue;
                if (!m->err)
                        return m;
                fprintf(stderr, "consumer event: %s\n",
                        rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
        }
        fail_msg("no record within %d ms", WAIT_MS);
        return NULL;
}

static void test_consumer_resumes_after_stored(void **state)
{
        struct fx *fx = *state;
        enum { N = 10, K = 4 };
        char err[512];
        assert_int_equal(rd_kafka_mock_topic_create(fx->mc, "in", 1, 1), 0);
        /* The mock delays a first join by 3 s and a later one by the
         * session timeout less 1 s; a session shorter than 3 s would expire
         * during the first join. */
        relay_conf_t *conf = make_conf(
            fx, "kafka.auto.offset.reset", "earliest",
            "kafka.session.timeout.ms", "4000", "kafka.heartbeat.interval.ms",
            "500", "kafka.auto.commit.interval.ms", "100", NULL);

        relay_conf_t *pconf = make_conf(fx, NULL);
        rd_kafka_t *p = producer(pconf);
        relay_kafka_ack_t acks[N];
        produce_n(p, "in", N, acks);
        relay_kafka_producer_close(p, WAIT_MS);
        relay_conf_destroy(pconf);

        /* Read all N, store only the first K: the other N - K were, say,
         * still in flight when the worker stopped. */
        rd_kafka_t *c = relay_kafka_consumer_new(conf, "g-resume", NULL, NULL,
                                                 err, sizeof(err));
        if (!c)
                fail_msg("consumer: %s", err);
        assert_int_equal(relay_kafka_subscribe(c, "in", err, sizeof(err)), 0);
        for (int i = 0; i < N; i++) {
                rd_kafka_message_t *m = next_record(c);
                assert_int_equal(m->offset, i);
                if (i < K)
                        assert_int_equal(relay_kafka_store(c, m), 0);
                rd_kafka_message_destroy(m);
        }
        /* Give auto-commit (every 100 ms) the chance to commit too much, if
         * it would. */
        for (int i = 0; i < 5; i++) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
                if (m)
                        rd_kafka_message_destroy(m);
        }
        relay_kafka_consumer_close(c);

        /* The group's committed offset is exactly K ... */
        c = relay_kafka_consumer_new(conf, "g-resume", NULL, NULL, err,
                                     sizeof(err));
        if (!c)
                fail_msg("consumer: %s", err);
        rd_kafka_topic_partition_list_t *tl =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(tl, "in", 0);
        assert_int_equal(rd_kafka_committed(c, tl, WAIT_MS), 0);
        assert_int_equal(tl->elems[0].err, 0);
        assert_int_equal(tl->elems[0].offset, K);
        rd_kafka_topic_partition_list_destroy(tl);

        /* ... and a restarted consumer reads K .. N-1 again, nothing lost. */
        assert_int_equal(relay_kafka_subscribe(c, "in", err, sizeof(err)), 0);
        for (int i = K; i < N; i++) {
                rd_kafka_message_t *m = next_record(c);
                char want[16];
                snprintf(want, sizeof(want), "v%d", i);
                assert_int_equal(m->offset, i);
                assert_int_equal(m->len, strlen(want));
                assert_memory_equal(m->payload, want, m->len);
                rd_kafka_message_destroy(m);
        }
        relay_kafka_consumer_close(c);
        relay_conf_destroy(conf);
}

static void test_dlq(void **state)
{
        struct fx *fx = *state;
        assert_int_equal(rd_kafka_mock_topic_create(fx->mc, "src", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(fx->mc, "dlq.test", 1, 1),
                         0);
        relay_conf_t *conf = make_conf(fx, NULL);
        rd_kafka_t *p = producer(conf);

        /* Two source records: one from an earlier trip through a DLQ, with
         * relay.* headers of that trip and headers of its own (one binary,
         * one null); one with neither key nor headers. */
        static const char bin[] = {'\0', '\x01', '\xff'};
        rd_kafka_headers_t *h = rd_kafka_headers_new(8);
        relay_kafka_header_add(h, "trace-id", "abc-123");
        relay_kafka_header_add(h, RELAY_DLQ_H_ERROR, "old error");
        relay_kafka_header_add(h, RELAY_DLQ_H_ATTEMPTS, "9");
        rd_kafka_header_add(h, "bin", -1, bin, sizeof(bin));
        relay_kafka_header_add(h, RELAY_DLQ_H_WORKER, "old-worker");
        rd_kafka_header_add(h, "nullv", -1, NULL, 0);
        relay_kafka_header_add(h, "relay.custom", "from before");
        relay_kafka_ack_t acks[2];
        assert_int_equal(relay_kafka_produce(p, "src", "key-1", 5, "{\"v\":1}",
                                             7, h, &acks[0]),
                         0);
        assert_int_equal(
            relay_kafka_produce(p, "src", NULL, 0, "\0raw", 4, NULL, &acks[1]),
            0);
        assert_int_equal(relay_kafka_wait_acks(p, acks, 2, WAIT_MS), 0);

        struct readback src;
        read_back(fx, "src", 1, &src);
        assert_int_equal(src.n, 2);

        relay_dlq_info_t info[2] = {
            {"deliver-test", "deliver", "HTTP 503: \"busy\"", 503, 3, NULL, 0},
            {"transform", "decode", "bad magic byte", 0, 0, NULL, 0}};
        int64_t before = relay_now_ms();
        for (size_t i = 0; i < 2; i++)
                assert_int_equal(relay_dlq_produce(p, "dlq.test", src.msgs[i],
                                                   &info[i], &acks[i]),
                                 0);
        assert_int_equal(relay_kafka_wait_acks(p, acks, 2, WAIT_MS), 0);
        int64_t after = relay_now_ms();

        struct readback dlq;
        read_back(fx, "dlq.test", 1, &dlq);
        assert_int_equal(dlq.n, 2);
        for (size_t i = 0; i < 2; i++) {
                const rd_kafka_message_t *o = src.msgs[i], *d = dlq.msgs[i];
                char buf[64];

                /* Unchanged key and value (a null key stays null). */
                assert_int_equal(d->key_len, o->key_len);
                if (o->key)
                        assert_memory_equal(d->key, o->key, o->key_len);
                else
                        assert_null(d->key);
                assert_int_equal(d->len, o->len);
                assert_memory_equal(d->payload, o->payload, o->len);

                assert_header(d, RELAY_DLQ_H_ERROR, info[i].error);
                assert_header(d, RELAY_DLQ_H_STAGE, info[i].stage);
                assert_header(d, RELAY_DLQ_H_WORKER, info[i].worker);
                snprintf(buf, sizeof(buf), "%d", info[i].attempts);
                assert_header(d, RELAY_DLQ_H_ATTEMPTS, buf);
                assert_header(d, RELAY_DLQ_H_TOPIC, "src");
                snprintf(buf, sizeof(buf), "%d", (int)o->partition);
                assert_header(d, RELAY_DLQ_H_PARTITION, buf);
                snprintf(buf, sizeof(buf), "%lld", (long long)o->offset);
                assert_header(d, RELAY_DLQ_H_OFFSET, buf);
                if (info[i].http_status) {
                        snprintf(buf, sizeof(buf), "%ld", info[i].http_status);
                        assert_header(d, RELAY_DLQ_H_STATUS, buf);
                } else {
                        assert_int_equal(
                            header_count(d, RELAY_DLQ_H_STATUS, NULL, NULL), 0);
                }
                const void *v;
                size_t s;
                assert_int_equal(header_count(d, RELAY_DLQ_H_FAILED_AT, &v, &s),
                                 1);
                snprintf(buf, sizeof(buf), "%.*s", (int)s, (const char *)v);
                char *end;
                long long at = strtoll(buf, &end, 10);
                assert_int_equal(*end, '\0');
                assert_true(at >= before && at <= after);
                /* Only this trip's relay.* headers, none from before. */
                assert_int_equal(headers_with_prefix(d, "relay."),
                                 info[i].http_status ? 9 : 8);
        }

        /* The record's own headers are kept, bytes and null included. */
        const rd_kafka_message_t *d = dlq.msgs[0];
        assert_header(d, "trace-id", "abc-123");
        const void *v;
        size_t s;
        assert_int_equal(header_count(d, "bin", &v, &s), 1);
        assert_int_equal(s, sizeof(bin));
        assert_memory_equal(v, bin, sizeof(bin));
        assert_int_equal(header_count(d, "nullv", &v, &s), 1);
        assert_null(v);
        assert_int_equal(header_count(d, "relay.custom", NULL, NULL), 0);
        rd_kafka_headers_t *dh;
        assert_int_equal(rd_kafka_message_headers(d, &dh), 0);
        assert_int_equal(rd_kafka_header_cnt(dh), 9 + 3);
        /* The header-less record gained only the relay.* ones. */
        assert_int_equal(rd_kafka_message_headers(dlq.msgs[1], &dh), 0);
        assert_int_equal(rd_kafka_header_cnt(dh), 8);

        readback_free(&dlq);
        readback_free(&src);
        relay_kafka_producer_close(p, WAIT_MS);
        relay_conf_destroy(conf);
}

int main(void)
{
        /* A wait that is not bounded after all must fail the test, not hang
         * the suite. */
        alarm(60);
        relay_log_level = LOG_WARNING;
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_produce_acks_and_headers),
            cmocka_unit_test(test_wait_acks_bounded),
            cmocka_unit_test(test_delivery_failure_reaches_ack),
            cmocka_unit_test(test_lost_ack_duplicates_without_idempotence),
            cmocka_unit_test(test_idempotent_through_lost_acks),
            cmocka_unit_test(test_pinned_settings),
            cmocka_unit_test(test_bad_property),
            cmocka_unit_test(test_subscribe),
            cmocka_unit_test(test_consumer_resumes_after_stored),
            cmocka_unit_test(test_dlq),
        };
        /* One mock cluster for all tests (each uses its own topics): tearing a
         * cluster down takes a second of its thread's poll interval. */
        int failed = cmocka_run_group_tests(tests, mock_setup, mock_teardown);
        /* Every client handle was destroyed, so librdkafka's threads and
         * memory are gone before the leak checker looks. */
        if (rd_kafka_wait_destroyed(5000)) {
                fprintf(stderr, "librdkafka handles still alive at exit\n");
                failed++;
        }
        return failed;
}
