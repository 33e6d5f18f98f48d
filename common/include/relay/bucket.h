/*
 * A token bucket: at most `rate` units a second on average, with bursts up
 * to `burst` units. The delivery engine keeps one for requests and one for
 * records per connection, shared by every lane; a platform's rate-limit
 * headers lower a bucket's rate for as long as they say.
 */
#ifndef RELAY_BUCKET_H
#define RELAY_BUCKET_H

#include <stdint.h>

typedef struct relay_bucket {
        double rate;   /* units a second; 0: unlimited */
        double burst;  /* most units saved up */
        double tokens; /* units available now; below 0 after a take larger
                          than the burst (borrowed from the future) */
        int64_t at;    /* when tokens was last brought up to date (ms) */
} relay_bucket_t;

/* A full bucket of rate units a second (0: unlimited), saving up at most
 * burst units (at least one). */
void relay_bucket_init(relay_bucket_t *b, double rate, double burst,
                       int64_t now_ms);

/* A new rate (0: unlimited) from now on; what is saved up is kept, up to
 * the burst. */
void relay_bucket_set_rate(relay_bucket_t *b, double rate, int64_t now_ms);

/* When n units can be taken: now_ms when they are there, else the time
 * they will be. More than the burst can be taken once the bucket is
 * full (it is then in debt, so the long-run rate holds). */
int64_t relay_bucket_when(relay_bucket_t *b, double n, int64_t now_ms);

/* Take n units (after relay_bucket_when said now, or unconditionally). */
void relay_bucket_take(relay_bucket_t *b, double n, int64_t now_ms);

#endif
