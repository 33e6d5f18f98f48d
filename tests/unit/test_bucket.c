/*
 * Unit tests of the token bucket (common/core/bucket.c), with the clock
 * passed in so every figure is exact: a full bucket lets its burst go at
 * once, then units come at the rate; a take larger than the burst goes
 * once the bucket is full and leaves it in debt, so the long-run rate
 * holds; a new rate keeps what was saved up; rate 0 is no limit.
 */
#include "relay/bucket.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_burst_then_rate(void **state)
{
        (void)state;
        relay_bucket_t b;
        relay_bucket_init(&b, 10, 5, 1000);
        for (int i = 0; i < 5; i++) {
                assert_int_equal(relay_bucket_when(&b, 1, 1000), 1000);
                relay_bucket_take(&b, 1, 1000);
        }
        /* Empty: the next unit in 100 ms, two in 200. */
        assert_int_equal(relay_bucket_when(&b, 1, 1000), 1100);
        assert_int_equal(relay_bucket_when(&b, 2, 1000), 1200);
        assert_int_equal(relay_bucket_when(&b, 1, 1050), 1100);
        assert_int_equal(relay_bucket_when(&b, 1, 1100), 1100);
        relay_bucket_take(&b, 1, 1100);
        /* A long idle time saves up no more than the burst. */
        assert_int_equal(relay_bucket_when(&b, 5, 60000), 60000);
        relay_bucket_take(&b, 5, 60000);
        assert_int_equal(relay_bucket_when(&b, 1, 60000), 60100);
}

static void test_take_larger_than_burst(void **state)
{
        (void)state;
        relay_bucket_t b;
        relay_bucket_init(&b, 10, 5, 0);
        /* 25 units (2.5 s at the rate) go when the bucket is full... */
        assert_int_equal(relay_bucket_when(&b, 25, 0), 0);
        relay_bucket_take(&b, 25, 0);
        /* ... and the debt of 20 is paid before the next unit: 2.1 s. */
        assert_int_equal(relay_bucket_when(&b, 1, 0), 2100);
        assert_int_equal(relay_bucket_when(&b, 25, 0), 2500);
}

static void test_set_rate_and_unlimited(void **state)
{
        (void)state;
        relay_bucket_t b;
        relay_bucket_init(&b, 0, 1, 0);
        for (int i = 0; i < 1000; i++) {
                assert_int_equal(relay_bucket_when(&b, 100, 0), 0);
                relay_bucket_take(&b, 100, 0);
        }
        /* Limited from t=0 at 2 a second: the saved unit, then 500 ms. */
        relay_bucket_set_rate(&b, 2, 0);
        assert_int_equal(relay_bucket_when(&b, 1, 0), 0);
        relay_bucket_take(&b, 1, 0);
        assert_int_equal(relay_bucket_when(&b, 1, 0), 500);
        /* Lowered at 250 ms, when a half unit is saved: 1 a second now. */
        relay_bucket_set_rate(&b, 1, 250);
        assert_int_equal(relay_bucket_when(&b, 1, 250), 750);
        /* Back to no limit. */
        relay_bucket_set_rate(&b, 0, 300);
        assert_int_equal(relay_bucket_when(&b, 50, 300), 300);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_burst_then_rate),
            cmocka_unit_test(test_take_larger_than_burst),
            cmocka_unit_test(test_set_rate_and_unlimited),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
