/*
 * Unit tests for the shared basics: the growable buffer keeps every byte
 * and its NUL terminator across many growths, relay_buf_json_str produces
 * JSON that a real parser reads back as exactly the input bytes (and the
 * same bytes as the byte-at-a-time escaping it replaced), the
 * interruptible sleep wakes on the stop flag, and relay_seterr tolerates a
 * missing error buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "relay/common.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void assert_terminated(const relay_buf_t *b)
{
        assert_non_null(b->data);
        assert_true(b->cap > b->len);
        assert_int_equal(b->data[b->len], '\0');
}

static void test_buf_init_free(void **state)
{
        relay_buf_t b;
        relay_buf_init(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);

        /* An empty append still gives a usable C string (conf.c relies on
         * relay_buf_puts(b, "") for that). */
        relay_buf_puts(&b, "");
        assert_terminated(&b);
        assert_string_equal(b.data, "");

        relay_buf_free(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        relay_buf_free(&b); /* twice is harmless */
}

static void test_buf_many_appends(void **state)
{
        relay_buf_t b;
        relay_buf_init(&b);
        /* A plain-C reference built alongside. */
        size_t ref_cap = 1 << 20, ref_len = 0;
        char *ref = malloc(ref_cap);
        assert_non_null(ref);

        for (int i = 0; i < 20000; i++) {
                char piece[64];
                int n;
                switch (i % 4) {
                case 0:
                        n = snprintf(piece, sizeof(piece), "abc");
                        relay_buf_append(&b, piece, (size_t)n);
                        break;
                case 1:
                        n = snprintf(piece, sizeof(piece), "<%d:%s>", i, "x");
                        relay_buf_printf(&b, "<%d:%s>", i, "x");
                        break;
                case 2:
                        /* Binary bytes with a NUL inside: length-counted. */
                        memcpy(piece, "\0\xff\x01", 3);
                        n = 3;
                        relay_buf_append(&b, piece, 3);
                        break;
                default:
                        n = snprintf(piece, sizeof(piece), "puts%d", i);
                        relay_buf_puts(&b, piece);
                        break;
                }
                assert_true(ref_len + (size_t)n < ref_cap);
                memcpy(ref + ref_len, piece, (size_t)n);
                ref_len += (size_t)n;
                assert_int_equal(b.len, ref_len);
                assert_terminated(&b);
        }
        assert_memory_equal(b.data, ref, ref_len);
        free(ref);
        relay_buf_free(&b);
}

static void test_buf_printf_large(void **state)
{
        relay_buf_t b;
        relay_buf_init(&b);
        char big[5000];
        memset(big, 'q', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';

        relay_buf_puts(&b, "head:");
        /* Longer than the first allocation: printf must grow first. */
        relay_buf_printf(&b, "%s|%d", big, 42);
        assert_int_equal(b.len, 5 + 4999 + 3);
        assert_terminated(&b);
        assert_memory_equal(b.data, "head:", 5);
        assert_memory_equal(b.data + 5, big, 4999);
        assert_string_equal(b.data + 5 + 4999, "|42");

        /* An empty format changes nothing. */
        size_t len = b.len;
        relay_buf_printf(&b, "%s", "");
        assert_int_equal(b.len, len);
        assert_terminated(&b);
        relay_buf_free(&b);
}

static void test_buf_reserve(void **state)
{
        relay_buf_t b;
        relay_buf_init(&b);
        relay_buf_puts(&b, "x");
        relay_buf_reserve(&b, 10000);
        assert_int_equal(b.len, 1);
        assert_true(b.cap >= 1 + 10000 + 1);
        assert_string_equal(b.data, "x");

        /* What was reserved is used without moving the data. */
        char *before = b.data;
        size_t cap = b.cap;
        char chunk[100];
        memset(chunk, 'y', sizeof(chunk));
        for (int i = 0; i < 100; i++)
                relay_buf_append(&b, chunk, sizeof(chunk));
        assert_ptr_equal(b.data, before);
        assert_int_equal(b.cap, cap);
        assert_int_equal(b.len, 10001);
        assert_terminated(&b);

        /* Reserving what is there already is a no-op. */
        relay_buf_reserve(&b, 0);
        assert_ptr_equal(b.data, before);
        relay_buf_free(&b);
}

static void test_buf_reset_keeps_memory(void **state)
{
        relay_buf_t b;
        relay_buf_init(&b);
        for (int i = 0; i < 1000; i++)
                relay_buf_printf(&b, "%04d", i);
        char *data = b.data;
        size_t cap = b.cap;
        assert_true(cap >= 4001);

        relay_buf_reset(&b);
        assert_int_equal(b.len, 0);
        assert_ptr_equal(b.data, data);
        assert_int_equal(b.cap, cap);
        assert_string_equal(b.data, "");

        relay_buf_puts(&b, "again");
        assert_ptr_equal(b.data, data);
        assert_string_equal(b.data, "again");
        relay_buf_free(&b);

        /* Reset of a never-used buffer is safe. */
        relay_buf_init(&b);
        relay_buf_reset(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
}

/* relay_buf_json_str(s, n) appended after a prefix: the prefix is kept, the
 * rest parses as one JSON string of exactly those n bytes, and no raw
 * control byte is left in the output. */
static void check_json_str(const char *s, size_t n)
{
        relay_buf_t b;
        relay_buf_init(&b);
        relay_buf_puts(&b, "k=");
        relay_buf_json_str(&b, s, n);
        assert_terminated(&b);
        assert_memory_equal(b.data, "k=", 2);
        for (size_t i = 2; i < b.len; i++)
                assert_true((unsigned char)b.data[i] >= 0x20);

        json_error_t jerr;
        json_t *j = json_loadb(b.data + 2, b.len - 2,
                               JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!j)
                fail_msg("not JSON (%s): %s", jerr.text, b.data + 2);
        assert_true(json_is_string(j));
        assert_int_equal(json_string_length(j), n);
        assert_memory_equal(json_string_value(j), s, n);
        json_decref(j);
        relay_buf_free(&b);
}

static void test_json_str(void **state)
{
        static const char *const cases[] = {
            "",
            "plain text",
            "say \"hi\"",
            "back\\slash\\",
            "\\\"",
            "nl\n cr\r tab\t",
            "\x01",
            "\x1f",
            "\b\f\v\x1b\x7f",
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe4\xb8\xad",
            "</script>\"'",
            "\"",
            "\n",
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                check_json_str(cases[i], strlen(cases[i]));

        /* An explicit length: embedded NULs are data, bytes past n are not. */
        check_json_str("a\0b", 3);
        check_json_str("\0", 1);
        check_json_str("abc\"def", 4);

        relay_buf_t b;
        relay_buf_init(&b);
        relay_buf_json_str(&b, "a\0b", 3);
        assert_string_equal(b.data, "\"a\\u0000b\"");
        relay_buf_reset(&b);
        relay_buf_json_str(&b, "abc\"def", 4);
        assert_string_equal(b.data, "\"abc\\\"\"");
        relay_buf_free(&b);

        /* Every byte from 1 to 0x7f, and a long mixed string that forces
         * the buffer to grow while escaping. */
        char all[127];
        for (int c = 1; c < 128; c++)
                all[c - 1] = (char)c;
        check_json_str(all, sizeof(all));

        char *mix = malloc(30000);
        assert_non_null(mix);
        static const char unit[] = "x\"\\\n\x01\xc3\xa9\t";
        for (size_t i = 0; i < 30000; i++)
                mix[i] = unit[i % (sizeof(unit) - 1)];
        /* Cut at a unit edge so that the UTF-8 stays whole. */
        size_t n = 30000 - 30000 % (sizeof(unit) - 1);
        check_json_str(mix, n);
        free(mix);
}

/* The escaping as it was before relay_buf_json_str checked a word at a
 * time: a byte at a time, through relay_buf_append. Kept as the
 * reference that the bytes sent have not changed. */
static void ref_json_str(relay_buf_t *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *u = (const unsigned char *)s;
        relay_buf_reserve(b, n + 2);
        relay_buf_append(b, "\"", 1);
        size_t run = 0;
        for (size_t i = 0; i < n;) {
                unsigned char c = u[i];
                const char *esc = NULL;
                char ubuf[7];
                if (c >= 0x80) {
                        size_t len = relay_utf8_len(u + i, n - i);
                        if (len) {
                                i += len;
                                continue;
                        }
                        esc = "\\ufffd";
                } else if (c == '"') {
                        esc = "\\\"";
                } else if (c == '\\') {
                        esc = "\\\\";
                } else if (c == '\n') {
                        esc = "\\n";
                } else if (c == '\r') {
                        esc = "\\r";
                } else if (c == '\t') {
                        esc = "\\t";
                } else if (c < 0x20) {
                        memcpy(ubuf, "\\u00", 4);
                        ubuf[4] = hex[c >> 4];
                        ubuf[5] = hex[c & 0xf];
                        ubuf[6] = '\0';
                        esc = ubuf;
                }
                if (!esc) {
                        i++;
                        continue;
                }
                relay_buf_append(b, s + run, i - run);
                relay_buf_puts(b, esc);
                run = ++i;
        }
        relay_buf_append(b, s + run, n - run);
        relay_buf_append(b, "\"", 1);
}

/* relay_buf_json_str and the reference give the same bytes for s, after
 * a prefix of pre bytes (which moves where the buffer must grow). s is
 * copied to a heap block of exactly n bytes so that a read past its end
 * is caught by the sanitizers and valgrind. */
static void same_as_ref(const char *s, size_t n, size_t pre)
{
        char *exact = malloc(n ? n : 1);
        assert_non_null(exact);
        if (n)
                memcpy(exact, s, n);
        relay_buf_t got, want;
        relay_buf_init(&got);
        relay_buf_init(&want);
        for (size_t i = 0; i < pre; i++) {
                relay_buf_append(&got, "p", 1);
                relay_buf_append(&want, "p", 1);
        }
        relay_buf_json_str(&got, exact, n);
        ref_json_str(&want, exact, n);
        assert_terminated(&got);
        if (got.len != want.len || memcmp(got.data, want.data, got.len))
                fail_msg("n %zu pre %zu: got %s, want %s", n, pre, got.data,
                         want.data);
        relay_buf_free(&got);
        relay_buf_free(&want);
        free(exact);
}

/* A byte of one of the classes the escaping tells apart. */
static size_t random_piece(unsigned char *p, unsigned *seed)
{
        static const char plain[] = "abcXYZ019 ~!#$%&'()*+,-./:;<=>?@[]^_`{|}";
        static const char *const utf8[] = {
            "\xc3\xa9", "\xc2\x80", "\xdf\xbf", "\xe2\x82\xac", "\xe0\xa0\x80",
            "\xef\xbf\xbf", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
        static const char *const bad[] = {
            "\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xc3", "\xe2\x82",
            "\xed\xa0\x80", "\xe0\x80\x80", "\xf0\x9f\x98", "\xf4\x90\x80\x80",
            "\xf5\x80\x80\x80", "\xff", "\xfe", "\xc3\x28"};
        switch (rand_r(seed) % 10) {
        case 0:
                p[0] = (unsigned char)(rand_r(seed) % 0x20);
                return 1;
        case 1:
                p[0] = rand_r(seed) % 2 ? '"' : '\\';
                return 1;
        case 2: {
                const char *u = utf8[rand_r(seed) % 8];
                memcpy(p, u, strlen(u));
                return strlen(u);
        }
        case 3: {
                const char *u = bad[rand_r(seed) % 14];
                memcpy(p, u, strlen(u));
                return strlen(u);
        }
        case 4:
                p[0] = (unsigned char)(rand_r(seed) % 256);
                return 1;
        case 5:
                p[0] = 0x7f;
                return 1;
        default:
                p[0] = (unsigned char)plain[rand_r(seed) % (sizeof(plain) - 1)];
                return 1;
        }
}

static void test_json_str_as_before(void **state)
{
        unsigned char s[600];
        /* The empty string, every byte alone, and every byte after runs of
         * plain bytes of each length up to three words, and before them:
         * the byte falls at each place of a word and of the last,
         * partial word. */
        same_as_ref("", 0, 0);
        for (int c = 0; c < 256; c++) {
                for (size_t run = 0; run <= 24; run++) {
                        memset(s, 'a', run);
                        s[run] = (unsigned char)c;
                        same_as_ref((char *)s, run + 1, run % 3);
                        memset(s + 1, 'b', run);
                        s[0] = (unsigned char)c;
                        same_as_ref((char *)s, run + 1, 0);
                }
        }
        /* Strings up to five words long with one byte to escape (or a
         * UTF-8 sequence) at each place: the copy before it, and the
         * rest after it, at every length. */
        static const char *const one[] = {"\"", "\x01", "\x7f", "\xc3\xa9",
                                          "\xe2\x82\xac", "\xff"};
        for (size_t k = 0; k < sizeof(one) / sizeof(one[0]); k++)
                for (size_t n = 1; n <= 40; n++)
                        for (size_t at = 0; at + strlen(one[k]) <= n; at++) {
                                for (size_t j = 0; j < n; j++)
                                        s[j] = (unsigned char)('A' + j % 26);
                                memcpy(s + at, one[k], strlen(one[k]));
                                same_as_ref((char *)s, n, at % 2);
                        }
        /* Every pair of bytes, so each escape meets each other. */
        for (int a = 0; a < 256; a++)
                for (int c = 0; c < 256; c++) {
                        s[0] = (unsigned char)a;
                        s[1] = (unsigned char)c;
                        same_as_ref((char *)s, 2, 0);
                }
        /* Cut UTF-8 and lone leads at the very end of strings of each
         * length: the check must not read past n. */
        static const char *const cut[] = {"\xc3", "\xe2\x82", "\xe2",
                                          "\xf0\x9f\x98", "\xf0\x9f",
                                          "\xf0", "\xed\xa0"};
        for (size_t k = 0; k < sizeof(cut) / sizeof(cut[0]); k++)
                for (size_t run = 0; run <= 20; run++) {
                        memset(s, 'z', run);
                        memcpy(s + run, cut[k], strlen(cut[k]));
                        same_as_ref((char *)s, run + strlen(cut[k]), 0);
                }
        /* Long runs of one class: plain, each escape, UTF-8. */
        static const char *const fill[] = {"q", "\"", "\\", "\n", "\x01",
                                           "\xc3\xa9", "\x80", "\x7f"};
        for (size_t k = 0; k < sizeof(fill) / sizeof(fill[0]); k++) {
                size_t f = strlen(fill[k]), n = 0;
                while (n + f <= sizeof(s)) {
                        memcpy(s + n, fill[k], f);
                        n += f;
                }
                for (size_t pre = 0; pre < 260; pre += 37)
                        same_as_ref((char *)s, n, pre);
        }
        /* Random strings of every class mixed, at random lengths and
         * prefixes. */
        unsigned seed = 20261207;
        for (int iter = 0; iter < 20000; iter++) {
                size_t len = (size_t)(rand_r(&seed) % 200), n = 0;
                int plain_bias = rand_r(&seed) % 4;
                while (n < len) {
                        if (plain_bias && rand_r(&seed) % 8) {
                                s[n] = (unsigned char)('a' + n % 26);
                                n++;
                                continue;
                        }
                        n += random_piece(s + n, &seed);
                }
                same_as_ref((char *)s, n, (size_t)(rand_r(&seed) % 300));
        }
}

static void test_buf_long(void **state)
{
        static const int64_t cases[] = {
            0, 1, -1, 9, 10, -10, 99, 100, -100, 101, 999, 1000, 12345,
            1765000000000LL, -1765000000000LL, 999999999999999999LL,
            1000000000000000000LL, INT64_MAX, INT64_MIN, INT64_MIN + 1};
        relay_buf_t b;
        relay_buf_init(&b);
        char want[32];
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                relay_buf_reset(&b);
                relay_buf_puts(&b, "x=");
                relay_buf_long(&b, cases[i]);
                snprintf(want, sizeof(want), "x=%lld", (long long)cases[i]);
                assert_string_equal(b.data, want);
                assert_int_equal(b.len, strlen(want));
        }
        /* Every power of ten and its neighbours, both signs. */
        int64_t p = 1;
        /* (p's last step, past 10^18, is in unsigned: it is never used,
         * and a signed overflow is undefined.) */
        for (int k = 0; k <= 18; k++, p = (int64_t)((uint64_t)p * 10))
                for (int64_t d = -1; d <= 1; d++)
                        for (int sign = -1; sign <= 1; sign += 2) {
                                int64_t v = sign * (p + d);
                                relay_buf_reset(&b);
                                relay_buf_long(&b, v);
                                snprintf(want, sizeof(want), "%lld",
                                         (long long)v);
                                assert_string_equal(b.data, want);
                        }
        /* Appended many times: growth keeps every number. */
        relay_buf_reset(&b);
        relay_buf_t ref;
        relay_buf_init(&ref);
        unsigned seed = 7;
        for (int i = 0; i < 5000; i++) {
                int64_t v = (int64_t)(((uint64_t)rand_r(&seed) << 33) ^
                                      ((uint64_t)rand_r(&seed) << 11) ^
                                      (uint64_t)rand_r(&seed));
                v >>= rand_r(&seed) % 63;
                relay_buf_long(&b, v);
                relay_buf_printf(&ref, "%lld", (long long)v);
        }
        assert_terminated(&b);
        assert_int_equal(b.len, ref.len);
        assert_memory_equal(b.data, ref.data, b.len);
        relay_buf_free(&ref);
        relay_buf_free(&b);
}

static void test_sleep_stopped_from_start(void **state)
{
        volatile sig_atomic_t running = 0;
        int64_t t0 = relay_mono_ms();
        assert_int_equal(relay_sleep_ms(10000, &running), 1);
        assert_true(relay_mono_ms() - t0 < 100);
}

static void test_sleep_full(void **state)
{
        volatile sig_atomic_t running = 1;
        int64_t t0 = relay_mono_ms();
        assert_int_equal(relay_sleep_ms(120, &running), 0);
        int64_t took = relay_mono_ms() - t0;
        assert_true(took >= 120);
        assert_true(took < 1000);

        /* No stop flag at all, and nothing to wait. */
        t0 = relay_mono_ms();
        assert_int_equal(relay_sleep_ms(60, NULL), 0);
        assert_true(relay_mono_ms() - t0 >= 60);
        assert_int_equal(relay_sleep_ms(0, &running), 0);
        assert_int_equal(relay_sleep_ms(-5, &running), 0);
}

static volatile sig_atomic_t async_running;

static void *stop_later(void *arg)
{
        struct timespec ts = {0, 150 * 1000000L};
        nanosleep(&ts, NULL);
        async_running = 0;
        return NULL;
}

static void test_sleep_stopped_midway(void **state)
{
        pthread_t th;
        async_running = 1;
        int64_t t0 = relay_mono_ms();
        assert_int_equal(pthread_create(&th, NULL, stop_later, NULL), 0);
        assert_int_equal(relay_sleep_ms(10000, &async_running), 1);
        int64_t took = relay_mono_ms() - t0;
        pthread_join(th, NULL);
        /* Woken within the 50 ms polling step after the flag was set. */
        assert_true(took >= 140);
        assert_true(took < 1000);
}

static void test_seterr(void **state)
{
        relay_seterr(NULL, 0, "nothing %s", "here");
        relay_seterr(NULL, 100, "nothing %s", "here");

        char err[8];
        memset(err, 'z', sizeof(err));
        relay_seterr(err, 0, "untouched");
        assert_int_equal(err[0], 'z');

        relay_seterr(err, sizeof(err), "%s-%d", "abcdef", 123);
        assert_string_equal(err, "abcdef-"); /* truncated, terminated */

        char big[64];
        relay_seterr(big, sizeof(big), "key '%s' at %s", "x.y", "-X");
        assert_string_equal(big, "key 'x.y' at -X");
}

static void test_strings_and_clocks(void **state)
{
        char *s = relay_strdup("hello");
        assert_string_equal(s, "hello");
        free(s);
        s = relay_strndup("hello world", 5);
        assert_string_equal(s, "hello");
        free(s);
        s = relay_strndup("a\0b", 3);
        assert_memory_equal(s, "a\0b\0", 4);
        free(s);

        assert_string_equal(relay_result_name(RELAY_OK), "ok");
        assert_string_equal(relay_result_name(RELAY_RETRY), "retry");
        assert_string_equal(relay_result_name(RELAY_FATAL), "fatal");

        int64_t now = relay_now_ms(), t = (int64_t)time(NULL) * 1000;
        assert_true(now > t - 2000 && now < t + 2000);
        int64_t m1 = relay_mono_ms(), m2 = relay_mono_ms();
        assert_true(m2 >= m1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_buf_init_free),
            cmocka_unit_test(test_buf_many_appends),
            cmocka_unit_test(test_buf_printf_large),
            cmocka_unit_test(test_buf_reserve),
            cmocka_unit_test(test_buf_reset_keeps_memory),
            cmocka_unit_test(test_json_str),
            cmocka_unit_test(test_json_str_as_before),
            cmocka_unit_test(test_buf_long),
            cmocka_unit_test(test_sleep_stopped_from_start),
            cmocka_unit_test(test_sleep_full),
            cmocka_unit_test(test_sleep_stopped_midway),
            cmocka_unit_test(test_seterr),
            cmocka_unit_test(test_strings_and_clocks),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
