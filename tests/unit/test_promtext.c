/*
 * Unit tests for the exposition reader: real exposition text (comments,
 * escaped label values, NaN and infinities, timestamps, CRLF, a trailing
 * comma) reads as the samples Prometheus would see; a sample of a name not
 * wanted is passed over without its labels being read, even when they
 * are broken; and each kind of broken line is refused with its column
 * while the lines around it still read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "relay/promtext.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int line(const char *text, const char *const *wanted,
                relay_promtext_sample_t *s, char *errstr, size_t size)
{
        return relay_promtext_line(text, strlen(text), wanted, s, errstr, size);
}

static void test_sample_forms(void **state)
{
        relay_promtext_sample_t s;
        char err[128];
        assert_int_equal(line("relay_paused 1", NULL, &s, err, sizeof(err)), 1);
        assert_string_equal(s.name, "relay_paused");
        assert_int_equal(s.nlabels, 0);
        assert_true(s.value == 1.0);
        assert_false(s.has_timestamp);

        assert_int_equal(line("  x:y_z{a=\"1\",b = \"two\" ,} \t-2.5e3 "
                              "1712345678901\r",
                              NULL, &s, err, sizeof(err)),
                         1);
        assert_string_equal(s.name, "x:y_z");
        assert_int_equal(s.nlabels, 2);
        assert_string_equal(relay_promtext_label(&s, "a"), "1");
        assert_string_equal(relay_promtext_label(&s, "b"), "two");
        assert_null(relay_promtext_label(&s, "c"));
        assert_true(s.value == -2500.0);
        assert_true(s.has_timestamp);
        assert_true(s.timestamp_ms == 1712345678901LL);

        assert_int_equal(line("m{} NaN", NULL, &s, err, sizeof(err)), 1);
        assert_int_equal(s.nlabels, 0);
        assert_true(isnan(s.value));
        assert_int_equal(line("m +Inf -5", NULL, &s, err, sizeof(err)), 1);
        assert_true(isinf(s.value) && s.value > 0);
        assert_true(s.timestamp_ms == -5);
        assert_int_equal(
            line("m{le=\"+Inf\"} -Inf", NULL, &s, err, sizeof(err)), 1);
        assert_true(isinf(s.value) && s.value < 0);
        assert_string_equal(relay_promtext_label(&s, "le"), "+Inf");
        /* An OpenMetrics exemplar after the value is passed over. */
        assert_int_equal(line("b_bucket{le=\"1\"} 3 # {trace_id=\"x\"} 0.5",
                              NULL, &s, err, sizeof(err)),
                         1);
        assert_true(s.value == 3.0);
}

static void test_escapes(void **state)
{
        relay_promtext_sample_t s;
        char err[128];
        assert_int_equal(
            line("m{path=\"C:\\\\dir\\\\\",msg=\"say \\\"hi\\\"\\nbye\","
                 "odd=\"\\t}\"} 7",
                 NULL, &s, err, sizeof(err)),
            1);
        assert_string_equal(relay_promtext_label(&s, "path"), "C:\\dir\\");
        assert_string_equal(relay_promtext_label(&s, "msg"), "say \"hi\"\nbye");
        /* An unknown escape stays as written (Prometheus does the same),
         * and a '}' inside quotes does not end the label set. */
        assert_string_equal(relay_promtext_label(&s, "odd"), "\\t}");
        assert_true(s.value == 7.0);
}

static void test_comments_and_blanks(void **state)
{
        relay_promtext_sample_t s;
        char err[128];
        const char *skip[] = {
            "",  "   ",    "\r", "# HELP m what \"it\" is", "# TYPE m gauge",
            "#", "  # EOF"};
        for (size_t i = 0; i < sizeof(skip) / sizeof(*skip); i++)
                assert_int_equal(line(skip[i], NULL, &s, err, sizeof(err)), 0);
}

static void test_wanted(void **state)
{
        relay_promtext_sample_t s;
        char err[128];
        const char *const wanted[] = {"relay_breaker_open", "relay_paused",
                                      NULL};
        assert_int_equal(line("relay_breaker_open{platform=\"m\"} 1", wanted,
                              &s, err, sizeof(err)),
                         1);
        /* A prefix or an extension of a wanted name is another name. */
        assert_int_equal(
            line("relay_paused_total 1", wanted, &s, err, sizeof(err)), 0);
        assert_int_equal(line("relay_pause 1", wanted, &s, err, sizeof(err)),
                         0);
        /* Not wanted: its broken labels are never read. */
        assert_int_equal(line("other{a=\"open 1", wanted, &s, err, sizeof(err)),
                         0);
}

static void test_broken_lines(void **state)
{
        relay_promtext_sample_t s;
        char err[128];
        const char *bad[] = {
            "1abc 2",                   /* a name cannot start with a digit */
            "m",                        /* no value */
            "m{a=\"1\"}",               /* no value after labels */
            "m{a=\"1} 2",               /* unterminated value */
            "m{a=\"1\\",                /* backslash at the end */
            "m{a=1} 2",                 /* unquoted value */
            "m{a\"1\"} 2",              /* no '=' */
            "m{a=\"1\" b=\"2\"} 2",     /* no ',' */
            "m{=\"1\"} 2",              /* no label name */
            "m{a=\"1\"",                /* no '}' */
            "m one",                    /* not a number */
            "m 1 2.5",                  /* a timestamp is whole ms */
            "m 1 2 3",                  /* text after the timestamp */
            "m 1 99999999999999999999", /* out of range */
            "m-x 1",                    /* '-' is not in a name */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                err[0] = '\0';
                if (line(bad[i], NULL, &s, err, sizeof(err)) != -1)
                        fail_msg("accepted: %s", bad[i]);
                assert_non_null(strstr(err, "column "));
        }
        /* A NUL byte inside a label value. */
        assert_int_equal(relay_promtext_line("m{a=\"x\0y\"} 1", 13, NULL, &s,
                                             err, sizeof(err)),
                         -1);
}

static void test_limits(void **state)
{
        relay_promtext_sample_t s;
        char err[128], text[2048];
        /* As many labels as fit, then one more. */
        size_t n = 0;
        n += (size_t)snprintf(text + n, sizeof(text) - n, "m{");
        for (int i = 0; i < RELAY_PROMTEXT_LABELS; i++)
                n += (size_t)snprintf(text + n, sizeof(text) - n, "l%d=\"v\",",
                                      i);
        snprintf(text + n, sizeof(text) - n, "} 1");
        assert_int_equal(line(text, NULL, &s, err, sizeof(err)), 1);
        assert_int_equal(s.nlabels, RELAY_PROMTEXT_LABELS);
        snprintf(text + n, sizeof(text) - n, "extra=\"v\"} 1");
        assert_int_equal(line(text, NULL, &s, err, sizeof(err)), -1);

        /* A label value of the longest size kept, then one byte more. */
        memset(text, 0, sizeof(text));
        n = (size_t)snprintf(text, sizeof(text), "m{a=\"");
        memset(text + n, 'v', RELAY_PROMTEXT_VALUE_MAX - 1);
        strcpy(text + n + RELAY_PROMTEXT_VALUE_MAX - 1, "\"} 1");
        assert_int_equal(line(text, NULL, &s, err, sizeof(err)), 1);
        assert_int_equal(strlen(relay_promtext_label(&s, "a")),
                         RELAY_PROMTEXT_VALUE_MAX - 1);
        memset(text + n, 'v', RELAY_PROMTEXT_VALUE_MAX);
        strcpy(text + n + RELAY_PROMTEXT_VALUE_MAX, "\"} 1");
        assert_int_equal(line(text, NULL, &s, err, sizeof(err)), -1);
}

struct seen {
        char names[8][RELAY_PROMTEXT_NAME_MAX];
        double values[8];
        size_t n;
};

static void collect(const relay_promtext_sample_t *s, void *arg)
{
        struct seen *seen = arg;
        assert_true(seen->n < 8);
        strcpy(seen->names[seen->n], s->name);
        seen->values[seen->n++] = s->value;
}

static void test_whole_exposition(void **state)
{
        static const char text[] =
            "# HELP relay_breaker_open 1 while the circuit is open\n"
            "# TYPE relay_breaker_open gauge\n"
            "relay_breaker_open{platform=\"mparticle\"} 1\r\n"
            "relay_breaker_open{platform=\"br\\\"aze\"} 0\n"
            "garbage line here\n"
            "relay_paused 0\n"
            "\n"
            "relay_records_in_total{topic=\"loyalty.events\"} 12345"; /* no \n
                                                                       */
        struct seen seen = {.n = 0};
        size_t bad =
            relay_promtext_parse(text, sizeof(text) - 1, NULL, collect, &seen);
        assert_int_equal(bad, 1);
        assert_int_equal(seen.n, 4);
        assert_string_equal(seen.names[0], "relay_breaker_open");
        assert_true(seen.values[0] == 1.0 && seen.values[1] == 0.0);
        assert_string_equal(seen.names[3], "relay_records_in_total");
        assert_true(seen.values[3] == 12345.0);

        const char *const wanted[] = {"relay_paused", NULL};
        seen.n = 0;
        bad = relay_promtext_parse(text, sizeof(text) - 1, wanted, collect,
                                   &seen);
        assert_int_equal(bad, 0); /* "garbage" is a name not wanted */
        assert_int_equal(seen.n, 1);
        assert_string_equal(seen.names[0], "relay_paused");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sample_forms),
            cmocka_unit_test(test_escapes),
            cmocka_unit_test(test_comments_and_blanks),
            cmocka_unit_test(test_wanted),
            cmocka_unit_test(test_broken_lines),
            cmocka_unit_test(test_limits),
            cmocka_unit_test(test_whole_exposition),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
