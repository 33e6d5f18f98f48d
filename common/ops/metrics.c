/*
 * The metrics registry and its exposition (see relay/metrics.h).
 *
 * Lists are appended to under a mutex that only writers take; readers (a
 * scrape) follow the atomic next pointers from the head without a lock,
 * so a scrape never holds up the worker and sees every family and series
 * whose link it has reached.
 */
#include "relay/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LABELS 4

struct relay_series {
        _Atomic(struct relay_series *) next;
        relay_metric_t *m;
        char *values[MAX_LABELS];
        char *labels;          /* rendered: name="value",... ("" when none) */
        _Atomic uint64_t bits; /* the value (a double), or a histogram's sum */
        _Atomic uint64_t *buckets; /* histogram: per bucket, not cumulative */
        atomic_int hidden;
};

struct relay_metric {
        _Atomic(struct relay_metric *) next;
        enum relay_metric_type type;
        char *name, *help;
        char *label_names[MAX_LABELS];
        size_t nlabels;
        double *bounds;
        size_t nbounds;
        _Atomic(struct relay_series *) series;
        struct relay_series *tail;
};

static _Atomic(struct relay_metric *) families;
static struct relay_metric *families_tail;
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t start_time_ms;
static int disabled;

void relay_metrics_disable(void)
{
        disabled = 1;
}

const double relay_duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,    2.5,   5,    10,  30};
const size_t relay_duration_nbuckets =
    sizeof(relay_duration_buckets) / sizeof(relay_duration_buckets[0]);
const double relay_size_buckets[] = {1,   2,   5,    10,   20,   50,   100,
                                     200, 500, 1000, 2000, 5000, 10000};
const size_t relay_size_nbuckets =
    sizeof(relay_size_buckets) / sizeof(relay_size_buckets[0]);

static double from_bits(uint64_t b)
{
        double v;
        memcpy(&v, &b, sizeof(v));
        return v;
}

static uint64_t to_bits(double v)
{
        uint64_t b;
        memcpy(&b, &v, sizeof(b));
        return b;
}

static void add_bits(_Atomic uint64_t *a, double v)
{
        uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(
            a, &old, to_bits(from_bits(old) + v), memory_order_relaxed,
            memory_order_relaxed))
                ;
}

relay_metric_t *relay_metric(enum relay_metric_type type, const char *name,
                             const char *help, const char *labels,
                             const double *buckets, size_t nbuckets)
{
        if (disabled)
                return NULL;
        pthread_mutex_lock(&write_lock);
        if (!start_time_ms)
                start_time_ms = relay_now_ms();
        struct relay_metric *m;
        for (m = atomic_load(&families); m; m = atomic_load(&m->next))
                if (!strcmp(m->name, name))
                        goto out;
        m = relay_calloc(1, sizeof(*m));
        m->type = type;
        m->name = relay_strdup(name);
        m->help = relay_strdup(help);
        if (labels && *labels) {
                char *copy = relay_strdup(labels), *save = NULL;
                for (char *l = strtok_r(copy, ",", &save);
                     l && m->nlabels < MAX_LABELS;
                     l = strtok_r(NULL, ",", &save))
                        m->label_names[m->nlabels++] = relay_strdup(l);
                free(copy);
        }
        if (type == RELAY_METRIC_HISTOGRAM) {
                m->nbounds = nbuckets;
                m->bounds =
                    relay_calloc(nbuckets ? nbuckets : 1, sizeof(*m->bounds));
                memcpy(m->bounds, buckets, nbuckets * sizeof(*m->bounds));
        }
        if (families_tail)
                atomic_store(&families_tail->next, m);
        else
                atomic_store(&families, m);
        families_tail = m;
out:
        pthread_mutex_unlock(&write_lock);
        return m;
}

/* Label values as the exposition format escapes them. */
static void escape(relay_buf_t *b, const char *s)
{
        for (; *s; s++) {
                if (*s == '\\')
                        relay_buf_puts(b, "\\\\");
                else if (*s == '"')
                        relay_buf_puts(b, "\\\"");
                else if (*s == '\n')
                        relay_buf_puts(b, "\\n");
                else
                        relay_buf_append(b, s, 1);
        }
}

relay_series_t *relay_series_v(relay_metric_t *m, const char *const *values)
{
        struct relay_series *s;
        if (!m)
                return NULL;
        for (s = atomic_load(&m->series); s; s = atomic_load(&s->next)) {
                size_t k = 0;
                while (k < m->nlabels && !strcmp(s->values[k], values[k]))
                        k++;
                if (k == m->nlabels)
                        return s;
        }
        s = relay_calloc(1, sizeof(*s));
        s->m = m;
        relay_buf_t b;
        relay_buf_init(&b);
        for (size_t k = 0; k < m->nlabels; k++) {
                s->values[k] = relay_strdup(values[k] ? values[k] : "");
                relay_buf_printf(&b, "%s%s=\"", k ? "," : "",
                                 m->label_names[k]);
                escape(&b, s->values[k]);
                relay_buf_puts(&b, "\"");
        }
        s->labels = relay_strdup(b.data ? b.data : "");
        relay_buf_free(&b);
        if (m->type == RELAY_METRIC_HISTOGRAM)
                s->buckets = relay_calloc(m->nbounds + 1, sizeof(*s->buckets));
        pthread_mutex_lock(&write_lock);
        if (m->tail)
                atomic_store(&m->tail->next, s);
        else
                atomic_store(&m->series, s);
        m->tail = s;
        pthread_mutex_unlock(&write_lock);
        return s;
}

relay_series_t *relay_series(relay_metric_t *m, ...)
{
        const char *values[MAX_LABELS] = {0};
        if (!m)
                return NULL;
        va_list ap;
        va_start(ap, m);
        for (size_t k = 0; k < m->nlabels; k++)
                values[k] = va_arg(ap, const char *);
        va_end(ap);
        return relay_series_v(m, values);
}

void relay_metric_add(relay_series_t *s, double v)
{
        if (!s)
                return;
        add_bits(&s->bits, v);
        atomic_store_explicit(&s->hidden, 0, memory_order_relaxed);
}

void relay_metric_set(relay_series_t *s, double v)
{
        if (!s)
                return;
        atomic_store_explicit(&s->bits, to_bits(v), memory_order_relaxed);
        atomic_store_explicit(&s->hidden, 0, memory_order_relaxed);
}

void relay_metric_observe(relay_series_t *s, double v)
{
        if (!s)
                return;
        const relay_metric_t *m = s->m;
        size_t k = 0;
        while (k < m->nbounds && v > m->bounds[k])
                k++;
        atomic_fetch_add_explicit(&s->buckets[k], 1, memory_order_relaxed);
        add_bits(&s->bits, v);
}

double relay_metric_value(const relay_series_t *s)
{
        if (!s)
                return 0;
        return from_bits(atomic_load_explicit(&((struct relay_series *)s)->bits,
                                              memory_order_relaxed));
}

void relay_metric_hide(relay_series_t *s)
{
        if (!s)
                return;
        atomic_store_explicit(&s->hidden, 1, memory_order_relaxed);
}

/* ---- exposition --------------------------------------------------------- */

static void number(relay_buf_t *b, double v)
{
        if (isnan(v))
                relay_buf_puts(b, "NaN");
        else if (isinf(v))
                relay_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        else if (v == (double)(long long)v && fabs(v) < 1e15)
                relay_buf_printf(b, "%lld", (long long)v);
        else {
                /* The shortest of the two that reads back the same. */
                char t[40];
                snprintf(t, sizeof(t), "%.15g", v);
                if (strtod(t, NULL) != v)
                        snprintf(t, sizeof(t), "%.17g", v);
                relay_buf_puts(b, t);
        }
}

static void help_line(relay_buf_t *b, const char *name, const char *help,
                      const char *type)
{
        relay_buf_printf(b, "# HELP %s ", name);
        for (const char *h = help; *h; h++) {
                if (*h == '\\')
                        relay_buf_puts(b, "\\\\");
                else if (*h == '\n')
                        relay_buf_puts(b, "\\n");
                else
                        relay_buf_append(b, h, 1);
        }
        relay_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void sample(relay_buf_t *b, const char *name, const char *suffix,
                   const char *labels, const char *extra, double v)
{
        relay_buf_printf(b, "%s%s", name, suffix);
        if (*labels || extra) {
                relay_buf_printf(b, "{%s%s%s}", labels,
                                 *labels && extra ? "," : "",
                                 extra ? extra : "");
        }
        relay_buf_puts(b, " ");
        number(b, v);
        relay_buf_puts(b, "\n");
}

static void write_histogram(relay_buf_t *b, const struct relay_metric *m,
                            struct relay_series *s)
{
        uint64_t cum = 0;
        char le[64];
        for (size_t k = 0; k <= m->nbounds; k++) {
                cum +=
                    atomic_load_explicit(&s->buckets[k], memory_order_relaxed);
                if (k < m->nbounds) {
                        relay_buf_t nb;
                        relay_buf_init(&nb);
                        number(&nb, m->bounds[k]);
                        snprintf(le, sizeof(le), "le=\"%s\"", nb.data);
                        relay_buf_free(&nb);
                } else {
                        snprintf(le, sizeof(le), "le=\"+Inf\"");
                }
                sample(b, m->name, "_bucket", s->labels, le, (double)cum);
        }
        sample(b, m->name, "_sum", s->labels, NULL,
               from_bits(atomic_load_explicit(&s->bits, memory_order_relaxed)));
        sample(b, m->name, "_count", s->labels, NULL, (double)cum);
}

/* The process metrics client libraries export, from /proc/self. */
static void write_process(relay_buf_t *b)
{
        long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
        FILE *fp = fopen("/proc/self/stat", "r");
        if (fp) {
                char line[2048];
                size_t n = fread(line, 1, sizeof(line) - 1, fp);
                fclose(fp);
                line[n] = '\0';
                /* After the command name in parentheses: state is field 3,
                 * utime 14, stime 15, rss 24. */
                char *p = strrchr(line, ')');
                unsigned long long ut = 0, st = 0;
                long long rss = 0;
                if (p && sscanf(p + 2,
                                "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u "
                                "%*u %llu %llu %*d %*d %*d %*d %*d %*d %*u "
                                "%*u %lld",
                                &ut, &st, &rss) == 3) {
                        help_line(b, "process_cpu_seconds_total",
                                  "user and system CPU time, in seconds",
                                  "counter");
                        sample(b, "process_cpu_seconds_total", "", "", NULL,
                               (double)(ut + st) / (double)tick);
                        help_line(b, "process_resident_memory_bytes",
                                  "resident memory size, in bytes", "gauge");
                        sample(b, "process_resident_memory_bytes", "", "", NULL,
                               (double)rss * (double)page);
                }
        }
        help_line(b, "process_start_time_seconds",
                  "start time of the process since the epoch, in seconds",
                  "gauge");
        sample(b, "process_start_time_seconds", "", "", NULL,
               (double)(start_time_ms / 1000));
        DIR *d = opendir("/proc/self/fd");
        if (d) {
                long n = 0;
                while (readdir(d))
                        n++;
                closedir(d);
                help_line(b, "process_open_fds", "open file descriptors",
                          "gauge");
                /* Less ".", ".." and the directory's own descriptor. */
                sample(b, "process_open_fds", "", "", NULL,
                       (double)(n > 3 ? n - 3 : 0));
        }
}

void relay_metrics_write(relay_buf_t *b)
{
        static const char *const types[] = {"counter", "gauge", "histogram"};
        for (struct relay_metric *m = atomic_load(&families); m;
             m = atomic_load(&m->next)) {
                help_line(b, m->name, m->help, types[m->type]);
                for (struct relay_series *s = atomic_load(&m->series); s;
                     s = atomic_load(&s->next)) {
                        if (atomic_load_explicit(&s->hidden,
                                                 memory_order_relaxed))
                                continue;
                        if (m->type == RELAY_METRIC_HISTOGRAM)
                                write_histogram(b, m, s);
                        else
                                sample(b, m->name, "", s->labels, NULL,
                                       relay_metric_value(s));
                }
        }
        write_process(b);
}

void relay_metrics_free(void)
{
        pthread_mutex_lock(&write_lock);
        struct relay_metric *m = atomic_load(&families);
        atomic_store(&families, NULL);
        families_tail = NULL;
        pthread_mutex_unlock(&write_lock);
        while (m) {
                struct relay_metric *next = atomic_load(&m->next);
                struct relay_series *s = atomic_load(&m->series);
                while (s) {
                        struct relay_series *sn = atomic_load(&s->next);
                        for (size_t k = 0; k < m->nlabels; k++)
                                free(s->values[k]);
                        free(s->labels);
                        free(s->buckets);
                        free(s);
                        s = sn;
                }
                for (size_t k = 0; k < m->nlabels; k++)
                        free(m->label_names[k]);
                free(m->bounds);
                free(m->name);
                free(m->help);
                free(m);
                m = next;
        }
}
