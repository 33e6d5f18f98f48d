/*
 * ackrate: the Kafka floor under tests/bench/ingest.sh's latency figure.
 * A plain librdkafka producer (idempotent, linger.ms 1, as relay-ingest's
 * shipped config) produces one record of the webhook's size at a fixed
 * rate, record i due at start + i/rate, and measures each delivery
 * report from when its record was due: what any gateway that answers
 * only after Kafka's ack must wait, with nothing of HTTP or relay in it.
 *
 *   ackrate --bootstrap B --topic T --rate R --seconds S [--size N]
 *
 * Prints one JSON line (acked, failed, p50/p99/p999/max in ms). Exits 0
 * when every record was acknowledged, 1 otherwise, 2 on bad arguments.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double *lat;
static size_t acked, failed;

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        (void)rk;
        (void)opaque;
        double due = *(double *)m->_private;
        if (m->err)
                failed++;
        else
                lat[acked++] = (now_s() - due) * 1000;
        free(m->_private);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
        const char *bs = NULL, *topic = NULL;
        double rate = 0, secs = 0;
        size_t size = 150;
        for (int i = 1; i + 1 < argc; i += 2) {
                if (!strcmp(argv[i], "--bootstrap"))
                        bs = argv[i + 1];
                else if (!strcmp(argv[i], "--topic"))
                        topic = argv[i + 1];
                else if (!strcmp(argv[i], "--rate"))
                        rate = atof(argv[i + 1]);
                else if (!strcmp(argv[i], "--seconds"))
                        secs = atof(argv[i + 1]);
                else if (!strcmp(argv[i], "--size"))
                        size = (size_t)atol(argv[i + 1]);
        }
        if (!bs || !topic || rate <= 0 || secs <= 0 || size > 65536) {
                fprintf(stderr, "usage: ackrate --bootstrap B --topic T "
                                "--rate R --seconds S [--size N]\n");
                return 2;
        }
        char err[512];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        if (rd_kafka_conf_set(c, "bootstrap.servers", bs, err, sizeof(err)) ||
            rd_kafka_conf_set(c, "enable.idempotence", "true", err,
                              sizeof(err)) ||
            rd_kafka_conf_set(c, "linger.ms", "1", err, sizeof(err))) {
                fprintf(stderr, "ackrate: %s\n", err);
                return 2;
        }
        rd_kafka_conf_set_dr_msg_cb(c, dr);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
        if (!rk) {
                fprintf(stderr, "ackrate: %s\n", err);
                return 1;
        }
        size_t due_total = (size_t)(rate * secs);
        lat = malloc(due_total * sizeof(double));
        static char value[65536];
        memset(value, 'x', size);
        /* The first record waits for metadata: ask first (as relay does). */
        const struct rd_kafka_metadata *md;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        if (!rd_kafka_metadata(rk, 0, rkt, &md, 5000))
                rd_kafka_metadata_destroy(md);
        double start = now_s();
        for (size_t i = 0; i < due_total; i++) {
                double due = start + (double)i / rate;
                while (now_s() < due)
                        rd_kafka_poll(rk, 0 < (due - now_s()) * 1000 ? 1 : 0);
                double *d = malloc(sizeof(double));
                *d = due;
                char key[32];
                int kn = snprintf(key, sizeof(key), "cust-%zu", i % 1000);
                while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA,
                                        RD_KAFKA_MSG_F_COPY, value, size, key,
                                        (size_t)kn, d) == -1)
                        rd_kafka_poll(rk, 1);
                rd_kafka_poll(rk, 0);
        }
        rd_kafka_flush(rk, 30000);
        qsort(lat, acked, sizeof(double), cmp_double);
#define PCT(p) (acked ? lat[(size_t)((double)(acked - 1) * (p))] : -1)
        printf("{\"ackrate\":{\"due\":%zu,\"acked\":%zu,\"failed\":%zu,"
               "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"p999_ms\":%.2f,"
               "\"max_ms\":%.2f}}\n",
               due_total, acked, failed, PCT(0.5), PCT(0.99), PCT(0.999),
               acked ? lat[acked - 1] : -1);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        free(lat);
        return acked == due_total ? 0 : 1;
}
