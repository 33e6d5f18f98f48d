/*
 * Unit tests for the Avro layer: the schema catalogue read from a manifest,
 * the Confluent framing, readers that refuse bad records with a reason a
 * person can act on, schema resolution between versions of a subject, and
 * the natural-JSON and path/text conversions the mapping engine relies on.
 * Catalogues other than the repository's are written into a temporary
 * directory, with schema files derived from schemas/loyalty.events.avsc.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include "relay/avro.h"
#include "relay/common.h"

#include <avro.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every decode of these tests goes through both paths: the compiled one
 * (relay_avro_reader_decode_slots) must accept and refuse what avro-c's
 * does, and re-encode what it accepts byte for byte as avro-c writes the
 * value. So each case below (evolution, bad input) holds for both. */
static enum relay_result decode_both(relay_avro_reader_t *r, const void *buf,
                                     size_t len, avro_value_t **v, int32_t *wid,
                                     char *e, size_t es)
{
        char cerr[1024];
        const relay_slots_t *slots;
        enum relay_result cr = relay_avro_reader_decode_slots(
            r, buf, len, &slots, NULL, cerr, sizeof(cerr));
        enum relay_result gr =
            relay_avro_reader_decode(r, buf, len, v, wid, e, es);
        if (cr != gr)
                fail_msg("compiled path %d (%s), avro-c %d (%s)", cr,
                         cr == RELAY_OK ? "" : cerr, gr,
                         gr == RELAY_OK ? "" : e);
        if (gr != RELAY_OK)
                return gr;
        relay_buf_t a, b;
        relay_buf_init(&a);
        relay_buf_init(&b);
        if (relay_shape_encode(relay_avro_reader_shape(r), slots, &a, cerr,
                               sizeof(cerr)))
                fail_msg("compiled encode: %s", cerr);
        size_t n;
        assert_int_equal(avro_value_sizeof(*v, &n), 0);
        relay_buf_reserve(&b, n);
        avro_writer_t w = avro_writer_memory(b.data, (int64_t)n);
        assert_int_equal(avro_value_write(w, *v), 0);
        avro_writer_free(w);
        assert_int_equal(a.len, n);
        assert_memory_equal(a.data, b.data, n);
        relay_buf_free(&a);
        relay_buf_free(&b);
        return gr;
}
#define relay_avro_reader_decode decode_both

#define LOYALTY  "loyalty.events-value"
#define OUTBOUND "out.mparticle-value"

static char srcdir[1024];
static char manifest[1200]; /* the repository's schemas/manifest.cfg */
static char err[1024];

/* One loyalty event using every branch of the data map's union (null,
 * boolean, long, double, string) and a key with a dot in it, as sources
 * send flattened nested fields. JSON texts in this file use ' for " . */
static const char *const sample =
    "{'event_id': '6f1c2d3e-0000-4000-8000-000000000001',"
    " 'occurred_at': 1700000000123, 'tenant': 'acme', 'source': 'antavo',"
    " 'event_type': 'coupon_issued',"
    " 'identities': {'customer_id': 'c-1', 'email': 'ada@example.com'},"
    " 'data': {'coupon_code': 'WELCOME10', 'opted_in': true,"
    " 'unsubscribed': false, 'points': 250, 'big': -9007199254740993,"
    " 'total': 19.99, 'sum': 0.30000000000000004, 'note': null,"
    " 'address.city': 'Paris'}}";

/* err must start with "<file>:<line>: ". */
static void assert_at(const char *file, int line)
{
        char want[1200];
        snprintf(want, sizeof(want), "%s:%d: ", file, line);
        if (strncmp(err, want, strlen(want)))
                fail_msg("\"%s\"\n  does not start with \"%s\"", err, want);
}

static void fill(avro_value_t *v, const char *text)
{
        json_t *j = js(text);
        err[0] = '\0';
        if (relay_avro_from_json(v, j, err, sizeof(err)))
                fail_msg("relay_avro_from_json: %s", err);
        json_decref(j);
}

/* from_json must fail; err holds the reason. */
static void fill_fails(avro_value_t *v, const char *text)
{
        json_t *j = js(text);
        err[0] = '\0';
        assert_int_equal(relay_avro_from_json(v, j, err, sizeof(err)), -1);
        json_decref(j);
}

static void assert_json_is(const avro_value_t *v, const char *text)
{
        assert_json_text(relay_avro_to_json(v), text);
}

/* The repository's loyalty schema as JSON, with an optional extra field
 * appended (v2 adds "channel", an incompatible v3 a required field). */
static char *loyalty_schema(const char *extra_field)
{
        char path[1200];
        snprintf(path, sizeof(path), "%s/schemas/loyalty.events.avsc", srcdir);
        json_error_t jerr;
        json_t *s = json_load_file(path, 0, &jerr);
        if (!s)
                fail_msg("%s: %s", path, jerr.text);
        if (extra_field)
                json_array_append_new(json_object_get(s, "fields"),
                                      js(extra_field));
        char *text = json_dumps(s, JSON_INDENT(2));
        json_decref(s);
        return text;
}

static int group_setup(void **state)
{
        const char *src = getenv("RELAY_SOURCE_DIR");
        snprintf(srcdir, sizeof(srcdir), "%s", src ? src : ".");
        snprintf(manifest, sizeof(manifest), "%s/schemas/manifest.cfg", srcdir);
        if (unit_tmpdir_make("avro"))
                return -1;
        char *v1 = loyalty_schema(NULL);
        char *v2 = loyalty_schema(
            "{'name': 'channel', 'type': ['null', 'string'], 'default': null}");
        char *v3 = loyalty_schema("{'name': 'region', 'type': 'string'}");
        write_file("v1.avsc", v1);
        write_file("v2.avsc", v2);
        write_file("v3.avsc", v3);
        free(v1);
        free(v2);
        free(v3);
        return 0;
}

static int group_teardown(void **state)
{
        return unit_tmpdir_remove();
}

static relay_schemas_t *load_repo(void)
{
        relay_schemas_t *s = relay_schemas_load(manifest, err, sizeof(err));
        if (!s)
                fail_msg("%s", err);
        return s;
}

/* Load a manifest written into tmpdir (schema files v1/v2/v3.avsc). */
static relay_schemas_t *load_tmp(const char *name, const char *text)
{
        const char *path = write_file(name, text);
        err[0] = '\0';
        relay_schemas_t *s = relay_schemas_load(path, err, sizeof(err));
        if (!s)
                fail_msg("%s", err);
        return s;
}

/* ---- catalogue ---- */

static void test_catalogue_repo(void **state)
{
        relay_schemas_t *s = load_repo();
        assert_int_equal(relay_schemas_latest(s, LOYALTY), 1);
        assert_int_equal(relay_schemas_latest(s, OUTBOUND), 101);
        assert_int_equal(relay_schemas_latest(s, "loyalty.events"), -1);
        assert_int_equal(relay_schemas_latest(s, "nosuch-value"), -1);

        assert_true(relay_schemas_in_subject(s, 1, LOYALTY));
        assert_true(relay_schemas_in_subject(s, 100, OUTBOUND));
        assert_true(relay_schemas_in_subject(s, 101, OUTBOUND));
        assert_false(relay_schemas_in_subject(s, 1, OUTBOUND));
        assert_false(relay_schemas_in_subject(s, 100, LOYALTY));
        assert_false(relay_schemas_in_subject(s, 7, LOYALTY));

        avro_schema_t ls = relay_schemas_get(s, 1);
        assert_non_null(ls);
        assert_int_equal(avro_typeof(ls), AVRO_RECORD);
        assert_string_equal(avro_schema_name(ls), "LoyaltyEvent");
        assert_int_equal(avro_schema_record_size(ls), 7);
        assert_string_equal(avro_schema_name(relay_schemas_get(s, 100)),
                            "Outbound");
        assert_null(relay_schemas_get(s, 2));
        assert_null(relay_schemas_get(s, -1));
        relay_schemas_destroy(s);
        relay_schemas_destroy(NULL);
}

static void test_catalogue_versions(void **state)
{
        /* Newest by version, not by id or position; a subject list puts one
         * schema in several subjects. */
        relay_schemas_t *s = load_tmp(
            "versions.cfg",
            "schemas = (\n"
            "  { id = 7; version = 3; subject = \"" LOYALTY "\"; file = "
            "\"v2.avsc\"; },\n"
            "  { id = 9; version = 1; subject = \"" LOYALTY "\"; file = "
            "\"v1.avsc\"; },\n"
            "  { id = 8; version = 2; subject = [ \"" LOYALTY "\", "
            "\"copy-value\" ]; file = \"v1.avsc\"; }\n"
            ");\n");
        assert_int_equal(relay_schemas_latest(s, LOYALTY), 7);
        assert_int_equal(relay_schemas_latest(s, "copy-value"), 8);
        assert_true(relay_schemas_in_subject(s, 8, "copy-value"));
        assert_true(relay_schemas_in_subject(s, 8, LOYALTY));
        assert_false(relay_schemas_in_subject(s, 9, "copy-value"));
        assert_int_equal(avro_schema_record_size(relay_schemas_get(s, 7)), 8);
        relay_schemas_destroy(s);
}

/* Each bad manifest fails naming the manifest, the entry's line and what
 * is wrong. */
static void bad_manifest(const char *name, const char *text, int line,
                         const char *what)
{
        const char *path = write_file(name, text);
        err[0] = '\0';
        assert_null(relay_schemas_load(path, err, sizeof(err)));
        assert_at(path, line);
        assert_contains(err, what);
}

static void test_catalogue_bad_entries(void **state)
{
        write_file("broken.avsc", "{ \"type\": \"record\", \"name\": ");
        write_file("notaschema.avsc", "{ \"type\": \"nosuchtype\" }");
        const char *ok = "  { id = 1; subject = \"" LOYALTY "\"; file = "
                         "\"v1.avsc\"; },\n";
        char text[1024];

        snprintf(text, sizeof(text),
                 "schemas = (\n%s"
                 "  { id = 2; subject = \"" LOYALTY "\"; file = "
                 "\"nosuch.avsc\"; }\n);\n",
                 ok);
        bad_manifest("missing-file.cfg", text, 3, "nosuch.avsc");
        assert_contains(err, "No such file");

        snprintf(text, sizeof(text),
                 "schemas = (\n%s\n"
                 "  { id = 2; subject = \"" LOYALTY "\"; file = "
                 "\"broken.avsc\"; }\n);\n",
                 ok);
        bad_manifest("broken-json.cfg", text, 4,
                     "broken.avsc is not a valid "
                     "Avro schema");

        snprintf(text, sizeof(text),
                 "schemas = (\n%s"
                 "  { id = 2; subject = \"" LOYALTY "\"; file = "
                 "\"notaschema.avsc\"; }\n);\n",
                 ok);
        bad_manifest("bad-schema.cfg", text, 3,
                     "notaschema.avsc is not a "
                     "valid Avro schema");

        snprintf(text, sizeof(text),
                 "schemas = (\n%s"
                 "  { id = 1; subject = \"other-value\"; file = "
                 "\"v2.avsc\"; }\n);\n",
                 ok);
        bad_manifest("dup.cfg", text, 3, "schema id 1 declared twice");

        bad_manifest("nosubject.cfg",
                     "schemas = (\n\n  { id = 4; file = \"v1.avsc\"; }\n);\n",
                     3, "schema id 4 needs a 'subject'");
        bad_manifest("badsubject.cfg",
                     "schemas = (\n  { id = 4; subject = [ 5 ]; file = "
                     "\"v1.avsc\"; }\n);\n",
                     2, "'subject' must list strings");
        bad_manifest("noid.cfg",
                     "schemas = (\n  { subject = \"a\"; file = \"v1.avsc\"; "
                     "}\n);\n",
                     2, "needs a non-negative integer 'id'");
        bad_manifest("nofile.cfg",
                     "schemas = (\n  { id = 3; subject = \"a\"; }\n);\n", 2,
                     "schema id 3 needs a 'file'");
        bad_manifest("syntax.cfg",
                     "schemas = (\n  { id = 3; subject = \"a\"; file = ; }\n"
                     ");\n",
                     2, "syntax error");

        const char *path = write_file("nolist.cfg", "schema = ();\n");
        assert_null(relay_schemas_load(path, err, sizeof(err)));
        assert_contains(err, path);
        assert_contains(err, "needs a list 'schemas");

        char missing[600];
        snprintf(missing, sizeof(missing), "%s/nosuch.cfg", tmpdir);
        assert_null(relay_schemas_load(missing, err, sizeof(err)));
        assert_contains(err, missing);
}

/* ---- framing and round trip ---- */

static void test_frame_parse(void **state)
{
        int32_t id = 0;
        const unsigned char be[] = {0, 0x01, 0x02, 0x03, 0x04, 0xAA};
        assert_int_equal(
            relay_avro_frame_parse(be, sizeof(be), &id, err, sizeof(err)), 0);
        assert_int_equal(id, 0x01020304);
        const unsigned char hi[] = {0, 0xFF, 0xFF, 0xFF, 0xFE};
        assert_int_equal(
            relay_avro_frame_parse(hi, sizeof(hi), &id, err, sizeof(err)), 0);
        assert_int_equal(id, -2);
        assert_int_equal(relay_avro_frame_parse(be, 4, &id, err, sizeof(err)),
                         -1);
        assert_contains(err, "record of 4 bytes is shorter than the 5-byte");
        const unsigned char magic[] = {0x7B, 0, 0, 0, 1};
        assert_int_equal(
            relay_avro_frame_parse(magic, sizeof(magic), &id, err, sizeof(err)),
            -1);
        assert_contains(err, "wrong magic byte 0x7b");
}

static void test_round_trip(void **state)
{
        relay_schemas_t *s = load_repo();
        relay_avro_writer_t *w =
            relay_avro_writer_new(s, LOYALTY, err, sizeof(err));
        relay_avro_reader_t *r =
            relay_avro_reader_new(s, LOYALTY, 0, err, sizeof(err));
        assert_non_null(w);
        assert_non_null(r);
        fill(relay_avro_writer_value(w), sample);
        const void *buf;
        size_t len;
        assert_int_equal(
            relay_avro_writer_encode(w, &buf, &len, err, sizeof(err)),
            RELAY_OK);
        const unsigned char hdr[] = {0, 0, 0, 0, 1};
        assert_true(len > sizeof(hdr));
        assert_memory_equal(buf, hdr, sizeof(hdr));

        avro_value_t *v = NULL;
        int32_t wid = -1;
        assert_int_equal(
            relay_avro_reader_decode(r, buf, len, &v, &wid, err, sizeof(err)),
            RELAY_OK);
        assert_int_equal(wid, 1);
        assert_json_is(v, sample);

        /* Every branch of the data union came through as its own type. */
        static const struct {
                const char *key;
                int branch;
                avro_type_t type;
        } want[] = {{"note", 0, AVRO_NULL},
                    {"opted_in", 1, AVRO_BOOLEAN},
                    {"unsubscribed", 1, AVRO_BOOLEAN},
                    {"points", 2, AVRO_INT64},
                    {"big", 2, AVRO_INT64},
                    {"total", 3, AVRO_DOUBLE},
                    {"coupon_code", 4, AVRO_STRING}};
        avro_value_t data, u, b;
        assert_int_equal(avro_value_get_by_name(v, "data", &data, NULL), 0);
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
                int d = -1;
                assert_int_equal(
                    avro_value_get_by_name(&data, want[i].key, &u, NULL), 0);
                assert_int_equal(avro_value_get_discriminant(&u, &d), 0);
                assert_int_equal(d, want[i].branch);
                assert_int_equal(avro_value_get_current_branch(&u, &b), 0);
                assert_int_equal(avro_value_get_type(&b), want[i].type);
        }
        int64_t l = 0;
        double dv = 0;
        int bo = 0;
        assert_int_equal(avro_value_get_by_name(&data, "big", &u, NULL), 0);
        avro_value_get_current_branch(&u, &b);
        avro_value_get_long(&b, &l);
        assert_true(l == -9007199254740993LL);
        avro_value_get_by_name(&data, "total", &u, NULL);
        avro_value_get_current_branch(&u, &b);
        avro_value_get_double(&b, &dv);
        assert_true(dv == 19.99);
        avro_value_get_by_name(&data, "opted_in", &u, NULL);
        avro_value_get_current_branch(&u, &b);
        avro_value_get_boolean(&b, &bo);
        assert_int_equal(bo, 1);

        /* The next record replaces the last one entirely: no map keys or
         * values left over from it. */
        const char *small =
            "{'event_id': 'e2', 'occurred_at': 1, 'tenant': 't', "
            "'source': 's', 'event_type': 'x', 'identities': {}, "
            "'data': {'points': -1}}";
        fill(relay_avro_writer_value(w), small);
        assert_int_equal(
            relay_avro_writer_encode(w, &buf, &len, err, sizeof(err)),
            RELAY_OK);
        assert_int_equal(
            relay_avro_reader_decode(r, buf, len, &v, &wid, err, sizeof(err)),
            RELAY_OK);
        assert_json_is(v, small);

        relay_avro_reader_destroy(r);
        relay_avro_writer_destroy(w);
        relay_schemas_destroy(s);
}

/* The id goes out big-endian: 0x01020304 as 01 02 03 04. */
static void test_writer_id_big_endian(void **state)
{
        relay_schemas_t *s = load_tmp(
            "bigid.cfg", "schemas = ( { id = 16909060; subject = \"" LOYALTY
                         "\"; file = \"v1.avsc\"; } );\n");
        relay_avro_writer_t *w =
            relay_avro_writer_new(s, LOYALTY, err, sizeof(err));
        relay_avro_reader_t *r =
            relay_avro_reader_new(s, LOYALTY, 0, err, sizeof(err));
        fill(relay_avro_writer_value(w), sample);
        const void *buf;
        size_t len;
        assert_int_equal(
            relay_avro_writer_encode(w, &buf, &len, err, sizeof(err)),
            RELAY_OK);
        const unsigned char hdr[] = {0, 0x01, 0x02, 0x03, 0x04};
        assert_memory_equal(buf, hdr, sizeof(hdr));
        avro_value_t *v;
        int32_t wid = 0;
        assert_int_equal(
            relay_avro_reader_decode(r, buf, len, &v, &wid, err, sizeof(err)),
            RELAY_OK);
        assert_int_equal(wid, 16909060);
        assert_json_is(v, sample);
        relay_avro_reader_destroy(r);
        relay_avro_writer_destroy(w);
        relay_schemas_destroy(s);
}

static void test_new_errors(void **state)
{
        relay_schemas_t *s = load_repo();
        assert_null(
            relay_avro_reader_new(s, "nosuch-value", 0, err, sizeof(err)));
        assert_contains(err, "no schema for subject 'nosuch-value'");
        err[0] = '\0';
        assert_null(relay_avro_writer_new(s, "other-value", err, sizeof(err)));
        assert_contains(err, "no schema for subject 'other-value'");
        relay_avro_reader_destroy(NULL);
        relay_avro_writer_destroy(NULL);
        relay_schemas_destroy(s);
}

static void test_encode_unset_union(void **state)
{
        relay_schemas_t *s = load_repo();
        relay_avro_writer_t *w =
            relay_avro_writer_new(s, LOYALTY, err, sizeof(err));
        avro_value_t *v = relay_avro_writer_value(w), data, e;
        fill(v, sample);
        /* A data entry whose union has no branch selected. */
        avro_value_get_by_name(v, "data", &data, NULL);
        assert_int_equal(avro_value_add(&data, "unset", &e, NULL, NULL), 0);
        const void *buf = NULL;
        size_t len = 0;
        assert_int_equal(
            relay_avro_writer_encode(w, &buf, &len, err, sizeof(err)),
            RELAY_FATAL);
        assert_contains(err, "cannot encode record");
        /* The value is reset for the next record, which encodes. */
        fill(relay_avro_writer_value(w), sample);
        assert_int_equal(
            relay_avro_writer_encode(w, &buf, &len, err, sizeof(err)),
            RELAY_OK);
        relay_avro_writer_destroy(w);
        relay_schemas_destroy(s);
}

/* ---- bad input to the reader ---- */

static void decode_fails(relay_avro_reader_t *r, const void *buf, size_t len,
                         const char *why)
{
        avro_value_t *v = NULL;
        err[0] = '\0';
        assert_int_equal(
            relay_avro_reader_decode(r, buf, len, &v, NULL, err, sizeof(err)),
            RELAY_FATAL);
        assert_contains(err, why);
}

static void test_decode_bad_input(void **state)
{
        relay_schemas_t *s = load_repo();
        relay_avro_writer_t *w =
            relay_avro_writer_new(s, LOYALTY, err, sizeof(err));
        relay_avro_writer_t *ow =
            relay_avro_writer_new(s, OUTBOUND, err, sizeof(err));
        relay_avro_reader_t *r =
            relay_avro_reader_new(s, LOYALTY, 4096, err, sizeof(err));
        fill(relay_avro_writer_value(w), sample);
        const void *enc;
        size_t len;
        assert_int_equal(
            relay_avro_writer_encode(w, &enc, &len, err, sizeof(err)),
            RELAY_OK);
        unsigned char good[1024];
        assert_true(len <= sizeof(good));
        memcpy(good, enc, len);

        decode_fails(r, "", 0,
                     "record of 0 bytes is shorter than the 5-byte "
                     "Confluent header");
        decode_fails(r, good, 3,
                     "record of 3 bytes is shorter than the "
                     "5-byte Confluent header");

        unsigned char bad[1024];
        memcpy(bad, good, len);
        bad[0] = 1;
        decode_fails(r, bad, len, "wrong magic byte 0x01");

        memcpy(bad, good, len);
        bad[4] = 7;
        decode_fails(r, bad, len, "unknown schema id 7");
        bad[1] = 0x80;
        decode_fails(r, bad, len, "unknown schema id -2147483641");

        /* A well-formed out.mparticle record is still not a loyalty event. */
        fill(relay_avro_writer_value(ow),
             "{'event_id': 'e', 'occurred_at': 1, 'tenant': 't', "
             "'source': 's', 'connection': 'c', 'destination': 'mparticle', "
             "'environment': 'production', 'identity_type': 'email', "
             "'identity_value': 'a@b', 'event_name': null, "
             "'event_category': null, 'attributes': {}, "
             "'user_attributes': {}}");
        const void *obuf;
        size_t olen;
        assert_int_equal(
            relay_avro_writer_encode(ow, &obuf, &olen, err, sizeof(err)),
            RELAY_OK);
        decode_fails(r, obuf, olen,
                     "schema id 101 does not belong to subject "
                     "'loyalty.events-value'");

        /* Every cut of the body is refused, the header-only one included. */
        char what[64];
        snprintf(what, sizeof(what), "invalid Avro data for schema id 1");
        for (size_t cut = RELAY_AVRO_HEADER_LEN; cut < len; cut++)
                decode_fails(r, good, cut, what);

        /* Garbage after a valid header: overlong varints, a negative
         * string length, a length past the end. */
        const unsigned char ff[] = {0,    0,    0,    0,    1,    0xFF,
                                    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                    0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
        decode_fails(r, ff, sizeof(ff), what);
        const unsigned char neg[] = {0, 0, 0, 0, 1, 0x03, 'a', 'b'};
        decode_fails(r, neg, sizeof(neg), what);
        const unsigned char past[] = {0, 0, 0, 0, 1, 0xC8, 0x01, 'a', 'b'};
        decode_fails(r, past, sizeof(past), what);

        /* A string length of -1 (avro-c would write before its buffer). */
        const unsigned char minus1[] = {0, 0, 0, 0, 1, 0x01, 'a', 'b'};
        decode_fails(r, minus1, sizeof(minus1), what);

        /* Bytes after a complete record: another schema's data framed
         * with this id, not to be read as if it fitted. */
        memcpy(bad, good, len);
        bad[len] = 0x02;
        decode_fails(r, bad, len + 1,
                     "invalid Avro data for schema id 1: 1 bytes left after "
                     "the record");

        /* The size limit applies to the whole framed record. */
        relay_avro_reader_t *small =
            relay_avro_reader_new(s, LOYALTY, len - 1, err, sizeof(err));
        char limit[128];
        snprintf(limit, sizeof(limit),
                 "record of %zu bytes exceeds the limit of %zu", len, len - 1);
        decode_fails(small, good, len, limit);
        relay_avro_reader_destroy(small);
        small = relay_avro_reader_new(s, LOYALTY, len, err, sizeof(err));
        avro_value_t *v;
        assert_int_equal(relay_avro_reader_decode(small, good, len, &v, NULL,
                                                  err, sizeof(err)),
                         RELAY_OK);
        relay_avro_reader_destroy(small);

        /* After all that, the reader still decodes a good record. */
        int32_t wid = 0;
        assert_int_equal(
            relay_avro_reader_decode(r, good, len, &v, &wid, err, sizeof(err)),
            RELAY_OK);
        assert_int_equal(wid, 1);
        assert_json_is(v, sample);

        relay_avro_reader_destroy(r);
        relay_avro_writer_destroy(ow);
        relay_avro_writer_destroy(w);
        relay_schemas_destroy(s);
}

/* An out.mparticle record with every string empty and both maps empty:
 * six strings and a long (0), the environment enum, two strings, two
 * unions (null), two maps; version 2 then two more unions (null). */
enum { ENV_AT = 5 + 6, NAME_AT = 5 + 9, ATTRS_AT = 5 + 11 };
static const unsigned char empty_out[] = {0, 0, 0, 0, 101, 0, 0, 0, 0, 0,
                                          0, 2, 0, 0,   0, 0, 0, 0, 0, 0};
/* The same record as version 1 wrote it, before identities and
 * operations: still read (both null) until such topics are drained. */
static const unsigned char empty_out_v1[] = {0, 0, 0, 0, 100, 0, 0, 0, 0,
                                             0, 0, 2, 0, 0,   0, 0, 0, 0};

/* Values avro-c would take on trust: an enum index or union branch out of
 * range, a block count larger than the bytes left. */
static void test_decode_bad_indexes(void **state)
{
        relay_schemas_t *s = load_repo();
        relay_avro_writer_t *w =
            relay_avro_writer_new(s, OUTBOUND, err, sizeof(err));
        relay_avro_reader_t *r =
            relay_avro_reader_new(s, OUTBOUND, 0, err, sizeof(err));
        static const char *const json =
            "{'event_id': '', 'occurred_at': 0, 'tenant': '', 'source': '', "
            "'connection': '', 'destination': '', "
            "'environment': 'development', 'identity_type': '', "
            "'identity_value': '', 'event_name': null, "
            "'event_category': null, 'attributes': {}, "
            "'user_attributes': {}, 'identities': null, 'operations': null}";
        /* The hand-made bytes are what the writer makes, and decode. */
        fill(relay_avro_writer_value(w), json);
        const void *buf;
        size_t len;
        assert_int_equal(
            relay_avro_writer_encode(w, &buf, &len, err, sizeof(err)),
            RELAY_OK);
        assert_int_equal(len, sizeof(empty_out));
        assert_memory_equal(buf, empty_out, len);
        avro_value_t *v;
        assert_int_equal(relay_avro_reader_decode(r, empty_out, len, &v, NULL,
                                                  err, sizeof(err)),
                         RELAY_OK);
        assert_json_is(v, json);

        unsigned char bad[sizeof(empty_out) + 8];
        memcpy(bad, empty_out, sizeof(empty_out));
        bad[ENV_AT] = 2 * 2; /* symbol 2 of 2 */
        decode_fails(r, bad, sizeof(empty_out),
                     "invalid Avro data for schema id 101");
        bad[ENV_AT] = 1; /* -1 */
        decode_fails(r, bad, sizeof(empty_out),
                     "invalid Avro data for schema id 101");

        memcpy(bad, empty_out, sizeof(empty_out));
        bad[NAME_AT] = 2 * 2; /* branch 2 of ["null", "string"] */
        decode_fails(r, bad, sizeof(empty_out),
                     "invalid Avro data for schema id 101");

        /* attributes: a block of 32768 entries in 4 bytes */
        memcpy(bad, empty_out, ATTRS_AT);
        const unsigned char many[] = {0x80, 0x80, 0x04, 0, 0, 0, 0};
        memcpy(bad + ATTRS_AT, many, sizeof(many));
        decode_fails(r, bad, ATTRS_AT + sizeof(many),
                     "invalid Avro data for schema id 101");

        /* The reader is still fine. */
        assert_int_equal(relay_avro_reader_decode(r, empty_out, len, &v, NULL,
                                                  err, sizeof(err)),
                         RELAY_OK);
        assert_json_is(v, json);
        /* And reads version 1's record into version 2. */
        int32_t wid = 0;
        assert_int_equal(relay_avro_reader_decode(r, empty_out_v1,
                                                  sizeof(empty_out_v1), &v,
                                                  &wid, err, sizeof(err)),
                         RELAY_OK);
        assert_int_equal(wid, 100);
        assert_json_is(v, json);
        relay_avro_reader_destroy(r);
        relay_avro_writer_destroy(w);
        relay_schemas_destroy(s);
}

/* ---- schema resolution between versions of a subject ---- */

/* The sample, encoded by the newest loyalty schema of catalogue s, after
 * adding extra (a JSON object text of more fields, or NULL). */
/* Frame the JSON value j (released here) with subject's writer in s. */
static size_t encode_json(relay_schemas_t *s, const char *subject, json_t *j,
                          unsigned char *out, size_t size)
{
        relay_avro_writer_t *w =
            relay_avro_writer_new(s, subject, err, sizeof(err));
        assert_non_null(w);
        assert_int_equal(relay_avro_from_json(relay_avro_writer_value(w), j,
                                              err, sizeof(err)),
                         0);
        json_decref(j);
        const void *buf;
        size_t len;
        assert_int_equal(
            relay_avro_writer_encode(w, &buf, &len, err, sizeof(err)),
            RELAY_OK);
        assert_true(len <= size);
        memcpy(out, buf, len);
        relay_avro_writer_destroy(w);
        return len;
}

static size_t encode_sample(relay_schemas_t *s, const char *extra,
                            unsigned char *out, size_t size)
{
        json_t *j = js(sample);
        if (extra) {
                json_t *x = js(extra);
                json_object_update(j, x);
                json_decref(x);
        }
        return encode_json(s, LOYALTY, j, out, size);
}

/* A v1 record read by a reader already on v2 (new optional field): the
 * fields come through and the new one is null. */
static void test_resolve_old_writer_new_reader(void **state)
{
        relay_schemas_t *only_v1 =
            load_tmp("only-v1.cfg",
                     "schemas = ( { id = 1; version = 1; subject = \"" LOYALTY
                     "\"; file = \"v1.avsc\"; } );\n");
        relay_schemas_t *both = load_tmp(
            "v1-v2.cfg",
            "schemas = (\n"
            "  { id = 1; version = 1; subject = \"" LOYALTY "\"; file = "
            "\"v1.avsc\"; },\n"
            "  { id = 2; version = 2; subject = \"" LOYALTY "\"; file = "
            "\"v2.avsc\"; }\n);\n");
        unsigned char rec[1024], rec2[1024];
        size_t len = encode_sample(only_v1, NULL, rec, sizeof(rec));
        assert_int_equal(rec[4], 1);
        size_t len2 =
            encode_sample(both, "{'channel': 'email'}", rec2, sizeof(rec2));
        assert_int_equal(rec2[4], 2);

        relay_avro_reader_t *r =
            relay_avro_reader_new(both, LOYALTY, 0, err, sizeof(err));
        json_t *want = js(sample);
        json_object_set_new(want, "channel", json_null());
        char *want_text = json_dumps(want, 0);
        avro_value_t *v;
        int32_t wid = 0;
        /* Twice: the second time through the cached resolver. */
        for (int i = 0; i < 2; i++) {
                err[0] = '\0';
                assert_int_equal(relay_avro_reader_decode(r, rec, len, &v, &wid,
                                                          err, sizeof(err)),
                                 RELAY_OK);
                assert_int_equal(wid, 1);
                assert_json_is(v, want_text);
                avro_value_t ch;
                assert_int_equal(relay_avro_path(v, "channel", &ch), -1);

                /* A v2 record in between: its channel must not leak into
                 * the next v1 record. */
                assert_int_equal(relay_avro_reader_decode(
                                     r, rec2, len2, &v, &wid, err, sizeof(err)),
                                 RELAY_OK);
                assert_int_equal(wid, 2);
                relay_buf_t b;
                relay_buf_init(&b);
                assert_int_equal(relay_avro_path(v, "channel", &ch), 0);
                assert_int_equal(relay_avro_to_text(&ch, &b), 0);
                assert_string_equal(b.data, "email");
                relay_buf_free(&b);
        }
        free(want_text);
        json_decref(want);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(both);
        relay_schemas_destroy(only_v1);
}

/* A v2 record (with channel) read by a reader still on v1: v2 is the
 * older version in the reader's catalogue, so the reader's schema is v1
 * and the record's id 2 resolves to it; v1's fields keep their values. */
static void test_resolve_new_writer_old_reader(void **state)
{
        relay_schemas_t *writer_side = load_tmp(
            "w-v2.cfg",
            "schemas = (\n"
            "  { id = 1; version = 1; subject = \"" LOYALTY "\"; file = "
            "\"v1.avsc\"; },\n"
            "  { id = 2; version = 2; subject = \"" LOYALTY "\"; file = "
            "\"v2.avsc\"; }\n);\n");
        relay_schemas_t *reader_side = load_tmp(
            "r-v1.cfg",
            "schemas = (\n"
            "  { id = 1; version = 2; subject = \"" LOYALTY "\"; file = "
            "\"v1.avsc\"; },\n"
            "  { id = 2; version = 1; subject = \"" LOYALTY "\"; file = "
            "\"v2.avsc\"; }\n);\n");
        assert_int_equal(relay_schemas_latest(reader_side, LOYALTY), 1);
        unsigned char rec[1024];
        size_t len = encode_sample(writer_side, "{'channel': 'email'}", rec,
                                   sizeof(rec));
        assert_int_equal(rec[4], 2);

        relay_avro_reader_t *r =
            relay_avro_reader_new(reader_side, LOYALTY, 0, err, sizeof(err));
        avro_value_t *v;
        int32_t wid = 0;
        assert_int_equal(
            relay_avro_reader_decode(r, rec, len, &v, &wid, err, sizeof(err)),
            RELAY_OK);
        assert_int_equal(wid, 2);
        assert_string_equal(avro_schema_name(avro_value_get_schema(v)),
                            "LoyaltyEvent");
        size_t nfields = 0;
        avro_value_get_size(v, &nfields);
        assert_int_equal(nfields, 7);
        assert_json_is(v, sample);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(reader_side);
        relay_schemas_destroy(writer_side);
}

/* A reader whose newer schema adds a required field cannot read the old
 * records: refused with a reason, not filled with garbage. */
static void test_resolve_incompatible(void **state)
{
        relay_schemas_t *only_v1 = load_tmp(
            "only-v1b.cfg", "schemas = ( { id = 1; subject = \"" LOYALTY
                            "\"; file = \"v1.avsc\"; } );\n");
        relay_schemas_t *v3 = load_tmp(
            "v1-v3.cfg",
            "schemas = (\n"
            "  { id = 1; version = 1; subject = \"" LOYALTY "\"; file = "
            "\"v1.avsc\"; },\n"
            "  { id = 3; version = 2; subject = \"" LOYALTY "\"; file = "
            "\"v3.avsc\"; }\n);\n");
        unsigned char rec[1024];
        size_t len = encode_sample(only_v1, NULL, rec, sizeof(rec));
        relay_avro_reader_t *r =
            relay_avro_reader_new(v3, LOYALTY, 0, err, sizeof(err));
        decode_fails(r, rec, len,
                     "writer schema id 1 cannot be read as "
                     "reader schema id 3");
        assert_contains(err, "region");
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(v3);
        relay_schemas_destroy(only_v1);
}

/* ---- natural JSON ---- */

static const char *const test_schema =
    "{'type': 'record', 'name': 'T', 'fields': ["
    " {'name': 'n', 'type': 'int'},"
    " {'name': 'f', 'type': 'float'},"
    " {'name': 'kind', 'type': {'type': 'enum', 'name': 'K', "
    "'symbols': ['a', 'b']}},"
    " {'name': 'opt', 'type': ['null', 'int']},"
    " {'name': 'tags', 'type': {'type': 'array', 'items': 'string'}},"
    " {'name': 'inner', 'type': {'type': 'record', 'name': 'In', 'fields': ["
    "  {'name': 'count', 'type': 'int'}]}}]}";

/* A generic value of schema (JSON text with '), for schemas that are not
 * in the catalogue. */
static void value_of(const char *schema_text, avro_value_iface_t **iface,
                     avro_value_t *v)
{
        json_t *j = js(schema_text);
        char *text = json_dumps(j, 0);
        avro_schema_t s;
        avro_schema_error_t aerr;
        assert_int_equal(
            avro_schema_from_json(text, (int32_t)strlen(text), &s, &aerr), 0);
        *iface = avro_generic_class_from_schema(s);
        assert_non_null(*iface);
        assert_int_equal(avro_generic_value_new(*iface, v), 0);
        avro_schema_decref(s);
        free(text);
        json_decref(j);
}

static void test_from_json_errors(void **state)
{
        relay_schemas_t *s = load_repo();
        avro_value_iface_t *iface =
            avro_generic_class_from_schema(relay_schemas_get(s, 1));
        avro_value_t v;
        avro_generic_value_new(iface, &v);
        static const char *const base =
            "'event_id': 'e', 'tenant': 't', 'source': 's', "
            "'event_type': 'x', 'identities': {}";
        char text[512];

        snprintf(text, sizeof(text),
                 "{%s, 'occurred_at': 1, 'data': {}, 'nosuch': 1}", base);
        fill_fails(&v, text);
        assert_contains(err, "unknown field 'nosuch'");

        snprintf(text, sizeof(text), "{%s, 'data': {}}", base);
        fill_fails(&v, text);
        assert_string_equal(err, "occurred_at: missing field");

        snprintf(text, sizeof(text),
                 "{%s, 'occurred_at': 'yesterday', 'data': {}}", base);
        fill_fails(&v, text);
        assert_string_equal(err, "occurred_at: expected an integer");

        snprintf(text, sizeof(text), "{%s, 'occurred_at': 1.5, 'data': {}}",
                 base);
        fill_fails(&v, text);
        assert_string_equal(err, "occurred_at: expected an integer");

        snprintf(text, sizeof(text),
                 "{%s, 'occurred_at': 1, 'data': {'ok': 1, "
                 "'points': {'n': 1}}}",
                 base);
        fill_fails(&v, text);
        assert_string_equal(err, "data.points: JSON type fits no branch of "
                                 "the union");

        snprintf(text, sizeof(text),
                 "{%s, 'occurred_at': 1, 'data': {'points': [1]}}", base);
        fill_fails(&v, text);
        assert_contains(err, "data.points: ");

        snprintf(text, sizeof(text), "{%s, 'occurred_at': 1, 'data': []}",
                 base);
        fill_fails(&v, text);
        assert_string_equal(err, "data: expected a JSON object (map)");

        fill_fails(&v, "{'event_id': 'e', 'occurred_at': 1, 'tenant': 't', "
                       "'source': 's', 'event_type': 'x', "
                       "'identities': {'email': 5}, 'data': {}}");
        assert_string_equal(err, "identities.email: expected a string");

        fill_fails(&v, "{'event_id': null, 'occurred_at': 1, 'tenant': 't', "
                       "'source': 's', 'event_type': 'x', "
                       "'identities': {}, 'data': {}}");
        assert_string_equal(err, "event_id: expected a string");

        fill_fails(&v, "[1, 2]");
        assert_contains(err, "expected a JSON object");

        avro_value_decref(&v);
        avro_value_iface_decref(iface);

        /* Types the loyalty schema does not use: int range, enum, array,
         * nested record paths. */
        avro_value_t t;
        value_of(test_schema, &iface, &t);
        fill(&t, "{'n': 2147483647, 'f': 1.5, 'kind': 'b', 'opt': -2147483648,"
                 " 'tags': ['x', 'y'], 'inner': {'count': -2147483648}}");
        assert_json_is(&t, "{'n': 2147483647, 'f': 1.5, 'kind': 'b', "
                           "'opt': -2147483648, 'tags': ['x', 'y'], "
                           "'inner': {'count': -2147483648}}");
        avro_value_reset(&t);
        fill(&t, "{'n': 1, 'f': 2, 'kind': 'a', 'tags': [], "
                 "'inner': {'count': 0}}");
        assert_json_is(&t, "{'n': 1, 'f': 2.0, 'kind': 'a', 'opt': null, "
                           "'tags': [], 'inner': {'count': 0}}");
        avro_value_reset(&t);
        fill_fails(&t, "{'n': 2147483648, 'f': 1, 'kind': 'a', 'tags': [], "
                       "'inner': {'count': 0}}");
        assert_string_equal(err, "n: expected a 32-bit integer");
        avro_value_reset(&t);
        fill_fails(&t, "{'n': 1, 'f': 1, 'kind': 'a', 'tags': [], "
                       "'inner': {'count': -2147483649}}");
        assert_string_equal(err, "inner.count: expected a 32-bit integer");
        avro_value_reset(&t);
        fill_fails(&t, "{'n': 1, 'f': 1, 'kind': 'a', 'tags': [], "
                       "'inner': {}}");
        assert_string_equal(err, "inner.count: missing field");
        avro_value_reset(&t);
        fill_fails(&t, "{'n': 1, 'f': 1, 'kind': 'a', 'tags': [], "
                       "'inner': {'count': 1, 'x': 2}}");
        assert_string_equal(err, "inner: unknown field 'x'");
        avro_value_reset(&t);
        fill_fails(&t, "{'n': 1, 'f': 1, 'kind': 'c', 'tags': [], "
                       "'inner': {'count': 0}}");
        assert_string_equal(err, "kind: not a symbol of the enum");
        avro_value_reset(&t);
        fill_fails(&t, "{'n': 1, 'f': 1, 'kind': 'a', 'tags': ['x', 3], "
                       "'inner': {'count': 0}}");
        assert_string_equal(err, "tags[1]: expected a string");
        avro_value_reset(&t);
        fill_fails(&t, "{'n': 1, 'f': 1, 'kind': 'a', 'opt': 'x', "
                       "'tags': [], 'inner': {'count': 0}}");
        assert_string_equal(err, "opt: JSON type fits no branch of the union");
        avro_value_decref(&t);
        avro_value_iface_decref(iface);
        relay_schemas_destroy(s);
}

static void test_to_json_round_trip(void **state)
{
        relay_schemas_t *s = load_repo();
        static const char *const outbound =
            "{'event_id': 'e', 'occurred_at': -5, 'tenant': 'acme', "
            "'source': 'antavo', 'connection': 'c', "
            "'destination': 'mparticle', 'environment': 'development', "
            "'identity_type': 'email', 'identity_value': 'a@b', "
            "'event_name': 'Purchase', 'event_category': null, "
            "'attributes': {'n': 1, 'd': 2.5, 'b': false, 's': '', "
            "'z': null}, 'user_attributes': {'$firstname': 'Ada'}}";
        const struct {
                int32_t id;
                const char *json;
        } cases[] = {{1, sample}, {100, outbound}};
        for (size_t i = 0; i < 2; i++) {
                avro_value_iface_t *iface = avro_generic_class_from_schema(
                    relay_schemas_get(s, cases[i].id));
                avro_value_t v;
                avro_generic_value_new(iface, &v);
                fill(&v, cases[i].json);
                assert_json_is(&v, cases[i].json);
                avro_value_decref(&v);
                avro_value_iface_decref(iface);
        }
        relay_schemas_destroy(s);
}

/* ---- path lookup and text ---- */

/* The text of path in v, or NULL when relay_avro_path or
 * relay_avro_to_text refuses. Valid until the next call; a call with a
 * missing path frees it. */
static const char *text_at(const avro_value_t *v, const char *path)
{
        static relay_buf_t b;
        avro_value_t x;
        relay_buf_free(&b);
        if (relay_avro_path(v, path, &x))
                return NULL;
        relay_buf_append(&b, "", 0);
        if (relay_avro_to_text(&x, &b))
                return NULL;
        return b.data;
}

#define assert_text(v, path, want)                                             \
        do {                                                                   \
                const char *got_ = text_at((v), (path));                       \
                if (!got_ || strcmp(got_, (want)))                             \
                        fail_msg("%s: got \"%s\", want \"%s\"", (path),        \
                                 got_ ? got_ : "(none)", (want));              \
        } while (0)

static void test_path_and_text(void **state)
{
        relay_schemas_t *s = load_repo();
        avro_value_iface_t *iface =
            avro_generic_class_from_schema(relay_schemas_get(s, 1));
        avro_value_t v, x;
        avro_generic_value_new(iface, &v);
        fill(&v, sample);

        assert_text(&v, "tenant", "acme");
        assert_text(&v, "occurred_at", "1700000000123");
        assert_text(&v, "identities.email", "ada@example.com");
        assert_text(&v, "data.coupon_code", "WELCOME10");
        assert_text(&v, "data.points", "250");
        assert_text(&v, "data.big", "-9007199254740993");
        assert_text(&v, "data.opted_in", "true");
        assert_text(&v, "data.unsubscribed", "false");
        /* Doubles read as people write them, and still exactly. */
        assert_text(&v, "data.total", "19.99");
        assert_text(&v, "data.sum", "0.30000000000000004");
        assert_true(strtod(text_at(&v, "data.sum"), NULL) ==
                    0.30000000000000004);
        /* Flattened source fields keep their dots in the map key. */
        assert_text(&v, "data.address.city", "Paris");

        /* The path stops at the value, unwrapped from its union. */
        assert_int_equal(relay_avro_path(&v, "data.points", &x), 0);
        assert_int_equal(avro_value_get_type(&x), AVRO_INT64);
        assert_int_equal(relay_avro_path(&v, "data", &x), 0);
        assert_int_equal(avro_value_get_type(&x), AVRO_MAP);

        /* Null branch, missing key or field, paths through scalars. */
        assert_int_equal(relay_avro_path(&v, "data.note", &x), -1);
        assert_int_equal(relay_avro_path(&v, "data.nosuch", &x), -1);
        assert_int_equal(relay_avro_path(&v, "identities.mobile", &x), -1);
        assert_int_equal(relay_avro_path(&v, "nosuch", &x), -1);
        assert_int_equal(relay_avro_path(&v, "tenant.x", &x), -1);
        assert_int_equal(relay_avro_path(&v, "data.points.x", &x), -1);
        assert_int_equal(relay_avro_path(&v, "", &x), -1);
        assert_int_equal(relay_avro_path(&v, "data.", &x), -1);
        assert_int_equal(relay_avro_path(&v, ".data", &x), -1);
        assert_int_equal(relay_avro_path(&v, "data..points", &x), -1);

        /* Maps and records have no text form. */
        assert_null(text_at(&v, "data"));
        assert_null(text_at(&v, "identities"));
        relay_buf_t b;
        relay_buf_init(&b);
        assert_int_equal(relay_avro_to_text(&v, &b), -1);
        assert_int_equal(b.len, 0);

        /* A union holding null has no text; an appended text keeps what
         * was in the buffer. */
        avro_value_t data, u;
        avro_value_get_by_name(&v, "data", &data, NULL);
        avro_value_get_by_name(&data, "note", &u, NULL);
        assert_int_equal(relay_avro_to_text(&u, &b), -1);
        relay_buf_puts(&b, "n=");
        avro_value_get_by_name(&data, "points", &u, NULL);
        assert_int_equal(relay_avro_to_text(&u, &b), 0);
        assert_string_equal(b.data, "n=250");
        relay_buf_free(&b);
        avro_value_decref(&v);
        avro_value_iface_decref(iface);

        /* Enum, int and float text. */
        value_of(test_schema, &iface, &v);
        fill(&v, "{'n': -5, 'f': 0.1, 'kind': 'b', 'opt': 7, 'tags': [], "
                 "'inner': {'count': 3}}");
        assert_text(&v, "kind", "b");
        assert_text(&v, "n", "-5");
        assert_text(&v, "opt", "7");
        assert_text(&v, "inner.count", "3");
        assert_text(&v, "f", "0.1");
        assert_null(text_at(&v, "tags"));
        text_at(&v, "x"); /* frees the static buffer */
        avro_value_decref(&v);
        avro_value_iface_decref(iface);
        relay_schemas_destroy(s);
}

/* ---- enums, named types, text and bytes ---- */

#define ENUM_SCHEMA(symbols, extra)                                            \
        "{\"type\":\"record\",\"name\":\"E\",\"fields\":[{\"name\":\"kind\","  \
        "\"type\":{\"type\":\"enum\",\"name\":\"K\",\"symbols\":[" symbols     \
        "]" extra "}}]}"

/* Frame {"kind": symbol} with the newest schema of subject e-value in s. */
static size_t encode_kind(relay_schemas_t *s, const char *symbol,
                          unsigned char *out, size_t size)
{
        return encode_json(s, "e-value", json_pack("{s:s}", "kind", symbol),
                           out, size);
}

/* Decode rec with a reader on reader_file (id 1) that also knows
 * writer_file (id 2); returns the result, the kind in kind. */
static enum relay_result decode_kind(const char *reader_file,
                                     const char *writer_file,
                                     const unsigned char *rec, size_t len,
                                     char *kind, size_t kind_size)
{
        char cfg[512];
        snprintf(cfg, sizeof(cfg),
                 "schemas = ( { id = 1; version = 2; subject = \"e-value\"; "
                 "file = \"%s\"; }, { id = 2; version = 1; subject = "
                 "\"e-value\"; file = \"%s\"; } );\n",
                 reader_file, writer_file);
        relay_schemas_t *s = load_tmp("e-reader.cfg", cfg);
        relay_avro_reader_t *r =
            relay_avro_reader_new(s, "e-value", 0, err, sizeof(err));
        assert_non_null(r);
        avro_value_t *v;
        enum relay_result res =
            relay_avro_reader_decode(r, rec, len, &v, NULL, err, sizeof(err));
        kind[0] = '\0';
        if (res == RELAY_OK) {
                relay_buf_t b;
                relay_buf_init(&b);
                avro_value_t f;
                assert_int_equal(relay_avro_path(v, "kind", &f), 0);
                assert_int_equal(relay_avro_to_text(&f, &b), 0);
                snprintf(kind, kind_size, "%s", b.data);
                relay_buf_free(&b);
        }
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
        return res;
}

/* A writer that appended an enum symbol: old readers get their default
 * for it (avro-c keeps no enum default; relay reads it from the text),
 * refuse it without a default, and refuse reordered symbols outright. */
static void test_enum_evolution(void **state)
{
        write_file("k-ab.avsc",
                   ENUM_SCHEMA("\"A\",\"B\"", ",\"default\":\"A\""));
        write_file("k-ab-nodef.avsc", ENUM_SCHEMA("\"A\",\"B\"", ""));
        write_file("k-abc.avsc",
                   ENUM_SCHEMA("\"A\",\"B\",\"C\"", ",\"default\":\"A\""));
        write_file("k-ba.avsc", ENUM_SCHEMA("\"B\",\"A\"", ""));
        relay_schemas_t *w = load_tmp(
            "e-writer.cfg", "schemas = ( { id = 2; subject = \"e-value\"; "
                            "file = \"k-abc.avsc\"; } );\n");
        unsigned char c[64], b[64];
        size_t nc = encode_kind(w, "C", c, sizeof(c));
        size_t nb = encode_kind(w, "B", b, sizeof(b));
        relay_schemas_destroy(w);

        char kind[32];
        assert_int_equal(
            decode_kind("k-ab.avsc", "k-abc.avsc", b, nb, kind, sizeof(kind)),
            RELAY_OK);
        assert_string_equal(kind, "B");
        assert_int_equal(
            decode_kind("k-ab.avsc", "k-abc.avsc", c, nc, kind, sizeof(kind)),
            RELAY_OK);
        assert_string_equal(kind, "A");
        assert_int_equal(decode_kind("k-ab-nodef.avsc", "k-abc.avsc", c, nc,
                                     kind, sizeof(kind)),
                         RELAY_FATAL);
        assert_non_null(strstr(err, "enum K: symbol 2 of writer schema id 2 "
                                    "is unknown to the reader schema"));

        w = load_tmp("e-writer2.cfg",
                     "schemas = ( { id = 2; subject = \"e-value\"; "
                     "file = \"k-ba.avsc\"; } );\n");
        nb = encode_kind(w, "B", b, sizeof(b));
        relay_schemas_destroy(w);
        assert_int_equal(
            decode_kind("k-ab.avsc", "k-ba.avsc", b, nb, kind, sizeof(kind)),
            RELAY_FATAL);
        assert_non_null(strstr(err, "changes the order of enum K's symbols"));
}

/* A named type used again in a union is a link in avro-c; JSON still
 * finds that branch. */
static void test_from_json_named_type_reused(void **state)
{
        avro_schema_t sc;
        avro_schema_error_t e;
        const char *text =
            "{\"type\":\"record\",\"name\":\"S\",\"fields\":["
            "{\"name\":\"r1\",\"type\":[\"null\",{\"type\":\"record\","
            "\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
            "\"string\"}]}]},"
            "{\"name\":\"r2\",\"type\":[\"null\",\"R\"]}]}";
        assert_int_equal(avro_schema_from_json(text, 0, &sc, &e), 0);
        avro_value_iface_t *iface = avro_generic_class_from_schema(sc);
        avro_value_t v;
        assert_int_equal(avro_generic_value_new(iface, &v), 0);
        json_t *j = json_loads("{\"r1\":null,\"r2\":{\"a\":\"y\"}}", 0, NULL);
        assert_int_equal(relay_avro_from_json(&v, j, err, sizeof(err)), 0);
        json_t *back = relay_avro_to_json(&v);
        assert_true(json_equal(j, back));
        json_decref(back);
        json_decref(j);
        avro_value_decref(&v);
        avro_value_iface_decref(iface);
        avro_schema_decref(sc);
}

/* Strings that are not UTF-8 keep their field (U+FFFD for the bad
 * bytes); bytes use Avro's JSON encoding, one code point per byte. */
static void test_to_json_text_and_bytes(void **state)
{
        avro_schema_t sc;
        avro_schema_error_t e;
        const char *text = "{\"type\":\"record\",\"name\":\"T\",\"fields\":["
                           "{\"name\":\"s\",\"type\":\"string\"},"
                           "{\"name\":\"b\",\"type\":\"bytes\"}]}";
        assert_int_equal(avro_schema_from_json(text, 0, &sc, &e), 0);
        avro_value_iface_t *iface = avro_generic_class_from_schema(sc);
        avro_value_t v, f;
        assert_int_equal(avro_generic_value_new(iface, &v), 0);
        avro_value_get_by_name(&v, "s", &f, NULL);
        avro_value_set_string_len(&f,
                                  "a\xff"
                                  "b",
                                  4);
        avro_value_get_by_name(&v, "b", &f, NULL);
        avro_value_set_bytes(&f,
                             "\x00\xff"
                             "A",
                             3);
        json_t *j = relay_avro_to_json(&v);
        assert_string_equal(json_string_value(json_object_get(j, "s")),
                            "a\xef\xbf\xbd"
                            "b");
        json_t *bj = json_object_get(j, "b");
        assert_int_equal(json_string_length(bj), 4);
        assert_memory_equal(json_string_value(bj),
                            "\x00\xc3\xbf"
                            "A",
                            4);

        /* And back: the same three bytes. */
        avro_value_reset(&v);
        json_object_set_new(j, "s", json_string("ok"));
        assert_int_equal(relay_avro_from_json(&v, j, err, sizeof(err)), 0);
        const void *p;
        size_t n;
        avro_value_get_by_name(&v, "b", &f, NULL);
        avro_value_get_bytes(&f, &p, &n);
        assert_int_equal(n, 3);
        assert_memory_equal(p,
                            "\x00\xff"
                            "A",
                            3);
        json_object_set_new(j, "b", json_string("\xe2\x82\xac"));
        assert_int_equal(relay_avro_from_json(&v, j, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "U+0000..U+00FF"));
        json_decref(j);
        avro_value_decref(&v);
        avro_value_iface_decref(iface);
        avro_schema_decref(sc);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_catalogue_repo),
            cmocka_unit_test(test_catalogue_versions),
            cmocka_unit_test(test_catalogue_bad_entries),
            cmocka_unit_test(test_frame_parse),
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_writer_id_big_endian),
            cmocka_unit_test(test_new_errors),
            cmocka_unit_test(test_encode_unset_union),
            cmocka_unit_test(test_decode_bad_input),
            cmocka_unit_test(test_decode_bad_indexes),
            cmocka_unit_test(test_resolve_old_writer_new_reader),
            cmocka_unit_test(test_resolve_new_writer_old_reader),
            cmocka_unit_test(test_resolve_incompatible),
            cmocka_unit_test(test_from_json_errors),
            cmocka_unit_test(test_to_json_round_trip),
            cmocka_unit_test(test_path_and_text),
            cmocka_unit_test(test_enum_evolution),
            cmocka_unit_test(test_from_json_named_type_reused),
            cmocka_unit_test(test_to_json_text_and_bytes),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
