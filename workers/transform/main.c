/*
 * relay-transform: one process per input topic (loyalty.events here, the
 * other inbound topics alike). Decodes each record by its schema id,
 * applies every connection (mapping table) subscribed to the topic, and
 * produces the results to out.<destination> keyed by the person, so that a
 * person's records stay in order. A record that cannot be decoded or mapped
 * goes to dlq.transform with the reason.
 *
 * At-least-once: records are handled in batches; an input offset is stored
 * only after every output and dead letter of its batch was acknowledged by
 * Kafka. If any was not, the worker stops without storing, and the batch is
 * read again on restart.
 *
 * SIGHUP reloads the schemas and connections between two batches: the new
 * set is built and checked first, and only replaces the old one when all
 * of it loaded, so a bad edit leaves the worker running as it was.
 */
#include "relay/avro.h"
#include "relay/dlq.h"
#include "relay/kafka.h"
#include "relay/log.h"
#include "relay/mapping.h"
#include "relay/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const relay_conf_prop_t transform_props[] = {
    {"transform.topic", RELAY_CONF_STRING, "loyalty.events", 0, -1, 0,
     "input topic; its schema subject is <topic>-value"},
    {"transform.connections", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED, "directory of connection files (*.cfg), or one file"},
    {"transform.dlq_topic", RELAY_CONF_STRING, "dlq.transform", 0, -1, 0,
     "where records that cannot be decoded or mapped go"},
    {"transform.group_id", RELAY_CONF_STRING, NULL, 0, -1, 0,
     "consumer group (default relay-transform-<topic>)"},
    {"transform.batch_size", RELAY_CONF_INT, "500", 1, 100000, 0,
     "input records handled between offset stores"},
    {"transform.batch_wait_ms", RELAY_CONF_INT, "100", 0, 60000, 0,
     "longest wait for more records before a partial batch is finished"},
    {"transform.max_record_bytes", RELAY_CONF_INT, "1048576", 64, 104857600, 0,
     "larger input records are dead-lettered"},
    {NULL, 0, NULL, 0, 0, 0, NULL}};

/* One destination's output: its topic and Avro writer. */
struct output {
        char topic[256];
        relay_avro_writer_t *writer;
};

/* What SIGHUP reloads: the schemas, the reader, the connections and
 * their writers. */
struct pipeline {
        relay_schemas_t *schemas;
        relay_avro_reader_t *reader;
        relay_mapping_t *mapping;
        struct output *outputs; /* one per connection, same order */
};

struct transform {
        const relay_conf_t *conf;
        const char *dlq_topic;
        char subject[300];
        rd_kafka_t *consumer, *producer;
        struct pipeline p;

        rd_kafka_message_t **batch;
        size_t nbatch, max_batch;
        relay_kafka_ack_t *acks;
        size_t nacks, max_acks;
        relay_buf_t key;
        int fatal; /* an output could not be written: stop */
        unsigned long in, out, skipped, dead, decode_errors, map_errors;
};

static void pipeline_destroy(struct pipeline *p)
{
        for (size_t i = 0; p->mapping && i < relay_mapping_count(p->mapping);
             i++)
                relay_avro_writer_destroy(p->outputs[i].writer);
        free(p->outputs);
        relay_mapping_destroy(p->mapping);
        relay_avro_reader_destroy(p->reader);
        relay_schemas_destroy(p->schemas);
        memset(p, 0, sizeof(*p));
}

/* Load schemas and connections and build the reader and writers,
 * waiting out an unreachable registry for bind_wait_ms (-1: until
 * stopped). 0, or -1 with errstr and p left empty. */
static int pipeline_load(struct pipeline *p, const relay_conf_t *conf,
                         const char *subject, long bind_wait_ms, char *errstr,
                         size_t errstr_size)
{
        memset(p, 0, sizeof(*p));
        if (!(p->schemas = relay_worker_schemas(conf, bind_wait_ms, errstr,
                                                errstr_size)) ||
            !(p->reader = relay_avro_reader_new(
                  p->schemas, subject,
                  (size_t)relay_conf_int(conf, "transform.max_record_bytes"),
                  errstr, errstr_size)) ||
            !(p->mapping = relay_mapping_load(
                  relay_conf_str(conf, "transform.connections"),
                  relay_schemas_local(p->schemas, subject), errstr,
                  errstr_size)))
                goto fail;
        size_t nconn = relay_mapping_count(p->mapping);
        p->outputs = relay_calloc(nconn ? nconn : 1, sizeof(*p->outputs));
        for (size_t i = 0; i < nconn; i++) {
                const relay_connection_t *c = relay_mapping_get(p->mapping, i);
                struct output *o = &p->outputs[i];
                char osubject[300];
                snprintf(o->topic, sizeof(o->topic), "out.%s",
                         relay_connection_destination(c));
                snprintf(osubject, sizeof(osubject), "%s-value", o->topic);
                if (!(o->writer = relay_avro_writer_new(p->schemas, osubject,
                                                        errstr, errstr_size)))
                        goto fail;
        }
        return 0;
fail:
        pipeline_destroy(p);
        return -1;
}

/* Delivery reports write into the acks through pointers given at produce
 * time, so the array is sized once for the worst batch and never moves:
 * each record yields one output or dead letter per connection, or one
 * dead letter when it cannot be decoded. */
static relay_kafka_ack_t *next_ack(struct transform *t)
{
        if (t->nacks == t->max_acks) {
                relay_log(LOG_CRIT, "transform", "ack slots exhausted (bug)");
                abort();
        }
        return &t->acks[t->nacks++];
}

static void dead_letter(struct transform *t, const rd_kafka_message_t *m,
                        const char *stage, const char *why)
{
        relay_dlq_info_t info = {"transform", stage, why, 0, 0};
        relay_kafka_ack_t *ack = next_ack(t);
        if (relay_dlq_produce(t->producer, t->dlq_topic, m, &info, ack)) {
                ack->done = 1;
                ack->err = RD_KAFKA_RESP_ERR__FAIL;
        }
        t->dead++;
}

/* Returns -1 when the record was not handled (stopping while its schema
 * could not be fetched): it must not be stored. */
static int handle(struct transform *t, const rd_kafka_message_t *m)
{
        char why[700];
        avro_value_t *in;
        enum relay_result r = relay_avro_reader_decode(
            t->p.reader, m->payload, m->len, &in, NULL, why, sizeof(why));
        if (r == RELAY_RETRY && !relay_run)
                return -1;
        t->in++;
        if (r != RELAY_OK) {
                t->decode_errors++;
                dead_letter(t, m, "decode", why);
                return 0;
        }
        for (size_t i = 0; i < relay_mapping_count(t->p.mapping); i++) {
                const relay_connection_t *c =
                    relay_mapping_get(t->p.mapping, i);
                struct output *o = &t->p.outputs[i];
                avro_value_t *out = relay_avro_writer_value(o->writer);
                enum relay_map_result mr = relay_connection_apply(
                    c, in, out, &t->key, why, sizeof(why));
                if (mr == RELAY_MAP_SKIP) {
                        t->skipped++;
                        continue;
                }
                const void *buf;
                size_t len;
                if (mr == RELAY_MAP_ERROR ||
                    relay_avro_writer_encode(o->writer, &buf, &len, why,
                                             sizeof(why)) != RELAY_OK) {
                        t->map_errors++;
                        dead_letter(t, m, "map", why);
                        continue;
                }
                relay_kafka_ack_t *ack = next_ack(t);
                rd_kafka_resp_err_t err =
                    relay_kafka_produce(t->producer, o->topic, t->key.data,
                                        t->key.len, buf, len, NULL, ack);
                if (err) {
                        ack->done = 1;
                        ack->err = err;
                }
                t->out++;
        }
        return 0;
}

/* Between batches: swap in freshly loaded schemas and connections. */
static void reload(struct transform *t)
{
        char errstr[1024];
        struct pipeline fresh;
        relay_reload = 0;
        relay_log(LOG_INFO, "transform",
                  "SIGHUP: reloading schemas and connections");
        /* Not polling meanwhile: wait for a registry no longer than a
         * record would. */
        if (pipeline_load(&fresh, t->conf, t->subject,
                          (long)relay_conf_int(
                              t->conf, "schema_registry.unavailable_wait_ms"),
                          errstr, sizeof(errstr))) {
                relay_log(LOG_ERR, "transform",
                          "reload failed, keeping the running set: %s", errstr);
                return;
        }
        size_t nconn = relay_mapping_count(fresh.mapping);
        size_t need = t->max_batch * (nconn ? nconn : 1);
        if (need > t->max_acks) {
                free(t->acks);
                t->acks = relay_calloc(need, sizeof(*t->acks));
                t->max_acks = need;
        }
        pipeline_destroy(&t->p);
        t->p = fresh;
        relay_log(LOG_INFO, "transform", "reloaded: %zu connection(s)", nconn);
}

/* Wait until the batch's outputs are durable, then store its offsets.
 * Returns -1 when some output failed: the caller stops without storing. */
static int finish_batch(struct transform *t)
{
        /* Every message gets its report, at the latest a failure after
         * message.timeout.ms, so waiting without a limit ends. */
        size_t bad = relay_kafka_wait_acks(t->producer, t->acks, t->nacks, -1);
        int rc = 0;
        if (bad) {
                relay_log(LOG_CRIT, "transform",
                          "%zu output(s) of this batch were not written; "
                          "stopping without committing so the batch is read "
                          "again",
                          bad);
                rc = -1;
        }
        for (size_t i = 0; i < t->nbatch; i++) {
                if (rc == 0)
                        relay_kafka_store(t->consumer, t->batch[i]);
                rd_kafka_message_destroy(t->batch[i]);
        }
        if (rc == 0)
                relay_kafka_commit_stored(t->consumer);
        t->nbatch = 0;
        t->nacks = 0;
        return rc;
}

/* Before partitions are handed back in a rebalance: finish the batch in
 * hand so its offsets are committed and the next owner starts after it. */
static void drain(void *opaque)
{
        struct transform *t = opaque;
        if (t->nbatch && finish_batch(t))
                t->fatal = 1;
}

static int run(struct transform *t)
{
        long wait_ms = (long)relay_conf_int(t->conf, "transform.batch_wait_ms");
        int rc = 0;
        while (relay_run && rc == 0 && !t->fatal) {
                int64_t first = 0;
                if (relay_reload)
                        reload(t);
                while (relay_run && !relay_reload && !t->fatal &&
                       t->nbatch < t->max_batch) {
                        long left = 500;
                        if (t->nbatch) {
                                left =
                                    wait_ms - (long)(relay_mono_ms() - first);
                                if (left <= 0)
                                        break;
                        }
                        rd_kafka_message_t *m =
                            rd_kafka_consumer_poll(t->consumer, (int)left);
                        if (!m) {
                                if (t->nbatch)
                                        break;
                                continue;
                        }
                        if (m->err) {
                                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                        relay_log(LOG_WARNING, "transform",
                                                  "consumer: %s",
                                                  rd_kafka_message_errstr(m));
                                rd_kafka_message_destroy(m);
                                continue;
                        }
                        if (!t->nbatch)
                                first = relay_mono_ms();
                        if (handle(t, m)) {
                                rd_kafka_message_destroy(m);
                                break;
                        }
                        t->batch[t->nbatch++] = m;
                }
                if (t->nbatch)
                        rc = finish_batch(t);
        }
        return rc || t->fatal ? -1 : 0;
}

int main(int argc, char **argv)
{
        char errstr[1024];
        struct transform t;
        memset(&t, 0, sizeof(t));
        int rc = 1;
        const relay_conf_prop_t *tables[] = {transform_props};
        relay_conf_t *conf =
            relay_worker_conf(argc, argv, "transform", tables, 1);
        t.conf = conf;
        relay_worker_signals();

        const char *topic = relay_conf_str(conf, "transform.topic");
        char group[300];
        snprintf(t.subject, sizeof(t.subject), "%s-value", topic);
        snprintf(group, sizeof(group), "relay-transform-%s", topic);
        const char *group_id = relay_conf_str(conf, "transform.group_id");
        if (!group_id)
                group_id = group;
        t.dlq_topic = relay_conf_str(conf, "transform.dlq_topic");

        if (pipeline_load(&t.p, conf, t.subject, -1, errstr, sizeof(errstr)))
                goto fail;
        size_t nconn = relay_mapping_count(t.p.mapping);
        if (!(t.producer =
                  relay_kafka_producer_new(conf, errstr, sizeof(errstr))) ||
            !(t.consumer = relay_kafka_consumer_new(conf, group_id, drain, &t,
                                                    errstr, sizeof(errstr))) ||
            relay_kafka_subscribe(t.consumer, topic, errstr, sizeof(errstr)))
                goto fail;
        t.max_batch = (size_t)relay_conf_int(conf, "transform.batch_size");
        t.batch = relay_calloc(t.max_batch, sizeof(*t.batch));
        t.max_acks = t.max_batch * (nconn ? nconn : 1);
        t.acks = relay_calloc(t.max_acks, sizeof(*t.acks));
        relay_buf_init(&t.key);

        relay_log(LOG_INFO, "transform",
                  "consuming %s as %s with %zu connection(s); dead letters "
                  "to %s",
                  topic, group_id, nconn, t.dlq_topic);
        rc = run(&t) ? 1 : 0;
        if (t.nbatch && finish_batch(&t))
                rc = 1;
        relay_log(LOG_INFO, "transform",
                  "stopping: %lu in, %lu out, %lu skipped, %lu dead-lettered "
                  "(%lu undecodable, %lu unmappable)",
                  t.in, t.out, t.skipped, t.dead, t.decode_errors,
                  t.map_errors);
        goto done;
fail:
        fprintf(stderr, "relay-transform: %s\n", errstr);
        relay_log(LOG_ERR, "transform", "%s", errstr);
done:
        relay_kafka_consumer_close(t.consumer);
        relay_kafka_producer_close(t.producer, 30000);
        pipeline_destroy(&t.p);
        free(t.batch);
        free(t.acks);
        relay_buf_free(&t.key);
        relay_conf_destroy(conf);
        return rc;
}
