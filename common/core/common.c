/*
 * Basics shared by every module: allocation that handles out-of-memory in
 * one place, the growable byte buffer, clocks and an interruptible sleep.
 */
#define _GNU_SOURCE
#include "relay/common.h"
#include "relay/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

void relay_buf_grow(relay_buf_t *b, size_t extra)
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

/* n digits at s as a number, or -1 when any is not a digit. */
static long digits(const char *s, size_t n)
{
        long v = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        return v;
}

int relay_iso_ms_parse(const char *s, size_t n, int64_t *ms)
{
        static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30,
                                              31, 31, 30, 31, 30, 31};
        /* "YYYY-MM-DDTHH:MM:SS": the separators, then the numbers. */
        if (n < 19 || s[4] != '-' || s[7] != '-' ||
            (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
            s[16] != ':')
                return -1;
        long y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2),
             h = digits(s + 11, 2), mi = digits(s + 14, 2),
             sec = digits(s + 17, 2);
        if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
            h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60 ||
            (mo == 2 && d == 29 &&
             (y % 4 || (y % 100 == 0 && y % 400))))
                return -1;
        size_t i = 19;
        long frac = 0, scale = 100;
        if (i < n && (s[i] == '.' || s[i] == ',')) {
                size_t start = ++i;
                for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, scale /= 10)
                        frac += scale * (s[i] - '0');
                if (i == start)
                        return -1;
        }
        long zone = 0; /* minutes east of UTC */
        if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
                i++;
        } else if (i < n && (s[i] == '+' || s[i] == '-')) {
                long zh = i + 6 <= n && s[i + 3] == ':' ? digits(s + i + 1, 2)
                                                        : -1,
                     zm = zh >= 0 ? digits(s + i + 4, 2) : -1;
                if (zh < 0 || zh > 23 || zm < 0 || zm > 59)
                        return -1;
                zone = (s[i] == '-' ? -1 : 1) * (zh * 60 + zm);
                i += 6;
        }
        if (i != n)
                return -1;
        /* Days since the epoch of the civil date (Howard Hinnant's
         * days_from_civil, the inverse of relay_buf_iso_ms's steps). */
        int64_t yy = mo <= 2 ? y - 1 : y;
        int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
        int64_t yoe = yy - era * 400;
        int64_t doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        int64_t days = era * 146097 + doe - 719468;
        *ms = ((days * 24 + h) * 60 + mi - zone) * 60000 + sec * 1000 + frac;
        return 0;
}

void relay_buf_url_encode(relay_buf_t *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789ABCDEF";
        for (const unsigned char *p = (const unsigned char *)s; n--; p++) {
                if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
                    *p == '.' || *p == '~') {
                        relay_buf_append(b, p, 1);
                } else {
                        char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
                        relay_buf_append(b, e, 3);
                }
        }
}

/* "00" to "99": two digits a division, half the divisions of one. */
static const char digits2[201] = "0001020304050607080910111213141516171819"
                                 "2021222324252627282930313233343536373839"
                                 "4041424344454647484950515253545556575859"
                                 "6061626364656667686970717273747576777879"
                                 "8081828384858687888990919293949596979899";

/* Decimal digits of u (1 for 0). */
static size_t digits_of(uint64_t u)
{
        static const uint64_t pow10[20] = {1ULL,
                                           10ULL,
                                           100ULL,
                                           1000ULL,
                                           10000ULL,
                                           100000ULL,
                                           1000000ULL,
                                           10000000ULL,
                                           100000000ULL,
                                           1000000000ULL,
                                           10000000000ULL,
                                           100000000000ULL,
                                           1000000000000ULL,
                                           10000000000000ULL,
                                           100000000000000ULL,
                                           1000000000000000ULL,
                                           10000000000000000ULL,
                                           100000000000000000ULL,
                                           1000000000000000000ULL,
                                           10000000000000000000ULL};
#if defined(__GNUC__)
        /* From the bit length: 1233/4096 is just over log10(2), so t is
         * the count of digits or one less (u | 1 has as many digits as
         * u, and a bit length for 0 too). */
        size_t t = (size_t)(64 - __builtin_clzll(u | 1)) * 1233 >> 12;
        return t + ((u | 1) >= pow10[t]);
#else
        size_t t = 1;
        while (t < 20 && u >= pow10[t])
                t++;
        return t;
#endif
}

/* Written straight into the buffer, from the last digit back, two at a
 * time: a timestamp in ms is 13 digits, on every record. */
void relay_buf_long(relay_buf_t *b, int64_t l)
{
        uint64_t u = l < 0 ? 0 - (uint64_t)l : (uint64_t)l;
        relay_buf_reserve(b, 21); /* -9223372036854775808 */
        char *p = b->data + b->len;
        if (l < 0)
                *p++ = '-';
        char *end = p + digits_of(u);
        p = end;
        /* Eight digits at a time in 32 bits, whose divisions are cheaper
         * than 64-bit ones, as two independent halves of four. */
        while (u >= 100000000) {
                uint32_t lo = (uint32_t)(u % 100000000);
                uint32_t hi4 = lo / 10000, lo4 = lo % 10000;
                u /= 100000000;
                p -= 8;
                memcpy(p, digits2 + hi4 / 100 * 2, 2);
                memcpy(p + 2, digits2 + hi4 % 100 * 2, 2);
                memcpy(p + 4, digits2 + lo4 / 100 * 2, 2);
                memcpy(p + 6, digits2 + lo4 % 100 * 2, 2);
        }
        uint32_t v = (uint32_t)u;
        while (v >= 100) {
                p -= 2;
                memcpy(p, digits2 + v % 100 * 2, 2);
                v /= 100;
        }
        if (v >= 10) {
                p -= 2;
                memcpy(p, digits2 + v * 2, 2);
        } else {
                *--p = (char)('0' + v);
        }
        *end = '\0';
        b->len = (size_t)(end - b->data);
}

/* What relay_buf_json_str keeps free past the bytes it writes: the
 * closing quote, the NUL, and 7 bytes of a word stored whole. */
#define JSON_ROOM (2 + 7)

/* The control characters JSON escapes with a letter (and that text
 * uses); the others go out as \u00XX, \b and \f too: the bytes sent were
 * always these, and a receiver reads both forms alike. */
static const char json_ctl[0x20] = {['\t'] = 't', ['\n'] = 'n', ['\r'] = 'r'};

#if defined(__GNUC__)
#define JSON_RARE __attribute__((noinline, cold))
#else
#define JSON_RARE
#endif

/* Where relay_buf_json_str is: in s and in the buffer. */
struct json_at {
        size_t i, o;
};

/* Write the byte at u[at.i] (one that needs more than a copy: below 0x20,
 * '"', '\\' or 0x80 and up) at b->data + at.o, and return where the next
 * byte goes. Valid UTF-8 is copied as it is; a byte that does not
 * start it becomes U+FFFD so that the JSON stays valid (Avro strings
 * should be UTF-8, but nothing checks). Kept out of line so that the
 * common case, nothing to escape, runs in few registers. The room kept
 * (see relay_buf_json_str) is restored for the rest of s. */
static JSON_RARE struct json_at json_escape(relay_buf_t *b,
                                            const unsigned char *u, size_t n,
                                            struct json_at at)
{
        static const char hex[] = "0123456789abcdef";
        unsigned char c = u[at.i];
        b->len = at.o;
        relay_buf_reserve(b, n - at.i + 6 + JSON_ROOM);
        char *p = b->data + at.o;
        if (c >= 0x80) {
                size_t len = relay_utf8_len(u + at.i, n - at.i);
                if (len) {
                        memcpy(p, u + at.i, len);
                        at.i += len;
                        at.o += len;
                        return at;
                }
                memcpy(p, "\\ufffd", 6);
                at.o += 6;
        } else if (c >= 0x20) { /* '"' or '\\' */
                p[0] = '\\';
                p[1] = (char)c;
                at.o += 2;
        } else if (json_ctl[c]) {
                p[0] = '\\';
                p[1] = json_ctl[c];
                at.o += 2;
        } else {
                memcpy(p, "\\u00", 4);
                p[4] = hex[c >> 4];
                p[5] = hex[c & 0xf];
                at.o += 6;
        }
        at.i++;
        return at;
}

#if defined(__GNUC__) && defined(__BYTE_ORDER__) &&                           \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define JSON_ONES 0x0101010101010101ULL
#define JSON_HIGHS 0x8080808080808080ULL

/* High bits marking the bytes of w that need more than a copy (below
 * 0x20, '"', '\\', 0x80 and up), eight bytes in nine operations: w's own
 * high bit; w - 0x20 sets it below 0x20; w ^ '"' and w ^ '\\' are zero
 * at a quote or backslash, and minus one sets it there (and for bytes of
 * 0x80 and up, marked anyway). A borrow carries only out of a byte that
 * is itself marked and may mark bytes above it, never below, so the
 * lowest marked byte is exactly the first to escape. */
static inline uint64_t json_marks(uint64_t w)
{
        return ((w - JSON_ONES * 0x20) | w |
                ((w ^ (JSON_ONES * '"')) - JSON_ONES) |
                ((w ^ (JSON_ONES * '\\')) - JSON_ONES)) &
               JSON_HIGHS;
}

/* The len (1 to 7) bytes at p as the low bytes of a word, zeros above:
 * two loads that may overlap, whose shared bytes are the same. */
static inline uint64_t json_short(const unsigned char *p, size_t len)
{
        if (len >= 4) {
                uint32_t lo, hi;
                memcpy(&lo, p, 4);
                memcpy(&hi, p + len - 4, 4);
                return lo | (uint64_t)hi << (8 * (len - 4));
        }
        if (len >= 2) {
                uint16_t lo, hi;
                memcpy(&lo, p, 2);
                memcpy(&hi, p + len - 2, 2);
                return lo | (uint64_t)hi << (8 * (len - 2));
        }
        return p[0];
}

#ifdef __SSE2__
/* Bit k set when byte k of x needs more than a copy: a signed compare
 * with 0x20 takes the bytes below it and those of 0x80 and up together. */
static inline unsigned json_marks16(__m128i x)
{
        __m128i m = _mm_or_si128(
            _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
            _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                         _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));
        return (unsigned)_mm_movemask_epi8(m);
}
#endif

/* Copy bytes of s from i on to d + o, as they are, up to the first that
 * needs escaping; return how many (0 when u[i] does). Reads only within
 * s. Writes from o to o + 8 or to o + n - i, whichever is further, and
 * may rewrite bytes before o with what they hold already: those of s
 * from v on, which went out as they are (the output of s is a plain copy
 * of it from v on). */
static inline size_t json_plain(char *d, size_t o, const unsigned char *u,
                                size_t i, size_t n, size_t v)
{
        size_t left = n - i;
#ifdef __SSE2__
        unsigned mm;
        if (left >= 16) {
                __m128i x = _mm_loadu_si128((const __m128i *)(u + i));
                _mm_storeu_si128((__m128i *)(d + o), x);
                mm = json_marks16(x);
                return mm ? (size_t)__builtin_ctz(mm) : 16;
        }
        if (n >= 16 && n - 16 >= v) {
                /* s's last 16 bytes, the first of them done already */
                size_t skip = 16 - left;
                __m128i x = _mm_loadu_si128((const __m128i *)(u + n - 16));
                _mm_storeu_si128((__m128i *)(d + o - skip), x);
                mm = json_marks16(x) >> skip;
                return mm ? (size_t)__builtin_ctz(mm) : left;
        }
#else
        (void)v;
#endif
        /* A word, or the last bytes of s with zeros above them, which
         * are marked. */
        uint64_t w, m;
        if (left >= 8) {
                memcpy(&w, u + i, 8);
        } else if (n >= 8) {
                memcpy(&w, u + n - 8, 8); /* its first bytes are done */
                w >>= 8 * (8 - left);
        } else {
                w = json_short(u + i, left);
        }
        memcpy(d + o, &w, 8);
        m = json_marks(w);
        if (!m)
                return 8;
        size_t k = (size_t)__builtin_ctzll(m) / 8;
        return k < left ? k : left;
}

/* Most strings need no escaping at all, or at a few places: the bytes
 * are checked and copied 16 (SSE2) or 8 at a time, and only a byte that
 * needs it goes to json_escape. The buffer keeps room for the rest of s,
 * the closing quote, the NUL and a word's slack (JSON_ROOM), so that
 * json_plain stores whole words, unchecked, before it knows how much of
 * them counts. */
void relay_buf_json_str(relay_buf_t *b, const char *s, size_t n)
{
        const unsigned char *u = (const unsigned char *)s;
        relay_buf_reserve(b, n + 1 + JSON_ROOM);
        char *d = b->data;
        struct json_at at = {0, b->len};
        size_t v = 0; /* copied as it is from here on */
        d[at.o++] = '"';
        while (at.i < n) {
                size_t k = json_plain(d, at.o, u, at.i, n, v);
                if (k) {
                        at.i += k;
                        at.o += k;
                        continue;
                }
                at = json_escape(b, u, n, at);
                d = b->data;
                v = at.i;
        }
        d[at.o++] = '"';
        d[at.o] = '\0';
        b->len = at.o;
}
#else
/* A byte at a time where the word-wise check above does not apply. */
void relay_buf_json_str(relay_buf_t *b, const char *s, size_t n)
{
        const unsigned char *u = (const unsigned char *)s;
        relay_buf_reserve(b, n + 1 + JSON_ROOM);
        struct json_at at = {0, b->len};
        b->data[at.o++] = '"';
        while (at.i < n) {
                unsigned char c = u[at.i];
                if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
                        b->data[at.o++] = (char)c;
                        at.i++;
                } else {
                        at = json_escape(b, u, n, at);
                }
        }
        b->data[at.o++] = '"';
        b->data[at.o] = '\0';
        b->len = at.o;
}
#endif

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

void relay_uuid4(char out[RELAY_UUID_SIZE])
{
        unsigned char r[16];
        size_t got = 0;
        while (got < sizeof(r)) {
                ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
                if (n > 0)
                        got += (size_t)n;
                else if (n < 0 && errno != EINTR) {
                        /* Only before the kernel's pool is ready at
                         * boot, or under seccomp: nothing to go on with. */
                        relay_log(LOG_CRIT, "uuid", "getrandom: %s",
                                  strerror(errno));
                        abort();
                }
        }
        r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
        r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        relay_uuid_text(r, out);
}

void relay_uuid_text(const unsigned char b[16], char out[RELAY_UUID_SIZE])
{
        static const char hex[] = "0123456789abcdef";
        char *o = out;
        for (int i = 0; i < 16; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10)
                        *o++ = '-';
                *o++ = hex[b[i] >> 4];
                *o++ = hex[b[i] & 15];
        }
        *o = '\0';
}

int relay_uuid_valid(const char *s, size_t n)
{
        if (n != 36)
                return 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (c != '-')
                                return 0;
                } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                             (c >= 'A' && c <= 'F'))) {
                        return 0;
                }
        }
        return 1;
}
