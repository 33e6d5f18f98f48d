/*
 * ceiling.h: what the two ceiling programs of tests/bench/hotpath.sh share
 * (passthrough.c, the ceiling of relay-transform; post_ceiling.c, the
 * ceiling of relay-deliver): their command line, a consumer group member
 * that reads a topic as a worker would, the offsets to commit at the end,
 * a deadline, and the JSON line of figures each prints.
 *
 * They are yardsticks, not relay: plain librdkafka (and libcurl), no
 * relay_common, so that nothing of relay's own cost is in the ceiling.
 */
#ifndef RELAY_BENCH_CEILING_H
#define RELAY_BENCH_CEILING_H

#include <librdkafka/rdkafka.h>

#define CEILING_MAX_PROPS 32

/* The command line of both programs (see ceiling_usage()). */
struct ceiling_args {
        const char *bootstrap; /* --bootstrap (required) */
        const char *topic;     /* --topic, the input (required) */
        const char *group;     /* --group (required) */
        const char *out_topic; /* --out-topic (passthrough) */
        const char *url;       /* --url (post_ceiling) */
        const char *userpwd;   /* --userpwd user:password (post_ceiling) */
        long records;          /* --records N: stop after N (required) */
        long per_request;      /* --per-request, records a POST (100) */
        int timeout_s;         /* --timeout: the whole run's deadline */
        /* -X name=value: librdkafka properties of every client, in order */
        const char *props[CEILING_MAX_PROPS];
        int nprops;
};

/* Parses argv into *a. Returns 0, or 2 (usage printed) on a bad or missing
 * argument; 1 with -h. */
int ceiling_parse_args(struct ceiling_args *a, int argc, char **argv,
                       const char *prog, const char *extra_usage);

/* Sets "name=value" properties on conf. 0, or -1 with errstr. */
int ceiling_conf_set(rd_kafka_conf_t *conf, const char *const *props,
                     int nprops, char *errstr, size_t errstr_size);

/* A consumer group member subscribed to a->topic as a->group, with
 * auto.offset.reset=earliest and nothing committed or stored on its own
 * (the program commits once, at the end). NULL with errstr. The caller
 * owns the handle (rd_kafka_consumer_close, then rd_kafka_destroy). */
rd_kafka_t *ceiling_consumer_new(const struct ceiling_args *a, char *errstr,
                                 size_t errstr_size);

/* Notes that the record at partition/offset of msg has been taken: the
 * offset to commit for its partition becomes offset + 1. */
void ceiling_consumed(rd_kafka_topic_partition_list_t *offsets,
                      const rd_kafka_message_t *msg);

/* Commits offsets synchronously and checks every partition's answer.
 * 0, or -1 with errstr. */
int ceiling_commit(rd_kafka_t *consumer,
                   rd_kafka_topic_partition_list_t *offsets, char *errstr,
                   size_t errstr_size);

/* Monotonic milliseconds (for deadlines) and wall seconds since start. */
long long ceiling_now_ms(void);

/* Prints the figures as one JSON line: bench, records, wall seconds since
 * t0_ms (ceiling_now_ms() at the program's start), the seconds from t0_ms
 * to the first record (first_ms) and to the commit's answer (done_ms),
 * CPU seconds of the whole process (all threads, getrusage), peak RSS in
 * kB (VmHWM), and records/s; extra is "" or more members
 * (', "requests": 7'). */
void ceiling_report(const char *bench, long records, long long t0_ms,
                    long long first_ms, long long done_ms, const char *extra);

#endif
