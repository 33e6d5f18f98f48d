/*
 * Basics shared by every module: allocation that handles out-of-memory in
 * one place, the growable byte buffer, clocks and an interruptible sleep.
 */
#define _GNU_SOURCE
#include "relay/common.h"
#include "relay/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *relay_result_name(enum relay_result r)
{
        switch (r) {
        case RELAY_OK:
                return "ok";
        case RELAY_RETRY:
                return "retry";
        case RELAY_FATAL:
                return "fatal";
        }
        return "unknown";
}

static void oom(size_t size)
{
        /* Logging may itself allocate nothing: it formats on the stack. */
        relay_log(LOG_CRIT, "mem", "out of memory allocating %zu bytes", size);
        abort();
}

void *relay_malloc(size_t size)
{
        void *p = malloc(size ? size : 1);
        if (!p)
                oom(size);
        return p;
}

void *relay_calloc(size_t n, size_t size)
{
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                oom(n * size);
        return p;
}

void *relay_realloc(void *ptr, size_t size)
{
        void *p = realloc(ptr, size ? size : 1);
        if (!p)
                oom(size);
        return p;
}

char *relay_strdup(const char *s)
{
        return relay_strndup(s, strlen(s));
}

char *relay_strndup(const char *s, size_t n)
{
        char *p = relay_malloc(n + 1);
        memcpy(p, s, n);
        p[n] = '\0';
        return p;
}

void relay_buf_init(relay_buf_t *b)
{
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
}

void relay_buf_reset(relay_buf_t *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = '\0';
}

void relay_buf_free(relay_buf_t *b)
{
        free(b->data);
        relay_buf_init(b);
}

void relay_buf_reserve(relay_buf_t *b, size_t extra)
{
        size_t need = b->len + extra + 1;
        if (need <= b->cap)
                return;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
                cap *= 2;
        b->data = relay_realloc(b->data, cap);
        b->cap = cap;
}

void relay_buf_append(relay_buf_t *b, const void *p, size_t n)
{
        relay_buf_reserve(b, n);
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
}

void relay_buf_puts(relay_buf_t *b, const char *s)
{
        relay_buf_append(b, s, strlen(s));
}

void relay_buf_printf(relay_buf_t *b, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n <= 0)
                return;
        relay_buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}

size_t relay_utf8_len(const unsigned char *s, size_t n)
{
        size_t len;
        uint32_t cp;
        if (s[0] < 0xC2)
                return 0;
        else if (s[0] < 0xE0)
                len = 2, cp = s[0] & 0x1F;
        else if (s[0] < 0xF0)
                len = 3, cp = s[0] & 0x0F;
        else if (s[0] < 0xF5)
                len = 4, cp = s[0] & 0x07;
        else
                return 0;
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xC0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
                return 0;
        return len;
}

/* Arithmetic rather than gmtime_r (which takes a lock and may read the
 * time zone files on first use): the proleptic Gregorian calendar of days
 * since 1970, Howard Hinnant's civil_from_days, for any year. */
int relay_buf_iso_ms(relay_buf_t *b, int64_t ms)
{
        /* 0000-01-01 and 10000-01-01 in ms since the epoch */
        if (ms < -62167219200000LL || ms >= 253402300800000LL)
                return -1;
        int64_t days = ms / 86400000, rem = ms % 86400000;
        if (rem < 0) {
                rem += 86400000;
                days--;
        }
        int64_t z = days + 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        int64_t d = doy - (153 * mp + 2) / 5 + 1;
        int64_t m = mp < 10 ? mp + 3 : mp - 9;
        int64_t y = yoe + era * 400 + (m <= 2);
        int64_t f[] = {y / 1000, y / 100 % 10, y / 10 % 10, y % 10, -1,
                       m / 10, m % 10, -1, d / 10, d % 10};
        char t[24];
        size_t k = 0;
        for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
                t[k++] = f[i] < 0 ? '-' : (char)('0' + f[i]);
        int64_t s = rem / 1000, msec = rem % 1000;
        int64_t g[] = {s / 36000, s / 3600 % 10, -1, s % 3600 / 600,
                       s % 600 / 60, -1, s % 60 / 10, s % 10, -2,
                       msec / 100, msec / 10 % 10, msec % 10};
        t[k++] = 'T';
        for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
                t[k++] = g[i] == -1 ? ':' : g[i] == -2 ? '.'
                                                       : (char)('0' + g[i]);
        t[k++] = 'Z';
        relay_buf_append(b, "\"", 1);
        relay_buf_append(b, t, k);
        relay_buf_append(b, "\"", 1);
        return 0;
}

void relay_buf_json_str(relay_buf_t *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *u = (const unsigned char *)s;
        relay_buf_reserve(b, n + 2);
        relay_buf_append(b, "\"", 1);
        size_t run = 0; /* start of bytes to copy verbatim */
        for (size_t i = 0; i < n;) {
                unsigned char c = u[i];
                const char *esc = NULL;
                char ubuf[7];
                if (c >= 0x80) {
                        /* Avro strings should be UTF-8 but nothing checks;
                         * a bad byte becomes U+FFFD so the JSON stays
                         * valid. */
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

int64_t relay_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t relay_mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int relay_sleep_ms(long ms, volatile sig_atomic_t *running)
{
        int64_t until = relay_mono_ms() + ms;
        for (;;) {
                if (running && !*running)
                        return 1;
                int64_t left = until - relay_mono_ms();
                if (left <= 0)
                        return 0;
                if (left > 50)
                        left = 50;
                struct timespec ts = {0, (long)left * 1000000L};
                nanosleep(&ts, NULL);
        }
}

void relay_seterr(char *errstr, size_t errstr_size, const char *fmt, ...)
{
        if (!errstr || !errstr_size)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
}
