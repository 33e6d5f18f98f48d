/*
 * avro_roundtrip: relay's Avro encoder and decoder as a filter, so that
 * roundtrip.py can hold them against an independent implementation
 * (fastavro) for every schema in the catalogue. It uses only the public
 * API of relay/avro.h, i.e. exactly the path the workers take:
 *
 *   avro_roundtrip encode MANIFEST SUBJECT < records.jsonl > frames.hex
 *       each line of natural JSON -> relay_avro_from_json into the
 *       subject's writer value -> relay_avro_writer_encode; prints the
 *       Confluent frame (magic, id, Avro binary) as one hex line.
 *   avro_roundtrip decode MANIFEST SUBJECT < frames.hex > records.jsonl
 *       each hex line -> relay_avro_reader_decode -> relay_avro_to_json;
 *       prints one compact JSON object per line.
 *
 *   avro_roundtrip recode MANIFEST SUBJECT < frames.hex > frames.hex
 *       each hex line -> the compiled path (relay_avro_reader_decode_slots
 *       -> relay_shape_encode of the reader's shape), which must give
 *       byte for byte what avro-c gives (relay_avro_reader_decode ->
 *       avro_value_write), and the same refusals; prints the compiled
 *       path's frame (the reader's id) as one hex line.
 *
 * Empty lines are skipped. The first bad line (not JSON, not fitting the
 * schema, not hex, not a valid frame, not renderable) is reported on
 * stderr with its line number and the tool exits 1; usage errors and a
 * bad catalogue exit 2.
 */
#include "relay/avro.h"
#include "relay/common.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mode { MODE_ENCODE, MODE_DECODE, MODE_RECODE };

static void usage(void)
{
        fprintf(stderr,
                "usage: avro_roundtrip encode|decode|recode MANIFEST "
                "SUBJECT\n"
                "  encode: natural JSON lines on stdin -> hex Confluent "
                "frames on stdout\n"
                "  decode: hex Confluent frames on stdin -> compact JSON "
                "lines on stdout\n"
                "  recode: hex Confluent frames on stdin -> the compiled "
                "path's frames, checked against avro-c's\n");
}

/* Strip a trailing newline (and CR) in place; returns the new length. */
static size_t chomp(char *line, size_t n)
{
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
        return n;
}

static int hexval(int c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decode n hex digits into out (n/2 bytes). 0, or -1 for odd length or a
 * character that is not a hex digit. */
static int unhex(const char *s, size_t n, unsigned char *out)
{
        if (n % 2)
                return -1;
        for (size_t i = 0; i < n; i += 2) {
                int hi = hexval((unsigned char)s[i]);
                int lo = hexval((unsigned char)s[i + 1]);
                if (hi < 0 || lo < 0)
                        return -1;
                out[i / 2] = (unsigned char)(hi << 4 | lo);
        }
        return 0;
}

static int encode_line(relay_avro_writer_t *w, const char *line, size_t n,
                       size_t lineno)
{
        json_error_t jerr;
        char err[512];
        /* Duplicate keys would make "the sample" ambiguous: refuse them. */
        json_t *j = json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
        if (!j) {
                fprintf(stderr, "line %zu: not JSON: %s (column %d)\n", lineno,
                        jerr.text, jerr.column);
                return -1;
        }
        avro_value_t *v = relay_avro_writer_value(w);
        int rc = relay_avro_from_json(v, j, err, sizeof(err));
        json_decref(j);
        if (rc) {
                fprintf(stderr, "line %zu: does not fit the schema: %s\n",
                        lineno, err);
                return -1;
        }
        const void *buf;
        size_t len;
        if (relay_avro_writer_encode(w, &buf, &len, err, sizeof(err)) !=
            RELAY_OK) {
                fprintf(stderr, "line %zu: %s\n", lineno, err);
                return -1;
        }
        const unsigned char *p = buf;
        for (size_t i = 0; i < len; i++)
                printf("%02x", p[i]);
        putchar('\n');
        return 0;
}

static int decode_line(relay_avro_reader_t *r, const char *line, size_t n,
                       size_t lineno)
{
        char err[512];
        unsigned char *buf = relay_malloc(n / 2 + 1);
        int rc = -1;
        if (unhex(line, n, buf)) {
                fprintf(stderr, "line %zu: not pairs of hex digits\n", lineno);
                goto out;
        }
        avro_value_t *v;
        int32_t id;
        if (relay_avro_reader_decode(r, buf, n / 2, &v, &id, err,
                                     sizeof(err)) != RELAY_OK) {
                fprintf(stderr, "line %zu: bad frame: %s\n", lineno, err);
                goto out;
        }
        json_t *j = relay_avro_to_json(v);
        char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(j);
        if (!text) {
                fprintf(stderr,
                        "line %zu: schema id %d: decoded value cannot be "
                        "rendered as JSON\n",
                        lineno, (int)id);
                goto out;
        }
        puts(text);
        free(text);
        rc = 0;
out:
        free(buf);
        return rc;
}

/* The compiled path against avro-c on one frame. */
static int recode_line(relay_avro_reader_t *r, const char *line, size_t n,
                       size_t lineno)
{
        char err[512], gerr[512];
        unsigned char *buf = relay_malloc(n / 2 + 1);
        relay_buf_t out, ref;
        relay_buf_init(&out);
        relay_buf_init(&ref);
        int rc = -1;
        if (unhex(line, n, buf)) {
                fprintf(stderr, "line %zu: not pairs of hex digits\n", lineno);
                goto done;
        }
        const relay_slots_t *slots;
        avro_value_t *v;
        enum relay_result cr = relay_avro_reader_decode_slots(
            r, buf, n / 2, &slots, NULL, err, sizeof(err));
        enum relay_result gr = relay_avro_reader_decode(r, buf, n / 2, &v, NULL,
                                                        gerr, sizeof(gerr));
        if (cr != gr) {
                fprintf(stderr,
                        "line %zu: the compiled path %s (%s), avro-c %s "
                        "(%s)\n",
                        lineno, cr == RELAY_OK ? "reads it" : "refuses it",
                        cr == RELAY_OK ? "" : err,
                        gr == RELAY_OK ? "reads it" : "refuses it",
                        gr == RELAY_OK ? "" : gerr);
                goto done;
        }
        if (cr != RELAY_OK) {
                fprintf(stderr, "line %zu: bad frame: %s\n", lineno, err);
                goto done;
        }
        relay_buf_append(&out, buf, RELAY_AVRO_HEADER_LEN);
        if (relay_shape_encode(relay_avro_reader_shape(r), slots, &out, err,
                               sizeof(err))) {
                fprintf(stderr, "line %zu: compiled encode: %s\n", lineno, err);
                goto done;
        }
        size_t size;
        avro_value_sizeof(v, &size);
        relay_buf_reserve(&ref, size);
        avro_writer_t aw = avro_writer_memory(ref.data, (int64_t)size);
        int werr = avro_value_write(aw, v);
        avro_writer_free(aw);
        ref.len = size;
        if (werr) {
                fprintf(stderr, "line %zu: avro-c encode: %s\n", lineno,
                        avro_strerror());
                goto done;
        }
        const char *body = out.data + RELAY_AVRO_HEADER_LEN;
        size_t blen = out.len - RELAY_AVRO_HEADER_LEN;
        if (blen != ref.len || memcmp(body, ref.data, blen)) {
                size_t at = 0;
                while (at < blen && at < ref.len && body[at] == ref.data[at])
                        at++;
                fprintf(stderr,
                        "line %zu: the compiled path's Avro differs from "
                        "avro-c's at body byte %zu (%zu vs %zu bytes)\n",
                        lineno, at, blen, ref.len);
                goto done;
        }
        for (size_t i = 0; i < out.len; i++)
                printf("%02x", (unsigned char)out.data[i]);
        putchar('\n');
        rc = 0;
done:
        relay_buf_free(&out);
        relay_buf_free(&ref);
        free(buf);
        return rc;
}

int main(int argc, char **argv)
{
        enum mode mode;
        char err[512];
        if (argc != 4) {
                usage();
                return 2;
        }
        if (!strcmp(argv[1], "encode")) {
                mode = MODE_ENCODE;
        } else if (!strcmp(argv[1], "decode")) {
                mode = MODE_DECODE;
        } else if (!strcmp(argv[1], "recode")) {
                mode = MODE_RECODE;
        } else {
                usage();
                return 2;
        }

        relay_schemas_t *s = relay_schemas_load(argv[2], err, sizeof(err));
        if (!s) {
                fprintf(stderr, "avro_roundtrip: %s\n", err);
                return 2;
        }
        relay_avro_writer_t *w = NULL;
        relay_avro_reader_t *r = NULL;
        if (mode == MODE_ENCODE)
                w = relay_avro_writer_new(s, argv[3], err, sizeof(err));
        else
                r = relay_avro_reader_new(s, argv[3], 0, err, sizeof(err));
        if (!w && !r) {
                fprintf(stderr, "avro_roundtrip: %s\n", err);
                relay_schemas_destroy(s);
                return 2;
        }

        int status = 0;
        char *line = NULL;
        size_t cap = 0, lineno = 0;
        ssize_t got;
        while ((got = getline(&line, &cap, stdin)) >= 0) {
                lineno++;
                size_t n = chomp(line, (size_t)got);
                if (n == 0)
                        continue;
                if (mode == MODE_ENCODE   ? encode_line(w, line, n, lineno)
                    : mode == MODE_DECODE ? decode_line(r, line, n, lineno)
                                          : recode_line(r, line, n, lineno)) {
                        status = 1;
                        break;
                }
        }
        free(line);
        if (fflush(stdout) || ferror(stdout)) {
                fprintf(stderr, "avro_roundtrip: cannot write stdout\n");
                status = 1;
        }
        relay_avro_writer_destroy(w);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
        return status;
}
