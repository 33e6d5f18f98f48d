/*
 * What every worker's main() shares: command-line parsing (-c FILE,
 * -X name=value, -h), loading and checking the config against the worker's
 * property tables plus the common ones (log.level, schemas.manifest,
 * schema_registry.*), the schema catalogue, and
 * signal handling (SIGTERM/SIGINT stop, SIGHUP asks for a reload), and
 * the admin endpoint.
 */
#ifndef RELAY_WORKER_H
#define RELAY_WORKER_H

#include "relay/avro.h"
#include "relay/conf.h"

#include <signal.h>

/* Cleared by SIGTERM/SIGINT: the worker finishes what it holds and exits. */
extern volatile sig_atomic_t relay_run;
/* Set by SIGHUP. */
extern volatile sig_atomic_t relay_reload;

/* Parse arguments and load the config. On any error prints it (one line,
 * naming file, line and key) to stderr and exits with status 2; -h prints
 * usage and every key and exits 0. tables are the worker's own ntables
 * property tables (any number), borrowed as by relay_conf_new(). The conf
 * is owned by the caller. */
relay_conf_t *relay_worker_conf(int argc, char **argv, const char *name,
                                const relay_conf_prop_t *const *tables,
                                size_t ntables);

/* The schema catalogue of schemas.manifest, taking wire ids from the
 * schema registry when schema_registry.url is set. Binding a subject
 * (relay_schemas_bind, the reader and writer constructors) waits out an
 * unreachable registry with backoff for bind_wait_ms: -1 until relay_run
 * is cleared (at start), 0 one try and no wait (a SIGHUP reload, which
 * then keeps its running set). Decoding never waits. NULL + errstr; the
 * catalogue is owned by the caller. */
relay_schemas_t *relay_worker_schemas(const relay_conf_t *conf,
                                      long bind_wait_ms, char *errstr,
                                      size_t errstr_size);

/* Install the signal handlers above. */
void relay_worker_signals(void);

/* 0 while running; once stopped, the relay_mono_ms time by which the work
 * in hand must be finished: grace_ms after the stop signal came. */
int64_t relay_worker_stop_deadline(long grace_ms);

/* Start the admin endpoint (relay/admin.h) for the worker called name
 * (e.g. "deliver-mparticle"); on error say why and exit with status 2. */
void relay_worker_admin(const relay_conf_t *conf, const char *name);
/* Stop it and free the metrics, at exit. */
void relay_worker_end(void);

#endif
