/*
 * A consumer group's lag on a topic, read from the cluster as an operator
 * sees it from outside the workers: per partition the committed offset,
 * the end offset (high watermark), the lag in records and in seconds.
 *
 * The lag in seconds is the age of the oldest record not yet committed:
 * the wall clock now minus the timestamp of the record at the committed
 * offset (its CreateTime, or LogAppendTime when the topic says so). That
 * record is read with a short assign + consume at the offset, every
 * partition with a lag at once, on the same client that read the offsets:
 * it never subscribes, so it joins no group, and it never commits. A
 * partition without a commit counts from its low watermark, where a new
 * member with auto.offset.reset=earliest (the workers' setting) would
 * start. Where only a transaction's marker or aborted records lie
 * between the position and the end (a transactional topic read to its
 * end still shows a lag of 1 record), the age is 0. A record that cannot
 * be read within a few seconds (an open transaction holding
 * read_committed back, a leader away) leaves lag_s unknown, shown as "-". A
 * producer's clock ahead of ours would make an age negative; it is shown as 0.
 *
 * `relayctl lag [--watch [SECONDS]] [-n COUNT] GROUP TOPIC` prints it.
 */
#include "relayctl.h"

#include "relay/common.h"
#include "relay/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long a sample waits for the records whose timestamps it needs. */
#define AGE_WAIT_MS 5000
/* Offsets and watermarks: an unreachable cluster fails a sample by then. */
#define QUERY_TIMEOUT_MS 5000

int ctl_lag_open(struct ctl_lag *l, const struct ctl *c, const char *group,
                 const char *topic)
{
        /* One record per partition is all a sample reads: fetch little,
         * and go to the earliest record when the committed one is gone. */
        static const char *const extra[] = {"auto.offset.reset",
                                            "earliest",
                                            "queued.min.messages",
                                            "1",
                                            "fetch.message.max.bytes",
                                            "65536",
                                            NULL};
        memset(l, 0, sizeof(*l));
        l->group = group;
        l->topic = topic;
        l->lag_s_max = -1;
        l->rk = client(c, RD_KAFKA_CONSUMER, group, NULL, extra);
        return l->rk ? 0 : -1;
}

void ctl_lag_close(struct ctl_lag *l)
{
        if (l->rk)
                rd_kafka_destroy(l->rk);
        free(l->parts);
        memset(l, 0, sizeof(*l));
}

int ctl_topic_end(rd_kafka_t *rk, const char *topic, int64_t *sum, char *errstr,
                  size_t errstr_size)
{
        int nparts = 0;
        if (partition_count(rk, topic, &nparts, errstr, errstr_size))
                return -1;
        *sum = 0;
        for (int p = 0; p < nparts; p++) {
                int64_t lo, hi;
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
                    rk, topic, p, &lo, &hi, QUERY_TIMEOUT_MS);
                if (err) {
                        relay_seterr(errstr, errstr_size,
                                     "end offset of %s [%d]: %s", topic, p,
                                     rd_kafka_err2str(err));
                        return -1;
                }
                *sum += hi;
        }
        return 0;
}

/* The partition of l that m comes from, or NULL. */
static struct ctl_part *part_of(struct ctl_lag *l, const rd_kafka_message_t *m)
{
        if (m->partition < 0 || m->partition >= l->nparts || !m->rkt ||
            strcmp(rd_kafka_topic_name(m->rkt), l->topic))
                return NULL;
        return &l->parts[m->partition];
}

/* Read the timestamp of the record at each lagging partition's position.
 * Partitions without lag are 0 s behind; the others stay unknown (< 0)
 * until their record comes. */
static void read_ages(struct ctl_lag *l)
{
        rd_kafka_topic_partition_list_t *tl =
            rd_kafka_topic_partition_list_new(l->nparts);
        int waiting = 0;
        for (int p = 0; p < l->nparts; p++) {
                struct ctl_part *pt = &l->parts[p];
                pt->lag_s = pt->lag > 0 ? -1 : 0;
                pt->reading = -1;
                if (pt->lag <= 0)
                        continue;
                int64_t pos = pt->committed >= 0 ? pt->committed : pt->lo;
                pt->reading = pos > pt->lo ? pos : pt->lo;
                rd_kafka_topic_partition_list_add(tl, l->topic, p)->offset =
                    pt->reading;
                waiting++;
        }
        if (waiting && rd_kafka_assign(l->rk, tl))
                waiting = 0;
        rd_kafka_topic_partition_list_destroy(tl);
        int64_t deadline = relay_mono_ms() + AGE_WAIT_MS;
        while (waiting > 0 && relay_run && relay_mono_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(l->rk, 100);
                if (!m)
                        continue;
                struct ctl_part *pt = part_of(l, m);
                /* A record before the one asked for is left over from an
                 * earlier sample. An end of partition means only control
                 * records (a transaction's marker) or aborted ones lie
                 * there: nothing a consumer would get, so 0 s. */
                if (pt && pt->reading >= 0 && m->offset >= pt->reading &&
                    (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
                        int64_t ts =
                            m->err ? -1 : rd_kafka_message_timestamp(m, NULL);
                        int64_t age = relay_now_ms() - ts;
                        if (m->err)
                                pt->lag_s = 0;
                        else if (ts >= 0)
                                pt->lag_s = age > 0 ? age / 1000.0 : 0;
                        pt->reading = -1;
                        waiting--;
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_assign(l->rk, NULL);
}

int ctl_lag_sample(struct ctl_lag *l, int ages)
{
        int nparts = 0;
        l->error[0] = '\0';
        l->at_ms = relay_mono_ms();
        if (partition_count(l->rk, l->topic, &nparts, l->error,
                            sizeof(l->error)))
                return -1;
        if (nparts != l->nparts) {
                l->parts =
                    relay_realloc(l->parts, (size_t)(nparts ? nparts : 1) *
                                                sizeof(*l->parts));
                l->nparts = nparts;
        }
        rd_kafka_topic_partition_list_t *tl =
            rd_kafka_topic_partition_list_new(nparts);
        for (int p = 0; p < nparts; p++)
                rd_kafka_topic_partition_list_add(tl, l->topic, p);
        rd_kafka_resp_err_t err =
            rd_kafka_committed(l->rk, tl, QUERY_TIMEOUT_MS * 2);
        if (err)
                relay_seterr(l->error, sizeof(l->error),
                             "committed offsets of %s: %s", l->group,
                             rd_kafka_err2str(err));
        l->lag_sum = l->end_sum = l->pos_sum = 0;
        l->lag_s_max = -1;
        for (int p = 0; p < nparts && !err; p++) {
                struct ctl_part *pt = &l->parts[p];
                pt->committed = tl->elems[p].offset;
                err = rd_kafka_query_watermark_offsets(
                    l->rk, l->topic, p, &pt->lo, &pt->hi, QUERY_TIMEOUT_MS);
                if (err) {
                        relay_seterr(l->error, sizeof(l->error),
                                     "watermarks of %s [%d]: %s", l->topic, p,
                                     rd_kafka_err2str(err));
                        break;
                }
                int64_t pos = pt->committed >= 0 ? pt->committed : pt->lo;
                pt->lag = pt->hi - pos;
                pt->lag_s = -1;
                l->lag_sum += pt->lag;
                l->end_sum += pt->hi;
                l->pos_sum += pos;
        }
        rd_kafka_topic_partition_list_destroy(tl);
        if (err)
                return -1;
        if (ages) {
                read_ages(l);
                for (int p = 0; p < nparts; p++)
                        if (l->parts[p].lag_s > l->lag_s_max)
                                l->lag_s_max = l->parts[p].lag_s;
        }
        return 0;
}

/* Seconds with one decimal, or "-" when not known. */
static const char *seconds(char *buf, size_t size, double s)
{
        if (s < 0)
                return "-";
        snprintf(buf, size, "%.1f", s);
        return buf;
}

void ctl_lag_print(const struct ctl_lag *l, const char *indent)
{
        char b[32];
        printf("%s%-30s %9s %12s %12s %9s %9s\n", indent, "topic", "partition",
               "committed", "end", "lag", "lag_s");
        for (int p = 0; p < l->nparts; p++) {
                const struct ctl_part *pt = &l->parts[p];
                printf("%s%-30s %9d %12lld %12lld %9lld %9s\n", indent,
                       l->topic, p, (long long)pt->committed, (long long)pt->hi,
                       (long long)pt->lag, seconds(b, sizeof(b), pt->lag_s));
        }
        printf("%stotal lag %lld, max lag_s %s\n", indent,
               (long long)l->lag_sum, seconds(b, sizeof(b), l->lag_s_max));
}

struct lag_args {
        long interval_ms;
        long long count;
        int watch;
};

static int lag_opt(int opt, const char *arg, void *ctx)
{
        struct lag_args *a = ctx;
        if (opt == 'w') {
                a->watch = 1;
                return arg ? parse_seconds("--watch", arg, &a->interval_ms) : 0;
        }
        return ctl_watch_count(arg, &a->count);
}

static int lag_sample(void *arg)
{
        struct ctl_lag *l = arg;
        return ctl_lag_sample(l, 1) ? 1 : 0;
}

static void lag_print(void *arg)
{
        struct ctl_lag *l = arg;
        if (*l->error)
                printf("relayctl: %s\n", l->error);
        else
                ctl_lag_print(l, "");
}

int cmd_lag(const struct ctl *c, int argc, char **argv)
{
        struct lag_args a = {1000, 0, 0};
        char *pos[2];
        int npos = command_args(argc, argv, "w::n:", lag_opt, &a, pos, 2);
        if (npos < 0)
                return 2;
        if (npos != 2)
                return usage();
        if (a.count && !a.watch) {
                fprintf(stderr, "relayctl: lag: -n goes with --watch\n");
                return 2;
        }
        struct ctl_lag l;
        if (ctl_lag_open(&l, c, pos[0], pos[1]))
                return 1;
        int rc;
        if (a.watch) {
                char title[600];
                snprintf(title, sizeof(title), "relayctl lag %s %s", pos[0],
                         pos[1]);
                struct ctl_watch w = {a.interval_ms, a.count,
                                      isatty(STDOUT_FILENO), title};
                rc = ctl_watch_run(&w, lag_sample, lag_print, &l);
        } else if (ctl_lag_sample(&l, 1)) {
                fprintf(stderr, "relayctl: %s\n", l.error);
                rc = 1;
        } else {
                ctl_lag_print(&l, "");
                rc = 0;
        }
        ctl_lag_close(&l);
        return rc;
}
