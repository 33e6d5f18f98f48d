/*
 * ceiling.c: the command line, consumer, commit and report shared by the
 * ceiling programs of tests/bench/hotpath.sh (see ceiling.h).
 */
#include "ceiling.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static void usage(const char *prog, const char *extra_usage)
{
        fprintf(stderr,
                "usage: %s --bootstrap HOST:PORT --topic T --group G "
                "--records N %s\n"
                "          [--timeout S] [-X name=value ...]\n"
                "  --records N   stop once N records are done (and "
                "committed)\n"
                "  --timeout S   give up (exit 1) after S seconds (default "
                "300)\n"
                "  -X name=value a librdkafka property of every client\n",
                prog, extra_usage);
}

static int positive(const char *s, long *out)
{
        char *end;
        long v = strtol(s, &end, 10);
        if (*s == '\0' || *end != '\0' || v < 1)
                return -1;
        *out = v;
        return 0;
}

int ceiling_parse_args(struct ceiling_args *a, int argc, char **argv,
                       const char *prog, const char *extra_usage)
{
        static const struct option opts[] = {
            {"bootstrap", required_argument, NULL, 'b'},
            {"topic", required_argument, NULL, 't'},
            {"group", required_argument, NULL, 'g'},
            {"out-topic", required_argument, NULL, 'o'},
            {"url", required_argument, NULL, 'u'},
            {"userpwd", required_argument, NULL, 'a'},
            {"records", required_argument, NULL, 'n'},
            {"per-request", required_argument, NULL, 'p'},
            {"timeout", required_argument, NULL, 'T'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
        long timeout = 300;
        int opt;

        memset(a, 0, sizeof(*a));
        a->per_request = 100;
        while ((opt = getopt_long(argc, argv, "b:t:g:o:u:a:n:p:T:X:h", opts,
                                  NULL)) != -1) {
                switch (opt) {
                case 'b':
                        a->bootstrap = optarg;
                        break;
                case 't':
                        a->topic = optarg;
                        break;
                case 'g':
                        a->group = optarg;
                        break;
                case 'o':
                        a->out_topic = optarg;
                        break;
                case 'u':
                        a->url = optarg;
                        break;
                case 'a':
                        a->userpwd = optarg;
                        break;
                case 'n':
                        if (positive(optarg, &a->records))
                                goto bad;
                        break;
                case 'p':
                        if (positive(optarg, &a->per_request))
                                goto bad;
                        break;
                case 'T':
                        if (positive(optarg, &timeout) || timeout > 86400)
                                goto bad;
                        break;
                case 'X':
                        if (a->nprops == CEILING_MAX_PROPS ||
                            !strchr(optarg, '='))
                                goto bad;
                        a->props[a->nprops++] = optarg;
                        break;
                case 'h':
                        usage(prog, extra_usage);
                        return 1;
                default:
                        goto bad;
                }
        }
        a->timeout_s = (int)timeout;
        if (optind == argc && a->bootstrap && a->topic && a->group &&
            a->records > 0)
                return 0;
bad:
        usage(prog, extra_usage);
        return 2;
}

int ceiling_conf_set(rd_kafka_conf_t *conf, const char *const *props,
                     int nprops, char *errstr, size_t errstr_size)
{
        for (int i = 0; i < nprops; i++) {
                char name[256];
                const char *eq = strchr(props[i], '=');
                size_t n = eq ? (size_t)(eq - props[i]) : 0;
                if (n == 0 || n >= sizeof(name)) {
                        snprintf(errstr, errstr_size, "bad property '%s'",
                                 props[i]);
                        return -1;
                }
                memcpy(name, props[i], n);
                name[n] = '\0';
                if (rd_kafka_conf_set(conf, name, eq + 1, errstr,
                                      errstr_size) != RD_KAFKA_CONF_OK)
                        return -1;
        }
        return 0;
}

rd_kafka_t *ceiling_consumer_new(const struct ceiling_args *a, char *errstr,
                                 size_t errstr_size)
{
        /* Offsets are committed once, by the program, when its records are
         * done: auto commit would commit what was merely fetched. */
        const char *const fixed[] = {
            "bootstrap.servers=", "group.id=", "auto.offset.reset=earliest",
            "enable.auto.commit=false", "enable.auto.offset.store=false"};
        char bs[512], group[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk = NULL;
        rd_kafka_topic_partition_list_t *sub = NULL;
        rd_kafka_resp_err_t err;

        snprintf(bs, sizeof(bs), "%s%s", fixed[0], a->bootstrap);
        snprintf(group, sizeof(group), "%s%s", fixed[1], a->group);
        const char *const props[] = {bs, group, fixed[2], fixed[3], fixed[4]};
        if (ceiling_conf_set(conf, props, 5, errstr, errstr_size) ||
            ceiling_conf_set(conf, a->props, a->nprops, errstr, errstr_size))
                goto fail;
        if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size)))
                goto fail;
        conf = NULL; /* rk owns it now */
        rd_kafka_poll_set_consumer(rk);
        sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, a->topic, RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (err) {
                snprintf(errstr, errstr_size, "subscribe to %s: %s", a->topic,
                         rd_kafka_err2str(err));
                goto fail;
        }
        return rk;
fail:
        if (conf)
                rd_kafka_conf_destroy(conf);
        if (rk)
                rd_kafka_destroy(rk);
        return NULL;
}

void ceiling_consumed(rd_kafka_topic_partition_list_t *offsets,
                      const rd_kafka_message_t *msg)
{
        const char *topic = rd_kafka_topic_name(msg->rkt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(offsets, topic, msg->partition);
        if (!p)
                p = rd_kafka_topic_partition_list_add(offsets, topic,
                                                      msg->partition);
        p->offset = msg->offset + 1;
}

int ceiling_commit(rd_kafka_t *consumer,
                   rd_kafka_topic_partition_list_t *offsets, char *errstr,
                   size_t errstr_size)
{
        rd_kafka_resp_err_t err = rd_kafka_commit(consumer, offsets, 0);
        if (err) {
                snprintf(errstr, errstr_size, "commit: %s",
                         rd_kafka_err2str(err));
                return -1;
        }
        for (int i = 0; i < offsets->cnt; i++) {
                if (offsets->elems[i].err) {
                        snprintf(errstr, errstr_size, "commit of %s[%d]: %s",
                                 offsets->elems[i].topic,
                                 offsets->elems[i].partition,
                                 rd_kafka_err2str(offsets->elems[i].err));
                        return -1;
                }
        }
        return 0;
}

long long ceiling_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Peak resident set of this process in kB, from /proc/self/status; -1 if
 * it cannot be read. */
static long vm_hwm_kb(void)
{
        char line[256];
        long kb = -1;
        FILE *fp = fopen("/proc/self/status", "r");
        if (!fp)
                return -1;
        while (fgets(line, sizeof(line), fp))
                if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
                        break;
        fclose(fp);
        return kb;
}

void ceiling_report(const char *bench, long records, long long t0_ms,
                    long long first_ms, long long done_ms, const char *extra)
{
        struct rusage ru;
        double wall = (double)(ceiling_now_ms() - t0_ms) / 1e3, cpu = 0;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
                cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                      (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
        printf("{\"bench\": \"%s\", \"records\": %ld, \"wall_s\": %.3f, "
               "\"first_record_s\": %.3f, \"committed_s\": %.3f, "
               "\"cpu_s\": %.3f, \"vm_hwm_kb\": %ld, "
               "\"records_per_s\": %.0f%s}\n",
               bench, records, wall, (double)(first_ms - t0_ms) / 1e3,
               (double)(done_ms - t0_ms) / 1e3, cpu, vm_hwm_kb(),
               wall > 0 ? (double)records / wall : 0, extra);
        fflush(stdout);
}
