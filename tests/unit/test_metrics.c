/*
 * Unit tests for the metrics registry and its exposition: the text is what
 * Prometheus parses (escaped label values, cumulative histogram buckets
 * with +Inf, _sum and _count), series are found again by their labels, a
 * hidden series leaves the exposition until it is set again, a disabled
 * registry accepts every call and shows nothing new, and a scrape running
 * while another thread counts never sees a torn value. (Scenario 0007
 * checks real workers' /metrics with promtool.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "relay/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *scrape(void)
{
        relay_buf_t b;
        relay_buf_init(&b);
        relay_metrics_write(&b);
        return b.data;
}

static void test_counter_and_labels(void **state)
{
        (void)state;
        relay_metric_t *m = relay_metric(RELAY_METRIC_COUNTER, "t_in_total",
                                         "records in", "topic", NULL, 0);
        relay_series_t *a = relay_series(m, "loyalty.events");
        relay_metric_add(a, 2);
        relay_metric_add(relay_series(m, "loyalty.events"), 3);
        relay_metric_add(relay_series(m, "we\"ird\\\ntopic"), 1);
        assert_ptr_equal(a, relay_series(m, "loyalty.events"));
        assert_true(relay_metric_value(a) == 5);
        char *t = scrape();
        assert_non_null(strstr(t, "# HELP t_in_total records in\n"
                                  "# TYPE t_in_total counter\n"));
        assert_non_null(strstr(t, "t_in_total{topic=\"loyalty.events\"} 5\n"));
        assert_non_null(
            strstr(t, "t_in_total{topic=\"we\\\"ird\\\\\\ntopic\"} 1\n"));
        /* Asking again by name gives the same family. */
        assert_ptr_equal(m, relay_metric(RELAY_METRIC_COUNTER, "t_in_total",
                                         "records in", "topic", NULL, 0));
        free(t);
}

static void test_histogram(void **state)
{
        (void)state;
        static const double b[] = {0.1, 1, 10};
        relay_series_t *h =
            relay_series(relay_metric(RELAY_METRIC_HISTOGRAM, "t_seconds",
                                      "durations", "platform", b, 3),
                         "mparticle");
        relay_metric_observe(h, 0.05);
        relay_metric_observe(h, 0.1); /* le is inclusive */
        relay_metric_observe(h, 5);
        relay_metric_observe(h, 50);
        char *t = scrape();
        assert_non_null(
            strstr(t, "t_seconds_bucket{platform=\"mparticle\",le=\"0.1\"} 2\n"
                      "t_seconds_bucket{platform=\"mparticle\",le=\"1\"} 2\n"
                      "t_seconds_bucket{platform=\"mparticle\",le=\"10\"} 3\n"
                      "t_seconds_bucket{platform=\"mparticle\",le=\"+Inf\"} 4\n"
                      "t_seconds_sum{platform=\"mparticle\"} 55.15\n"
                      "t_seconds_count{platform=\"mparticle\"} 4\n"));
        free(t);
}

static void test_gauge_hide(void **state)
{
        (void)state;
        relay_metric_t *m = relay_metric(RELAY_METRIC_GAUGE, "t_lag", "lag",
                                         "topic,partition", NULL, 0);
        relay_series_t *p0 = relay_series(m, "out.x", "0");
        relay_metric_set(p0, 42);
        char *t = scrape();
        assert_non_null(
            strstr(t, "t_lag{topic=\"out.x\",partition=\"0\"} 42\n"));
        free(t);
        relay_metric_hide(p0);
        t = scrape();
        assert_null(strstr(t, "t_lag{"));
        assert_non_null(strstr(t, "# TYPE t_lag gauge\n"));
        free(t);
        relay_metric_set(p0, 0);
        t = scrape();
        assert_non_null(
            strstr(t, "t_lag{topic=\"out.x\",partition=\"0\"} 0\n"));
        /* Process metrics are always there. */
        assert_non_null(strstr(t, "\nprocess_resident_memory_bytes "));
        assert_non_null(strstr(t, "\nprocess_cpu_seconds_total "));
        free(t);
}

static relay_series_t *racing;

static void *count(void *arg)
{
        (void)arg;
        for (int i = 0; i < 200000; i++)
                relay_metric_add(racing, 1);
        return NULL;
}

/* Two threads add while a third scrapes: nothing is lost, every scraped
 * value is a whole number. */
static void test_concurrent_adds(void **state)
{
        (void)state;
        racing = relay_series(relay_metric(RELAY_METRIC_COUNTER, "t_race_total",
                                           "race", "who", NULL, 0),
                              "both");
        pthread_t a, b;
        pthread_create(&a, NULL, count, NULL);
        pthread_create(&b, NULL, count, NULL);
        for (int i = 0; i < 20; i++) {
                char *t = scrape();
                const char *v = strstr(t, "t_race_total{who=\"both\"} ");
                assert_non_null(v);
                v += strlen("t_race_total{who=\"both\"} ");
                assert_true(v[strspn(v, "0123456789")] == '\n');
                free(t);
        }
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        assert_true(relay_metric_value(racing) == 400000);
}

/* Last: disabling is for the whole process. */
static void test_disabled(void **state)
{
        (void)state;
        relay_metrics_disable();
        relay_metric_t *m = relay_metric(RELAY_METRIC_COUNTER, "t_off_total",
                                         "off", "a", NULL, 0);
        assert_null(m);
        relay_series_t *s = relay_series(m, "x");
        assert_null(s);
        relay_metric_add(s, 1);
        relay_metric_set(s, 1);
        relay_metric_observe(s, 1);
        relay_metric_hide(s);
        char *t = scrape();
        assert_null(strstr(t, "t_off_total"));
        free(t);
        relay_metrics_free();
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_counter_and_labels),
            cmocka_unit_test(test_histogram),
            cmocka_unit_test(test_gauge_hide),
            cmocka_unit_test(test_concurrent_adds),
            cmocka_unit_test(test_disabled),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
