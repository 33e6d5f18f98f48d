/*
 * A reader of the Prometheus text exposition format (0.0.4), for tools that
 * scrape a worker's /metrics (relayctl top). It reads what real exposers
 * write: # HELP / # TYPE and other comments, labels with escaped quotes,
 * backslashes and newlines, a trailing comma in the label set, NaN, +Inf
 * and -Inf values, an optional millisecond timestamp, CRLF line ends. A
 * caller names the metrics it wants, and the labels of other lines are not
 * even read. It allocates nothing: a sample lives in a caller's struct.
 */
#ifndef RELAY_PROMTEXT_H
#define RELAY_PROMTEXT_H

#include <stddef.h>
#include <stdint.h>

#define RELAY_PROMTEXT_LABELS    16  /* labels kept per sample */
#define RELAY_PROMTEXT_NAME_MAX  128 /* metric and label names, with NUL */
#define RELAY_PROMTEXT_VALUE_MAX 256 /* a label value unescaped, with NUL */

typedef struct relay_promtext_label {
        char name[RELAY_PROMTEXT_NAME_MAX];
        char value[RELAY_PROMTEXT_VALUE_MAX]; /* unescaped */
} relay_promtext_label_t;

/* One sample line. A line with more labels, or a longer name or label
 * value, than the sizes above is not valid here (skipped, counted). */
typedef struct relay_promtext_sample {
        char name[RELAY_PROMTEXT_NAME_MAX];
        relay_promtext_label_t labels[RELAY_PROMTEXT_LABELS];
        size_t nlabels;
        double value; /* NaN and ±Inf as the text says */
        int has_timestamp;
        int64_t timestamp_ms;
} relay_promtext_sample_t;

/* Parse one line, without its '\n' (a trailing '\r' is allowed). Returns 1
 * with *out filled for a sample; 0 for a blank line, a comment, or a
 * sample whose name is not in wanted (a NULL-terminated list of metric
 * names; NULL wants every name), whose labels are then not read; -1 when
 * the line is not valid, errstr saying where. */
int relay_promtext_line(const char *line, size_t len, const char *const *wanted,
                        relay_promtext_sample_t *out, char *errstr,
                        size_t errstr_size);

typedef void(relay_promtext_cb)(const relay_promtext_sample_t *s, void *arg);

/* Every wanted sample of a whole exposition (len bytes, no NUL needed),
 * in order, to cb; s is valid during the call only. Lines that are not
 * valid are skipped. Returns how many were skipped. */
size_t relay_promtext_parse(const char *text, size_t len,
                            const char *const *wanted, relay_promtext_cb *cb,
                            void *arg);

/* The value of label name in s, or NULL when s has no such label. */
const char *relay_promtext_label(const relay_promtext_sample_t *s,
                                 const char *name);

#endif
