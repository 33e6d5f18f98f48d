/*
 * relay-devkafka: librdkafka's mock cluster (rdkafka_mock.h) in a small
 * process, the demo's embedded default broker, so that the demo needs no
 * JVM. It speaks enough of the Kafka protocol for producers (idempotent
 * included), consumer groups and offset commits, keeps everything in memory
 * and forgets it on exit. Not for production, and not a stand-in for the
 * real broker in integration tests.
 *
 *   relay-devkafka [-n brokers] [-t topic:partitions ...] [-f addr-file]
 *
 * Prints "bootstrap=<host:port,...>" on stdout once ready; runs until
 * SIGTERM or SIGINT.
 */
#include "relay/log.h"
#include "relay/worker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const default_topics[] = {
    "loyalty.events:3", "out.mparticle:3", "dlq.mparticle:1", "dlq.transform:1",
    NULL};

static int create_topic(rd_kafka_mock_cluster_t *mc, const char *spec,
                        int replication)
{
        char name[256];
        int parts = 1;
        const char *colon = strrchr(spec, ':');
        size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
        if (n == 0 || n >= sizeof(name)) {
                fprintf(stderr, "relay-devkafka: bad topic '%s'\n", spec);
                return -1;
        }
        memcpy(name, spec, n);
        name[n] = '\0';
        if (colon && (parts = atoi(colon + 1)) < 1) {
                fprintf(stderr, "relay-devkafka: bad partition count in '%s'\n",
                        spec);
                return -1;
        }
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mc, name, parts, replication);
        if (err) {
                fprintf(stderr, "relay-devkafka: create %s: %s\n", name,
                        rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

int main(int argc, char **argv)
{
        int brokers = 1, opt;
        const char *addr_file = NULL;
        const char *topics[64];
        size_t ntopics = 0;
        while ((opt = getopt(argc, argv, "n:t:f:h")) != -1) {
                switch (opt) {
                case 'n':
                        brokers = atoi(optarg);
                        break;
                case 't':
                        if (ntopics < 64)
                                topics[ntopics++] = optarg;
                        break;
                case 'f':
                        addr_file = optarg;
                        break;
                default:
                        fprintf(stderr,
                                "Usage: relay-devkafka [-n brokers] "
                                "[-t topic:partitions ...] [-f addr-file]\n");
                        return opt == 'h' ? 0 : 2;
                }
        }
        if (brokers < 1 || brokers > 9) {
                fprintf(stderr, "relay-devkafka: -n must be 1..9\n");
                return 2;
        }
        relay_worker_signals();

        /* The mock cluster lives inside a client instance. */
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(conf, relay_log_rdkafka_cb);
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "relay-devkafka: %s\n", errstr);
                return 1;
        }
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
        if (!mc) {
                fprintf(stderr, "relay-devkafka: cannot start mock cluster\n");
                rd_kafka_destroy(rk);
                return 1;
        }
        int rc = 0;
        for (size_t i = 0; default_topics[i] && rc == 0; i++)
                rc = create_topic(mc, default_topics[i], 1);
        for (size_t i = 0; i < ntopics && rc == 0; i++)
                rc = create_topic(mc, topics[i], 1);
        if (rc == 0) {
                const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
                printf("bootstrap=%s\n", bs);
                fflush(stdout);
                if (addr_file) {
                        char tmp[4096];
                        snprintf(tmp, sizeof(tmp), "%s.tmp", addr_file);
                        FILE *fp = fopen(tmp, "w");
                        if (!fp || fprintf(fp, "%s\n", bs) < 0 || fclose(fp) ||
                            rename(tmp, addr_file)) {
                                perror(addr_file);
                                rc = 1;
                        }
                }
                relay_log(LOG_INFO, "devkafka",
                          "mock cluster of %d broker(s) at %s", brokers, bs);
                while (relay_run && rc == 0)
                        usleep(100 * 1000);
        }
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return rc ? 1 : 0;
}
