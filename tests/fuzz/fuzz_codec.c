/*
 * Differential fuzz target of the compiled codec (relay/codec.h): every
 * input is a framed record whose schema id picks the subject; it is
 * decoded by the compiled path (relay_avro_reader_decode_slots) and by
 * avro-c's (relay_avro_reader_decode, behind the pre-scan). Both must
 * accept it or both refuse it, and when they accept it the compiled
 * encoder must write byte for byte what avro-c writes of its value; and a
 * reader that reads only the first field (skipping the rest, as transform
 * skips fields no connection reads) must accept and refuse the same. Any
 * difference aborts, naming it: that is the finding.
 */
#include "fuzz_catalogue.h"
#include "relay/codec.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SUBJECTS 32

static relay_schemas_t *schemas;
static relay_avro_reader_t *readers[MAX_SUBJECTS];
static relay_avro_reader_t *projected[MAX_SUBJECTS];
static const char *firsts[MAX_SUBJECTS][2];
static const char *subjects[MAX_SUBJECTS];
static size_t nsubjects;
static relay_buf_t a, b;

static void fini(void)
{
        for (size_t i = 0; i < nsubjects; i++) {
                relay_avro_reader_destroy(readers[i]);
                relay_avro_reader_destroy(projected[i]);
        }
        relay_schemas_destroy(schemas);
        relay_buf_free(&a);
        relay_buf_free(&b);
}

static void init(void)
{
        char errstr[512];
        relay_avro_reader_t *first;
        atexit(fini);
        schemas = fuzz_catalogue("fuzz_codec", "loyalty.events-value", &first);
        relay_avro_reader_destroy(first);
        nsubjects =
            relay_schemas_local_subjects(schemas, subjects, MAX_SUBJECTS);
        for (size_t i = 0; i < nsubjects; i++) {
                if (!(readers[i] = relay_avro_reader_new(
                          schemas, subjects[i], FUZZ_MAX_RECORD, errstr,
                          sizeof(errstr))) ||
                    !(projected[i] = relay_avro_reader_new(
                          schemas, subjects[i], FUZZ_MAX_RECORD, errstr,
                          sizeof(errstr)))) {
                        fprintf(stderr, "fuzz_codec: %s\n", errstr);
                        abort();
                }
                firsts[i][0] = avro_schema_record_field_name(
                    relay_schemas_local(schemas, subjects[i]), 0);
                relay_avro_reader_want(projected[i], firsts[i]);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char cerr[512], gerr[512];
        int32_t id;
        if (!schemas)
                init();
        if (relay_avro_frame_parse(data, size, &id, cerr, sizeof(cerr)))
                return 0;
        relay_avro_reader_t *r = NULL, *pr = NULL;
        for (size_t i = 0; i < nsubjects && !r; i++)
                if (relay_schemas_in_subject(schemas, id, subjects[i])) {
                        r = readers[i];
                        pr = projected[i];
                }
        if (!r)
                return 0;
        const relay_slots_t *slots;
        avro_value_t *v;
        enum relay_result cr = relay_avro_reader_decode_slots(
            r, data, size, &slots, NULL, cerr, sizeof(cerr));
        enum relay_result gr = relay_avro_reader_decode(r, data, size, &v, NULL,
                                                        gerr, sizeof(gerr));
        if ((cr == RELAY_OK) != (gr == RELAY_OK)) {
                fprintf(stderr,
                        "fuzz_codec: schema id %d: compiled %s (%s), avro-c "
                        "%s (%s)\n",
                        (int)id, cr == RELAY_OK ? "accepts" : "refuses",
                        cr == RELAY_OK ? "-" : cerr,
                        gr == RELAY_OK ? "accepts" : "refuses",
                        gr == RELAY_OK ? "-" : gerr);
                abort();
        }
        enum relay_result prr = relay_avro_reader_decode_slots(
            pr, data, size, &slots, NULL, cerr, sizeof(cerr));
        if ((prr == RELAY_OK) != (cr == RELAY_OK)) {
                fprintf(stderr,
                        "fuzz_codec: schema id %d: reading one field %s it, "
                        "reading all %s it\n",
                        (int)id, prr == RELAY_OK ? "accepts" : "refuses",
                        cr == RELAY_OK ? "accepts" : "refuses");
                abort();
        }
        if (cr != RELAY_OK)
                return 0;
        relay_avro_reader_decode_slots(r, data, size, &slots, NULL, cerr,
                                       sizeof(cerr));
        relay_buf_reset(&a);
        relay_buf_reset(&b);
        if (relay_shape_encode(relay_avro_reader_shape(r), slots, &a, cerr,
                               sizeof(cerr))) {
                fprintf(stderr, "fuzz_codec: compiled encode: %s\n", cerr);
                abort();
        }
        size_t n;
        if (avro_value_sizeof(v, &n)) {
                fprintf(stderr, "fuzz_codec: avro-c sizeof: %s\n",
                        avro_strerror());
                abort();
        }
        relay_buf_reserve(&b, n);
        avro_writer_t w = avro_writer_memory(b.data, (int64_t)n);
        int rc = avro_value_write(w, v);
        avro_writer_free(w);
        b.len = n;
        if (rc || a.len != b.len || memcmp(a.data, b.data, a.len)) {
                size_t at = 0;
                while (at < a.len && at < b.len && a.data[at] == b.data[at])
                        at++;
                fprintf(stderr,
                        "fuzz_codec: schema id %d: the compiled encoding "
                        "differs from avro-c's at byte %zu (%zu vs %zu "
                        "bytes)\n",
                        (int)id, at, a.len, b.len);
                abort();
        }
        return 0;
}
