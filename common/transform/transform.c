/*
 * The transform processor (see relay/transform.h). One process per input
 * topic: each record is decoded by its schema id, every connection
 * subscribed to the topic is applied, and each result is produced to
 * out.<destination> keyed by the person, so that a person's records stay
 * in order.
 *
 * What can go wrong, and where it goes:
 * - a record that cannot be decoded: dlq.transform, stage decode;
 * - a connection that cannot map it: one dead letter per failed
 *   connection, naming it (relay.connection), so that a replay re-applies
 *   only that connection and the destinations that took the record get
 *   no duplicate; the other connections' outputs are produced as usual;
 * - a schema registry that is away: not the record's fault, so the
 *   record waits (the engine pauses and keeps the consumer served) and is
 *   decoded again when the registry answers;
 * - an output the cluster refuses: the engine's produce classes.
 *
 * A replayed record carrying relay.connection is applied to that
 * connection only.
 *
 * SIGHUP reloads the schemas and connections between two batches: the new
 * set is built and checked first and only replaces the running one when
 * all of it loaded, so a bad edit leaves the worker running as it was.
 */
#include "relay/transform.h"
#include "relay/avro.h"
#include "relay/dlq.h"
#include "relay/log.h"
#include "relay/mapping.h"
#include "relay/pipeline.h"
#include "relay/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const relay_conf_prop_t relay_transform_props[] = {
    {"transform.topic", RELAY_CONF_STRING, "loyalty.events", 0, -1, 0,
     "input topic; its schema subject is <topic>-value", 0},
    {"transform.connections", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED, "directory of connection files (*.cfg), or one file",
     0},
    {"transform.dlq_topic", RELAY_CONF_STRING, "dlq.transform", 0, -1, 0,
     "where records that cannot be decoded or mapped go", 0},
    {"transform.group_id", RELAY_CONF_STRING, NULL, 0, -1, 0,
     "consumer group (default relay-transform-<topic>)", 0},
    {"transform.batch_size", RELAY_CONF_INT, "500", 1, 100000, 0,
     "input records handled between offset stores", 0},
    {"transform.batch_wait_ms", RELAY_CONF_INT, "100", 0, 60000, 0,
     "longest a partial batch waits for more records, and only while "
     "worker.batches_in_flight batches are held (otherwise it goes as soon "
     "as nothing more is ready)",
     0},
    {"transform.max_record_bytes", RELAY_CONF_INT, "0", 0, 104857600, 0,
     "larger input records are dead-lettered (0: kafka message.max.bytes "
     "less the room kept for dead-letter headers)",
     0},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

/* One destination's output: its topic and Avro writer. */
struct output {
        char topic[256];
        relay_avro_writer_t *writer;
};

/* What SIGHUP reloads: the schemas, the reader, the connections and
 * their writers. */
struct set {
        relay_schemas_t *schemas;
        relay_avro_reader_t *reader;
        relay_mapping_t *mapping;
        struct output *outputs; /* one per connection, same order */
};

struct relay_transform {
        const relay_conf_t *conf;
        char subject[300];
        size_t max_record_bytes;
        relay_pipeline_t *p;
        struct set set;
        relay_buf_t key;
        int waiting; /* the registry was away for the record in hand */
        unsigned long in, out, skipped, dead, decode_errors, map_errors;
};

static void set_destroy(struct set *s)
{
        for (size_t i = 0; s->mapping && i < relay_mapping_count(s->mapping);
             i++)
                relay_avro_writer_destroy(s->outputs[i].writer);
        free(s->outputs);
        relay_mapping_destroy(s->mapping);
        relay_avro_reader_destroy(s->reader);
        relay_schemas_destroy(s->schemas);
        memset(s, 0, sizeof(*s));
}

/* Load schemas and connections and build the reader and writers, waiting
 * out an unreachable registry for bind_wait_ms (-1: until stopped; 0: one
 * try). 0, or -1 with errstr and s left empty. */
static int set_load(struct set *s, const relay_conf_t *conf,
                    const char *subject, size_t max_record_bytes,
                    long bind_wait_ms, char *errstr, size_t errstr_size)
{
        memset(s, 0, sizeof(*s));
        if (!(s->schemas = relay_worker_schemas(conf, bind_wait_ms, errstr,
                                                errstr_size)) ||
            !(s->reader =
                  relay_avro_reader_new(s->schemas, subject, max_record_bytes,
                                        errstr, errstr_size)) ||
            !(s->mapping = relay_mapping_load(
                  relay_conf_str(conf, "transform.connections"),
                  relay_schemas_local(s->schemas, subject), errstr,
                  errstr_size)))
                goto fail;
        /* Only what the connections read is decoded. */
        relay_avro_reader_want(s->reader, relay_mapping_fields(s->mapping));
        size_t nconn = relay_mapping_count(s->mapping);
        s->outputs = relay_calloc(nconn ? nconn : 1, sizeof(*s->outputs));
        for (size_t i = 0; i < nconn; i++) {
                const relay_connection_t *c = relay_mapping_get(s->mapping, i);
                struct output *o = &s->outputs[i];
                char osubject[300];
                snprintf(o->topic, sizeof(o->topic), "out.%s",
                         relay_connection_destination(c));
                snprintf(osubject, sizeof(osubject), "%s-value", o->topic);
                if (!(o->writer = relay_avro_writer_new(s->schemas, osubject,
                                                        errstr, errstr_size)))
                        goto fail;
        }
        return 0;
fail:
        set_destroy(s);
        return -1;
}

static void dead_letter(struct relay_transform *t, relay_pipeline_t *p,
                        size_t i, const char *stage, const char *why,
                        const char *connection)
{
        relay_dlq_info_t info = {NULL, stage, why, 0, 0, connection, 0};
        relay_pipeline_dead_letter(p, i, &info);
        t->dead++;
}

/* The connection a replayed record is meant for, or NULL for all. The
 * returned text is in buf. */
static const char *only_connection(const rd_kafka_message_t *m, char *buf,
                                   size_t size)
{
        rd_kafka_headers_t *h = NULL;
        const void *val;
        size_t n;
        if (rd_kafka_message_headers(m, &h) ||
            rd_kafka_header_get_last(h, RELAY_DLQ_H_CONNECTION, &val, &n) ||
            !val || n == 0 || n >= size)
                return NULL;
        memcpy(buf, val, n);
        buf[n] = '\0';
        return buf;
}

static enum relay_result tf_record(void *opaque, relay_pipeline_t *p, size_t i)
{
        struct relay_transform *t = opaque;
        const rd_kafka_message_t *m = relay_pipeline_msg(p, i);
        char why[700], onlybuf[256];
        const relay_slots_t *in;
        enum relay_result r = relay_avro_reader_decode_slots(
            t->set.reader, m->payload, m->len, &in, NULL, why, sizeof(why));
        if (r == RELAY_RETRY) {
                /* The registry is away: not the record's fault. */
                t->waiting = 1;
                relay_pipeline_paused(p, "%s", why);
                return RELAY_RETRY;
        }
        if (t->waiting) {
                t->waiting = 0;
                relay_pipeline_resumed(p);
        }
        t->in++;
        if (r != RELAY_OK) {
                t->decode_errors++;
                dead_letter(t, p, i, "decode", why, NULL);
                return RELAY_OK;
        }
        const char *only = only_connection(m, onlybuf, sizeof(onlybuf));
        int matched = 0;
        for (size_t k = 0; k < relay_mapping_count(t->set.mapping); k++) {
                const relay_connection_t *c =
                    relay_mapping_get(t->set.mapping, k);
                const char *id = relay_connection_id(c);
                if (only && strcmp(only, id))
                        continue;
                matched = 1;
                struct output *o = &t->set.outputs[k];
                relay_slots_t *out = relay_avro_writer_slots(o->writer);
                enum relay_map_result mr = relay_connection_apply(
                    c, in, out, &t->key, why, sizeof(why));
                if (mr == RELAY_MAP_SKIP) {
                        t->skipped++;
                        continue;
                }
                const void *buf;
                size_t len;
                if (mr == RELAY_MAP_ERROR ||
                    relay_avro_writer_encode_slots(o->writer, &buf, &len, why,
                                                   sizeof(why)) != RELAY_OK) {
                        t->map_errors++;
                        dead_letter(t, p, i, "map", why, id);
                        continue;
                }
                relay_pipeline_produce(p, i, o->topic, t->key.data, t->key.len,
                                       buf, len, id);
                t->out++;
        }
        if (only && !matched) {
                snprintf(why, sizeof(why),
                         "replayed for connection '%s', which is not "
                         "configured any more",
                         only);
                t->map_errors++;
                dead_letter(t, p, i, "map", why, only);
        }
        relay_pipeline_done(p, i);
        return RELAY_OK;
}

/* Nothing is left for flush: every record finished in tf_record. */
static enum relay_result tf_flush(void *opaque, relay_pipeline_t *p)
{
        return RELAY_OK;
}

/* Between batches: swap in freshly loaded schemas and connections. */
static void tf_idle(void *opaque, relay_pipeline_t *p)
{
        struct relay_transform *t = opaque;
        char errstr[1024];
        struct set fresh;
        if (!relay_reload)
                return;
        relay_reload = 0;
        relay_log(LOG_INFO, "transform",
                  "SIGHUP: reloading schemas and connections");
        /* One try at the registry: this runs between polls. */
        if (set_load(&fresh, t->conf, t->subject, t->max_record_bytes, 0,
                     errstr, sizeof(errstr))) {
                relay_log(LOG_ERR, "transform",
                          "reload failed, keeping the running set: %s", errstr);
                return;
        }
        set_destroy(&t->set);
        t->set = fresh;
        relay_log(LOG_INFO, "transform", "reloaded: %zu connection(s)",
                  relay_mapping_count(t->set.mapping));
}

static const relay_processor_t transform_processor = {
    .record = tf_record,
    .flush = tf_flush,
    .idle = tf_idle,
};

relay_transform_t *relay_transform_new(const relay_conf_t *conf, char *errstr,
                                       size_t errstr_size)
{
        struct relay_transform *t = relay_calloc(1, sizeof(*t));
        t->conf = conf;
        relay_buf_init(&t->key);
        const char *topic = relay_conf_str(conf, "transform.topic");
        char group[300];
        snprintf(t->subject, sizeof(t->subject), "%s-value", topic);
        snprintf(group, sizeof(group), "relay-transform-%s", topic);
        const char *group_id = relay_conf_str(conf, "transform.group_id");
        relay_pipeline_conf_t pc = {
            .worker = "transform",
            .topics = topic,
            .group_id = group_id ? group_id : group,
            .dlq_topic = relay_conf_str(conf, "transform.dlq_topic"),
            .batch_size = (size_t)relay_conf_int(conf, "transform.batch_size"),
            .batch_wait_ms =
                (long)relay_conf_int(conf, "transform.batch_wait_ms"),
            .max_record_bytes =
                (size_t)relay_conf_int(conf, "transform.max_record_bytes"),
            .max_record_key = "transform.max_record_bytes",
            .running = &relay_run,
            .shutdown_grace_ms =
                (long)relay_conf_int(conf, "worker.shutdown_grace_ms"),
            .commits_in_flight =
                (int)relay_conf_int(conf, "worker.commits_in_flight"),
            .batches_in_flight =
                (int)relay_conf_int(conf, "worker.batches_in_flight"),
            .interrupt = &relay_reload,
        };
        /* The engine first: it settles max_record_bytes, which the reader
         * enforces. Its consumer only joins the group at the first poll. */
        if (!(t->p = relay_pipeline_new(conf, &pc, &transform_processor, t,
                                        &t->max_record_bytes, errstr,
                                        errstr_size)) ||
            set_load(&t->set, conf, t->subject, t->max_record_bytes, -1, errstr,
                     errstr_size))
                goto fail;
        relay_log(LOG_INFO, "transform",
                  "consuming %s as %s with %zu connection(s); dead letters "
                  "to %s; records up to %zu bytes",
                  topic, pc.group_id, relay_mapping_count(t->set.mapping),
                  pc.dlq_topic, t->max_record_bytes);
        return t;
fail:
        relay_transform_destroy(t);
        return NULL;
}

int relay_transform_run(relay_transform_t *t)
{
        int rc = relay_pipeline_run(t->p);
        const relay_pipeline_stats_t *st = relay_pipeline_stats(t->p);
        relay_log(LOG_INFO, "transform",
                  "stopping: %lu in, %lu out, %lu skipped, %lu dead-lettered "
                  "(%lu undecodable, %lu unmappable, %lu refused by Kafka, "
                  "%lu as stubs), %lu produce retries",
                  t->in, t->out, t->skipped, st->dead_letters + st->stubs,
                  t->decode_errors, t->map_errors,
                  st->dead_letters + st->stubs > t->dead
                      ? st->dead_letters + st->stubs - t->dead
                      : 0,
                  st->stubs, st->produce_retries);
        return rc;
}

void relay_transform_destroy(relay_transform_t *t)
{
        if (!t)
                return;
        relay_pipeline_destroy(t->p);
        set_destroy(&t->set);
        relay_buf_free(&t->key);
        free(t);
}
