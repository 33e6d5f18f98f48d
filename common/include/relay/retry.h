/*
 * The retry policy for deliveries: exponential backoff with full jitter,
 * never shorter than what the platform asked for in Retry-After, capped.
 */
#ifndef RELAY_RETRY_H
#define RELAY_RETRY_H

#include <stdint.h>
#include <time.h>

typedef struct relay_retry_policy {
        int max_attempts; /* attempts in all, the first included (>= 1) */
        long base_ms;     /* backoff before the 2nd attempt, before jitter */
        long max_ms;      /* cap on any single wait, Retry-After included */
} relay_retry_policy_t;

/* Wait before the next attempt after `failed` attempts (1-based) have
 * failed. The exponential part is base_ms * 2^(failed-1), capped at max_ms,
 * with full jitter drawn from rnd (a uniform random 32-bit number) but never
 * below half of it; a Retry-After (retry_after_ms >= 0) raises the wait to
 * at least that. The result never exceeds max_ms. */
long relay_retry_delay_ms(const relay_retry_policy_t *p, int failed,
                          long retry_after_ms, uint32_t rnd);

/* Parse a Retry-After header value: delta-seconds ("120") or an HTTP-date
 * ("Wed, 21 Oct 2026 07:28:00 GMT", relative to now). Returns milliseconds
 * (0 for a date in the past), or -1 when the value is neither. */
long relay_retry_after_parse(const char *value, time_t now);

/* A random 32-bit number for jitter (thread-safe, not for cryptography). */
uint32_t relay_retry_random(void);

#endif
