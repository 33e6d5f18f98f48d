/*
 * avro_bench: throughput of relay's Avro path on one typical loyalty
 * record, the transform worker's per-record work without Kafka or mapping:
 * decode a Confluent-framed record with the subject's reader and encode it
 * back to framed bytes, twice over: "relay" is the workers' compiled path
 * (relay/codec.h: framing, schema id, a plan straight into slots, the
 * encoder from them), "relay-avro-c" the generic one it replaced (pre-scan,
 * avro-c read, a copy into a writer value, avro-c write). The same frame copied
 * with memcpy is timed in the same rounds as the ceiling ("how fast could a
 * byte shuffle be"). Python fastavro doing the same work is
 * tests/bench/fastavro_bench.py; tests/bench/run.sh runs both interleaved and
 * prints the ratios.
 *
 *   avro_bench [--records N] [--rounds R] [--manifest PATH]
 *              [--frame-out FILE]
 *
 * Prints one JSON line per measurement ("round" 1..R) and, when R > 1, one
 * per bench with the median ("round": "median"). Timings are printed, never
 * judged. Exits 1 when the program cannot set up or when the record does
 * not survive decode → encode byte for byte, so that what is timed is
 * correct work; 2 on bad arguments.
 */
#include "relay/avro.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SUBJECT "loyalty.events-value"

/* A checkout as Antavo sends it (the shape tests/integration/gen_events.py
 * makes, filled out): 10 payload fields covering every branch of the data
 * union (string, long, double, boolean, null) and 3 identities. */
static const char typical_event[] =
    "{\"event_id\": \"0b7f6c1e-4a2d-5c3b-9e8f-1a2b3c4d5e6f\","
    " \"occurred_at\": 1764000000123,"
    " \"tenant\": \"acme\", \"source\": \"antavo\","
    " \"event_type\": \"checkout\","
    " \"identities\": {"
    "   \"customer_id\": \"bench-cust-7\","
    "   \"email\": \"bench-42@example.com\","
    "   \"email_sha256\": \"8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac"
    "88b59b2dc327aa4\"},"
    " \"data\": {"
    "   \"first_name\": \"Name42\", \"points_balance\": \"420\","
    "   \"tier\": \"silver\", \"transaction_id\": \"tx-bench-42\","
    "   \"total\": 42.5, \"points\": 42, \"currency\": \"GBP\","
    "   \"store_id\": \"store-0117\", \"marketing_opt_in\": true,"
    "   \"coupon_code\": null}}";

struct bench {
        relay_avro_reader_t *reader;
        relay_avro_writer_t *writer;
        relay_buf_t out;      /* the compiled path's frame */
        json_t *event;        /* typical_event, parsed */
        unsigned char *frame; /* its framed record, read by every iteration */
        size_t frame_len;
};

/* Wall-clock seconds, or with cpu the seconds of CPU this process used: on
 * a shared machine CPU time shows the work without the waits for a core. */
static double now_s(int cpu)
{
        struct timespec ts;
        clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What one timed loop took. */
struct timing {
        double wall, cpu;
};

static struct timing timing_start(void)
{
        struct timing t = {now_s(0), now_s(1)};
        return t;
}

static struct timing timing_since(struct timing t0)
{
        struct timing t = {now_s(0) - t0.wall, now_s(1) - t0.cpu};
        return t;
}

/* One decode → copy → encode of b->frame on avro-c's generic values. On
 * success *out and *out_len are the writer's bytes (valid until the next
 * call). */
static enum relay_result roundtrip_avro_c(struct bench *b, const void **out,
                                          size_t *out_len, char *errstr,
                                          size_t errstr_size)
{
        avro_value_t *in;
        enum relay_result rc = relay_avro_reader_decode(
            b->reader, b->frame, b->frame_len, &in, NULL, errstr, errstr_size);
        if (rc != RELAY_OK)
                return rc;
        /* Reader and writer values are both of the subject's newest schema,
         * so the unchecked copy is the right one. */
        if (avro_value_copy_fast(relay_avro_writer_value(b->writer), in)) {
                relay_seterr(errstr, errstr_size, "copy: %s", avro_strerror());
                return RELAY_FATAL;
        }
        return relay_avro_writer_encode(b->writer, out, out_len, errstr,
                                        errstr_size);
}

/* The same through the compiled path: slots in, the same slots out (the
 * reader's and writer's schema are the same). */
static enum relay_result roundtrip_compiled(struct bench *b, const void **out,
                                            size_t *out_len, char *errstr,
                                            size_t errstr_size)
{
        const relay_slots_t *in;
        enum relay_result rc = relay_avro_reader_decode_slots(
            b->reader, b->frame, b->frame_len, &in, NULL, errstr, errstr_size);
        if (rc != RELAY_OK)
                return rc;
        relay_buf_reset(&b->out);
        relay_buf_append(&b->out, b->frame, RELAY_AVRO_HEADER_LEN);
        if (relay_shape_encode(relay_avro_reader_shape(b->reader), in, &b->out,
                               errstr, errstr_size))
                return RELAY_FATAL;
        *out = b->out.data;
        *out_len = b->out.len;
        return RELAY_OK;
}

typedef enum relay_result (*roundtrip_fn)(struct bench *, const void **,
                                          size_t *, char *, size_t);

/* Build the typical record's frame with the writer. 0, or -1 with errstr. */
static int make_frame(struct bench *b, char *errstr, size_t errstr_size)
{
        json_error_t jerr;
        const void *buf;
        size_t len;
        if (!(b->event = json_loads(typical_event, 0, &jerr))) {
                relay_seterr(errstr, errstr_size, "event JSON: %s", jerr.text);
                return -1;
        }
        if (relay_avro_from_json(relay_avro_writer_value(b->writer), b->event,
                                 errstr, errstr_size) ||
            relay_avro_writer_encode(b->writer, &buf, &len, errstr,
                                     errstr_size) != RELAY_OK)
                return -1;
        b->frame = relay_malloc(len);
        memcpy(b->frame, buf, len);
        b->frame_len = len;
        return 0;
}

/* Check that the timed loop does correct work: the frame decodes to the
 * event it was made from, and encode(decode(frame)) gives back the frame
 * byte for byte. 0, or -1 with the reason. */
static int verify(struct bench *b, char *errstr, size_t errstr_size)
{
        avro_value_t *in;
        const void *out;
        size_t len;
        if (relay_avro_reader_decode(b->reader, b->frame, b->frame_len, &in,
                                     NULL, errstr, errstr_size) != RELAY_OK)
                return -1;
        json_t *back = relay_avro_to_json(in);
        int same = json_equal(back, b->event);
        json_decref(back);
        if (!same) {
                relay_seterr(errstr, errstr_size,
                             "the frame does not decode to the event it was "
                             "made from");
                return -1;
        }
        roundtrip_fn fns[] = {roundtrip_compiled, roundtrip_avro_c};
        for (int k = 0; k < 2; k++) {
                if (fns[k](b, &out, &len, errstr, errstr_size) != RELAY_OK)
                        return -1;
                if (len != b->frame_len || memcmp(out, b->frame, len)) {
                        relay_seterr(errstr, errstr_size,
                                     "decode -> encode (%s) changed the "
                                     "record: %zu bytes in, %zu bytes out",
                                     k ? "avro-c" : "compiled", b->frame_len,
                                     len);
                        return -1;
                }
        }
        return 0;
}

/* Time n round trips into *t. 0, or -1 on the first failure (errstr). */
static int time_relay(struct bench *b, roundtrip_fn roundtrip, long n,
                      struct timing *t, char *errstr, size_t errstr_size)
{
        const void *out;
        size_t len, total = 0;
        struct timing t0 = timing_start();
        for (long i = 0; i < n; i++) {
                if (roundtrip(b, &out, &len, errstr, errstr_size) != RELAY_OK)
                        return -1;
                total += len;
        }
        *t = timing_since(t0);
        if (total != (size_t)n * b->frame_len) {
                relay_seterr(errstr, errstr_size,
                             "encoded %zu bytes, expected %zu", total,
                             (size_t)n * b->frame_len);
                return -1;
        }
        return 0;
}

/* Time n copies of the frame into one buffer. The empty asm with a memory
 * clobber tells the compiler the buffer is read after every copy, so it
 * can neither drop the copies nor merge them into one. */
static struct timing time_memcpy(const struct bench *b, long n,
                                 unsigned char *dst)
{
        struct timing t0 = timing_start();
        for (long i = 0; i < n; i++) {
                memcpy(dst, b->frame, b->frame_len);
                __asm__ __volatile__("" : : "r"(dst) : "memory");
        }
        return timing_since(t0);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

/* The median of the rounds' wall and CPU times, each on its own. */
static struct timing median(const struct timing *v, int n)
{
        double *w = relay_malloc(2 * (size_t)n * sizeof(*w)), *c = w + n;
        for (int i = 0; i < n; i++) {
                w[i] = v[i].wall;
                c[i] = v[i].cpu;
        }
        qsort(w, (size_t)n, sizeof(*w), cmp_double);
        qsort(c, (size_t)n, sizeof(*c), cmp_double);
        struct timing m = {n % 2 ? w[n / 2] : (w[n / 2 - 1] + w[n / 2]) / 2,
                           n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2};
        free(w);
        return m;
}

static void print_line(const char *bench, int round, long n, size_t frame_len,
                       struct timing t)
{
        double seconds = t.wall;
        char r[16];
        if (round > 0)
                snprintf(r, sizeof(r), "%d", round);
        else
                snprintf(r, sizeof(r), "\"median\"");
        double per_s = seconds > 0 ? (double)n / seconds : 0;
        printf("{\"bench\": \"%s\", \"round\": %s, \"records\": %ld, "
               "\"frame_bytes\": %zu, \"seconds\": %.6f, "
               "\"cpu_seconds\": %.6f, "
               "\"records_per_s\": %.0f, \"mb_per_s\": %.2f, "
               "\"ns_per_record\": %.1f}\n",
               bench, r, n, frame_len, seconds, t.cpu, per_s,
               per_s * (double)frame_len / 1e6,
               n > 0 ? seconds * 1e9 / (double)n : 0);
        fflush(stdout);
}

static int write_frame(const struct bench *b, const char *path)
{
        FILE *fp = fopen(path, "wb");
        if (!fp) {
                perror(path);
                return -1;
        }
        size_t w = fwrite(b->frame, 1, b->frame_len, fp);
        if (fclose(fp) != 0 || w != b->frame_len) {
                fprintf(stderr, "avro_bench: %s: write failed\n", path);
                return -1;
        }
        return 0;
}

static void usage(void)
{
        fprintf(stderr,
                "usage: avro_bench [--records N] [--rounds R] "
                "[--manifest PATH] [--frame-out FILE]\n"
                "  --records N      round trips per round (default 200000)\n"
                "  --rounds R       rounds, each timing relay then memcpy "
                "(default 5)\n"
                "  --manifest PATH  schema manifest (default "
                "$RELAY_SOURCE_DIR/schemas/manifest.cfg)\n"
                "  --frame-out FILE write the framed record there\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
            {"records", required_argument, NULL, 'n'},
            {"rounds", required_argument, NULL, 'r'},
            {"manifest", required_argument, NULL, 'm'},
            {"frame-out", required_argument, NULL, 'o'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
        long records = 200000;
        int rounds = 5, opt;
        const char *manifest = NULL, *frame_out = NULL;
        char defmanifest[1024], errstr[512];

        while ((opt = getopt_long(argc, argv, "n:r:m:o:h", opts, NULL)) != -1) {
                switch (opt) {
                case 'n':
                        records = atol(optarg);
                        break;
                case 'r':
                        rounds = atoi(optarg);
                        break;
                case 'm':
                        manifest = optarg;
                        break;
                case 'o':
                        frame_out = optarg;
                        break;
                default:
                        usage();
                        return opt == 'h' ? 0 : 2;
                }
        }
        if (optind != argc || records < 1 || rounds < 1 || rounds > 1000) {
                usage();
                return 2;
        }
        if (!manifest) {
                const char *src = getenv("RELAY_SOURCE_DIR");
                snprintf(defmanifest, sizeof(defmanifest),
                         "%s/schemas/manifest.cfg", src ? src : ".");
                manifest = defmanifest;
        }

        int rc = 1;
        struct bench b = {0};
        struct timing warm_t;
        struct timing *t_relay = relay_calloc((size_t)rounds, sizeof(*t_relay));
        struct timing *t_avroc = relay_calloc((size_t)rounds, sizeof(*t_avroc));
        struct timing *t_memcpy =
            relay_calloc((size_t)rounds, sizeof(*t_memcpy));
        unsigned char *dst = NULL;
        relay_schemas_t *schemas =
            relay_schemas_load(manifest, errstr, sizeof(errstr));
        if (!schemas ||
            !(b.reader = relay_avro_reader_new(schemas, SUBJECT, 0, errstr,
                                               sizeof(errstr))) ||
            !(b.writer = relay_avro_writer_new(schemas, SUBJECT, errstr,
                                               sizeof(errstr))) ||
            make_frame(&b, errstr, sizeof(errstr)) ||
            verify(&b, errstr, sizeof(errstr))) {
                fprintf(stderr, "avro_bench: %s\n", errstr);
                goto done;
        }
        if (frame_out && write_frame(&b, frame_out))
                goto done;
        printf("{\"bench\": \"frame\", \"frame_bytes\": %zu, "
               "\"roundtrip\": \"identical\"}\n",
               b.frame_len);
        dst = relay_malloc(b.frame_len);

        /* Warm caches, the allocator and branch predictors before timing. */
        long warm = records / 10 > 1000 ? records / 10 : 1000;
        if (time_relay(&b, roundtrip_compiled, warm, &warm_t, errstr,
                       sizeof(errstr)) ||
            time_relay(&b, roundtrip_avro_c, warm, &warm_t, errstr,
                       sizeof(errstr))) {
                fprintf(stderr, "avro_bench: %s\n", errstr);
                goto done;
        }
        time_memcpy(&b, warm, dst);

        for (int r = 0; r < rounds; r++) {
                if (time_relay(&b, roundtrip_compiled, records, &t_relay[r],
                               errstr, sizeof(errstr)) ||
                    time_relay(&b, roundtrip_avro_c, records, &t_avroc[r],
                               errstr, sizeof(errstr))) {
                        fprintf(stderr, "avro_bench: %s\n", errstr);
                        goto done;
                }
                print_line("relay", r + 1, records, b.frame_len, t_relay[r]);
                print_line("relay-avro-c", r + 1, records, b.frame_len,
                           t_avroc[r]);
                t_memcpy[r] = time_memcpy(&b, records, dst);
                print_line("memcpy", r + 1, records, b.frame_len, t_memcpy[r]);
        }
        if (rounds > 1) {
                print_line("relay", 0, records, b.frame_len,
                           median(t_relay, rounds));
                print_line("relay-avro-c", 0, records, b.frame_len,
                           median(t_avroc, rounds));
                print_line("memcpy", 0, records, b.frame_len,
                           median(t_memcpy, rounds));
        }
        rc = 0;
done:
        free(dst);
        free(t_relay);
        free(t_avroc);
        free(t_memcpy);
        relay_buf_free(&b.out);
        free(b.frame);
        json_decref(b.event);
        relay_avro_writer_destroy(b.writer);
        relay_avro_reader_destroy(b.reader);
        relay_schemas_destroy(schemas);
        return rc;
}
