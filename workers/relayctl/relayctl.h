/*
 * What relayctl's commands share (private to workers/relayctl): the
 * global options, argument parsing, Kafka clients, a group's lag sampled
 * from the cluster (lag.c) and the refresh loop of the watching commands
 * (watch.c). main.c has the usage and the record commands, lag.c `lag`,
 * top.c `top`.
 */
#ifndef RELAYCTL_H
#define RELAYCTL_H

#include "relay/avro.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

struct ctl {
        const char *brokers;
        const char *manifest;
        const char *registry;
        const char *props[64]; /* name, value pairs from -X */
        size_t nprops;
};

/* Print the usage; returns 2, the exit status of a usage error. */
int usage(void);

/* relayctl sign-link (link.c). */
int cmd_sign_link(int argc, char **argv);

/* getopt for a command's own vector, options also after the positionals
 * (see main.c). optstring as getopt's; "x::" is an option with an
 * optional value, taken from --long=VALUE or, when it is a number, the
 * next argument. Long options: --watch is 'w'. Returns the number of
 * positionals put in pos[], or -1 once the error is printed. */
int command_args(int argc, char **argv, const char *optstring,
                 int (*on_opt)(int opt, const char *arg, void *ctx), void *ctx,
                 char **pos, int maxpos);

/* text as a whole number from 0 to max for option -opt: 0 and *out, or -1
 * (printed). */
int parse_count(char opt, const char *text, long long max, long long *out);

/* text as seconds (a decimal from 0.1 to 86400) for option opt: 0 and *ms,
 * or -1 (printed). */
int parse_seconds(const char *opt, const char *text, long *ms);

/* A client of the cluster (the reason printed when NULL). A consumer joins
 * no group by itself and never commits; group is only its group.id. extra
 * is NULL or NULL-terminated name, value pairs set before -X's, so -X
 * overrides them. The caller destroys it. */
rd_kafka_t *client(const struct ctl *c, rd_kafka_type_t type, const char *group,
                   void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                   const char *const *extra);

/* The partition count of topic: 0 and *n, 1 when the topic does not
 * exist, -1 on an error (errstr says which). */
int partition_count(rd_kafka_t *rk, const char *topic, int *n, char *errstr,
                    size_t errstr_size);

/* One partition of a group's topic at a sample. */
struct ctl_part {
        int64_t committed; /* the group's offset; < 0 when it has none */
        int64_t lo, hi;    /* low and high watermarks */
        int64_t lag;       /* records: hi - committed, or hi - lo */
        double lag_s;      /* seconds; < 0 when not known */
        int64_t reading;   /* the offset whose timestamp is awaited, or -1 */
};

/* A consumer group's position on one topic, sampled again and again with
 * one client. The age of the oldest record not yet committed (lag_s) is
 * the wall clock minus the timestamp of the record at the committed
 * offset, read by assigning that offset and consuming one record; without
 * a commit the position is the low watermark (what auto.offset.reset=
 * earliest would consume first). */
struct ctl_lag {
        const char *group, *topic; /* borrowed */
        rd_kafka_t *rk;            /* a consumer with group.id = group */
        struct ctl_part *parts;    /* nparts of them, owned */
        int nparts;
        int64_t lag_sum;  /* records over every partition */
        double lag_s_max; /* the oldest, < 0 when none is known */
        int64_t end_sum;  /* sum of high watermarks */
        int64_t pos_sum;  /* sum of positions (committed, or low) */
        int64_t at_ms;    /* relay_mono_ms() of the sample */
        char error[256];  /* why the last sample failed, or "" */
};

/* Make l's client: 0, or -1 (printed). l->group and l->topic are borrowed
 * for l's life. */
int ctl_lag_open(struct ctl_lag *l, const struct ctl *c, const char *group,
                 const char *topic);
/* Sample the committed offsets and watermarks, and with ages the lag in
 * seconds (waiting up to a few seconds for the records). 0, or -1 with
 * l->error set. */
int ctl_lag_sample(struct ctl_lag *l, int ages);
/* The table of l's last sample, each line after indent. */
void ctl_lag_print(const struct ctl_lag *l, const char *indent);
void ctl_lag_close(struct ctl_lag *l);

/* The sum of topic's high watermarks through rk: 0, or -1 with errstr. */
int ctl_topic_end(rd_kafka_t *rk, const char *topic, int64_t *sum, char *errstr,
                  size_t errstr_size);

/* How a watching command refreshes: every interval_ms, count times (0:
 * until SIGINT or SIGTERM). On a terminal each block clears the screen
 * and redraws in place; elsewhere blocks follow each other, a blank line
 * between them. Each block opens with title and the time (UTC). */
struct ctl_watch {
        long interval_ms;
        long long count;
        int tty;
        const char *title;
};

/* -n COUNT: a number of refreshes from 1: 0 and *count, or -1 (printed). */
int ctl_watch_count(const char *text, long long *count);

/* Run the watch: each refresh calls sample(arg) (its status is the run's,
 * 0 or 1), then opens the block and calls print(arg), so the screen is
 * cleared only once the new figures are in hand. Installs the SIGINT and
 * SIGTERM handlers; a stop by them returns 0. */
int ctl_watch_run(const struct ctl_watch *w, int (*sample)(void *arg),
                  void (*print)(void *arg), void *arg);

/* A progress bar on stderr when it is a terminal (tty, set by the
 * caller from isatty(2)), redrawn at most ten times a second: "what
 * [####    ] done/total" and note. */
struct ctl_progress {
        int tty;
        const char *what;
        int64_t done, total;
        int64_t drawn_ms;
        char note[64]; /* after the counts, e.g. " bytes, 12 rows" */
};

/* Draw the bar (force: even if drawn less than 100 ms ago). */
void ctl_progress_draw(struct ctl_progress *pg, int force);
/* One more done, and the bar drawn when it is time. */
void ctl_progress_tick(struct ctl_progress *pg);
/* Clear the bar's line, before another line or at the end. */
void ctl_progress_clear(struct ctl_progress *pg);

/* The long name of a command option ("since" for 'S'), or "-x" for a
 * short-only one; for error messages. */
const char *opt_name(int opt);

/* The schema catalogue of -s (on the registry with -r), or NULL (printed).
 * The caller destroys it. */
relay_schemas_t *schemas(const struct ctl *c);

/* A record's value decoded by the schema id of its framing: a new
 * reference (json null for a null value), or NULL with errstr. */
json_t *decode_value(relay_schemas_t *s, const rd_kafka_message_t *m,
                     char *errstr, size_t errstr_size);

/* Called for each record of a topic; > 0 stops the read with that status,
 * < 0 stops it with status 0 (found what was wanted). */
typedef int(record_cb)(const rd_kafka_message_t *m, void *arg);

/* Read every record of topic from the beginning to the current end, in
 * offset order within each partition: 0, or 1 on a failure (printed). A
 * topic that does not exist is read as empty (said on stderr). */
int read_topic(const struct ctl *c, const char *topic, record_cb *cb,
               void *arg);
/* The same for one partition (or all: -1) from offset from (or the
 * beginning: -1), which must not be below the low watermark. */
int read_topic_from(const struct ctl *c, const char *topic, int32_t partition,
                    int64_t from, record_cb *cb, void *arg);

/* Print a record as one JSON line (consume's format); arg is the
 * relay_schemas_t to decode the value with. Returns 0. */
int print_record(const rd_kafka_message_t *m, void *arg);

/* dlq list | show | replay | purge (dlq.c); argv[0] is the subcommand. */
int cmd_dlq(const struct ctl *c, int argc, char **argv);
int cmd_lag(const struct ctl *c, int argc, char **argv);
int cmd_top(const struct ctl *c, int argc, char **argv);
/* onboard --tenant T --file CSV ... (onboard.c); argv[0] is "onboard". */
int cmd_onboard(const struct ctl *c, int argc, char **argv);

#endif
