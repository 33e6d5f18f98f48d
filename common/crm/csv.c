/*
 * The CSV reader of relay/csv.h: a byte-at-a-time state machine, so that a
 * chunk may end anywhere (inside quotes, between CR and LF, inside the byte
 * order mark) and the records come out the same. A record's bytes gather in
 * one buffer, the fields as offsets into it, and the record is handed over
 * at its line end; UTF-8 is checked then, once per field.
 */
#include "relay/csv.h"
#include "relay/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

enum state {
        FIELD_START, /* at the start of a field */
        UNQUOTED,    /* inside an unquoted field */
        QUOTED,      /* inside quotes */
        QUOTE_SEEN,  /* a quote inside quotes: "" or the closing one */
        AFTER_CR     /* a record ended on CR: an LF next is part of it */
};

struct span {
        size_t off, n;
        int quoted;
};

struct relay_csv {
        char delim;
        relay_csv_cb *cb;
        void *arg;
        enum state st;
        unsigned char head[4]; /* the first bytes, until the BOM is known */
        size_t nhead;
        int started;           /* the head was looked at */
        relay_buf_t data;      /* the record's bytes, fields back to back */
        struct span *spans;
        size_t nspans, cap;
        relay_csv_field_t *fields;
        size_t fields_cap;
        size_t field_off; /* where the field being read starts in data */
        int quoted;       /* it was opened with a quote */
        size_t rec_bytes; /* bytes of the record so far, line end aside */
        uint64_t line, rec_line, quote_line;
        int prev_cr;
        const char *err;
        size_t err_field;
        uint64_t records, bytes;
        int stopped;   /* the callback's non-zero value, or 0 */
        int too_long;  /* the record outgrew RELAY_CSV_RECORD_MAX */
        char *fatal;   /* why reading stopped for good, or NULL */
};

relay_csv_t *relay_csv_new(char delim, relay_csv_cb *cb, void *arg)
{
        if (delim == '"' || delim == '\r' || delim == '\n' || delim == '\0')
                return NULL;
        relay_csv_t *c = relay_calloc(1, sizeof(*c));
        c->delim = delim;
        c->cb = cb;
        c->arg = arg;
        c->line = c->rec_line = 1;
        relay_buf_init(&c->data);
        return c;
}

void relay_csv_destroy(relay_csv_t *c)
{
        if (!c)
                return;
        relay_buf_free(&c->data);
        free(c->spans);
        free(c->fields);
        free(c->fatal);
        free(c);
}

uint64_t relay_csv_records(const relay_csv_t *c)
{
        return c->records;
}

uint64_t relay_csv_bytes(const relay_csv_t *c)
{
        return c->bytes;
}

static int fail(relay_csv_t *c, char *errstr, size_t errstr_size,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(relay_csv_t *c, char *errstr, size_t errstr_size,
                const char *fmt, ...)
{
        if (!c->fatal) {
                char msg[512];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(msg, sizeof(msg), fmt, ap);
                va_end(ap);
                c->fatal = relay_strdup(msg);
        }
        relay_seterr(errstr, errstr_size, "%s", c->fatal);
        return -1;
}

/* The first mistake of the record, in the field being read. */
static void mistake(relay_csv_t *c, const char *what)
{
        if (!c->err) {
                c->err = what;
                c->err_field = c->nspans + 1;
        }
}

static void end_field(relay_csv_t *c)
{
        if (c->nspans == c->cap) {
                c->cap = c->cap ? 2 * c->cap : 16;
                c->spans = relay_realloc(c->spans, c->cap * sizeof(*c->spans));
        }
        c->spans[c->nspans++] = (struct span){
            c->field_off, c->data.len - c->field_off, c->quoted};
        c->field_off = c->data.len;
        c->quoted = 0;
}

/* Check that each field is UTF-8; the first that is not is the record's
 * mistake (unless it has one already). */
static void check_utf8(relay_csv_t *c)
{
        for (size_t i = 0; i < c->nspans && !c->err; i++) {
                const unsigned char *p =
                    (const unsigned char *)c->data.data + c->spans[i].off;
                size_t n = c->spans[i].n;
                for (size_t k = 0; k < n;) {
                        if (p[k] < 0x80) {
                                k++;
                                continue;
                        }
                        size_t l = relay_utf8_len(p + k, n - k);
                        if (!l) {
                                c->err = "bytes that are not UTF-8";
                                c->err_field = i + 1;
                                break;
                        }
                        k += l;
                }
        }
}

/* The line end of a record: hand it over (unless the line was blank) and
 * start the next. */
static int end_record(relay_csv_t *c)
{
        end_field(c);
        int blank = c->rec_bytes == 0;
        int rc = 0;
        if (!blank) {
                check_utf8(c);
                if (c->fields_cap < c->nspans) {
                        c->fields_cap = c->nspans;
                        c->fields = relay_realloc(
                            c->fields, c->fields_cap * sizeof(*c->fields));
                }
                for (size_t i = 0; i < c->nspans; i++)
                        c->fields[i] = (relay_csv_field_t){
                            c->data.data + c->spans[i].off, c->spans[i].n,
                            c->spans[i].quoted};
                relay_csv_record_t rec = {c->fields, c->nspans, c->rec_line,
                                          c->line,   c->err,    c->err_field};
                c->records++;
                rc = c->cb(&rec, c->arg);
        }
        relay_buf_reset(&c->data);
        c->nspans = 0;
        c->field_off = 0;
        c->quoted = 0;
        c->rec_bytes = 0;
        c->err = NULL;
        c->err_field = 0;
        return rc;
}

/* One byte of the body (after the byte order mark). Returns the
 * callback's value; sets too_long when the record outgrew the limit. */
static int byte(relay_csv_t *c, unsigned char ch)
{
        int rc = 0, ended = 0;
        if (c->st == AFTER_CR) {
                c->st = FIELD_START;
                if (ch == '\n') {
                        c->prev_cr = 0;
                        return 0;
                }
        }
        int ends = ch == '\r' || ch == '\n';
        if (c->rec_bytes == 0 && !ends)
                c->rec_line = c->line;
        if (c->st != QUOTED && ch == (unsigned char)c->delim) {
                end_field(c);
                c->st = FIELD_START;
        } else if (c->st != QUOTED && ends) {
                c->st = ch == '\r' ? AFTER_CR : FIELD_START;
                rc = end_record(c);
                ended = 1;
        } else {
                int data = 1; /* all but an opening or closing quote */
                switch (c->st) {
                case FIELD_START:
                        if (ch == '"') {
                                c->quoted = 1;
                                c->quote_line = c->line;
                                c->st = QUOTED;
                                data = 0;
                                break;
                        }
                        c->st = UNQUOTED;
                        /* fall through */
                case UNQUOTED:
                        if (ch == '"')
                                mistake(c, "a quote inside a field that does "
                                           "not start with one");
                        break;
                case QUOTED:
                        if (ch == '"') {
                                c->st = QUOTE_SEEN;
                                data = 0;
                        }
                        break;
                case QUOTE_SEEN:
                        if (ch == '"') {
                                c->st = QUOTED; /* "" is one quote */
                        } else {
                                mistake(c, "text after the closing quote of "
                                           "a field");
                                c->st = UNQUOTED;
                        }
                        break;
                case AFTER_CR:
                        break; /* handled above */
                }
                if (ch == '\0')
                        mistake(c, "a NUL byte");
                if (data)
                        relay_buf_append(&c->data, &ch, 1);
        }
        if (!ended) /* a record's bytes, less its line end */
                c->rec_bytes++;
        if (ch == '\r' || (ch == '\n' && !c->prev_cr))
                c->line++;
        c->prev_cr = ch == '\r';
        if (c->data.len > RELAY_CSV_RECORD_MAX)
                c->too_long = 1;
        return rc;
}

static int body(relay_csv_t *c, const unsigned char *p, size_t n,
                char *errstr, size_t errstr_size)
{
        for (size_t i = 0; i < n; i++) {
                int rc = byte(c, p[i]);
                if (rc) {
                        c->stopped = rc;
                        return rc;
                }
                if (c->too_long)
                        return fail(c, errstr, errstr_size,
                                    "line %llu: a record longer than %d "
                                    "bytes (a quote opened on line %llu and "
                                    "never closed?)",
                                    (unsigned long long)c->rec_line,
                                    RELAY_CSV_RECORD_MAX,
                                    (unsigned long long)c->quote_line);
        }
        return 0;
}

/* Look at the first bytes once: skip a UTF-8 byte order mark, refuse a
 * UTF-16 or UTF-32 one, and read the rest as the body. */
static int start(relay_csv_t *c, char *errstr, size_t errstr_size)
{
        const unsigned char *h = c->head;
        size_t n = c->nhead, skip = 0;
        c->started = 1;
        if ((n >= 2 && ((h[0] == 0xFE && h[1] == 0xFF) ||
                        (h[0] == 0xFF && h[1] == 0xFE))) ||
            (n >= 4 && !h[0] && !h[1] && h[2] == 0xFE && h[3] == 0xFF))
                return fail(c, errstr, errstr_size,
                            "line 1: a UTF-16 or UTF-32 byte order mark: the "
                            "file must be UTF-8 (save it as CSV UTF-8)");
        if (n >= 3 && h[0] == 0xEF && h[1] == 0xBB && h[2] == 0xBF)
                skip = 3;
        return body(c, h + skip, n - skip, errstr, errstr_size);
}

int relay_csv_feed(relay_csv_t *c, const void *p, size_t n, char *errstr,
                   size_t errstr_size)
{
        const unsigned char *b = p;
        if (c->fatal)
                return fail(c, errstr, errstr_size, "%s", c->fatal);
        if (c->stopped)
                return c->stopped;
        c->bytes += n;
        while (!c->started && n) {
                c->head[c->nhead++] = *b++;
                n--;
                if (c->nhead == sizeof(c->head)) {
                        int rc = start(c, errstr, errstr_size);
                        if (rc)
                                return rc;
                }
        }
        return n ? body(c, b, n, errstr, errstr_size) : 0;
}

int relay_csv_finish(relay_csv_t *c, char *errstr, size_t errstr_size)
{
        if (c->fatal)
                return fail(c, errstr, errstr_size, "%s", c->fatal);
        if (c->stopped)
                return c->stopped;
        if (!c->started) {
                int rc = start(c, errstr, errstr_size);
                if (rc)
                        return rc;
        }
        if (c->st == QUOTED)
                return fail(c, errstr, errstr_size,
                            "line %llu: a quoted field opened on line %llu is "
                            "never closed (the file ends inside it)",
                            (unsigned long long)c->line,
                            (unsigned long long)c->quote_line);
        if (c->st == AFTER_CR || c->rec_bytes == 0) {
                c->st = FIELD_START;
                return 0;
        }
        c->st = FIELD_START;
        int rc = end_record(c);
        if (rc)
                c->stopped = rc;
        return rc;
}
