/*
 * passthrough: the ceiling of relay-transform in tests/bench/hotpath.sh.
 * What a consumer → producer of the same librdkafka can do when it does
 * nothing to the records: consume a topic from the beginning (its own
 * group, auto.offset.reset=earliest), produce each record's key and value
 * bytes unchanged to another topic, wait for every delivery report, commit
 * the offsets consumed, and exit once N records were produced and
 * acknowledged.
 *
 *   passthrough --bootstrap B --topic IN --out-topic OUT --group G
 *               --records N [--timeout S] [-X name=value ...]
 *
 * The producer keeps the guarantee relay's has (enable.idempotence, so
 * acks=all) and librdkafka's defaults otherwise (linger.ms 5, batches of up
 * to 1 MB, no compression): a ceiling, not a handicapped straw man. The
 * partitioner places each record, as it does relay's (-X overrides any of
 * it, for both clients).
 *
 * Prints one JSON line (ceiling_report). Exits 0 when all N were
 * acknowledged and committed, 1 otherwise (naming why), 2 on bad arguments.
 */
#include "ceiling.h"

#include <stdio.h>
#include <string.h>

struct acks {
        long ok, failed;
        rd_kafka_resp_err_t first_err;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
        struct acks *acks = opaque;
        if (m->err) {
                if (!acks->failed++)
                        acks->first_err = m->err;
        } else {
                acks->ok++;
        }
}

static rd_kafka_t *producer_new(const struct ceiling_args *a, struct acks *acks,
                                char *errstr, size_t errstr_size)
{
        char bs[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        snprintf(bs, sizeof(bs), "bootstrap.servers=%s", a->bootstrap);
        const char *const props[] = {bs, "enable.idempotence=true"};
        if (ceiling_conf_set(conf, props, 2, errstr, errstr_size) ||
            ceiling_conf_set(conf, a->props, a->nprops, errstr, errstr_size)) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_opaque(conf, acks);
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
        if (!rk)
                rd_kafka_conf_destroy(conf);
        return rk;
}

/* Produces one record's key and value (copied: the consumer's message is
 * destroyed right after). Waits on a full queue, serving delivery reports,
 * until deadline_ms. 0, or -1 with errstr. */
static int pass_on(rd_kafka_t *p, const char *topic,
                   const rd_kafka_message_t *m, long long deadline_ms,
                   char *errstr, size_t errstr_size)
{
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    p, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_KEY(m->key, m->key_len),
                    RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_END);
                if (!err)
                        return 0;
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL ||
                    ceiling_now_ms() >= deadline_ms) {
                        snprintf(errstr, errstr_size, "produce to %s: %s",
                                 topic, rd_kafka_err2str(err));
                        return -1;
                }
                rd_kafka_poll(p, 10);
        }
}

/* Asks for the output topic's metadata before the first record: without
 * it librdkafka (2.0) holds the first produced records about a second
 * (until its broker thread next wakes) while it learns the partitions,
 * which would put a fixed second into every run of the ceiling. 0, or -1
 * with errstr. */
static int warm_up(rd_kafka_t *p, const char *topic, char *errstr,
                   size_t errstr_size)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p, topic, NULL);
        rd_kafka_resp_err_t err = rkt ? rd_kafka_metadata(p, 0, rkt, &md, 10000)
                                      : rd_kafka_last_error();
        if (!err && (md->topic_cnt != 1 || md->topics[0].err))
                err = md->topic_cnt == 1 ? md->topics[0].err
                                         : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (md)
                rd_kafka_metadata_destroy(md);
        if (rkt)
                rd_kafka_topic_destroy(rkt);
        if (err)
                snprintf(errstr, errstr_size, "metadata of %s: %s", topic,
                         rd_kafka_err2str(err));
        return err ? -1 : 0;
}

int main(int argc, char **argv)
{
        long long t0 = ceiling_now_ms();
        struct ceiling_args a;
        struct acks acks = {0, 0, RD_KAFKA_RESP_ERR_NO_ERROR};
        char errstr[512];
        rd_kafka_t *c = NULL, *p = NULL;
        rd_kafka_topic_partition_list_t *offsets =
            rd_kafka_topic_partition_list_new(8);
        long long first_ms = 0, done_ms = 0;
        long consumed = 0;
        int rc = 1;

        int arc =
            ceiling_parse_args(&a, argc, argv, "passthrough", "--out-topic T");
        if (arc || !a.out_topic) {
                rd_kafka_topic_partition_list_destroy(offsets);
                return arc == 1 ? 0 : 2;
        }
        long long deadline = t0 + (long long)a.timeout_s * 1000;
        if (!(p = producer_new(&a, &acks, errstr, sizeof(errstr))) ||
            !(c = ceiling_consumer_new(&a, errstr, sizeof(errstr))))
                goto done;

        if (warm_up(p, a.out_topic, errstr, sizeof(errstr)))
                goto done;
        while (consumed < a.records) {
                if (ceiling_now_ms() >= deadline) {
                        snprintf(errstr, sizeof(errstr),
                                 "consumed %ld of %ld records in %d s",
                                 consumed, a.records, a.timeout_s);
                        goto done;
                }
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
                rd_kafka_poll(p, 0); /* delivery reports */
                if (!m)
                        continue;
                if (m->err) {
                        /* Reaching a partition's end is no error here;
                         * anything else is. */
                        int fatal = m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF;
                        if (fatal)
                                snprintf(errstr, sizeof(errstr), "consume: %s",
                                         rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        if (fatal)
                                goto done;
                        continue;
                }
                if (!first_ms)
                        first_ms = ceiling_now_ms();
                int bad = pass_on(p, a.out_topic, m, deadline, errstr,
                                  sizeof(errstr));
                if (!bad) {
                        ceiling_consumed(offsets, m);
                        consumed++;
                }
                rd_kafka_message_destroy(m);
                if (bad)
                        goto done;
        }

        long long left = deadline - ceiling_now_ms();
        rd_kafka_flush(p, left > 0 ? (int)left : 0);
        if (acks.ok != a.records || acks.failed) {
                snprintf(errstr, sizeof(errstr),
                         "%ld of %ld records acknowledged, %ld failed%s%s",
                         acks.ok, a.records, acks.failed,
                         acks.failed ? ": " : "",
                         acks.failed ? rd_kafka_err2str(acks.first_err) : "");
                goto done;
        }
        if (ceiling_commit(c, offsets, errstr, sizeof(errstr)))
                goto done;
        done_ms = ceiling_now_ms();
        rc = 0;
done:
        if (c) {
                rd_kafka_consumer_close(c);
                rd_kafka_destroy(c);
        }
        if (p)
                rd_kafka_destroy(p);
        rd_kafka_topic_partition_list_destroy(offsets);
        if (rc) {
                fprintf(stderr, "passthrough: %s\n", errstr);
                return 1;
        }
        ceiling_report("passthrough", a.records, t0, first_ms, done_ms, "");
        return 0;
}
