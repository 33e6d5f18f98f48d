/*
 * Shared basics for every relay module: the result convention for record
 * processing, allocation wrappers that handle out-of-memory in one place, a
 * growable byte buffer, and small helpers.
 */
#ifndef RELAY_COMMON_H
#define RELAY_COMMON_H

#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

/* Outcome of processing one record or one batch (setup code uses 0 / -1). */
enum relay_result {
        RELAY_OK = 0, /* done: delivered, produced or deliberately dropped */
        RELAY_RETRY,  /* transient failure: try again later */
        RELAY_FATAL   /* permanent failure for this record: dead-letter it */
};

const char *relay_result_name(enum relay_result r);

/* Allocation that never returns NULL: on exhaustion it logs and aborts,
 * since a worker that cannot allocate cannot keep its delivery promise. */
void *relay_malloc(size_t size);
void *relay_calloc(size_t n, size_t size);
void *relay_realloc(void *ptr, size_t size);
char *relay_strdup(const char *s);
char *relay_strndup(const char *s, size_t n);

/* A growable byte buffer. The bytes are always NUL-terminated (not counted
 * in len) so text can be used as a C string. The buffer owns data. */
typedef struct relay_buf {
        char *data;
        size_t len;
        size_t cap;
} relay_buf_t;

void relay_buf_init(relay_buf_t *b);
void relay_buf_reset(relay_buf_t *b); /* len = 0, keeps the memory */
void relay_buf_free(relay_buf_t *b);
/* The slow half of relay_buf_reserve: reallocate so that extra more bytes
 * and the NUL fit (the capacity doubles from 256 until they do). */
void relay_buf_grow(relay_buf_t *b, size_t extra);
void relay_buf_printf(relay_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Room for extra more bytes and the NUL: afterwards cap > len + extra.
 * The appends below are inline because a delivery item is built from
 * dozens of small pieces; out of line, the call and the capacity check
 * cost more than copying most pieces (and a literal's memcpy of a known
 * size compiles to a few moves). */
static inline void relay_buf_reserve(relay_buf_t *b, size_t extra)
{
        if (b->cap - b->len <= extra)
                relay_buf_grow(b, extra);
}

/* Append n bytes from p (p may be NULL when n is 0). */
static inline void relay_buf_append(relay_buf_t *b, const void *p, size_t n)
{
        relay_buf_reserve(b, n);
        /* Locals, so that nothing of b is read again after the copy
         * (which the compiler must assume may have written to b). */
        char *at = b->data + b->len;
        size_t len = b->len + n;
        if (n)
                memcpy(at, p, n);
        at[n] = '\0';
        b->len = len;
}

static inline void relay_buf_puts(relay_buf_t *b, const char *s)
{
        relay_buf_append(b, s, strlen(s));
}

/* Append the decimal digits of l (with its '-'), as printf's %lld would. */
void relay_buf_long(relay_buf_t *b, int64_t l);

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0 when
 * the bytes there are not one (overlong, surrogate, beyond U+10FFFF, cut,
 * or plain ASCII, which callers handle first). */
size_t relay_utf8_len(const unsigned char *s, size_t n);

/* Append s as a JSON string literal, quotes included; bytes that are not
 * UTF-8 become U+FFFD so that the result is always valid JSON. */
void relay_buf_json_str(relay_buf_t *b, const char *s, size_t n);

/* Append ms since the epoch as a JSON string "YYYY-MM-DDTHH:MM:SS.mmmZ"
 * (ISO-8601, UTC), quotes included. -1 (nothing appended) for a time
 * outside the years 0000 to 9999, which the format cannot hold. */
int relay_buf_iso_ms(relay_buf_t *b, int64_t ms);

/* Parse an ISO-8601 date and time, "YYYY-MM-DDTHH:MM:SS" with optional
 * fraction (milliseconds kept, finer digits cut) and a zone ("Z" or
 * "+HH:MM"/"-HH:MM"; none is UTC), s[0..n) exactly. 0 with *ms since the
 * epoch, or -1 when the text is not such a time. */
int relay_iso_ms_parse(const char *s, size_t n, int64_t *ms);

/* Append s[0..n) percent-encoded: every byte but RFC 3986's unreserved
 * characters, hex digits upper case (for query values; Escher's canonical
 * form too). */
void relay_buf_url_encode(relay_buf_t *b, const char *s, size_t n);

/* Wall-clock milliseconds since the epoch, and a monotonic clock in ms. */
int64_t relay_now_ms(void);
int64_t relay_mono_ms(void);

/* Sleep up to ms, waking early when *running becomes 0 (checked every
 * 50 ms; pass &relay_run). Returns 0 when the full time passed, 1 when
 * stopped. running may be NULL. */
int relay_sleep_ms(long ms, volatile sig_atomic_t *running);

/* A random (version 4) UUID in its 36-character text form, NUL-terminated,
 * from the kernel's random source. */
#define RELAY_UUID_SIZE 37
void relay_uuid4(char out[RELAY_UUID_SIZE]);

/* The text form of the 16 bytes of a UUID into out. */
void relay_uuid_text(const unsigned char b[16], char out[RELAY_UUID_SIZE]);

/* 1 when s[0..n) is a UUID's text form (8-4-4-4-12 hex digits, any case). */
int relay_uuid_valid(const char *s, size_t n);

/* Bounded snprintf into errstr that tolerates errstr == NULL. */
void relay_seterr(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
