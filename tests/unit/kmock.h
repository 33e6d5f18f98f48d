/*
 * Helpers for unit tests that run a whole worker engine against
 * librdkafka's in-process mock cluster (include after <cmocka.h>): the
 * cluster, a relay conf pointing at it, producing inputs, reading a topic
 * back, a group's committed offset, relay.* headers, and the relay log
 * captured into a file so that a test can read what a person would read.
 * Every wait is bounded by KMOCK_WAIT_MS. Everything is static, so each
 * test binary has its own copy (like unit.h).
 */
#ifndef RELAY_TESTS_KMOCK_H
#define RELAY_TESTS_KMOCK_H

#include "relay/common.h"
#include "relay/conf.h"
#include "relay/log.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Kafka protocol ApiKey of ProduceRequest (RD_KAFKAP_* is not public). */
#define KMOCK_APIKEY_PRODUCE 0
#define KMOCK_WAIT_MS        15000 /* upper bound of any single wait */

struct kmock {
        rd_kafka_t *host; /* runs the mock cluster's threads */
        rd_kafka_mock_cluster_t *mc;
        const char *bootstraps;
        char log_path[256];
        FILE *log;
};

static inline struct kmock *kmock_new(void)
{
        char why[256];
        struct kmock *k = relay_calloc(1, sizeof(*k));
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        assert_int_equal(
            rd_kafka_conf_set(kc, "log_level", "0", why, sizeof(why)),
            RD_KAFKA_CONF_OK);
        k->host = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why));
        assert_non_null(k->host);
        k->mc = rd_kafka_mock_cluster_new(k->host, 1);
        assert_non_null(k->mc);
        k->bootstraps = rd_kafka_mock_cluster_bootstraps(k->mc);
        return k;
}

static inline void kmock_destroy(struct kmock *k)
{
        rd_kafka_mock_cluster_destroy(k->mc);
        rd_kafka_destroy(k->host);
        free(k);
}

/* A finished conf of tables pointing at the mock, with the consumer
 * settings that keep a test fast (earliest, short sessions and commits),
 * then the name/value pairs of extra (NULL-terminated, may be NULL) and
 * those of ap ("kafka.x", "v", ..., NULL) as with -X. The mock delays a
 * first join by 3 s and a later one by the session timeout less 1 s, so
 * the session must stay above 3 s. */
static inline relay_conf_t *kmock_vconf(const struct kmock *k,
                                        const relay_conf_prop_t *const *tables,
                                        size_t ntables,
                                        const char *const *extra, va_list ap)
{
        static const char *const defaults[] = {"kafka.auto.offset.reset",
                                               "earliest",
                                               "kafka.session.timeout.ms",
                                               "4000",
                                               "kafka.heartbeat.interval.ms",
                                               "300",
                                               "kafka.auto.commit.interval.ms",
                                               "100",
                                               "kafka.fetch.wait.max.ms",
                                               "50",
                                               "kafka.linger.ms",
                                               "5",
                                               NULL};
        char err[512];
        relay_conf_t *conf = relay_conf_new(tables, ntables);
        assert_int_equal(relay_conf_set(conf, "kafka.bootstrap.servers",
                                        k->bootstraps, err, sizeof(err)),
                         0);
        const char *const *lists[] = {defaults, extra};
        for (size_t l = 0; l < 2; l++)
                for (size_t i = 0; lists[l] && lists[l][i]; i += 2)
                        if (relay_conf_set(conf, lists[l][i], lists[l][i + 1],
                                           err, sizeof(err)))
                                fail_msg("set %s: %s", lists[l][i], err);
        const char *name;
        while ((name = va_arg(ap, const char *))) {
                const char *value = va_arg(ap, const char *);
                if (relay_conf_set(conf, name, value, err, sizeof(err)))
                        fail_msg("set %s: %s", name, err);
        }
        if (relay_conf_finish(conf, err, sizeof(err)))
                fail_msg("finish: %s", err);
        return conf;
}

static inline relay_conf_t *kmock_conf(const struct kmock *k,
                                       const relay_conf_prop_t *const *tables,
                                       size_t ntables, ...)
{
        va_list ap;
        va_start(ap, ntables);
        relay_conf_t *conf = kmock_vconf(k, tables, ntables, NULL, ap);
        va_end(ap);
        return conf;
}

static inline rd_kafka_t *kmock_client(const struct kmock *k,
                                       rd_kafka_type_t type, const char *group)
{
        char why[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        assert_int_equal(rd_kafka_conf_set(kc, "bootstrap.servers",
                                           k->bootstraps, why, sizeof(why)),
                         RD_KAFKA_CONF_OK);
        if (group) {
                static const char *const kv[][2] = {
                    {"enable.auto.commit", "false"},
                    {"fetch.wait.max.ms", "20"},
                    {"enable.partition.eof", "true"}};
                assert_int_equal(
                    rd_kafka_conf_set(kc, "group.id", group, why, sizeof(why)),
                    RD_KAFKA_CONF_OK);
                for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
                        assert_int_equal(rd_kafka_conf_set(kc, kv[i][0],
                                                           kv[i][1], why,
                                                           sizeof(why)),
                                         RD_KAFKA_CONF_OK);
        }
        rd_kafka_t *rk = rd_kafka_new(type, kc, why, sizeof(why));
        if (!rk)
                fail_msg("client: %s", why);
        return rk;
}

/* Produce n values (and keys, may be NULL) to partition 0 of topic,
 * waiting until all are acked. */
static inline void kmock_produce(const struct kmock *k, const char *topic,
                                 const void *const *values, const size_t *lens,
                                 const char *const *keys, size_t n)
{
        rd_kafka_t *p = kmock_client(k, RD_KAFKA_PRODUCER, NULL);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(
                    rd_kafka_producev(
                        p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                        RD_KAFKA_V_VALUE((void *)values[i], lens[i]),
                        RD_KAFKA_V_KEY((void *)(keys ? keys[i] : NULL),
                                       keys ? strlen(keys[i]) : 0),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END),
                    0);
        assert_int_equal(rd_kafka_flush(p, KMOCK_WAIT_MS), 0);
        rd_kafka_destroy(p);
}

/* Everything in partition 0 of topic, read from the start until its end.
 * Free with kmock_readback_free. */
struct kmock_readback {
        rd_kafka_t *rk;
        rd_kafka_message_t *msgs[512];
        size_t n;
};

static inline void kmock_read(const struct kmock *k, const char *topic,
                              struct kmock_readback *rb)
{
        rb->rk = kmock_client(k, RD_KAFKA_CONSUMER, "relay-test-readback");
        rb->n = 0;
        rd_kafka_topic_partition_list_t *tl =
            rd_kafka_topic_partition_list_new(1);
        /* Offset 0, not BEGINNING: the mock's logs start at 0, and a
         * logical offset costs an offset query retried after 500 ms. */
        rd_kafka_topic_partition_list_add(tl, topic, 0)->offset = 0;
        assert_int_equal(rd_kafka_assign(rb->rk, tl), 0);
        rd_kafka_topic_partition_list_destroy(tl);
        int64_t until = relay_mono_ms() + KMOCK_WAIT_MS;
        while (relay_mono_ms() < until) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rb->rk, 100);
                if (!m)
                        continue;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        rd_kafka_message_destroy(m);
                        return;
                }
                if (m->err) {
                        fprintf(stderr, "read back %s: %s\n", topic,
                                rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        continue;
                }
                assert_true(rb->n < 512);
                rb->msgs[rb->n++] = m;
        }
        fail_msg("read back %s: no end of partition after %d ms", topic,
                 KMOCK_WAIT_MS);
}

static inline void kmock_readback_free(struct kmock_readback *rb)
{
        for (size_t i = 0; i < rb->n; i++)
                rd_kafka_message_destroy(rb->msgs[i]);
        rb->n = 0;
        rd_kafka_destroy(rb->rk);
}

/* The offset group has committed for partition 0 of topic: -1 when none
 * (RD_KAFKA_OFFSET_INVALID), -2 when the query failed. checker is a
 * consumer of kmock_client(..., group) that never subscribes. */
static inline int64_t kmock_committed(rd_kafka_t *checker, const char *topic)
{
        rd_kafka_topic_partition_list_t *tl =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(tl, topic, 0);
        int64_t off = -2;
        if (rd_kafka_committed(checker, tl, 5000) == 0 && !tl->elems[0].err)
                off = tl->elems[0].offset < 0 ? -1 : tl->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(tl);
        return off;
}

/* The first header called name as a string ("" when absent) in buf. */
static inline const char *kmock_header(const rd_kafka_message_t *m,
                                       const char *name, char *buf, size_t size)
{
        rd_kafka_headers_t *h;
        const void *v;
        size_t n;
        buf[0] = '\0';
        if (rd_kafka_message_headers(m, &h) ||
            rd_kafka_header_get(h, 0, name, &v, &n))
                return buf;
        snprintf(buf, size, "%.*s", (int)n, v ? (const char *)v : "");
        return buf;
}

static inline int kmock_has_header(const rd_kafka_message_t *m,
                                   const char *name)
{
        rd_kafka_headers_t *h;
        const void *v;
        size_t n;
        return !rd_kafka_message_headers(m, &h) &&
               !rd_kafka_header_get(h, 0, name, &v, &n);
}

/* Send the relay log (and librdkafka's, through it) to a file, from now on.
 * The file shows on stderr when the test ends, which ctest prints only
 * when a test failed. */
static inline void kmock_log_start(struct kmock *k, const char *name)
{
        snprintf(k->log_path, sizeof(k->log_path), "/tmp/relay-test-%s-%d.log",
                 name, (int)getpid());
        k->log = fopen(k->log_path, "w+");
        assert_non_null(k->log);
        relay_log_set_stream(k->log);
        relay_log_level = LOG_INFO;
}

/* What was logged so far (a new string, to free). */
static inline char *kmock_log_text(struct kmock *k)
{
        FILE *fp = fopen(k->log_path, "r");
        assert_non_null(fp);
        relay_buf_t b;
        relay_buf_init(&b);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
                relay_buf_append(&b, chunk, n);
        fclose(fp);
        relay_buf_puts(&b, "");
        return b.data ? b.data : relay_strdup("");
}

/* How many lines of the log contain needle. */
static inline int kmock_log_count(struct kmock *k, const char *needle)
{
        char *t = kmock_log_text(k);
        int n = 0;
        for (char *p = t; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        free(t);
        return n;
}

static inline void kmock_log_stop(struct kmock *k)
{
        if (!k->log)
                return;
        relay_log_set_stream(NULL);
        char *t = kmock_log_text(k);
        fprintf(stderr, "---- log of the test ----\n%s", t);
        free(t);
        fclose(k->log);
        k->log = NULL;
        remove(k->log_path);
}

#endif
