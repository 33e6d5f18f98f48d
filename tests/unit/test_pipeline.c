/*
 * Unit tests of the pipeline engine (common/pipeline/pipeline.c) with a
 * trivial processor, on librdkafka's mock cluster: each input record
 * becomes one output (a copy, or a value of a chosen size), or a dead
 * letter when its value starts with "bad". What they check is what a user
 * would: outputs written, offsets committed, dead letters and their
 * headers, nothing stored past an unwritten output, and a worker that
 * keeps running and heals. The engine runs in a thread; the test clears
 * its running flag. Every wait is bounded, and an alarm stops the binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kmock.h"
#include "unit.h"
#include "relay/dlq.h"
#include "relay/kafka.h"
#include "relay/pipeline.h"

#include <pthread.h>
#include <signal.h>

static struct kmock *km;

static const relay_conf_prop_t props[] = {
    {"name", RELAY_CONF_STRING, "test", 1, 0, 0, "worker name", 0},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};
static const relay_conf_prop_t *const tables[] = {props};

/* ---- the processor --------------------------------------------------------
 */

#define MAX_CALLS 16

struct tproc {
        const char *out_topic;
        const char *tag;
        size_t big_len; /* a record whose value starts "big": output of
                           this many bytes */
        int retries;    /* record 0 of the first batch: RETRY this often */
        long retry_ms;  /* ... each time asking to be woken this much later */
        /* written by the engine's thread, read with __atomic by the test */
        int records; /* taken */
        int calls0;  /* calls for the first record */
        int64_t call_at[MAX_CALLS], wake_at[MAX_CALLS];
        int64_t first_offset;
        int commits_in_flight;  /* the engine's bound (0: no wait) */
        int max_unanswered;     /* seen at a batch's end */
        int batches_in_flight;  /* the engine's (0: one at a time) */
        long batch_wait_ms;     /* the engine's (0: 200) */
        const char *slow_topic; /* a value starting "slow" goes there */
        /* batches handed over (the end hook, at each seal), their sizes,
         * and the most batches sealed but not yet released (their acks
         * outstanding) seen when a record was taken */
        int seals;
        size_t seal_size[64];
        int max_overlap;
        /* gaps of at least gap_ms between two records taken, counted when
         * gap_ms is set */
        long gap_ms;
        int64_t last_at;
        int gaps;
};

static enum relay_result tp_record(void *opaque, relay_pipeline_t *p, size_t i)
{
        struct tproc *t = opaque;
        const rd_kafka_message_t *m = relay_pipeline_msg(p, i);
        if (t->gap_ms) {
                int64_t now = relay_mono_ms();
                if (t->last_at && now - t->last_at >= t->gap_ms)
                        t->gaps++;
                t->last_at = now;
        }
        int overlap = t->seals - (int)relay_pipeline_stats(p)->batches;
        if (overlap > t->max_overlap)
                t->max_overlap = overlap;
        if (t->retries && (t->calls0 == 0 || m->offset == t->first_offset) &&
            t->calls0 <= t->retries) {
                int c = t->calls0;
                if (c == 0)
                        t->first_offset = m->offset;
                t->call_at[c] = relay_mono_ms();
                __atomic_store_n(&t->calls0, c + 1, __ATOMIC_SEQ_CST);
                if (c < t->retries) {
                        t->wake_at[c] = t->call_at[c] + t->retry_ms;
                        relay_pipeline_wake_at(p, t->wake_at[c]);
                        return RELAY_RETRY;
                }
        }
        if (m->len >= 3 && !memcmp(m->payload, "bad", 3)) {
                relay_dlq_info_t info = {NULL, "test", "bad record", 0, 0,
                                         NULL, 0};
                relay_pipeline_dead_letter(p, i, &info);
        } else if (t->slow_topic && m->len >= 4 &&
                   !memcmp(m->payload, "slow", 4)) {
                relay_pipeline_produce(p, i, t->slow_topic, m->key, m->key_len,
                                       m->payload, m->len, t->tag);
                relay_pipeline_done(p, i);
        } else if (t->big_len && m->len >= 3 && !memcmp(m->payload, "big", 3)) {
                char *v = relay_calloc(1, t->big_len);
                relay_pipeline_produce(p, i, t->out_topic, m->key, m->key_len,
                                       v, t->big_len, t->tag);
                free(v);
                relay_pipeline_done(p, i);
        } else {
                relay_pipeline_produce(p, i, t->out_topic, m->key, m->key_len,
                                       m->payload, m->len, t->tag);
                relay_pipeline_done(p, i);
        }
        __atomic_add_fetch(&t->records, 1, __ATOMIC_SEQ_CST);
        return RELAY_OK;
}

static enum relay_result tp_flush(void *opaque, relay_pipeline_t *p)
{
        return RELAY_OK;
}

/* A batch is handed over (flushed): how many of the engine's commits Kafka
 * has not answered (the older batches' commits were waited for), and the
 * batch's size. */
static void tp_end(void *opaque, relay_pipeline_t *p)
{
        struct tproc *t = opaque;
        int n = relay_kafka_commits_wait(relay_pipeline_consumer(p), 1000, 0);
        if (n > t->max_unanswered)
                t->max_unanswered = n;
        if (t->seals < 64)
                t->seal_size[t->seals] = relay_pipeline_count(p);
        __atomic_add_fetch(&t->seals, 1, __ATOMIC_SEQ_CST);
}

static const relay_processor_t tproc_ops = {
    .record = tp_record, .flush = tp_flush, .end = tp_end};

/* ---- running the engine ----------------------------------------------------
 */

struct run {
        relay_pipeline_t *p;
        volatile sig_atomic_t running;
        pthread_t thread;
        int rc, done;
        rd_kafka_t *checker; /* reads the group's committed offset */
        const char *topic;
};

static void *run_main(void *arg)
{
        struct run *r = arg;
        r->rc = relay_pipeline_run(r->p);
        __atomic_store_n(&r->done, 1, __ATOMIC_SEQ_CST);
        return NULL;
}

/* Start the engine on topic (group g-<topic>) with the processor. */
static void start(struct run *r, relay_conf_t *conf, const char *topic,
                  struct tproc *t, size_t batch)
{
        char err[512], group[128];
        snprintf(group, sizeof(group), "g-%s", topic);
        memset(r, 0, sizeof(*r));
        r->running = 1;
        r->topic = topic;
        relay_pipeline_conf_t pc = {
            .worker = "ptest",
            .topics = topic,
            .group_id = group,
            .dlq_topic = "dlq.ptest",
            .batch_size = batch,
            .batch_wait_ms = t->batch_wait_ms ? t->batch_wait_ms : 200,
            .commits_in_flight = t->commits_in_flight,
            .batches_in_flight = t->batches_in_flight,
            .running = &r->running};
        r->p = relay_pipeline_new(conf, &pc, &tproc_ops, t, NULL, err,
                                  sizeof(err));
        if (!r->p)
                fail_msg("pipeline: %s", err);
        r->checker = kmock_client(km, RD_KAFKA_CONSUMER, group);
        assert_int_equal(pthread_create(&r->thread, NULL, run_main, r), 0);
}

static void stop(struct run *r)
{
        r->running = 0;
        pthread_join(r->thread, NULL);
        relay_pipeline_destroy(r->p);
        rd_kafka_destroy(r->checker);
        assert_int_equal(r->rc, 0);
}

static int64_t committed(struct run *r)
{
        return kmock_committed(r->checker, r->topic);
}

/* Wait (bounded) until the group committed want. */
static void wait_committed(struct run *r, int64_t want)
{
        int64_t until = relay_mono_ms() + KMOCK_WAIT_MS, got = -1;
        while (relay_mono_ms() < until) {
                if ((got = committed(r)) == want)
                        return;
                usleep(100000);
        }
        fail_msg("committed offset of %s is %lld, want %lld", r->topic,
                 (long long)got, (long long)want);
}

static void wait_records(struct tproc *t, int n)
{
        int64_t until = relay_mono_ms() + KMOCK_WAIT_MS;
        while (__atomic_load_n(&t->records, __ATOMIC_SEQ_CST) < n &&
               relay_mono_ms() < until)
                usleep(20000);
        assert_int_equal(__atomic_load_n(&t->records, __ATOMIC_SEQ_CST), n);
}

/* Produce n values and keys to partition 0 of topic in one produce
 * request (a long linger), so that they are one message set, which the
 * mock cluster hands out in one fetch: the engine sees them all ready at
 * once, however slowly this runs (a sanitizer build). */
static void produce_together(const char *topic, const void *const *values,
                             const size_t *lens, const char *const *keys,
                             size_t n)
{
        char why[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        assert_int_equal(rd_kafka_conf_set(kc, "bootstrap.servers",
                                           km->bootstraps, why, sizeof(why)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(
            rd_kafka_conf_set(kc, "linger.ms", "1000", why, sizeof(why)),
            RD_KAFKA_CONF_OK);
        rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why));
        assert_non_null(p);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(
                    rd_kafka_producev(
                        p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                        RD_KAFKA_V_VALUE((void *)values[i], lens[i]),
                        RD_KAFKA_V_KEY((void *)keys[i], strlen(keys[i])),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END),
                    0);
        assert_int_equal(rd_kafka_flush(p, KMOCK_WAIT_MS), 0);
        rd_kafka_destroy(p);
}

/* n inputs "v<from>".."v<from+n-1>" keyed "k<from>".. to topic. */
static void produce_inputs_from(const char *topic, int from, int n)
{
        char vals[64][16], keys[64][16];
        const void *v[64];
        const char *k[64];
        size_t l[64];
        assert_true(n <= 64);
        for (int j = 0; j < n; j++) {
                int i = j;
                snprintf(vals[i], sizeof(vals[i]), "v%d", from + j);
                snprintf(keys[i], sizeof(keys[i]), "k%d", from + j);
                v[i] = vals[i];
                k[i] = keys[i];
                l[i] = strlen(vals[i]);
        }
        kmock_produce(km, topic, v, l, k, (size_t)n);
}

/* n inputs "v0".."v<n-1>" keyed "k0".. to topic. */
static void produce_inputs(const char *topic, int n)
{
        produce_inputs_from(topic, 0, n);
}

/* Each of "v0".."v<n-1>" is in topic at least once, in order of first
 * appearance, and nothing else is. */
static void assert_outputs(const char *topic, int n)
{
        struct kmock_readback rb;
        kmock_read(km, topic, &rb);
        int next = 0;
        for (size_t j = 0; j < rb.n; j++) {
                char want[16];
                int seen = -1;
                const rd_kafka_message_t *m = rb.msgs[j];
                assert_true(m->len < 15);
                if (sscanf((const char *)m->payload, "v%d", &seen) != 1)
                        fail_msg("unexpected output %.*s", (int)m->len,
                                 (const char *)m->payload);
                snprintf(want, sizeof(want), "v%d", seen);
                assert_int_equal(m->len, strlen(want));
                if (seen == next)
                        next++;
                else if (seen > next)
                        fail_msg("output v%d before v%d", seen, next);
                /* seen < next: a duplicate, allowed after a retry */
        }
        kmock_readback_free(&rb);
        assert_int_equal(next, n);
}

/* ---- tests ------------------------------------------------------------------
 */

/* N records in: N outputs, each keyed as its input, and the group's
 * committed offset is exactly N. */
static void test_outputs_and_offsets(void **state)
{
        enum { N = 20 };
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "in1", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "out1", 1, 1), 0);
        produce_inputs("in1", N);
        relay_conf_t *conf = kmock_conf(km, tables, 1, NULL);
        struct tproc t = {.out_topic = "out1", .tag = "c1"};
        struct run r;
        start(&r, conf, "in1", &t, 8);
        wait_records(&t, N);
        wait_committed(&r, N);
        stop(&r);

        struct kmock_readback rb;
        kmock_read(km, "out1", &rb);
        assert_int_equal(rb.n, N);
        for (size_t i = 0; i < rb.n; i++) {
                char want[32];
                snprintf(want, sizeof(want), "v%zu", i);
                assert_int_equal(rb.msgs[i]->len, strlen(want));
                assert_memory_equal(rb.msgs[i]->payload, want, strlen(want));
                snprintf(want, sizeof(want), "k%zu", i);
                assert_int_equal(rb.msgs[i]->key_len, strlen(want));
                assert_memory_equal(rb.msgs[i]->key, want, strlen(want));
        }
        kmock_readback_free(&rb);
        relay_conf_destroy(conf);
}

/* Produce requests fail (NOT_LEADER, answered to every request) for longer
 * than message.timeout.ms: while they fail nothing is committed; once they
 * stop, every output is written and the offset moves to N. */
static void test_transient_produce_errors(void **state)
{
        enum { N = 6 };
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "in2", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "out2", 1, 1), 0);
        produce_inputs("in2", N);
        relay_conf_t *conf =
            kmock_conf(km, tables, 1, "kafka.message.timeout.ms", "600", NULL);
        rd_kafka_resp_err_t errs[400];
        for (size_t i = 0; i < 400; i++)
                errs[i] = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
        rd_kafka_mock_push_request_errors_array(km->mc, KMOCK_APIKEY_PRODUCE,
                                                400, errs);
        struct tproc t = {.out_topic = "out2"};
        struct run r;
        start(&r, conf, "in2", &t, 8);
        wait_records(&t, N);
        /* At least two rounds of timeouts, with retries by the engine. */
        int64_t until = relay_mono_ms() + KMOCK_WAIT_MS;
        while (relay_mono_ms() < until &&
               __atomic_load_n(&relay_pipeline_stats(r.p)->produce_retries,
                               __ATOMIC_SEQ_CST) < 2)
                usleep(50000);
        assert_true(relay_pipeline_stats(r.p)->produce_retries >= 2);
        assert_int_equal(committed(&r), -1);
        assert_false(__atomic_load_n(&r.done, __ATOMIC_SEQ_CST));

        rd_kafka_mock_clear_request_errors(km->mc, KMOCK_APIKEY_PRODUCE);
        wait_committed(&r, N);
        stop(&r);
        assert_outputs("out2", N);
        relay_conf_destroy(conf);
}

/* The record's fault: an output larger than the producer's
 * message.max.bytes dead-letters its input (stage produce, the output's
 * tag as relay.connection); a dead letter that is itself too large becomes
 * a stub (relay.value_omitted, empty value, the original offset). The
 * other records go through and the offset moves past all of them. */
static void test_record_class(void **state)
{
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "in3", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "out3", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "dlq.ptest", 1, 1),
                         0);
        enum { HUGE = 19950 };
        char *huge = relay_malloc(HUGE);
        memset(huge, 'x', HUGE);
        memcpy(huge, "bad", 3);
        const void *v[] = {"v0", "big1", huge, "v3"};
        size_t l[] = {2, 4, HUGE, 2};
        const char *k[] = {"k0", "k1", "k2", "k3"};
        kmock_produce(km, "in3", v, l, k, 4);
        free(huge);

        relay_conf_t *conf =
            kmock_conf(km, tables, 1, "kafka.message.max.bytes", "20000", NULL);
        struct tproc t = {
            .out_topic = "out3", .tag = "conn-a", .big_len = 25000};
        struct run r;
        start(&r, conf, "in3", &t, 8);
        wait_records(&t, 4);
        wait_committed(&r, 4);
        stop(&r);

        struct kmock_readback out, dlq;
        kmock_read(km, "out3", &out);
        assert_int_equal(out.n, 2);
        assert_memory_equal(out.msgs[0]->payload, "v0", 2);
        assert_memory_equal(out.msgs[1]->payload, "v3", 2);
        kmock_readback_free(&out);

        char h[512];
        kmock_read(km, "dlq.ptest", &dlq);
        assert_int_equal(dlq.n, 2);
        const rd_kafka_message_t *d = dlq.msgs[0];
        /* The input whose output was refused, whole. */
        assert_int_equal(d->len, 4);
        assert_memory_equal(d->payload, "big1", 4);
        assert_string_equal(kmock_header(d, RELAY_DLQ_H_STAGE, h, sizeof(h)),
                            "produce");
        assert_string_equal(
            kmock_header(d, RELAY_DLQ_H_CONNECTION, h, sizeof(h)), "conn-a");
        assert_string_equal(kmock_header(d, RELAY_DLQ_H_OFFSET, h, sizeof(h)),
                            "1");
        assert_contains(kmock_header(d, RELAY_DLQ_H_ERROR, h, sizeof(h)),
                        "out3");
        assert_false(kmock_has_header(d, RELAY_DLQ_H_OMITTED));
        /* The stub of the record whose dead letter was too large. */
        d = dlq.msgs[1];
        assert_int_equal(d->len, 0);
        assert_true(kmock_has_header(d, RELAY_DLQ_H_OMITTED));
        assert_contains(kmock_header(d, RELAY_DLQ_H_OMITTED, h, sizeof(h)),
                        "19950");
        assert_string_equal(kmock_header(d, RELAY_DLQ_H_STAGE, h, sizeof(h)),
                            "test");
        assert_string_equal(kmock_header(d, RELAY_DLQ_H_ERROR, h, sizeof(h)),
                            "bad record");
        assert_string_equal(kmock_header(d, RELAY_DLQ_H_TOPIC, h, sizeof(h)),
                            "in3");
        assert_string_equal(kmock_header(d, RELAY_DLQ_H_OFFSET, h, sizeof(h)),
                            "2");
        assert_string_equal(kmock_header(d, RELAY_DLQ_H_WORKER, h, sizeof(h)),
                            "ptest");
        kmock_readback_free(&dlq);
        assert_int_equal(kmock_log_count(km, "writing a stub"), 1);
        relay_conf_destroy(conf);
}

/* A max_record_bytes whose dead letter could not fit message.max.bytes is
 * refused, naming the key; the largest that fits is accepted. */
static void test_max_record_bytes_checked(void **state)
{
        char err[512];
        relay_conf_t *conf =
            kmock_conf(km, tables, 1, "kafka.message.max.bytes", "20000", NULL);
        volatile sig_atomic_t running = 1;
        struct tproc t = {0};
        size_t room = 20000 - RELAY_DLQ_HEADROOM, got = 0;
        relay_pipeline_conf_t pc = {.worker = "ptest",
                                    .topics = "in4",
                                    .group_id = "g-in4",
                                    .dlq_topic = "dlq.ptest",
                                    .batch_size = 1,
                                    .max_record_bytes = room + 1,
                                    .max_record_key = "test.max_record_bytes",
                                    .running = &running};
        err[0] = '\0';
        assert_null(relay_pipeline_new(conf, &pc, &tproc_ops, &t, &got, err,
                                       sizeof(err)));
        assert_contains(err, "test.max_record_bytes");
        assert_contains(err, "message.max.bytes");

        pc.max_record_bytes = room;
        relay_pipeline_t *p = relay_pipeline_new(conf, &pc, &tproc_ops, &t,
                                                 &got, err, sizeof(err));
        if (!p)
                fail_msg("refused a limit that fits: %s", err);
        assert_int_equal(got, room);
        relay_pipeline_destroy(p);

        /* 0 takes the largest that fits. */
        pc.max_record_bytes = 0;
        got = 0;
        p = relay_pipeline_new(conf, &pc, &tproc_ops, &t, &got, err,
                               sizeof(err));
        assert_non_null(p);
        assert_int_equal(got, room);
        relay_pipeline_destroy(p);
        relay_conf_destroy(conf);
}

/* A processor that says RETRY for a record is called again with the same
 * record no earlier than the time it asked for; the waits add up to well
 * past max.poll.interval.ms, yet the consumer is served meanwhile: no
 * MAX_POLL_EXCEEDED, no lost partitions, no dropped records, and the
 * offset ends at N. */
static void test_record_retry_serves_consumer(void **state)
{
        /* Each wait alone is longer than max.poll.interval.ms (which
         * cannot be below session.timeout.ms, 4 s here). */
        enum { N = 3, RETRIES = 2, RETRY_MS = 4500 };
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "in5", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "out5", 1, 1), 0);
        produce_inputs("in5", N);
        relay_conf_t *conf = kmock_conf(
            km, tables, 1, "kafka.max.poll.interval.ms", "4000", NULL);
        struct tproc t = {
            .out_topic = "out5", .retries = RETRIES, .retry_ms = RETRY_MS};
        struct run r;
        start(&r, conf, "in5", &t, 8);
        int64_t until = relay_mono_ms() + RETRIES * RETRY_MS + KMOCK_WAIT_MS;
        while (__atomic_load_n(&t.records, __ATOMIC_SEQ_CST) < N &&
               relay_mono_ms() < until)
                usleep(50000);
        wait_records(&t, N);
        wait_committed(&r, N);
        const relay_pipeline_stats_t *st = relay_pipeline_stats(r.p);
        assert_int_equal(st->dropped, 0);
        stop(&r);

        assert_int_equal(t.calls0, RETRIES + 1);
        for (int c = 0; c < RETRIES; c++)
                if (t.call_at[c + 1] < t.wake_at[c])
                        fail_msg("call %d at %lld, before the wake time %lld",
                                 c + 1, (long long)t.call_at[c + 1],
                                 (long long)t.wake_at[c]);
        assert_true(t.call_at[RETRIES] - t.call_at[0] >= RETRIES * RETRY_MS);
        assert_int_equal(kmock_log_count(km, "maximum poll interval"), 0);
        assert_int_equal(kmock_log_count(km, "lost"), 0);
        assert_int_equal(kmock_log_count(km, "MAX_POLL"), 0);
        assert_outputs("out5", N);
        relay_conf_destroy(conf);
}

/* The setup's fault: the output topic does not exist (the mock answers
 * UNKNOWN_TOPIC_OR_PART, as a broker with auto-creation off): nothing is
 * committed, the worker keeps running and says why, and once the topic
 * exists every output is written and the offset moves to N. */
static void test_setup_class_heals(void **state)
{
        enum { N = 4 };
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "in6", 1, 1), 0);
        /* One partition, so that the read back sees every output. */
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "out6", 1, 1), 0);
        rd_kafka_mock_topic_set_error(km->mc, "out6",
                                      RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
        produce_inputs("in6", N);
        relay_conf_t *conf = kmock_conf(
            km, tables, 1, "kafka.topic.metadata.refresh.interval.ms", "500",
            "kafka.topic.metadata.propagation.max.ms", "200", NULL);
        struct tproc t = {.out_topic = "out6"};
        struct run r;
        start(&r, conf, "in6", &t, 8);
        wait_records(&t, N);
        int64_t until = relay_mono_ms() + KMOCK_WAIT_MS;
        while (relay_mono_ms() < until &&
               !kmock_log_count(km, "check that the topic exists"))
                usleep(50000);
        assert_true(kmock_log_count(km, "check that the topic exists") >= 1);
        /* Paused and still so a while later: nothing committed, alive. */
        usleep(2500000);
        assert_int_equal(committed(&r), -1);
        assert_false(__atomic_load_n(&r.done, __ATOMIC_SEQ_CST));
        assert_true(kmock_log_count(km, "cannot write to out6") >= 1);

        rd_kafka_mock_topic_set_error(km->mc, "out6",
                                      RD_KAFKA_RESP_ERR_NO_ERROR);
        wait_committed(&r, N);
        stop(&r);
        assert_int_equal(kmock_log_count(km, "resumed after"), 1);
        assert_outputs("out6", N);
        relay_conf_destroy(conf);
}

/* Kafka answers commits slowly (300 ms each) and batches are quick (one
 * record): the engine takes no batch while more than commits_in_flight of
 * its commits are unanswered, so that a kill -9 re-delivers at most those
 * and the batch in hand. */
static void test_commits_in_flight_bounded(void **state)
{
        enum { N = 8, KAFKAP_OFFSETCOMMIT = 8 };
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "in7", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "out7", 1, 1), 0);
        produce_inputs("in7", N);
        rd_kafka_mock_broker_push_request_error_rtts(
            km->mc, 1, KAFKAP_OFFSETCOMMIT, 12, RD_KAFKA_RESP_ERR_NO_ERROR, 300,
            RD_KAFKA_RESP_ERR_NO_ERROR, 300, RD_KAFKA_RESP_ERR_NO_ERROR, 300,
            RD_KAFKA_RESP_ERR_NO_ERROR, 300, RD_KAFKA_RESP_ERR_NO_ERROR, 300,
            RD_KAFKA_RESP_ERR_NO_ERROR, 300, RD_KAFKA_RESP_ERR_NO_ERROR, 300,
            RD_KAFKA_RESP_ERR_NO_ERROR, 300, RD_KAFKA_RESP_ERR_NO_ERROR, 300,
            RD_KAFKA_RESP_ERR_NO_ERROR, 300, RD_KAFKA_RESP_ERR_NO_ERROR, 300,
            RD_KAFKA_RESP_ERR_NO_ERROR, 300);
        relay_conf_t *conf = kmock_conf(km, tables, 1, NULL);
        struct tproc t = {.out_topic = "out7", .commits_in_flight = 1};
        struct run r;
        start(&r, conf, "in7", &t, 1);
        wait_records(&t, N);
        wait_committed(&r, N);
        stop(&r);
        /* Some were unanswered (the wait had work to do), never more than
         * the bound. */
        assert_true(t.max_unanswered >= 1);
        assert_true(t.max_unanswered <= 1);
        assert_outputs("out7", N);
        relay_conf_destroy(conf);
}

/* Kafka answers produce requests slowly (400 ms each) and batches are
 * small: with three batches in flight the engine takes the next batches'
 * records while the older batches' acks are outstanding, but never holds
 * more than two sealed batches when it takes one; every output is written
 * and the offset ends at N. */
static void test_batches_overlap_bounded(void **state)
{
        enum { N = 12, B = 3 };
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "in8", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "out8", 1, 1), 0);
        produce_inputs("in8", N);
        const rd_kafka_resp_err_t ok = RD_KAFKA_RESP_ERR_NO_ERROR;
        rd_kafka_mock_broker_push_request_error_rtts(
            km->mc, 1, KMOCK_APIKEY_PRODUCE, 8, ok, 400, ok, 400, ok, 400, ok,
            400, ok, 400, ok, 400, ok, 400, ok, 400);
        relay_conf_t *conf = kmock_conf(km, tables, 1, NULL);
        struct tproc t = {.out_topic = "out8", .batches_in_flight = B};
        struct run r;
        start(&r, conf, "in8", &t, 2);
        wait_records(&t, N);
        wait_committed(&r, N);
        stop(&r);
        /* Overlapped, up to the bound and not past it. */
        assert_int_equal(t.max_overlap, B - 1);
        assert_outputs("out8", N);
        relay_conf_destroy(conf);
}

/* Wait (bounded) until the log has needle. */
static void wait_log(const char *needle)
{
        int64_t until = relay_mono_ms() + KMOCK_WAIT_MS;
        while (relay_mono_ms() < until && !kmock_log_count(km, needle))
                usleep(50000);
        assert_true(kmock_log_count(km, needle) >= 1);
}

/* The first batch's first output cannot be written yet (its topic is
 * unknown to the cluster) while the second batch's are written at once:
 * nothing is committed while the first batch waits, although the second
 * is durable; once the topic heals everything is, and the offset moves to
 * N. */
static void test_offsets_stored_in_order(void **state)
{
        enum { N = 4 };
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "in9", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "out9", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "slow9", 1, 1), 0);
        rd_kafka_mock_topic_set_error(km->mc, "slow9",
                                      RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
        const void *v[] = {"slow0", "v1", "v2", "v3"};
        size_t l[] = {5, 2, 2, 2};
        const char *k[] = {"k0", "k1", "k2", "k3"};
        produce_together("in9", v, l, k, N);
        relay_conf_t *conf = kmock_conf(
            km, tables, 1, "kafka.topic.metadata.refresh.interval.ms", "500",
            "kafka.topic.metadata.propagation.max.ms", "200", NULL);
        struct tproc t = {
            .out_topic = "out9", .slow_topic = "slow9", .batches_in_flight = 4};
        struct run r;
        start(&r, conf, "in9", &t, 2);
        wait_records(&t, N);
        wait_log("cannot write to slow9");
        /* The later batch is durable... */
        struct kmock_readback rb;
        kmock_read(km, "out9", &rb);
        assert_int_equal(rb.n, 3);
        assert_memory_equal(rb.msgs[2]->payload, "v3", 2);
        kmock_readback_free(&rb);
        assert_true(__atomic_load_n(&t.seals, __ATOMIC_SEQ_CST) >= 2);
        /* ... and still nothing is stored past the first one. */
        usleep(1000000);
        assert_int_equal(committed(&r), -1);

        rd_kafka_mock_topic_set_error(km->mc, "slow9",
                                      RD_KAFKA_RESP_ERR_NO_ERROR);
        wait_committed(&r, N);
        stop(&r);
        kmock_read(km, "slow9", &rb);
        assert_true(rb.n >= 1);
        assert_memory_equal(rb.msgs[0]->payload, "slow0", 5);
        kmock_readback_free(&rb);
        relay_conf_destroy(conf);
}

/* A revoke while four batches are held: the first two are stored, the
 * third has a durable record and then one whose output cannot be written
 * (its topic is unknown), the fourth is durable. The revoke stores
 * exactly what is durable in order, 5 (past the third batch's first
 * record, not past the stuck one, nor past the fourth batch behind it),
 * and drops the four records of the held batches; once the topic heals
 * and the partition comes back, the offset moves to N. */
static void test_revoke_with_batches_in_flight(void **state)
{
        enum { N = 8 };
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "in10", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "out10", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "slow10", 1, 1), 0);
        rd_kafka_mock_topic_set_error(km->mc, "slow10",
                                      RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
        const void *v[] = {"v0", "v1", "v2", "v3", "v4", "slow5", "v6", "v7"};
        size_t l[] = {2, 2, 2, 2, 2, 5, 2, 2};
        const char *k[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"};
        produce_together("in10", v, l, k, N);
        relay_conf_t *conf = kmock_conf(
            km, tables, 1, "kafka.topic.metadata.refresh.interval.ms", "500",
            "kafka.topic.metadata.propagation.max.ms", "200",
            "kafka.max.poll.interval.ms", "6000", NULL);
        struct tproc t = {.out_topic = "out10",
                          .slow_topic = "slow10",
                          .batches_in_flight = 4};
        struct run r;
        start(&r, conf, "in10", &t, 2);
        wait_records(&t, N);
        wait_committed(&r, 4);
        wait_log("cannot write to slow10");
        assert_int_equal(__atomic_load_n(&t.seals, __ATOMIC_SEQ_CST), 4);

        /* Another member joins: the partition is revoked. */
        rd_kafka_t *other = kmock_client(km, RD_KAFKA_CONSUMER, "g-in10");
        rd_kafka_topic_partition_list_t *tl =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(tl, "in10", RD_KAFKA_PARTITION_UA);
        assert_int_equal(rd_kafka_subscribe(other, tl), 0);
        rd_kafka_topic_partition_list_destroy(tl);
        int64_t until = relay_mono_ms() + KMOCK_WAIT_MS;
        while (relay_mono_ms() < until &&
               !__atomic_load_n(&relay_pipeline_stats(r.p)->dropped,
                                __ATOMIC_SEQ_CST)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(other, 100);
                if (m)
                        rd_kafka_message_destroy(m);
        }
        assert_int_equal(relay_pipeline_stats(r.p)->dropped, 4);
        /* Stored for the next owner (the mock refuses the commit of a
         * member while the group rebalances, which a broker accepts). */
        assert_int_equal(kmock_log_count(km, "in10[0]: stored offset "), 1);
        assert_int_equal(kmock_log_count(km, "in10[0]: stored offset 5 "), 1);

        /* It leaves, the topic heals: the rest is done. */
        rd_kafka_mock_topic_set_error(km->mc, "slow10",
                                      RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_consumer_close(other);
        rd_kafka_destroy(other);
        wait_committed(&r, N);
        stop(&r);
        struct kmock_readback rb;
        kmock_read(km, "slow10", &rb);
        assert_true(rb.n >= 1);
        kmock_readback_free(&rb);
        relay_conf_destroy(conf);
}

/* batch_wait_ms is only an upper bound: records waiting in the consumer go
 * out as full batches (what is ready fills the batch in hand), and a lone
 * record after them goes out at once as a batch of its own, not after
 * batch_wait_ms (a minute, past every wait here). */
static void test_natural_batching(void **state)
{
        enum { N = 30 };
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "in11", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "out11", 1, 1), 0);
        char vals[N][16], keys[N][16];
        const void *v[N];
        const char *k[N];
        size_t l[N];
        for (int i = 0; i < N; i++) {
                snprintf(vals[i], sizeof(vals[i]), "v%d", i);
                snprintf(keys[i], sizeof(keys[i]), "k%d", i);
                v[i] = vals[i];
                k[i] = keys[i];
                l[i] = strlen(vals[i]);
        }
        produce_together("in11", v, l, k, N);
        relay_conf_t *conf = kmock_conf(km, tables, 1, NULL);
        struct tproc t = {.out_topic = "out11",
                          .batches_in_flight = 4,
                          .batch_wait_ms = 60000};
        struct run r;
        start(&r, conf, "in11", &t, 10);
        wait_committed(&r, N);
        produce_inputs_from("in11", N, 1);
        wait_committed(&r, N + 1);
        stop(&r);
        assert_int_equal(t.seals, 4);
        for (int b = 0; b < 3; b++)
                assert_int_equal(t.seal_size[b], 10);
        assert_int_equal(t.seal_size[3], 1);
        assert_outputs("out11", N + 1);
        relay_conf_destroy(conf);
}

static int log_setup(void **state)
{
        kmock_log_start(km, "pipeline");
        return 0;
}

static int log_teardown(void **state)
{
        kmock_log_stop(km);
        return 0;
}

static int group_setup(void **state)
{
        km = kmock_new();
        return 0;
}

static int group_teardown(void **state)
{
        kmock_destroy(km);
        return 0;
}

/* The consumer's queue counts as full at 20 records (queued.min.messages),
 * and the engine takes 480 of them, 8 a batch: librdkafka 2.0.2 stops
 * fetching at each full queue and, unless woken, looks again only after up
 * to a second. The engine wakes it when a poll finds nothing and the
 * broker holds more, also while a batch waits batch_wait_ms for more: no
 * two records are 150 ms apart (without the wake, 7 such gaps in a run
 * here); two are allowed for a machine that stalls the test now and
 * then. */
static void test_fetcher_woken(void **state)
{
        enum { N = 480 };
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "in12", 1, 1), 0);
        assert_int_equal(rd_kafka_mock_topic_create(km->mc, "out12", 1, 1),
                         0);
        for (int i = 0; i < N; i += 60)
                produce_inputs_from("in12", i, 60);
        relay_conf_t *conf =
            kmock_conf(km, tables, 1, "kafka.queued.min.messages", "20", NULL);
        struct tproc t = {.out_topic = "out12", .gap_ms = 150};
        struct run r;
        start(&r, conf, "in12", &t, 8);
        wait_records(&t, N);
        wait_committed(&r, N);
        stop(&r);
        if (t.gaps > 2)
                fail_msg("%d gaps of 150 ms or more between two records: the "
                         "fetcher slept",
                         t.gaps);
        assert_outputs("out12", N);
        relay_conf_destroy(conf);
}

int main(int argc, char **argv)
{
        alarm(150);
        /* One test by name (a glob): test_x ARGV[1]. */
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_outputs_and_offsets, log_setup,
                                            log_teardown),
            cmocka_unit_test_setup_teardown(test_transient_produce_errors,
                                            log_setup, log_teardown),
            cmocka_unit_test_setup_teardown(test_record_class, log_setup,
                                            log_teardown),
            cmocka_unit_test_setup_teardown(test_max_record_bytes_checked,
                                            log_setup, log_teardown),
            cmocka_unit_test_setup_teardown(test_record_retry_serves_consumer,
                                            log_setup, log_teardown),
            cmocka_unit_test_setup_teardown(test_commits_in_flight_bounded,
                                            log_setup, log_teardown),
            cmocka_unit_test_setup_teardown(test_setup_class_heals, log_setup,
                                            log_teardown),
            cmocka_unit_test_setup_teardown(test_batches_overlap_bounded,
                                            log_setup, log_teardown),
            cmocka_unit_test_setup_teardown(test_offsets_stored_in_order,
                                            log_setup, log_teardown),
            cmocka_unit_test_setup_teardown(test_revoke_with_batches_in_flight,
                                            log_setup, log_teardown),
            cmocka_unit_test_setup_teardown(test_natural_batching, log_setup,
                                            log_teardown),
            cmocka_unit_test_setup_teardown(test_fetcher_woken, log_setup,
                                            log_teardown),
        };
        int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
        if (rd_kafka_wait_destroyed(5000)) {
                fprintf(stderr, "librdkafka handles still alive at exit\n");
                failed++;
        }
        return failed;
}
