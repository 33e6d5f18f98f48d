/*
 * The retry policy for deliveries. A failed request waits an exponentially
 * growing, jittered time before the next attempt, so that many workers that
 * failed together (a platform outage, a rate limit) do not come back in
 * lockstep. The jitter never goes below half of the exponential step, which
 * keeps the backoff meaningful even for unlucky draws, and a Retry-After from
 * the platform is honoured because ignoring it usually earns a longer ban.
 * Everything is capped at max_ms so one bad header cannot park a worker.
 */
#include "relay/retry.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* A Retry-After longer than this is treated as this: the delay is capped at
 * max_ms anyway, and the bound keeps the seconds → ms product from
 * overflowing on hostile input. */
#define RETRY_AFTER_MAX_S 86400L

long relay_retry_delay_ms(const relay_retry_policy_t *p, int failed,
                          long retry_after_ms, uint32_t rnd)
{
        long base = p->base_ms > 0 ? p->base_ms : 0;
        long max = p->max_ms > 0 ? p->max_ms : 0;
        long exp, half, wait;

        if (failed < 1)
                failed = 1;

        /* base << (failed - 1), but stop doubling once past the cap so that
         * neither the shift nor the product can overflow, and never loop
         * on a zero base whatever `failed` says. */
        exp = base < max ? base : max;
        for (int i = 1; i < failed && exp > 0 && exp < max; i++)
                exp = exp > max / 2 ? max : exp * 2;

        /* Equal jitter: a uniform draw in [exp/2, exp/2 + exp/2]. For an
         * odd exp the top is exp - 1, a millisecond nobody will miss. The
         * modulo bias of a 32-bit draw is negligible at these ranges. */
        half = exp / 2;
        wait = half + (long)((uint64_t)rnd % ((uint64_t)half + 1));

        if (retry_after_ms >= 0 && retry_after_ms > wait)
                wait = retry_after_ms;
        return wait < max ? wait : max;
}

/* Delta-seconds: digits only, capped instead of overflowing. Returns -1 when
 * s[0..n) is not all digits. */
static long parse_delta_seconds(const char *s, size_t n)
{
        long secs = 0;

        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -1;
                if (secs < RETRY_AFTER_MAX_S)
                        secs = secs * 10 + (s[i] - '0');
        }
        if (secs > RETRY_AFTER_MAX_S)
                secs = RETRY_AFTER_MAX_S;
        return secs * 1000;
}

static int is_blank(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

long relay_retry_after_parse(const char *value, time_t now)
{
        /* An HTTP-date is 29 characters; anything near this size is junk. */
        char date[128];
        size_t n;
        time_t t;

        if (!value)
                return -1;
        while (is_blank(*value))
                value++;
        n = strlen(value);
        while (n > 0 && is_blank(value[n - 1]))
                n--;
        if (n == 0)
                return -1;

        if (value[0] >= '0' && value[0] <= '9')
                return parse_delta_seconds(value, n);

        /* curl_getdate() needs a C string and is thread-safe; it accepts
         * the three HTTP-date forms (IMF-fixdate, RFC 850, asctime) and
         * rejects anything without a day, month and year. "-5" fails here
         * too, as it should: a negative delay is not a valid header. */
        if (n >= sizeof(date))
                return -1;
        memcpy(date, value, n);
        date[n] = '\0';
        t = curl_getdate(date, NULL);
        if (t == (time_t)-1)
                return -1;
        if (t <= now)
                return 0;
        if (t - now > RETRY_AFTER_MAX_S)
                return RETRY_AFTER_MAX_S * 1000;
        return (long)(t - now) * 1000;
}

/* SplitMix64, used only to turn a weak seed (clock, address, counter) into a
 * well-mixed non-zero state for xorshift. */
static uint64_t splitmix64(uint64_t x)
{
        x += 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
}

uint32_t relay_retry_random(void)
{
        /* One xorshift64* state per thread: no lock on the hot path and no
         * shared state for two threads to step on. The seed mixes the clock,
         * the address of this thread's state (distinct per live thread) and
         * a process-wide counter, so threads started in the same nanosecond
         * still draw different sequences. */
        static _Thread_local uint64_t state;
        static atomic_uint_fast64_t seeds;

        if (state == 0) {
                struct timespec ts;
                uint64_t seed;

                clock_gettime(CLOCK_MONOTONIC, &ts);
                seed =
                    (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
                seed ^= (uint64_t)(uintptr_t)&state;
                seed ^= splitmix64(atomic_fetch_add(&seeds, 1));
                state = splitmix64(seed);
                if (state == 0)
                        state = 0x9e3779b97f4a7c15ULL;
        }
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        /* The high bits of the multiplied state are the good ones. */
        return (uint32_t)((state * 0x2545f4914f6cdd1dULL) >> 32);
}
