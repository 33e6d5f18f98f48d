/*
 * Unit tests for the retry policy: the backoff grows and stops at the cap,
 * the jitter stays within [exp/2, exp] for the extreme draws, Retry-After
 * raises the wait but never past the cap, Retry-After values parse in both
 * forms, and the random source does not repeat itself.
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

static void test_exponential_growth_and_cap(void **state)
{
        relay_retry_policy_t p = {
            .max_attempts = 10, .base_ms = 1000, .max_ms = 30000};

        /* rnd = 0 gives the lower bound, exp / 2: 1000, 2000, 4000 ... */
        assert_int_equal(relay_retry_delay_ms(&p, 1, -1, 0), 500);
        assert_int_equal(relay_retry_delay_ms(&p, 2, -1, 0), 1000);
        assert_int_equal(relay_retry_delay_ms(&p, 3, -1, 0), 2000);
        assert_int_equal(relay_retry_delay_ms(&p, 5, -1, 0), 8000);
        /* 32000 is past the cap: the step is 30000, its half 15000. */
        assert_int_equal(relay_retry_delay_ms(&p, 6, -1, 0), 15000);
        /* Shifting by 99 or INT_MAX must not overflow or wrap. */
        assert_int_equal(relay_retry_delay_ms(&p, 100, -1, 0), 15000);
        assert_int_equal(relay_retry_delay_ms(&p, INT_MAX, -1, 0), 15000);
        assert_int_equal(relay_retry_delay_ms(&p, INT_MAX, -1, 15000), 30000);
        /* Nothing before the first failure: treated as the first. */
        assert_int_equal(relay_retry_delay_ms(&p, 0, -1, 0), 500);
        assert_int_equal(relay_retry_delay_ms(&p, -3, -1, 0), 500);

        /* A base above the cap starts at the cap. */
        p.base_ms = 1000;
        p.max_ms = 300;
        assert_int_equal(relay_retry_delay_ms(&p, 1, -1, 0), 150);

        /* Huge values near LONG_MAX do not overflow either. */
        p.base_ms = LONG_MAX / 2;
        p.max_ms = LONG_MAX;
        assert_int_equal(relay_retry_delay_ms(&p, 3, -1, 0), LONG_MAX / 2);
        assert_true(relay_retry_delay_ms(&p, 3, -1, UINT32_MAX) <= LONG_MAX);

        /* A zero base never waits, however many failures. */
        p.base_ms = 0;
        p.max_ms = 30000;
        assert_int_equal(relay_retry_delay_ms(&p, INT_MAX, -1, UINT32_MAX), 0);
}

static void test_jitter_bounds(void **state)
{
        relay_retry_policy_t p = {
            .max_attempts = 10, .base_ms = 1000, .max_ms = 30000};

        /* exp = 1000: 500 + rnd % 501. */
        assert_int_equal(relay_retry_delay_ms(&p, 1, -1, 0), 500);
        /* 4294967295 % 501 = 6. */
        assert_int_equal(relay_retry_delay_ms(&p, 1, -1, UINT32_MAX), 506);
        /* The top of the range is exp itself, and it wraps back after. */
        assert_int_equal(relay_retry_delay_ms(&p, 1, -1, 500), 1000);
        assert_int_equal(relay_retry_delay_ms(&p, 1, -1, 501), 500);
        /* exp = 30000 (capped): 15000 + 4294967295 % 15001 = 15000 + 983. */
        assert_int_equal(relay_retry_delay_ms(&p, 10, -1, UINT32_MAX), 15983);

        /* Every draw lands in [exp/2, exp]. */
        for (uint32_t r = 0; r < 5000; r += 7) {
                long d = relay_retry_delay_ms(&p, 2, -1, r * 2654435761u);

                assert_in_range(d, 1000, 2000);
        }
}

static void test_retry_after_raises_but_is_capped(void **state)
{
        relay_retry_policy_t p = {
            .max_attempts = 10, .base_ms = 1000, .max_ms = 30000};

        /* The jittered wait for rnd = 0 is 500. */
        assert_int_equal(relay_retry_delay_ms(&p, 1, 5000, 0), 5000);
        /* A shorter Retry-After does not shorten the backoff. */
        assert_int_equal(relay_retry_delay_ms(&p, 1, 100, 0), 500);
        assert_int_equal(relay_retry_delay_ms(&p, 1, 0, 0), 500);
        /* A platform asking for an hour gets the cap. */
        assert_int_equal(relay_retry_delay_ms(&p, 1, 3600000, 0), 30000);
        assert_int_equal(relay_retry_delay_ms(&p, 1, LONG_MAX, 0), 30000);
        /* -1 means no header. */
        assert_int_equal(relay_retry_delay_ms(&p, 1, -1, 0), 500);
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
            cmocka_unit_test(test_jitter_bounds),
            cmocka_unit_test(test_retry_after_raises_but_is_capped),
            cmocka_unit_test(test_parse_seconds),
            cmocka_unit_test(test_parse_http_date),
            cmocka_unit_test(test_random_differs),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
