/*
 * Unit tests for the retry policy, by its contract rather than by one
 * implementation's arithmetic: every wait lies in [exp/2, exp] where exp is
 * base * 2^(failed-1) capped at max_ms; the draws spread over that range;
 * nothing overflows for huge inputs; a Retry-After raises the wait to at
 * least what the platform asked for, never shortens it, and is held to the
 * cap; Retry-After values parse in both forms; and the random source does
 * not repeat itself.
 */
#include "relay/retry.h"

#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

/* "Wed, 21 Oct 2026 07:28:00 GMT" as a Unix time. */
#define DATE_STR "Wed, 21 Oct 2026 07:28:00 GMT"
#define DATE_T   ((time_t)1792567680)

/* The draws every bound is checked with: both ends of the 32-bit range,
 * a spread of values in between (Knuth's multiplicative hash of a
 * counter) and some from the real random source. */
#define NDRAWS 600
static uint32_t draws[NDRAWS];

static int draws_setup(void **state)
{
        (void)state;
        draws[0] = 0;
        draws[1] = UINT32_MAX;
        draws[2] = UINT32_MAX / 2;
        for (int i = 3; i < NDRAWS - 64; i++)
                draws[i] = (uint32_t)i * 2654435761u;
        for (int i = NDRAWS - 64; i < NDRAWS; i++)
                draws[i] = relay_retry_random();
        return 0;
}

/* The exponential step the contract describes, computed independently:
 * base * 2^(failed-1), at most max; failed < 1 counts as 1. */
static long step_ms(const relay_retry_policy_t *p, int failed)
{
        long base = p->base_ms > 0 ? p->base_ms : 0;
        long max = p->max_ms > 0 ? p->max_ms : 0;
        long exp = base < max ? base : max;

        for (int i = 1; i < failed && exp > 0 && exp < max; i++)
                exp = exp > max / 2 ? max : exp * 2;
        return exp;
}

/* Every draw gives a wait in [exp/2, exp]; returns the smallest and the
 * largest wait seen. */
static void assert_in_step(const relay_retry_policy_t *p, int failed, long *lo,
                           long *hi)
{
        long exp = step_ms(p, failed);

        *lo = LONG_MAX;
        *hi = LONG_MIN;
        for (int i = 0; i < NDRAWS; i++) {
                long d = relay_retry_delay_ms(p, failed, -1, draws[i]);

                if (d < exp / 2 || d > exp)
                        fail_msg(
                            "failed=%d rnd=%u: wait %ld outside [%ld, %ld]",
                            failed, draws[i], d, exp / 2, exp);
                if (d < *lo)
                        *lo = d;
                if (d > *hi)
                        *hi = d;
        }
}

static void test_exponential_growth_and_cap(void **state)
{
        relay_retry_policy_t p = {
            .max_attempts = 10, .base_ms = 1000, .max_ms = 30000};
        long lo, hi;

        /* 1000, 2000, 4000 ... up to the cap, then the cap: each step's
         * waits stay in [exp/2, exp], including far past the cap and for
         * a failure count whose shift would overflow. */
        static const int failed[] = {1,  2,  3,  4,  5,  6,      7,
                                     31, 32, 63, 64, 99, INT_MAX};
        for (size_t i = 0; i < sizeof(failed) / sizeof(failed[0]); i++)
                assert_in_step(&p, failed[i], &lo, &hi);
        assert_int_equal(step_ms(&p, 5), 16000);
        assert_int_equal(step_ms(&p, 6), 30000);
        /* The waits grow: the shortest of step 3 is past the longest of
         * step 1. */
        assert_in_step(&p, 1, &lo, &hi);
        long hi1 = hi;
        assert_in_step(&p, 3, &lo, &hi);
        assert_true(lo > hi1);
        /* Past the cap no wait is longer than the cap. */
        assert_in_step(&p, INT_MAX, &lo, &hi);
        assert_true(hi <= 30000 && lo >= 15000);

        /* Nothing before the first failure: treated as the first. */
        assert_in_step(&p, 0, &lo, &hi);
        assert_true(lo >= 500 && hi <= 1000);
        assert_in_step(&p, -3, &lo, &hi);
        assert_true(lo >= 500 && hi <= 1000);

        /* A base above the cap starts at the cap. */
        p.max_ms = 300;
        assert_in_step(&p, 1, &lo, &hi);
        assert_true(lo >= 150 && hi <= 300);

        /* Huge values near LONG_MAX do not overflow either. */
        p.base_ms = LONG_MAX / 2;
        p.max_ms = LONG_MAX;
        assert_in_step(&p, 1, &lo, &hi);
        assert_in_step(&p, 3, &lo, &hi);
        assert_in_step(&p, INT_MAX, &lo, &hi);
        assert_true(lo > 0);

        /* A zero base never waits, however many failures. */
        p.base_ms = 0;
        p.max_ms = 30000;
        for (int i = 0; i < NDRAWS; i++)
                assert_int_equal(
                    relay_retry_delay_ms(&p, INT_MAX, -1, draws[i]), 0);
}

static void test_jitter_spreads_over_the_range(void **state)
{
        relay_retry_policy_t p = {
            .max_attempts = 10, .base_ms = 1000, .max_ms = 30000};
        long lo, hi;

        /* Workers that failed together must not come back together: the
         * draws reach both ends of [exp/2, exp] (within 5 % of it) and
         * give many different waits. */
        static const int failed[] = {1, 2, 4, 10};
        for (size_t i = 0; i < sizeof(failed) / sizeof(failed[0]); i++) {
                long exp = step_ms(&p, failed[i]), span = exp - exp / 2;

                assert_in_step(&p, failed[i], &lo, &hi);
                if (lo > exp / 2 + span / 20 || hi < exp - span / 20)
                        fail_msg("failed=%d: waits only span [%ld, %ld] of "
                                 "[%ld, %ld]",
                                 failed[i], lo, hi, exp / 2, exp);
        }
        long seen[NDRAWS];
        int distinct = 0;
        for (int i = 0; i < NDRAWS; i++) {
                long d = relay_retry_delay_ms(&p, 2, -1, draws[i]);
                int j = 0;

                while (j < distinct && seen[j] != d)
                        j++;
                if (j == distinct)
                        seen[distinct++] = d;
        }
        /* 600 draws over 1001 possible waits. */
        assert_true(distinct > 200);
}

static void test_retry_after_raises_but_is_capped(void **state)
{
        relay_retry_policy_t p = {
            .max_attempts = 10, .base_ms = 1000, .max_ms = 30000};

        for (int i = 0; i < NDRAWS; i++) {
                uint32_t r = draws[i];
                long plain = relay_retry_delay_ms(&p, 1, -1, r);

                /* Honoured: at least what the platform asked for ... */
                assert_true(relay_retry_delay_ms(&p, 1, 5000, r) >= 5000);
                assert_true(relay_retry_delay_ms(&p, 1, 29999, r) >= 29999);
                assert_true(relay_retry_delay_ms(&p, 3, 12345, r) >= 12345);
                /* ... and not much more: the longer of the two. */
                assert_true(relay_retry_delay_ms(&p, 1, 5000, r) <=
                            (plain > 5000 ? plain : 5000));
                /* A shorter Retry-After does not shorten the backoff. */
                assert_true(relay_retry_delay_ms(&p, 1, 100, r) >= 500);
                assert_true(relay_retry_delay_ms(&p, 1, 0, r) >= 500);
                assert_true(relay_retry_delay_ms(&p, 4, 100, r) >= 4000);
                /* A platform asking for an hour gets the cap, no more. */
                assert_true(relay_retry_delay_ms(&p, 1, 3600000, r) <= 30000);
                assert_true(relay_retry_delay_ms(&p, 1, 3600000, r) >= 15000);
                assert_true(relay_retry_delay_ms(&p, 1, LONG_MAX, r) <= 30000);
                /* -1 means no header: the plain backoff. */
                assert_true(plain >= 500 && plain <= 1000);
        }
}

static void test_parse_seconds(void **state)
{
        assert_int_equal(relay_retry_after_parse("120", 0), 120000);
        assert_int_equal(relay_retry_after_parse(" 3 ", 0), 3000);
        assert_int_equal(relay_retry_after_parse("\t0\r\n", 0), 0);
        /* Absurd values are capped at a day, not overflowed. */
        assert_int_equal(relay_retry_after_parse("99999999999999999999999", 0),
                         86400000);
        assert_int_equal(relay_retry_after_parse("abc", 0), -1);
        assert_int_equal(relay_retry_after_parse("", 0), -1);
        assert_int_equal(relay_retry_after_parse("   ", 0), -1);
        assert_int_equal(relay_retry_after_parse(NULL, 0), -1);
        assert_int_equal(relay_retry_after_parse("-5", 0), -1);
        assert_int_equal(relay_retry_after_parse("1.5", 0), -1);
        assert_int_equal(relay_retry_after_parse("12abc", 0), -1);
        assert_int_equal(relay_retry_after_parse("1 2", 0), -1);
}

static void test_parse_http_date(void **state)
{
        assert_int_equal(relay_retry_after_parse(DATE_STR, DATE_T - 10), 10000);
        assert_int_equal(
            relay_retry_after_parse("  " DATE_STR "\r\n", DATE_T - 10), 10000);
        /* The obsolete forms HTTP/1.1 still requires recipients to accept. */
        assert_int_equal(relay_retry_after_parse(
                             "Wednesday, 21-Oct-26 07:28:00 GMT", DATE_T - 10),
                         10000);
        assert_int_equal(
            relay_retry_after_parse("Wed Oct 21 07:28:00 2026", DATE_T - 10),
            10000);
        /* A date in the past, or now, means "go ahead". */
        assert_int_equal(relay_retry_after_parse(DATE_STR, DATE_T + 100), 0);
        assert_int_equal(relay_retry_after_parse(DATE_STR, DATE_T), 0);
        /* Far future: capped at a day. */
        assert_int_equal(relay_retry_after_parse(DATE_STR, 0), 86400000);
        /* Not a date. */
        assert_int_equal(relay_retry_after_parse("Wed", DATE_T), -1);
        assert_int_equal(relay_retry_after_parse("soon", DATE_T), -1);
}

static void *draw_one(void *arg)
{
        *(uint32_t *)arg = relay_retry_random();
        return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return (x > y) - (x < y);
}

static void test_random_differs(void **state)
{
        uint32_t v[64], other[2];
        pthread_t t[2];
        int distinct = 1;

        for (int i = 0; i < 64; i++)
                v[i] = relay_retry_random();
        qsort(v, 64, sizeof(v[0]), cmp_u32);
        for (int i = 1; i < 64; i++)
                distinct += v[i] != v[i - 1];
        /* A collision among 64 honest 32-bit draws has odds of ~5e-7. */
        assert_int_equal(distinct, 64);

        /* Two threads started back to back must not share a sequence. */
        for (int i = 0; i < 2; i++)
                assert_int_equal(
                    pthread_create(&t[i], NULL, draw_one, &other[i]), 0);
        for (int i = 0; i < 2; i++)
                pthread_join(t[i], NULL);
        assert_int_not_equal(other[0], other[1]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_exponential_growth_and_cap),
            cmocka_unit_test(test_jitter_spreads_over_the_range),
            cmocka_unit_test(test_retry_after_raises_but_is_capped),
            cmocka_unit_test(test_parse_seconds),
            cmocka_unit_test(test_parse_http_date),
            cmocka_unit_test(test_random_differs),
        };

        return cmocka_run_group_tests(tests, draws_setup, NULL);
}
