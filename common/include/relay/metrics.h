/*
 * Metrics in the Prometheus text exposition format (0.0.4), kept in one
 * process-wide registry.
 *
 * A metric (a family: name, help, type, label names) has series, one per
 * set of label values, made on first use. Values are atomics: the worker's
 * thread updates them without a lock, and the admin server's thread reads
 * them for a scrape (relay_metrics_write) without ever making the worker
 * wait. Families and series are only ever added (to lists read without a
 * lock), never freed before relay_metrics_free at exit; a series that no
 * longer applies (a revoked partition) is hidden until it is set again.
 *
 * Register families and make series from one thread (the worker's); keep
 * the series pointer rather than looking it up per record. Label values
 * must have a bounded set (topics, partitions, platforms, reasons), never
 * a person's id.
 */
#ifndef RELAY_METRICS_H
#define RELAY_METRICS_H

#include "relay/common.h"

#include <stddef.h>

enum relay_metric_type {
        RELAY_METRIC_COUNTER,
        RELAY_METRIC_GAUGE,
        RELAY_METRIC_HISTOGRAM
};

typedef struct relay_metric relay_metric_t;
typedef struct relay_series relay_series_t;

/* The family of that name, made on first call (later calls with the same
 * name return it; its type and labels must match). labels: comma-separated
 * label names, or NULL. buckets: a histogram's upper bounds, ascending
 * (copied; +Inf is implied). */
relay_metric_t *relay_metric(enum relay_metric_type type, const char *name,
                             const char *help, const char *labels,
                             const double *buckets, size_t nbuckets);

/* The series of these label values (one per label name, in order), made
 * on first use. */
relay_series_t *relay_series(relay_metric_t *m, ...);
relay_series_t *relay_series_v(relay_metric_t *m, const char *const *values);

/* The only series of a family without labels. */
#define relay_metric_series(m) relay_series_v((m), NULL)

void relay_metric_add(relay_series_t *s, double v);     /* counter or gauge */
void relay_metric_set(relay_series_t *s, double v);     /* gauge; unhides */
void relay_metric_observe(relay_series_t *s, double v); /* histogram */
double relay_metric_value(const relay_series_t *s);
/* Leave the series out of scrapes until it is set or added to again. */
void relay_metric_hide(relay_series_t *s);

/* Log-linear buckets: request durations in seconds (5 ms .. 30 s) and
 * batch sizes in records (1 .. 10000). */
extern const double relay_duration_buckets[];
extern const size_t relay_duration_nbuckets;
extern const double relay_size_buckets[];
extern const size_t relay_size_nbuckets;

/* Append the exposition of every family, and the process_* metrics (RSS,
 * CPU seconds, start time, open fds, from /proc/self), to out. Any
 * thread. */
void relay_metrics_write(relay_buf_t *out);

/* Collect nothing from now on (no admin endpoint to read it): families
 * made after are NULL, and every function here accepts NULL. */
void relay_metrics_disable(void);

/* Free everything (at exit, after the admin server stopped). */
void relay_metrics_free(void);

#endif
