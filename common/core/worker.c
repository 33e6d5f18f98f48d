/*
 * The shared start of every worker: arguments, config, log level, signals.
 */
#include "relay/worker.h"
#include "relay/admin.h"
#include "relay/common.h"
#include "relay/log.h"
#include "relay/metrics.h"
#include "relay/registry.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t relay_run = 1;
volatile sig_atomic_t relay_reload = 0;
/* When the stop signal came (CLOCK_MONOTONIC ms), 0 before: a lock-free
 * atomic, so the signal handler may store it. */
static _Atomic int_least64_t stop_at;

static const relay_conf_prop_t worker_props[] = {
    {"log.level", RELAY_CONF_STRING, "info", 0, -1, 0,
     "error, warning, info or debug (also PUT /loglevel on the admin "
     "endpoint)",
     0},
    {"worker.shutdown_grace_ms", RELAY_CONF_INT, "30000", 0, 3600000, 0,
     "on SIGTERM, time to finish the batch in hand (requests still running "
     "then are aborted; what is not finished is left for the next owner)",
     0},
    {"worker.commits_in_flight", RELAY_CONF_INT, "2", 0, 1000, 0,
     "batch commits Kafka may leave unanswered before the next batch is "
     "taken (a crash re-delivers the batch in hand and these; 0: no wait)",
     0},
    {"worker.batches_in_flight", RELAY_CONF_INT, "4", 1, 64, 0,
     "batches held at once: the next batch is read and processed while the "
     "acks of the older ones are outstanding; offsets are stored in order, "
     "only past durable work (a crash re-delivers the batches held; 1: one "
     "batch at a time)",
     0},
    {"schemas.manifest", RELAY_CONF_STRING, "schemas/manifest.cfg", 0, -1, 0,
     "the schema catalogue: ids, subjects and .avsc files", 0},
    {"schema_registry.url", RELAY_CONF_STRING, NULL, 0, -1, 0,
     "Confluent-compatible schema registry (unset: the manifest's fixed ids)",
     0},
    {"schema_registry.basic_auth", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET, "user:password for the registry", 0},
    {"schema_registry.auto_register", RELAY_CONF_BOOL, "true", 0, 1, 0,
     "register a local schema the registry does not have yet", 0},
    {"schema_registry.cache_size", RELAY_CONF_INT, "1000", 1, 1000000, 0,
     "schema ids kept in memory", 0},
    {"schema_registry.timeout_ms", RELAY_CONF_INT, "10000", 100, 600000, 0,
     "time per registry request", 0},
    {"schema_registry.negative_ttl_ms", RELAY_CONF_INT, "300000", 0, 86400000,
     0,
     "how long a schema id the registry does not know is refused without "
     "asking again (0: ask every time)",
     0},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

static void usage(const char *name, const relay_conf_t *conf, FILE *fp)
{
        fprintf(fp,
                "Usage: relay-%s -c FILE [-X name=value ...]\n"
                "  -c FILE        libconfig file (deploy/config/%s*.cfg)\n"
                "  -X name=value  set a key (kafka.<property> goes to "
                "librdkafka)\n"
                "  -h             this help and every key\n\nKeys:\n",
                name, name);
        relay_conf_describe(conf, fp);
}

relay_conf_t *relay_worker_conf(int argc, char **argv, const char *name,
                                const relay_conf_prop_t *const *tables,
                                size_t ntables)
{
        /* The common keys first, then the worker's, however many. */
        const relay_conf_prop_t **all = relay_calloc(ntables + 2, sizeof(*all));
        char errstr[1024];
        all[0] = worker_props;
        all[1] = relay_admin_props;
        for (size_t i = 0; i < ntables; i++)
                all[i + 2] = tables[i];
        relay_conf_t *conf = relay_conf_new(all, ntables + 2);
        free(all); /* the conf keeps the tables, not the array */
        const char *file = NULL;
        int opt;
        /* Overrides apply after the file, whatever their order. */
        char **sets = relay_calloc((size_t)argc + 1, sizeof(*sets));
        size_t nsets = 0;
        while ((opt = getopt(argc, argv, "c:X:h")) != -1) {
                switch (opt) {
                case 'c':
                        file = optarg;
                        break;
                case 'X':
                        sets[nsets++] = optarg;
                        break;
                case 'h':
                        usage(name, conf, stdout);
                        exit(0);
                default:
                        usage(name, conf, stderr);
                        exit(2);
                }
        }
        if (file && relay_conf_load_file(conf, file, errstr, sizeof(errstr)))
                goto fail;
        for (size_t i = 0; i < nsets; i++) {
                char *eq = strchr(sets[i], '=');
                if (!eq) {
                        snprintf(errstr, sizeof(errstr),
                                 "-X %s: expected name=value", sets[i]);
                        goto fail;
                }
                *eq = '\0';
                if (relay_conf_set(conf, sets[i], eq + 1, errstr,
                                   sizeof(errstr)))
                        goto fail;
        }
        if (relay_conf_finish(conf, errstr, sizeof(errstr)))
                goto fail;
        int level = relay_log_level_parse(relay_conf_str(conf, "log.level"));
        if (level < 0) {
                snprintf(errstr, sizeof(errstr),
                         "log.level '%s' is not one of error, warning, info, "
                         "debug",
                         relay_conf_str(conf, "log.level"));
                goto fail;
        }
        relay_log_level = level;
        free(sets);
        return conf;
fail:
        fprintf(stderr, "relay-%s: config error: %s\n", name, errstr);
        relay_log(LOG_ERR, name, "config error: %s", errstr);
        free(sets);
        relay_conf_destroy(conf);
        exit(2);
}

static void on_stop(int sig)
{
        (void)sig;
        if (!atomic_load(&stop_at))
                atomic_store(&stop_at, relay_mono_ms());
        relay_run = 0;
}

int64_t relay_worker_stop_deadline(long grace_ms)
{
        if (relay_run)
                return 0;
        int64_t at = atomic_load(&stop_at);
        if (!at) /* stopped by other means than a signal */
                atomic_store(&stop_at, at = relay_mono_ms());
        return at + grace_ms;
}

void relay_worker_admin(const relay_conf_t *conf, const char *name)
{
        char errstr[512];
        if (relay_admin_start(conf, name, errstr, sizeof(errstr))) {
                fprintf(stderr, "relay-%s: %s\n", name, errstr);
                relay_log(LOG_ERR, name, "%s", errstr);
                exit(2);
        }
}

void relay_worker_end(void)
{
        relay_admin_stop();
        relay_metrics_free();
}

static void on_hup(int sig)
{
        (void)sig;
        relay_reload = 1;
}

void relay_worker_signals(void)
{
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sa.sa_handler = on_hup;
        sigaction(SIGHUP, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
}

relay_schemas_t *relay_worker_schemas(const relay_conf_t *conf,
                                      long bind_wait_ms, char *errstr,
                                      size_t errstr_size)
{
        relay_schemas_t *s = relay_schemas_load(
            relay_conf_str(conf, "schemas.manifest"), errstr, errstr_size);
        const char *url = relay_conf_str(conf, "schema_registry.url");
        if (!s || !url)
                return s;
        relay_registry_conf_t rc = {
            url, relay_conf_str(conf, "schema_registry.basic_auth"),
            (long)relay_conf_int(conf, "schema_registry.timeout_ms")};
        relay_registry_t *reg = relay_registry_new(&rc, errstr, errstr_size);
        if (!reg) {
                relay_schemas_destroy(s);
                return NULL;
        }
        /* No wait for a record's new id: the registry being down is not
         * the record's fault, so decode says RELAY_RETRY at once and the
         * pipeline backs off while it keeps serving the consumer. */
        relay_schemas_registry_conf_t sc = {
            .auto_register =
                relay_conf_bool(conf, "schema_registry.auto_register"),
            .cache_max =
                (size_t)relay_conf_int(conf, "schema_registry.cache_size"),
            .negative_ttl_ms =
                (long)relay_conf_int(conf, "schema_registry.negative_ttl_ms"),
            .bind_wait_ms = bind_wait_ms,
            .running = &relay_run,
        };
        relay_schemas_use_registry(s, reg, &sc);
        relay_log(LOG_INFO, "schemas", "schema ids from the registry at %s",
                  url);
        return s;
}
