/*
 * A streaming CSV reader (RFC 4180) for files from outside, such as the
 * CRM exports relayctl onboard reads: bytes are fed in chunks of any size
 * (a chunk may end anywhere, inside a quoted field or between CR and LF)
 * and each complete record is handed to a callback.
 *
 * - Fields are separated by one delimiter byte (',' by default; ';' and
 *   tab are common in European exports). A field may be quoted with '"':
 *   then it may hold the delimiter, line ends and doubled quotes ("" is
 *   one '"'). Unquoted fields are taken as they are (no trimming).
 * - Records end with CRLF, LF or a lone CR. A line end inside quotes is
 *   part of the field, as it stood (CRLF stays CRLF). The last record may
 *   lack its line end. Blank lines (nothing at all on them) are skipped.
 * - A UTF-8 byte order mark at the very start is skipped; one of UTF-16 or
 *   UTF-32 is refused (the reader takes UTF-8 only).
 * - Lines are counted from 1 as a text editor counts them (each CRLF, LF
 *   or lone CR ends one, inside quotes too), so a record that holds line
 *   ends starts on one line and ends on a later one.
 *
 * A record with a mistake in it is still handed over, with the first
 * mistake in err and the field it is in (so a caller can reject that row
 * and go on): a quote inside an unquoted field, text between a closing
 * quote and the delimiter, a NUL byte, bytes that are not UTF-8. The
 * fields are then what the reader made of them. Mistakes after which no
 * later record can be trusted stop the reader: a quoted field still open
 * at the end of the input, a record longer than the limit (an unclosed
 * quote swallows the file), a UTF-16/32 byte order mark.
 */
#ifndef RELAY_CSV_H
#define RELAY_CSV_H

#include <stddef.h>
#include <stdint.h>

/* A record longer than this (all its fields) stops the reader. */
#define RELAY_CSV_RECORD_MAX (1024 * 1024)

typedef struct relay_csv relay_csv_t;

/* One field: n bytes at p (not NUL-terminated), and whether it was
 * quoted ("" is an empty field that was there, not a missing one). */
typedef struct relay_csv_field {
        const char *p;
        size_t n;
        int quoted;
} relay_csv_field_t;

/* One record, borrowed by the callback for the call only. */
typedef struct relay_csv_record {
        const relay_csv_field_t *fields;
        size_t nfields;
        uint64_t line;     /* the line the record starts on, from 1 */
        uint64_t end_line; /* the line it ends on (> line: line ends in it) */
        const char *err;   /* NULL, or the first mistake in the record */
        size_t err_field;  /* with err: the field it is in, from 1 */
} relay_csv_record_t;

/* Called for each record; a positive return stops the reader, and feed or
 * finish return it (then and on every later call). */
typedef int(relay_csv_cb)(const relay_csv_record_t *rec, void *arg);

/* A reader splitting fields on delim (any byte but '"', CR, LF and NUL;
 * returns NULL for those). Owned by the caller. */
relay_csv_t *relay_csv_new(char delim, relay_csv_cb *cb, void *arg);
void relay_csv_destroy(relay_csv_t *c);

/* Feed the next n bytes. Returns 0; the callback's non-zero value when it
 * stopped the reader; or -1 when the input cannot be read on, with the
 * reason and line in errstr (then every later call returns -1). */
int relay_csv_feed(relay_csv_t *c, const void *p, size_t n, char *errstr,
                   size_t errstr_size);

/* The end of the input: hands over a last record without a line end.
 * Returns as feed does; -1 for a quoted field still open. */
int relay_csv_finish(relay_csv_t *c, char *errstr, size_t errstr_size);

/* Records handed over so far (blank lines not counted). */
uint64_t relay_csv_records(const relay_csv_t *c);

/* Bytes fed so far, for a progress bar. */
uint64_t relay_csv_bytes(const relay_csv_t *c);

#endif
