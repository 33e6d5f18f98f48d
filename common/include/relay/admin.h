/*
 * The admin endpoint of every worker, served by libmicrohttpd from its own
 * thread on admin.address:admin.port (0 turns it off):
 *
 *   GET /metrics    the Prometheus text exposition (relay/metrics.h)
 *   GET /healthz    200 "ok" while the worker's loop is alive; 503 when it
 *                   has not come round for admin.stall_ms
 *   GET /readyz     200 "ready", or 503 with one line per reason it is not
 *                   (no partitions assigned, Kafka unreachable, draining,
 *                   the platform refuses the credentials, the circuit is
 *                   open, the schema registry or an output is away)
 *   GET /loglevel   the log level; PUT /loglevel with error, warning, info
 *                   or debug as the body (or ?level=) sets it
 *
 * The server's thread only reads: counters are atomics, and the readiness
 * reasons are copied under a lock that is never held across I/O, so a
 * scrape never holds up the worker.
 */
#ifndef RELAY_ADMIN_H
#define RELAY_ADMIN_H

#include "relay/conf.h"

#include <stddef.h>

/* The admin.* keys (part of every worker's common keys). */
extern const relay_conf_prop_t relay_admin_props[];

/* Why a worker may not be ready; each set by the part that knows. */
enum relay_ready_cond {
        RELAY_READY_ASSIGNED, /* the engine: no partitions assigned */
        RELAY_READY_KAFKA,    /* the engine: no broker connection up */
        RELAY_READY_DRAINING, /* the engine: stopping */
        RELAY_READY_INPUT,    /* the engine: a record cannot be read now */
        RELAY_READY_OUTPUT,   /* the engine: an output cannot be written */
        RELAY_READY_PLATFORM, /* deliver: credentials refused, circuit open */
        RELAY_READY_NCONDS
};

/* Start serving (once per process; worker names the process in
 * relay_build_info). 0, or -1 + errstr (e.g. the port is taken). With
 * admin.port 0 nothing is served and 0 is returned. */
int relay_admin_start(const relay_conf_t *conf, const char *worker,
                      char *errstr, size_t errstr_size);
/* The port served (useful with admin.port = -1, any free port), or 0. */
int relay_admin_port(void);
void relay_admin_stop(void);

/* Set (fmt != NULL) or clear (fmt == NULL) a reason not to be ready. */
void relay_ready_set(enum relay_ready_cond cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* 1 when no reason is set. */
int relay_ready(void);

/* The worker's loop came round (for /healthz). */
void relay_heartbeat(void);

#endif
