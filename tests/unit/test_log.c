/*
 * Unit tests for the JSON-lines logger: every line a log shipper reads must
 * parse as one JSON object with ts, level, component and msg, whatever the
 * message holds (quotes, control bytes, UTF-8, more than the line buffer);
 * filtered levels must cost nothing, not even their argument evaluation; and
 * lines written from several threads must never interleave.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "relay/common.h"
#include "relay/log.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Each test logs into a memory stream; lines() returns what was written. */
static FILE *mem;
static char *mem_buf;
static size_t mem_len;

static int capture_setup(void **state)
{
        mem = open_memstream(&mem_buf, &mem_len);
        assert_non_null(mem);
        relay_log_set_stream(mem);
        relay_log_level = LOG_INFO;
        return 0;
}

static int capture_teardown(void **state)
{
        relay_log_set_stream(NULL);
        fclose(mem);
        free(mem_buf);
        mem = NULL;
        mem_buf = NULL;
        mem_len = 0;
        relay_log_level = LOG_INFO;
        return 0;
}

static const char *captured(void)
{
        fflush(mem);
        return mem_len ? mem_buf : "";
}

static size_t count_lines(const char *s)
{
        size_t n = 0;
        for (; *s; s++)
                n += *s == '\n';
        return n;
}

/* "2026-11-25T19:10:22.123Z", and within a minute of now. */
static void check_ts(const char *ts)
{
        static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";
        assert_int_equal(strlen(ts), strlen(pat));
        for (size_t i = 0; pat[i]; i++) {
                if (pat[i] == 'd')
                        assert_true(ts[i] >= '0' && ts[i] <= '9');
                else
                        assert_int_equal(ts[i], pat[i]);
        }
        struct tm tm = {0};
        assert_int_equal(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year,
                                &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                                &tm.tm_min, &tm.tm_sec),
                         6);
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        long long diff = (long long)timegm(&tm) - (long long)time(NULL);
        assert_in_range(diff + 60, 0, 120);
}

/* Parse line i (0-based) of the capture: exactly the four string fields,
 * strict JSON (valid UTF-8, no \u0000). The caller owns the result. */
static json_t *parse_line(size_t i)
{
        const char *s = captured();
        for (; i > 0; i--) {
                s = strchr(s, '\n');
                assert_non_null(s);
                s++;
        }
        const char *nl = strchr(s, '\n');
        assert_non_null(nl);
        json_error_t jerr;
        json_t *o = json_loadb(s, (size_t)(nl - s), 0, &jerr);
        if (!o)
                fail_msg("line is not JSON: %s: %.200s", jerr.text, s);
        assert_true(json_is_object(o));
        assert_int_equal(json_object_size(o), 4);
        const char *keys[] = {"ts", "level", "component", "msg"};
        for (size_t k = 0; k < 4; k++)
                assert_true(json_is_string(json_object_get(o, keys[k])));
        check_ts(json_string_value(json_object_get(o, "ts")));
        return o;
}

static const char *field(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

static void test_line_fields(void **state)
{
        relay_log(LOG_WARNING, "deliver", "sent %d records to %s", 3, "braze");
        relay_log(LOG_ERR, "kafka", "plain");
        assert_int_equal(count_lines(captured()), 2);

        json_t *o = parse_line(0);
        assert_string_equal(field(o, "level"), "warning");
        assert_string_equal(field(o, "component"), "deliver");
        assert_string_equal(field(o, "msg"), "sent 3 records to braze");
        json_decref(o);

        o = parse_line(1);
        assert_string_equal(field(o, "level"), "error");
        assert_string_equal(field(o, "component"), "kafka");
        assert_string_equal(field(o, "msg"), "plain");
        json_decref(o);
}

/* Bytes that are not UTF-8 (payload text in a message) and a component
 * with a quote still give one valid JSON line each. */
static void test_bad_utf8_and_component(void **state)
{
        relay_log(LOG_INFO, "we\"ird", "bad \xff\xc3( cut \xe2\x82");
        assert_int_equal(count_lines(captured()), 1);
        json_t *o = parse_line(0);
        assert_string_equal(field(o, "component"), "we\"ird");
        assert_string_equal(field(o, "msg"),
                            "bad \xef\xbf\xbd\xef\xbf\xbd( cut "
                            "\xef\xbf\xbd\xef\xbf\xbd");
        json_decref(o);
}

static void test_escaping(void **state)
{
        static const char *const msgs[] = {
            "say \"hi\"",
            "C:\\path\\to\\file\\",
            "line1\nline2\r\n\tend",
            "ctl \x01 \x1f \x7f \x1b[31m",
            "utf-8: \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
            "\"\\\"\\\\\"",
            "",
            "{\"json\":\"inside\",\"n\":[1,2]}",
        };
        size_t n = sizeof(msgs) / sizeof(msgs[0]);
        for (size_t i = 0; i < n; i++)
                relay_log(LOG_INFO, "esc", "%s", msgs[i]);
        /* Every byte < 0x20 was escaped, so the only newlines end lines. */
        assert_int_equal(count_lines(captured()), n);
        for (size_t i = 0; i < n; i++) {
                json_t *o = parse_line(i);
                assert_string_equal(field(o, "msg"), msgs[i]);
                json_decref(o);
        }
        for (const char *p = captured(); *p; p++)
                assert_true((unsigned char)*p >= 0x20 || *p == '\n');
}

/* One line per message, valid JSON, and the message kept as a prefix of the
 * original whatever the truncation did. */
static void check_long(const char *big)
{
        relay_log(LOG_INFO, "long", "%s", big);
        relay_log(LOG_INFO, "long", "after");
        assert_int_equal(count_lines(captured()), 2);
        json_t *o = parse_line(0);
        const char *msg = field(o, "msg");
        size_t len = strlen(msg);
        assert_true(len > 100);
        assert_true(len < strlen(big));
        assert_memory_equal(msg, big, len);
        json_decref(o);
        o = parse_line(1);
        assert_string_equal(field(o, "msg"), "after");
        json_decref(o);
}

/* Fill a 20000-byte message with repeats of unit. */
static char *repeat(const char *unit)
{
        size_t ul = strlen(unit), n = 20000 / ul;
        char *s = malloc(n * ul + 1);
        assert_non_null(s);
        for (size_t i = 0; i < n; i++)
                memcpy(s + i * ul, unit, ul);
        s[n * ul] = '\0';
        return s;
}

static void test_long_ascii(void **state)
{
        char *big = repeat("abcdefghij");
        check_long(big);
        free(big);
}

static void test_long_quotes(void **state)
{
        /* Doubles in size when escaped. */
        char *big = repeat("\"\\");
        check_long(big);
        free(big);
}

static void test_long_control(void **state)
{
        /* Six times the size when escaped: the escape buffer runs out. */
        char *big = repeat("\x01");
        check_long(big);
        free(big);
}

static void test_long_utf8(void **state)
{
        /* 3-byte characters: a cut at a byte count lands inside one. */
        char *big = repeat("\xe2\x82\xac");
        check_long(big);
        free(big);
        capture_teardown(state);
        capture_setup(state);
        /* 4-byte ones after a single ASCII byte, to move the phase. */
        big = repeat("\xf0\x9f\x98\x80");
        big[0] = 'x';
        big[1] = 'y';
        big[2] = 'z';
        big[3] = 'w';
        check_long(big);
        free(big);
}

static void test_long_utf8_escapes(void **state)
{
        /* 4 bytes in, 9 out: the escape buffer, not the format buffer,
         * runs out, and must not cut a character either. */
        char *big = repeat("\x01\xe2\x82\xac");
        check_long(big);
        free(big);
}

static int side_effects;

static const char *side_effect(void)
{
        side_effects++;
        return "evaluated";
}

static void test_level_filter(void **state)
{
        side_effects = 0;
        relay_log_level = LOG_INFO;
        relay_log(LOG_DEBUG, "filter", "%s", side_effect());
        assert_int_equal(side_effects, 0);
        assert_string_equal(captured(), "");

        relay_log(LOG_INFO, "filter", "%s", side_effect());
        assert_int_equal(side_effects, 1);
        assert_int_equal(count_lines(captured()), 1);

        relay_log_level = LOG_WARNING;
        relay_log(LOG_INFO, "filter", "%s", side_effect());
        relay_log(LOG_NOTICE, "filter", "%s", side_effect());
        assert_int_equal(side_effects, 1);
        relay_log(LOG_ERR, "filter", "%s", side_effect());
        relay_log(LOG_WARNING, "filter", "%s", side_effect());
        assert_int_equal(side_effects, 3);
        assert_int_equal(count_lines(captured()), 3);

        relay_log_level = LOG_DEBUG;
        relay_log(LOG_DEBUG, "filter", "%s", side_effect());
        assert_int_equal(side_effects, 4);
        assert_int_equal(count_lines(captured()), 4);
        json_t *o = parse_line(3);
        assert_string_equal(field(o, "level"), "debug");
        assert_string_equal(field(o, "msg"), "evaluated");
        json_decref(o);
}

static void test_level_parse(void **state)
{
        assert_int_equal(relay_log_level_parse("emerg"), LOG_EMERG);
        assert_int_equal(relay_log_level_parse("crit"), LOG_CRIT);
        assert_int_equal(relay_log_level_parse("error"), LOG_ERR);
        assert_int_equal(relay_log_level_parse("err"), LOG_ERR);
        assert_int_equal(relay_log_level_parse("ERROR"), LOG_ERR);
        assert_int_equal(relay_log_level_parse("warning"), LOG_WARNING);
        assert_int_equal(relay_log_level_parse("Warn"), LOG_WARNING);
        assert_int_equal(relay_log_level_parse("notice"), LOG_NOTICE);
        assert_int_equal(relay_log_level_parse("info"), LOG_INFO);
        assert_int_equal(relay_log_level_parse("debug"), LOG_DEBUG);
        assert_int_equal(relay_log_level_parse("0"), 0);
        assert_int_equal(relay_log_level_parse("3"), 3);
        assert_int_equal(relay_log_level_parse("7"), 7);

        assert_int_equal(relay_log_level_parse("8"), -1);
        assert_int_equal(relay_log_level_parse("-1"), -1);
        assert_int_equal(relay_log_level_parse("99999999999999999999"), -1);
        assert_int_equal(relay_log_level_parse("3x"), -1);
        assert_int_equal(relay_log_level_parse(""), -1);
        assert_int_equal(relay_log_level_parse("verbose"), -1);
        assert_int_equal(relay_log_level_parse("infox"), -1);

        assert_string_equal(relay_log_level_name(LOG_ERR), "error");
        assert_string_equal(relay_log_level_name(LOG_DEBUG), "debug");
        /* Out of range clamps rather than reading past the table. */
        assert_string_equal(relay_log_level_name(-5), "emerg");
        assert_string_equal(relay_log_level_name(42), "debug");
}

static void test_rdkafka_cb(void **state)
{
        char why[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        assert_int_equal(
            rd_kafka_conf_set(kc, "client.id", "logtest", why, sizeof(why)),
            RD_KAFKA_CONF_OK);
        /* No CONFWARN about bootstrap.servers on stderr. */
        assert_int_equal(
            rd_kafka_conf_set(kc, "log_level", "0", why, sizeof(why)),
            RD_KAFKA_CONF_OK);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why));
        assert_non_null(rk);

        relay_log_rdkafka_cb(rk, LOG_WARNING, "FAIL", "broker \"b1\" down\n");
        /* Below the level: nothing. */
        relay_log_rdkafka_cb(rk, LOG_DEBUG, "PROTOCOL", "noise");
        assert_int_equal(count_lines(captured()), 1);

        json_t *o = parse_line(0);
        assert_string_equal(field(o, "level"), "warning");
        assert_string_equal(field(o, "component"), "rdkafka");
        char want[512];
        snprintf(want, sizeof(want), "%s: FAIL: broker \"b1\" down\n",
                 rd_kafka_name(rk));
        assert_string_equal(field(o, "msg"), want);
        assert_non_null(strstr(want, "logtest"));
        json_decref(o);
        rd_kafka_destroy(rk);
}

/* Installed as librdkafka's log callback, its threads' debug lines come out
 * as relay lines too. */
static void test_rdkafka_cb_installed(void **state)
{
        char why[256];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        assert_int_equal(
            rd_kafka_conf_set(kc, "debug", "generic", why, sizeof(why)),
            RD_KAFKA_CONF_OK);
        rd_kafka_conf_set_log_cb(kc, relay_log_rdkafka_cb);
        relay_log_level = LOG_DEBUG;
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why));
        assert_non_null(rk);
        char prefix[300];
        snprintf(prefix, sizeof(prefix), "%s: ", rd_kafka_name(rk));
        rd_kafka_destroy(rk);

        size_t n = count_lines(captured()), debug = 0;
        for (size_t i = 0; i < n; i++) {
                json_t *o = parse_line(i);
                assert_string_equal(field(o, "component"), "rdkafka");
                debug += !strcmp(field(o, "level"), "debug");
                assert_memory_equal(field(o, "msg"), prefix, strlen(prefix));
                json_decref(o);
        }
        assert_true(debug > 0);
}

#define NTHREADS   4
#define NPERTHREAD 300

static void *log_many(void *arg)
{
        for (int i = 0; i < NPERTHREAD; i++)
                relay_log(LOG_INFO, "thread", "t%d line %d %s",
                          (int)(intptr_t)arg, i,
                          "padding padding padding padding padding padding");
        return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
        pthread_t th[NTHREADS];
        for (intptr_t t = 0; t < NTHREADS; t++)
                assert_int_equal(
                    pthread_create(&th[t], NULL, log_many, (void *)t), 0);
        for (int t = 0; t < NTHREADS; t++)
                pthread_join(th[t], NULL);

        size_t n = count_lines(captured());
        assert_int_equal(n, NTHREADS * NPERTHREAD);
        int seen[NTHREADS] = {0};
        for (size_t i = 0; i < n; i++) {
                json_t *o = parse_line(i);
                int t, l;
                assert_int_equal(sscanf(field(o, "msg"), "t%d line %d", &t, &l),
                                 2);
                assert_in_range(t, 0, NTHREADS - 1);
                /* Each thread's lines in its own order. */
                assert_int_equal(l, seen[t]);
                seen[t]++;
                json_decref(o);
        }
}

/* A line that repeats: the first is written, the next ones within the
 * interval are counted, and the first after it says how many were left
 * out. */
static void test_limited_repeats(void **state)
{
        (void)state;
        relay_log_limit_t lim = {0, 0};
        for (int i = 0; i < 1000; i++)
                relay_log_limited(&lim, 300, LOG_WARNING, "kafka",
                                  "delivery to %s failed", "out.x");
        assert_int_equal(count_lines(captured()), 1);
        assert_int_equal(lim.skipped, 999);
        assert_null(strstr(captured(), "more like it"));
        usleep(350 * 1000);
        relay_log_limited(&lim, 300, LOG_WARNING, "kafka",
                          "delivery to %s failed", "out.x");
        assert_int_equal(count_lines(captured()), 2);
        assert_non_null(
            strstr(captured(), "(and 999 more like it in the last"));
        assert_int_equal(lim.skipped, 0);
        /* A filtered level is not even counted. */
        relay_log_limited(&lim, 300, LOG_DEBUG, "kafka", "x");
        assert_int_equal(lim.skipped, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_line_fields, capture_setup,
                                            capture_teardown),
            cmocka_unit_test_setup_teardown(test_bad_utf8_and_component,
                                            capture_setup, capture_teardown),
            cmocka_unit_test_setup_teardown(test_escaping, capture_setup,
                                            capture_teardown),
            cmocka_unit_test_setup_teardown(test_long_ascii, capture_setup,
                                            capture_teardown),
            cmocka_unit_test_setup_teardown(test_long_quotes, capture_setup,
                                            capture_teardown),
            cmocka_unit_test_setup_teardown(test_long_control, capture_setup,
                                            capture_teardown),
            cmocka_unit_test_setup_teardown(test_long_utf8, capture_setup,
                                            capture_teardown),
            cmocka_unit_test_setup_teardown(test_long_utf8_escapes,
                                            capture_setup, capture_teardown),
            cmocka_unit_test_setup_teardown(test_level_filter, capture_setup,
                                            capture_teardown),
            cmocka_unit_test(test_level_parse),
            cmocka_unit_test_setup_teardown(test_rdkafka_cb, capture_setup,
                                            capture_teardown),
            cmocka_unit_test_setup_teardown(test_rdkafka_cb_installed,
                                            capture_setup, capture_teardown),
            cmocka_unit_test_setup_teardown(test_limited_repeats, capture_setup,
                                            capture_teardown),
            cmocka_unit_test_setup_teardown(test_threads_do_not_interleave,
                                            capture_setup, capture_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
