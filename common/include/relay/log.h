/*
 * JSON-lines logging. Every line is one JSON object:
 *   {"ts":"2026-11-25T19:10:22.123Z","level":"warning","component":"deliver","msg":"..."}
 * relay_log() checks the level before any formatting work is done, so debug
 * logging on hot paths costs one comparison when it is off. librdkafka's own
 * logs are routed in through relay_log_rdkafka_cb().
 */
#ifndef RELAY_LOG_H
#define RELAY_LOG_H

#include <stdio.h>
#include <syslog.h> /* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG ... */

/* Atomic: the admin endpoint's thread may set it (PUT /loglevel). */
extern _Atomic int relay_log_level;

#define relay_log(level, component, ...)                                       \
        do {                                                                   \
                if ((level) <= relay_log_level)                                \
                        relay_log_write((level), (component), __VA_ARGS__);    \
        } while (0)

void relay_log_write(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A line that may repeat many times (a delivery report error for each of
 * 100k queued messages during a broker outage) is written at most once per
 * interval, saying how many like it were left out since. One limit per
 * call site, used from one thread. */
typedef struct relay_log_limit {
        long long last; /* relay_mono_ms of the last line written */
        unsigned long skipped;
} relay_log_limit_t;

#define relay_log_limited(lim, interval_ms, level, component, ...)             \
        do {                                                                   \
                if ((level) <= relay_log_level)                                \
                        relay_log_limited_write((lim), (interval_ms), (level), \
                                                (component), __VA_ARGS__);     \
        } while (0)

void relay_log_limited_write(relay_log_limit_t *lim, long interval_ms,
                             int level, const char *component, const char *fmt,
                             ...) __attribute__((format(printf, 5, 6)));

/* "error", "warning", "info", "debug" (or a syslog number) → level; -1 if
 * the name is unknown. */
int relay_log_level_parse(const char *name);
const char *relay_log_level_name(int level);

/* Where lines go (default stderr). The stream is borrowed, not closed. */
void relay_log_set_stream(FILE *fp);

/* librdkafka log callback (rd_kafka_conf_set_log_cb); component "rdkafka". */
struct rd_kafka_s;
void relay_log_rdkafka_cb(const struct rd_kafka_s *rk, int level,
                          const char *fac, const char *buf);

#endif
