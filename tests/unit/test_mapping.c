/*
 * Unit tests for the mapping engine: the repository's example connection
 * (deploy/config/connections) applied to loyalty events, checked field by
 * field on the Outbound record it fills, and the Kafka key (the person);
 * records it must skip or refuse, and what it counts and logs for them;
 * and connection files with mistakes, written into a temporary directory,
 * which must fail to load naming the file and line to fix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include "relay/avro.h"
#include "relay/codec.h"
#include "relay/common.h"
#include "relay/log.h"
#include "relay/mapping.h"
#include "relay/outbound.h"
/* Private, for relay_mapping_notice_interval_ms: the tests shorten the
 * quiet interval of the "no rule" log to see it logged again. */
#include "../../common/mapping/mapping_int.h"

#include <avro.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONN "acme-antavo-mparticle"

static char srcdir[1024];
static char err[1024];

static relay_schemas_t *schemas;
static avro_schema_t loyalty;
static relay_mapping_t *example;
static avro_value_iface_t *in_iface, *out_iface;
static avro_value_t in, out;
static relay_buf_t key;

static int group_setup(void **state)
{
        const char *src = getenv("RELAY_SOURCE_DIR");
        char path[1200];
        snprintf(srcdir, sizeof(srcdir), "%s", src ? src : ".");
        snprintf(path, sizeof(path), "%s/schemas/manifest.cfg", srcdir);
        if (!(schemas = relay_schemas_load(path, err, sizeof(err)))) {
                fprintf(stderr, "%s\n", err);
                return -1;
        }
        loyalty = relay_schemas_get(
            schemas, relay_schemas_latest(schemas, "loyalty.events-value"));
        avro_schema_t outbound = relay_schemas_get(
            schemas, relay_schemas_latest(schemas, "out.mparticle-value"));
        in_iface = avro_generic_class_from_schema(loyalty);
        out_iface = avro_generic_class_from_schema(outbound);
        if (!in_iface || !out_iface || avro_generic_value_new(in_iface, &in) ||
            avro_generic_value_new(out_iface, &out))
                return -1;
        relay_buf_init(&key);
        snprintf(path, sizeof(path), "%s/deploy/config/connections", srcdir);
        if (!(example = relay_mapping_load(path, loyalty, err, sizeof(err)))) {
                fprintf(stderr, "%s\n", err);
                return -1;
        }
        return unit_tmpdir_make("mapping");
}

static int group_teardown(void **state)
{
        relay_mapping_destroy(example);
        relay_buf_free(&key);
        avro_value_decref(&in);
        avro_value_decref(&out);
        avro_value_iface_decref(in_iface);
        avro_value_iface_decref(out_iface);
        relay_schemas_destroy(schemas);
        return unit_tmpdir_remove();
}

static const relay_connection_t *acme(void)
{
        assert_int_equal(relay_mapping_count(example), 1);
        return relay_mapping_get(example, 0);
}

/* Apply c to a loyalty event of tenant, source and type with identities and
 * data (JSON objects). The record is built from natural JSON into a plain
 * generic value of the loyalty schema, as a reader would hand it over. */
static void build(const char *tenant, const char *source, const char *type,
                  const char *identities, const char *data)
{
        char text[2048];
        snprintf(text, sizeof(text),
                 "{'event_id': 'ev-1', 'occurred_at': 1700000000123, "
                 "'tenant': '%s', 'source': '%s', 'event_type': '%s', "
                 "'identities': %s, 'data': %s}",
                 tenant, source, type, identities, data);
        json_t *j = js(text);
        avro_value_reset(&in);
        if (relay_avro_from_json(&in, j, err, sizeof(err)))
                fail_msg("input record: %s", err);
        json_decref(j);
}

/* Apply c to the record built last. */
static enum relay_map_result run(const relay_connection_t *c)
{
        avro_value_reset(&out);
        relay_buf_reset(&key);
        err[0] = '\0';
        return relay_connection_apply_value(c, &in, &out, &key, err,
                                            sizeof(err));
}

static enum relay_map_result
apply_full(const relay_connection_t *c, const char *tenant, const char *source,
           const char *type, const char *identities, const char *data)
{
        build(tenant, source, type, identities, data);
        return run(c);
}

static enum relay_map_result apply(const char *type, const char *identities,
                                   const char *data)
{
        return apply_full(acme(), "acme", "antavo", type, identities, data);
}

static void assert_out(const char *want_text)
{
        assert_json_text(relay_avro_to_json(&out), want_text);
        /* Complete: every union has its branch, so a writer can encode it. */
        size_t size = 0;
        assert_int_equal(avro_value_sizeof(&out, &size), 0);
        assert_true(size > 0);
}

/* One output field of the last apply, as JSON text. */
static void assert_field(const char *path, const char *want_text)
{
        json_t *all = relay_avro_to_json(&out);
        json_t *got = all;
        char *copy = strdup(path), *save = NULL;
        for (char *seg = strtok_r(copy, "/", &save); seg && got;
             seg = strtok_r(NULL, "/", &save))
                got = json_object_get(got, seg);
        json_t *want = js(want_text);
        if (!got || !json_equal(want, got)) {
                char *a = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
                fail_msg("%s: got %s, want %s", path, a ? a : "(none)",
                         want_text);
        }
        json_decref(want);
        json_decref(all);
        free(copy);
}

static const char *const both_ids =
    "{'customer_id': 'c-1', 'email': 'ada@example.com'}";

/* ---- the example connection ---- */

static void test_load_example(void **state)
{
        assert_int_equal(relay_mapping_count(example), 1);
        const relay_connection_t *c = relay_mapping_get(example, 0);
        assert_non_null(c);
        assert_string_equal(relay_connection_id(c), CONN);
        assert_string_equal(relay_connection_destination(c), "mparticle");
        assert_null(relay_mapping_get(example, 1));

        /* The same file loaded on its own. */
        char path[1200];
        snprintf(path, sizeof(path),
                 "%s/deploy/config/connections/" CONN ".cfg", srcdir);
        relay_mapping_t *m =
            relay_mapping_load(path, loyalty, err, sizeof(err));
        if (!m)
                fail_msg("%s", err);
        assert_int_equal(relay_mapping_count(m), 1);
        assert_string_equal(relay_connection_id(relay_mapping_get(m, 0)), CONN);
        relay_mapping_destroy(m);
        relay_mapping_destroy(NULL);
}

static void test_coupon_issued(void **state)
{
        assert_int_equal(apply("coupon_issued", both_ids,
                               "{'coupon_code': 'WELCOME10', "
                               "'first_name': 'Ada', 'last_name': 'Lovelace', "
                               "'city': 'London', 'tier': 'gold', "
                               "'points_balance': '120', 'ignored': 1}"),
                         RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/c-1");
        assert_out("{'event_id': 'ev-1', 'occurred_at': 1700000000123, "
                   "'tenant': 'acme', 'source': 'antavo', "
                   "'connection': '" CONN "', 'destination': 'mparticle', "
                   "'environment': 'development', "
                   "'identity_type': 'customer_id', 'identity_value': 'c-1', "
                   "'event_name': 'Coupon Issued', 'event_category': 'other', "
                   "'attributes': {'description': 'Coupon WELCOME10 issued', "
                   "'coupon_code': 'WELCOME10', 'channel': 'loyalty'}, "
                   "'user_attributes': {'$firstname': 'Ada', "
                   "'$lastname': 'Lovelace', '$city': 'London', "
                   "'loyalty_tier': 'gold', 'loyalty_points': 120}, "
                   "'identities': {'customer_id': 'c-1', "
                   "'email': 'ada@example.com'}, 'operations': null}");
}

/* The example's person is identities.customer_id, also its first
 * identity: a record without it is keyed by the email it is sent with,
 * and counted. */
static void test_identity_fallback(void **state)
{
        uint64_t fallbacks = relay_connection_fallback_keys(acme());
        assert_int_equal(apply("opt_in",
                               "{'email': 'ada@example.com', "
                               "'mobile': '+44'}",
                               "{}"),
                         RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/ada@example.com");
        assert_field("identity_type", "'email'");
        assert_field("identity_value", "'ada@example.com'");
        assert_int_equal(relay_connection_fallback_keys(acme()), fallbacks + 1);

        /* An empty customer_id is no identity either, nor a person. */
        assert_int_equal(apply("opt_in",
                               "{'customer_id': '', "
                               "'email': 'b@example.com'}",
                               "{}"),
                         RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/b@example.com");
        assert_field("identity_type", "'email'");
        assert_int_equal(relay_connection_fallback_keys(acme()), fallbacks + 2);

        /* First in the list wins, whatever the map's order. */
        assert_int_equal(apply("opt_in",
                               "{'email': 'c@example.com', "
                               "'customer_id': 'c-3'}",
                               "{}"),
                         RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/c-3");
        assert_int_equal(relay_connection_fallback_keys(acme()), fallbacks + 2);
        assert_out("{'event_id': 'ev-1', 'occurred_at': 1700000000123, "
                   "'tenant': 'acme', 'source': 'antavo', "
                   "'connection': '" CONN "', 'destination': 'mparticle', "
                   "'environment': 'development', "
                   "'identity_type': 'customer_id', 'identity_value': 'c-3', "
                   "'event_name': 'Loyalty Opt-in', "
                   "'event_category': 'user_preference', "
                   "'attributes': {}, 'user_attributes': {}, "
                   "'identities': {'customer_id': 'c-3', "
                   "'email': 'c@example.com'}, 'operations': null}");
}

static void test_checkout_numbers(void **state)
{
        /* type = "number": the string "120" becomes the long 120; a long
         * stays a long; a missing field takes its default, converted. */
        assert_int_equal(apply("checkout", both_ids,
                               "{'transaction_id': 'T-9', 'total': '120', "
                               "'points': 40}"),
                         RELAY_MAP_OUT);
        assert_field("event_name", "'Purchase'");
        assert_field("event_category", "'transaction'");
        assert_field("attributes", "{'transaction_id': 'T-9', 'total': 120, "
                                   "'points_earned': 40}");
        assert_field("user_attributes", "{}");

        assert_int_equal(apply("checkout", both_ids,
                               "{'transaction_id': 'T-10', 'total': 12.5}"),
                         RELAY_MAP_OUT);
        assert_field("attributes", "{'transaction_id': 'T-10', 'total': 12.5, "
                                   "'points_earned': 0}");

        assert_int_equal(apply("checkout", both_ids,
                               "{'transaction_id': 'T-11', 'total': '19.99', "
                               "'points': '7'}"),
                         RELAY_MAP_OUT);
        assert_field("attributes", "{'transaction_id': 'T-11', "
                                   "'total': 19.99, 'points_earned': 7}");

        /* A typed copy keeps the source's type: a long id stays a long. */
        assert_int_equal(
            apply("checkout", both_ids, "{'transaction_id': 991, 'total': 5}"),
            RELAY_MAP_OUT);
        assert_field("attributes", "{'transaction_id': 991, 'total': 5, "
                                   "'points_earned': 0}");
}

static void test_points_typed_copy(void **state)
{
        assert_int_equal(apply("point_add", both_ids,
                               "{'points': 50, 'action_reason': 'bonus'}"),
                         RELAY_MAP_OUT);
        assert_field("event_name", "'Points Changed'");
        assert_field("attributes", "{'points': 50, 'reason': 'bonus'}");

        /* The second type of the rule; a double stays a double; the
         * template's default when its field is missing. */
        assert_int_equal(apply("point_spend", both_ids, "{'points': 2.5}"),
                         RELAY_MAP_OUT);
        assert_field("event_name", "'Points Changed'");
        assert_field("attributes", "{'points': 2.5, 'reason': 'unspecified'}");

        /* A string stays a string; a boolean a boolean. */
        assert_int_equal(apply("point_add", both_ids,
                               "{'points': '7', 'action_reason': null}"),
                         RELAY_MAP_OUT);
        assert_field("attributes", "{'points': '7', 'reason': 'unspecified'}");
        assert_int_equal(apply("point_add", both_ids, "{'points': true}"),
                         RELAY_MAP_OUT);
        assert_field("attributes/points", "true");

        /* Not required, no default, missing: left out. */
        assert_int_equal(apply("point_add", both_ids, "{}"), RELAY_MAP_OUT);
        assert_field("attributes", "{'reason': 'unspecified'}");
}

static void test_field_sync(void **state)
{
        assert_int_equal(apply("opt_in", both_ids,
                               "{'first_name': 'Ada', 'points_balance': 99.5, "
                               "'tier': null}"),
                         RELAY_MAP_OUT);
        assert_field("user_attributes",
                     "{'$firstname': 'Ada', 'loyalty_points': 99.5}");
        assert_field("environment", "'development'");
        assert_field("event_category", "'user_preference'");

        assert_int_equal(apply("opt_in", both_ids,
                               "{'points_balance': 1200, 'city': 'Paris'}"),
                         RELAY_MAP_OUT);
        assert_field("user_attributes",
                     "{'$city': 'Paris', 'loyalty_points': 1200}");
}

static void test_skip(void **state)
{
        const relay_connection_t *c = acme();
        const char *data = "{'coupon_code': 'X'}";
        assert_int_equal(
            apply_full(c, "globex", "antavo", "coupon_issued", both_ids, data),
            RELAY_MAP_SKIP);
        assert_int_equal(
            apply_full(c, "acme", "eagleeye", "coupon_issued", both_ids, data),
            RELAY_MAP_SKIP);
        assert_int_equal(
            apply_full(c, "Acme", "antavo", "coupon_issued", both_ids, data),
            RELAY_MAP_SKIP);
        assert_int_equal(apply("coupon_expired", both_ids, data),
                         RELAY_MAP_SKIP);
        assert_int_equal(apply("", both_ids, data), RELAY_MAP_SKIP);
        /* Dropped types, even without anything a mapping would need. */
        assert_int_equal(apply("profile_view", "{}", "{}"), RELAY_MAP_SKIP);
        assert_int_equal(apply("challenge_reset", "{}", "{}"), RELAY_MAP_SKIP);
        assert_string_equal(err, "");
}

static void test_errors(void **state)
{
        assert_int_equal(apply("coupon_issued", both_ids, "{}"),
                         RELAY_MAP_ERROR);
        assert_string_equal(err, "connection " CONN ", event 'Coupon Issued', "
                                 "attribute 'description': the template "
                                 "names field data.coupon_code, which the "
                                 "record lacks");

        /* A null value fails as an absent one does, and says so. */
        assert_int_equal(
            apply("coupon_issued", both_ids, "{'coupon_code': null}"),
            RELAY_MAP_ERROR);
        assert_string_equal(err, "connection " CONN ", event 'Coupon Issued', "
                                 "attribute 'description': the template "
                                 "names field data.coupon_code, which is "
                                 "null");

        assert_int_equal(apply("checkout", both_ids, "{'total': 5}"),
                         RELAY_MAP_ERROR);
        assert_string_equal(err, "connection " CONN ", event 'Purchase', "
                                 "attribute 'transaction_id': required field "
                                 "data.transaction_id is missing");
        assert_int_equal(
            apply("checkout", both_ids, "{'total': 5, 'transaction_id': null}"),
            RELAY_MAP_ERROR);
        assert_string_equal(err, "connection " CONN ", event 'Purchase', "
                                 "attribute 'transaction_id': required field "
                                 "data.transaction_id is null");

        assert_int_equal(
            apply("checkout", "{'mobile': '+44'}", "{'transaction_id': 'T'}"),
            RELAY_MAP_ERROR);
        assert_string_equal(err, "connection " CONN ": no identity for "
                                 "mparticle: none of identities.customer_id, "
                                 "identities.email is present");

        assert_int_equal(apply("checkout", both_ids,
                               "{'transaction_id': 'T', 'total': 'abc'}"),
                         RELAY_MAP_ERROR);
        assert_string_equal(err, "connection " CONN ", event 'Purchase', "
                                 "attribute 'total': value \"abc\" is not a "
                                 "number");

        assert_int_equal(apply("checkout", both_ids,
                               "{'transaction_id': 'T', 'total': '12abc'}"),
                         RELAY_MAP_ERROR);
        assert_contains(err, "value \"12abc\" is not a number");

        assert_int_equal(
            apply("opt_in", both_ids, "{'points_balance': 'lots'}"),
            RELAY_MAP_ERROR);
        assert_string_equal(err, "connection " CONN ", field sync "
                                 "'loyalty_points': value \"lots\" is not a "
                                 "number");
}

/* Attribute name of the last apply's map field (attributes or
 * user_attributes): its union's current branch in *v. */
static void attr_of(const char *field, const char *name, avro_value_t *v)
{
        avro_value_t m, u;
        size_t idx;
        assert_int_equal(avro_value_get_by_name(&out, field, &m, NULL), 0);
        if (avro_value_get_by_name(&m, name, &u, &idx))
                fail_msg("%s has no %s", field, name);
        assert_int_equal(avro_value_get_current_branch(&u, v), 0);
}

/* type = "number": text strtoll reads whole is a long, else text strtod
 * reads whole a double, else the record is refused. The mapping reads
 * plain integers (and longs, and strings of digits) without libc; on
 * every text here it must answer what strtoll and strtod answer, asked
 * directly. */
static void test_number_text_as_libc(void **state)
{
        static const char *const texts[] = {
            "0", "7", "-5", "007", "-0", "+5", " 5", "5 ", "-", "--5", "1-",
            "", "123456789012345678", "-123456789012345678",
            "999999999999999999", "1234567890123456789",
            "9223372036854775807", "-9223372036854775808",
            "9223372036854775808", "99999999999999999999", "1e3", "0x10",
            "1.5", ".5", "5.", "inf", "12abc", "\\u0661"};
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
                char data[256], *end;
                snprintf(data, sizeof(data),
                         "{'transaction_id': 'T', 'total': '%s'}", texts[i]);
                enum relay_map_result r = apply("checkout", both_ids, data);
                json_t *j = js(data);
                const char *t =
                    json_string_value(json_object_get(j, "total"));
                errno = 0;
                long long l = strtoll(t, &end, 10);
                avro_value_t v;
                if (*t && !*end && !errno) {
                        if (r != RELAY_MAP_OUT)
                                fail_msg("'%s': %s", t, err);
                        attr_of("attributes", "total", &v);
                        int64_t got = 0;
                        assert_int_equal(avro_value_get_type(&v), AVRO_INT64);
                        avro_value_get_long(&v, &got);
                        if (got != l)
                                fail_msg("'%s': %lld, not %lld", t,
                                         (long long)got, l);
                        json_decref(j);
                        continue;
                }
                double d = strtod(t, &end);
                if (*t && !*end) {
                        if (r != RELAY_MAP_OUT)
                                fail_msg("'%s': %s", t, err);
                        attr_of("attributes", "total", &v);
                        double got = 0;
                        assert_int_equal(avro_value_get_type(&v), AVRO_DOUBLE);
                        avro_value_get_double(&v, &got);
                        if (got != d)
                                fail_msg("'%s': %g, not %g", t, got, d);
                } else if (r != RELAY_MAP_ERROR) {
                        fail_msg("'%s' is taken for a number", t);
                }
                json_decref(j);
        }
        /* A double copied as a number: what its text (relay_slot_text)
         * reads as, by strtoll or else strtod. */
        static const char *const doubles[] = {
            "12.5",   "-2.5",  "0.1",    "1e-05",  "19.99",
            "123456789012345.67",  "4503599627370495.5",
            "-4503599627370495.5", "3.0",  "-0.0",   "1e15",
            "1e20",   "5e-324", "0.30000000000000004", "1e-300",
            "9007199254740993.0"};
        for (size_t i = 0; i < sizeof(doubles) / sizeof(doubles[0]); i++) {
                char data[256], *end;
                snprintf(data, sizeof(data),
                         "{'transaction_id': 'T', 'total': %s}", doubles[i]);
                assert_int_equal(apply("checkout", both_ids, data),
                                 RELAY_MAP_OUT);
                relay_slot_t src = {.type = AVRO_DOUBLE};
                src.v.d = strtod(doubles[i], NULL);
                relay_buf_t t;
                relay_buf_init(&t);
                assert_int_equal(relay_slot_scalar_text(&src, &t), 0);
                avro_value_t v;
                attr_of("attributes", "total", &v);
                errno = 0;
                long long l = strtoll(t.data, &end, 10);
                if (!*end && !errno) {
                        int64_t got = 0;
                        assert_int_equal(avro_value_get_type(&v), AVRO_INT64);
                        avro_value_get_long(&v, &got);
                        assert_int_equal(got, l);
                } else {
                        double got = 0, d = strtod(t.data, &end);
                        assert_int_equal(*end, 0);
                        assert_int_equal(avro_value_get_type(&v), AVRO_DOUBLE);
                        avro_value_get_double(&v, &got);
                        if (memcmp(&got, &d, sizeof(d)))
                                fail_msg("%s: %.17g, not %.17g (%s)",
                                         doubles[i], got, d, t.data);
                }
                relay_buf_free(&t);
        }
        /* A long copied as a number stays that long, at both ends. */
        static const char *const longs[] = {"0", "-1", "40",
                                            "9223372036854775807",
                                            "-9223372036854775808"};
        for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
                char data[256];
                snprintf(data, sizeof(data),
                         "{'transaction_id': 'T', 'points': %s}", longs[i]);
                assert_int_equal(apply("checkout", both_ids, data),
                                 RELAY_MAP_OUT);
                avro_value_t v;
                int64_t got = 0;
                attr_of("attributes", "points_earned", &v);
                assert_int_equal(avro_value_get_type(&v), AVRO_INT64);
                avro_value_get_long(&v, &got);
                assert_int_equal(got, strtoll(longs[i], NULL, 10));
        }
}

/* ---- connections written for these tests ---- */

static relay_mapping_t *load_ok(const char *name, const char *text)
{
        const char *path = write_file(name, text);
        err[0] = '\0';
        relay_mapping_t *m =
            relay_mapping_load(path, loyalty, err, sizeof(err));
        if (!m)
                fail_msg("%s", err);
        return m;
}

static void test_conversions_and_production(void **state)
{
        relay_mapping_t *m = load_ok(
            "conv.cfg",
            "connection = {\n"
            "  id = \"conv\"; tenant = \"acme\"; source = \"antavo\";\n"
            "  destination = \"mparticle\";\n"
            "  identity = ( { from = \"identities.email\"; as = \"email\"; } "
            ");\n"
            "  events = (\n"
            "    { on = \"*\"; name = \"Anything\";\n"
            "      attributes = (\n"
            "        { name = \"s\"; from = \"points\"; type = \"string\"; },\n"
            "        { name = \"b\"; from = \"flag\"; type = \"bool\"; },\n"
            "        { name = \"n\"; value = \"{points}\"; type = \"number\"; "
            "},\n"
            "        { name = \"t\"; value = \"{event_type}/{tenant}:{points}"
            "\"; },\n"
            "        { name = \"lit\"; value = \"{{x}} }}\"; },\n"
            "        { name = \"city\"; from = \"data.address.city\"; },\n"
            "        { name = \"ok\"; from = \"flag\"; default = \"no\"; "
            "type = \"bool\"; }\n"
            "      ); }\n"
            "  );\n"
            "};\n");
        const relay_connection_t *c = relay_mapping_get(m, 0);
        assert_int_equal(apply_full(c, "acme", "antavo", "whatever",
                                    "{'email': 'a@b'}",
                                    "{'points': 5, 'flag': 'yes', "
                                    "'address.city': 'Paris'}"),
                         RELAY_MAP_OUT);
        /* No person set: keyed by the identity, and that is no fallback. */
        assert_string_equal(key.data, "acme/a@b");
        assert_int_equal(relay_connection_fallback_keys(c), 0);
        assert_out("{'event_id': 'ev-1', 'occurred_at': 1700000000123, "
                   "'tenant': 'acme', 'source': 'antavo', "
                   "'connection': 'conv', 'destination': 'mparticle', "
                   "'environment': 'production', "
                   "'identity_type': 'email', 'identity_value': 'a@b', "
                   "'event_name': 'Anything', 'event_category': null, "
                   "'attributes': {'s': '5', 'b': true, 'n': 5, "
                   "'t': 'whatever/acme:5', 'lit': '{x} }', "
                   "'city': 'Paris', 'ok': true}, "
                   "'user_attributes': {}, 'identities': {'email': 'a@b'}, "
                   "'operations': null}");

        assert_int_equal(apply_full(c, "acme", "antavo", "x",
                                    "{'email': 'a@b'}",
                                    "{'points': 2.5, 'flag': false}"),
                         RELAY_MAP_OUT);
        assert_field("attributes", "{'s': '2.5', 'b': false, 'n': 2.5, "
                                   "'t': 'x/acme:2.5', 'lit': '{x} }', "
                                   "'ok': false}");

        assert_int_equal(apply_full(c, "acme", "antavo", "x",
                                    "{'email': 'a@b'}",
                                    "{'points': 1, 'flag': 'maybe'}"),
                         RELAY_MAP_ERROR);
        assert_string_equal(err, "connection conv, event 'Anything', "
                                 "attribute 'b': value \"maybe\" is not a "
                                 "boolean");
        relay_mapping_destroy(m);
}

/* Version 2 of the envelope: every identity present goes into
 * identities (a name given twice keeps the first present), and an event's
 * operations come out in order, their target and attributes from
 * templates and fields; a target naming a missing field is an error that
 * names the operation. The generic webhook takes any operation. */
static void test_operations_and_identities(void **state)
{
        relay_mapping_t *m = load_ok(
            "ops.cfg",
            "connection = {\n"
            "  id = \"ops\"; tenant = \"acme\"; source = \"antavo\";\n"
            "  destination = \"webhook\";\n"
            "  identity = ( { from = \"identities.customer_id\"; as = "
            "\"customer_id\"; },\n"
            "               { from = \"identities.email\"; as = \"email\"; },\n"
            "               { from = \"identities.email_sha256\"; as = "
            "\"email\"; },\n"
            "               { from = \"identities.wallet_id\"; as = "
            "\"wallet_id\"; } );\n"
            "  events = (\n"
            "    { on = \"joined\"; name = \"Joined\";\n"
            "      operations = (\n"
            "        { op = \"membership.add\"; target = \"aud-{audience}\";\n"
            "          attributes = ( { name = \"why\"; value = \"joined "
            "{audience}\"; },\n"
            "                         { name = \"n\"; from = \"points\"; } ); "
            "},\n"
            "        { op = \"reward.issue\"; } ); },\n"
            "    { on = \"plain\"; name = \"Plain\"; }\n"
            "  );\n"
            "};\n");
        const relay_connection_t *c = relay_mapping_get(m, 0);
        assert_int_equal(apply_full(c, "acme", "antavo", "joined",
                                    "{'email_sha256': 'f00d', 'email': 'a@b', "
                                    "'customer_id': 'c-9'}",
                                    "{'audience': 'gold', 'points': 5}"),
                         RELAY_MAP_OUT);
        assert_field("identity_value", "'c-9'");
        assert_field("identities", "{'customer_id': 'c-9', 'email': 'a@b'}");
        assert_field("operations",
                     "[{'op': 'membership.add', 'target': 'aud-gold', "
                     "'attributes': {'why': 'joined gold', 'n': 5}}, "
                     "{'op': 'reward.issue', 'target': null, "
                     "'attributes': {}}]");
        /* Only the hashed email: it takes the name email. */
        assert_int_equal(apply_full(c, "acme", "antavo", "plain",
                                    "{'email_sha256': 'f00d'}", "{}"),
                         RELAY_MAP_OUT);
        assert_field("identities", "{'email': 'f00d'}");
        assert_field("operations", "null");
        assert_int_equal(apply_full(c, "acme", "antavo", "joined",
                                    "{'email': 'a@b'}", "{'points': 1}"),
                         RELAY_MAP_ERROR);
        assert_string_equal(err, "connection ops, event 'Joined', operation "
                                 "membership.add: 'target': the template "
                                 "names field data.audience, which the "
                                 "record lacks");
        relay_mapping_destroy(m);
}

/* A name given twice in one list (attributes, field sync, an operation's
 * attributes) keeps its first place and takes the later value, as a map
 * does; the loader marks lists whose names all differ, whose maps skip
 * that check, and these do not. */
static void test_names_given_twice(void **state)
{
        relay_mapping_t *m = load_ok(
            "twice.cfg",
            "connection = {\n"
            "  id = \"twice\"; tenant = \"acme\"; source = \"antavo\";\n"
            "  destination = \"webhook\";\n"
            "  identity = ( { from = \"identities.email\"; as = \"email\"; } "
            ");\n"
            "  fields = ( { from = \"first_name\"; to = \"f\"; },\n"
            "             { value = \"x\"; to = \"g\"; },\n"
            "             { from = \"points\"; to = \"f\"; } );\n"
            "  events = (\n"
            "    { on = \"*\"; name = \"E\";\n"
            "      attributes = ( { name = \"a\"; value = \"1\"; },\n"
            "                     { name = \"b\"; value = \"2\"; },\n"
            "                     { name = \"a\"; value = \"3\"; "
            "type = \"number\"; } );\n"
            "      operations = (\n"
            "        { op = \"reward.issue\";\n"
            "          attributes = ( { name = \"k\"; value = \"p\"; },\n"
            "                         { name = \"k\"; value = \"q\"; } ); "
            "} ); }\n"
            "  );\n"
            "};\n");
        const relay_connection_t *c = relay_mapping_get(m, 0);
        assert_int_equal(apply_full(c, "acme", "antavo", "any",
                                    "{'email': 'a@b'}",
                                    "{'first_name': 'Ada', 'points': 7}"),
                         RELAY_MAP_OUT);
        assert_field("attributes", "{'a': 3, 'b': '2'}");
        assert_field("user_attributes", "{'f': 7, 'g': 'x'}");
        assert_field("operations", "[{'op': 'reward.issue', 'target': null, "
                                   "'attributes': {'k': 'q'}}]");
        /* The order of the keys as written: the first place kept. */
        avro_value_t map, v;
        const char *name;
        assert_int_equal(avro_value_get_by_name(&out, "attributes", &map, NULL),
                         0);
        assert_int_equal(avro_value_get_by_index(&map, 0, &v, &name), 0);
        assert_string_equal(name, "a");
        assert_int_equal(
            avro_value_get_by_name(&out, "user_attributes", &map, NULL), 0);
        assert_int_equal(avro_value_get_by_index(&map, 0, &v, &name), 0);
        assert_string_equal(name, "f");
        size_t n = 0;
        avro_value_get_size(&map, &n);
        assert_int_equal(n, 2);

        /* avro-c reading the bytes back would merge a key given twice:
         * the maps' slots themselves hold each key once. */
        relay_avro_writer_t *wi = relay_avro_writer_new(
            schemas, "loyalty.events-value", err, sizeof(err));
        relay_avro_writer_t *wo = relay_avro_writer_new(
            schemas, "out.webhook-value", err, sizeof(err));
        relay_avro_reader_t *r = relay_avro_reader_new(
            schemas, "loyalty.events-value", 0, err, sizeof(err));
        assert_non_null(wi);
        assert_non_null(wo);
        assert_non_null(r);
        json_t *j = js("{'event_id': 'e', 'occurred_at': 1, 'tenant': "
                       "'acme', 'source': 'antavo', 'event_type': 'any', "
                       "'identities': {'email': 'a@b'}, 'data': "
                       "{'first_name': 'Ada', 'points': 7}}");
        assert_int_equal(relay_avro_from_json(relay_avro_writer_value(wi), j,
                                              err, sizeof(err)),
                         0);
        json_decref(j);
        const void *buf;
        size_t len;
        assert_int_equal(
            relay_avro_writer_encode(wi, &buf, &len, err, sizeof(err)),
            RELAY_OK);
        const relay_slots_t *is;
        assert_int_equal(relay_avro_reader_decode_slots(r, buf, len, &is, NULL,
                                                        err, sizeof(err)),
                         RELAY_OK);
        relay_slots_t *os = relay_avro_writer_slots(wo);
        assert_int_equal(
            relay_connection_apply(c, is, os, &key, err, sizeof(err)),
            RELAY_MAP_OUT);
        relay_out_index_t ix;
        memset(&ix, 0, sizeof(ix));
        relay_out_index(&ix, relay_avro_writer_shape(wo));
        assert_int_equal(os->s[ix.slot[RELAY_OUT_ATTRIBUTES]].n, 2);
        assert_int_equal(os->s[ix.slot[RELAY_OUT_USER_ATTRIBUTES]].n, 2);
        const relay_slot_t *op0 = relay_out_op_get(&ix, os, 0,
                                                   RELAY_OUT_OP_ATTRIBUTES);
        assert_int_equal(op0->type, AVRO_MAP);
        assert_int_equal(op0->n, 1);
        relay_avro_reader_destroy(r);
        relay_avro_writer_destroy(wi);
        relay_avro_writer_destroy(wo);
        relay_mapping_destroy(m);
}

/* A valid connection; each bad one below changes one thing in it. The
 * errors name lines: 1 connection, 2 id, 3 tenant, 5 destination,
 * 6 identity entry, 7 field-sync entry, 9 event entry, 10 its attribute. */
static const char *const base =
    "connection = {\n"
    "  id = \"t1\";\n"
    "  tenant = \"acme\";\n"
    "  source = \"antavo\";\n"
    "  destination = \"mparticle\";\n"
    "  identity = ( { from = \"identities.email\"; as = \"email\"; } );\n"
    "  fields = ( { from = \"first_name\"; to = \"$firstname\"; } );\n"
    "  events = (\n"
    "    { on = \"coupon_issued\"; name = \"Coupon\"; category = \"other\";\n"
    "      attributes = ( { name = \"code\"; value = \"{coupon_code}\"; } ); "
    "}\n"
    "  );\n"
    "};\n";

/* text with the first occurrence of from replaced by to (new string). */
static char *edit_text(const char *text, const char *from, const char *to)
{
        const char *at = strstr(text, from);
        if (!at)
                fail_msg("\"%s\" is not in the connection text", from);
        size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
        char *s = malloc(n);
        snprintf(s, n, "%.*s%s%s", (int)(at - text), text, to,
                 at + strlen(from));
        return s;
}

/* base with the first occurrence of from replaced by to. */
static char *edit(const char *from, const char *to)
{
        return edit_text(base, from, to);
}

static void bad_text(const char *name, const char *text, int line,
                     const char *what)
{
        const char *path = write_file(name, text);
        err[0] = '\0';
        assert_null(relay_mapping_load(path, loyalty, err, sizeof(err)));
        char want[1200];
        snprintf(want, sizeof(want), "%s:%d: ", path, line);
        if (strncmp(err, want, strlen(want)))
                fail_msg("\"%s\"\n  does not start with \"%s\"", err, want);
        assert_contains(err, what);
}

static void bad(const char *name, const char *from, const char *to, int line,
                const char *what)
{
        char *text = edit(from, to);
        bad_text(name, text, line, what);
        free(text);
}

/* The fields a mapping reads: what transform decodes (the rest is
 * skipped). A connection that reads no payload field leaves data out. */
static void test_fields_read(void **state)
{
        relay_mapping_t *m = load_ok(
            "fields.cfg",
            "connection = {\n"
            "  id = \"f\"; tenant = \"acme\"; source = \"antavo\";\n"
            "  destination = \"mparticle\";\n"
            "  identity = ( { from = \"identities.email\"; as = \"email\"; } "
            ");\n"
            "  events = ( { on = \"*\"; name = \"Any\"; } );\n"
            "};\n");
        relay_buf_t b;
        relay_buf_init(&b);
        for (const char *const *f = relay_mapping_fields(m); *f; f++)
                relay_buf_printf(&b, "%s ", *f);
        assert_string_equal(b.data, "tenant source event_id occurred_at "
                                    "event_type identities ");
        relay_buf_free(&b);
        relay_mapping_destroy(m);
        m = load_ok("fields2.cfg",
                    "connection = {\n"
                    "  id = \"f\"; tenant = \"acme\"; source = \"antavo\";\n"
                    "  destination = \"mparticle\";\n"
                    "  identity = ( { from = \"identities.email\"; as = "
                    "\"email\"; } );\n"
                    "  events = ( { on = \"*\"; name = \"Any\"; attributes = "
                    "( { name = \"c\"; value = \"x{coupon_code}\"; } ); } );\n"
                    "};\n");
        const char *const *f = relay_mapping_fields(m);
        int data = 0;
        for (; *f; f++)
                data |= !strcmp(*f, "data");
        assert_true(data);
        relay_mapping_destroy(m);
}

static void test_load_errors(void **state)
{
        /* The base itself loads. */
        relay_mapping_destroy(load_ok("base.cfg", base));

        bad("typo.cfg", "destination =", "destinaton =", 5,
            "unknown key 'destinaton' in connection");
        bad("dest.cfg", "\"mparticle\"", "\"nowhere\"", 5,
            "destination 'nowhere' has no delivery adapter");
        bad("op-vocab.cfg", "category = \"other\";",
            "category = \"other\"; operations = ( { op = "
            "\"membership.add\"; target = \"x\"; } );",
            9, "operation 'membership.add' is not one that mparticle "
               "performs");
        bad("category.cfg", "\"other\"", "\"purchase\"", 9,
            "category 'purchase' is not a mparticle event category");
        bad("idtype.cfg", "as = \"email\"", "as = \"wallet_id\"", 6,
            "identity type 'wallet_id' is not one that mparticle accepts");
        bad("tmpl-map.cfg", "{coupon_code}", "Hi {identities}", 10,
            "template \"Hi {identities}\" names field 'identities', which "
            "is a map, not a value");
        bad("tmpl-field.cfg", "{coupon_code}", "{nosuch.x}", 10,
            "template \"{nosuch.x}\" names field 'nosuch.x', but the record "
            "has no field 'nosuch'");
        bad("tmpl-open.cfg", "{coupon_code}", "Coupon {coupon_code", 10,
            "template \"Coupon {coupon_code\" has an unclosed '{'");
        bad("tmpl-close.cfg", "{coupon_code}", "50% off}", 10,
            "has an unmatched '}'");
        bad("tmpl-empty.cfg", "{coupon_code}", "{}", 10, "empty field name");
        bad("both.cfg", "value = \"{coupon_code}\";",
            "value = \"x\"; from = \"coupon_code\";", 10,
            "an event attribute 'code' needs exactly one of 'value' "
            "(literal or {field} template) and 'from'");
        bad("neither.cfg", "value = \"{coupon_code}\";", "", 10,
            "needs exactly one of 'value'");
        bad("no-events.cfg",
            "  events = (\n"
            "    { on = \"coupon_issued\"; name = \"Coupon\"; category = "
            "\"other\";\n"
            "      attributes = ( { name = \"code\"; value = "
            "\"{coupon_code}\"; } ); }\n"
            "  );\n",
            "", 1, "connection needs 'events = (");
        bad("syntax.cfg", "tenant = \"acme\";", "tenant = ;", 3,
            "syntax error");
        bad("attr-key.cfg", "name = \"code\";",
            "name = \"code\"; requird = true;", 10,
            "unknown key 'requird' in an event attribute");
        bad("bad-type.cfg", "value = \"{coupon_code}\";",
            "value = \"{coupon_code}\"; type = \"integer\";", 10,
            "an event attribute 'code': type 'integer' is not one of keep, "
            "string, number, bool");
        bad("from-map.cfg", "from = \"first_name\"", "from = \"identities\"", 7,
            "a field-sync entry '$firstname' names field 'identities', "
            "which is a map, not a value");
        bad("sync-to.cfg", "to = \"$firstname\"", "name = \"$firstname\"", 7,
            "a field-sync entry needs 'to'");
        bad("id-from.cfg", "from = \"identities.email\"",
            "from = \"ids.email\"", 6,
            "identity names field 'ids.email', but the record has no field "
            "'ids'");
        bad("no-identity.cfg",
            "  identity = ( { from = \"identities.email\"; as = \"email\"; } "
            ");\n",
            "", 1, "connection needs 'identity = (");
        bad("no-name.cfg", "name = \"Coupon\";", "", 9,
            "an event entry that is not dropped needs 'name'");
        bad("no-tenant.cfg", "  tenant = \"acme\";\n", "", 1,
            "connection needs 'tenant'");
        bad("event-field.cfg", "  tenant",
            "  event_field = \"nosuch.kind\"; tenant", 1,
            "event_field names field 'nosuch.kind', but the record has no "
            "field 'nosuch'");
        bad("top.cfg", "connection = {", "conection = {", 1,
            "unknown key 'conection' in the file");
        bad("person.cfg", "  tenant",
            "  person = \"ids.customer_id\";\n  tenant", 3,
            "person names field 'ids.customer_id', but the record has no "
            "field 'ids'");
        bad("person-map.cfg", "  tenant",
            "  person = \"identities\";\n  tenant", 3,
            "person names field 'identities', which is a map, not a value");
        bad("person-type.cfg", "  tenant", "  person = 7;\n  tenant", 3,
            "'person' of connection must be a string");
        bad("unmapped.cfg", "  tenant", "  unmapped = \"drop\";\n  tenant", 3,
            "unmapped = \"drop\" is not one of \"skip\" (the default: events "
            "no rule names are counted and skipped) and \"dead_letter\"");

        char missing[600];
        snprintf(missing, sizeof(missing), "%s/nosuch", tmpdir);
        assert_null(relay_mapping_load(missing, loyalty, err, sizeof(err)));
        assert_contains(err, missing);
        assert_contains(err, "No such file or directory");
}

/* event_field names the field holding the event type; a name that is not
 * a top-level field is a key of data. */
static void test_event_field(void **state)
{
        char *text = edit("  tenant", "  event_field = \"data.kind\"; tenant");
        relay_mapping_t *m = load_ok("kind.cfg", text);
        free(text);
        const relay_connection_t *c = relay_mapping_get(m, 0);
        assert_int_equal(apply_full(c, "acme", "antavo", "other",
                                    "{'email': 'a@b'}",
                                    "{'kind': 'coupon_issued', "
                                    "'coupon_code': 'C'}"),
                         RELAY_MAP_OUT);
        assert_field("attributes", "{'code': 'C'}");
        assert_field("user_attributes", "{}");
        assert_int_equal(apply_full(c, "acme", "antavo", "coupon_issued",
                                    "{'email': 'a@b'}", "{'coupon_code': 'C'}"),
                         RELAY_MAP_ERROR);
        assert_string_equal(err, "connection t1: the record has no "
                                 "data.kind");
        relay_mapping_destroy(m);
}

/* ---- the person key, identities that are not UTF-8, unmapped types ---- */

/* Set map[name] of the record built last to the n raw bytes at bytes
 * (NUL-terminated at n): JSON cannot carry bytes that are not UTF-8, but an
 * Avro string from a producer can. */
static void set_raw(const char *map, const char *name, const char *bytes,
                    size_t n)
{
        avro_value_t m, e, b;
        assert_int_equal(avro_value_get_by_name(&in, map, &m, NULL), 0);
        assert_int_equal(avro_value_add(&m, name, &e, NULL, NULL), 0);
        if (avro_value_get_type(&e) == AVRO_UNION) {
                avro_schema_t us = avro_value_get_schema(&e);
                size_t i = 0;
                while (avro_typeof(avro_schema_union_branch(us, (int)i)) !=
                       AVRO_STRING)
                        i++;
                assert_int_equal(avro_value_set_branch(&e, (int)i, &b), 0);
                e = b;
        }
        assert_int_equal(avro_value_set_string_len(&e, bytes, n + 1), 0);
}

/* A person field apart from the identity: the key follows the person
 * whichever identity the record is sent with. */
static void test_person_key(void **state)
{
        char *text =
            edit("  tenant", "  person = \"identities.customer_id\"; tenant");
        relay_mapping_t *m = load_ok("person-ok.cfg", text);
        free(text);
        const relay_connection_t *c = relay_mapping_get(m, 0);
        assert_string_equal(relay_connection_person(c),
                            "identities.customer_id");
        assert_string_equal(relay_connection_person(acme()),
                            "identities.customer_id");

        assert_int_equal(apply_full(c, "acme", "antavo", "coupon_issued",
                                    "{'email': 'a@b', 'customer_id': 'c-7'}",
                                    "{'coupon_code': 'C'}"),
                         RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/c-7");
        assert_field("identity_type", "'email'");
        assert_field("identity_value", "'a@b'");
        assert_int_equal(relay_connection_fallback_keys(c), 0);

        /* Without the person: keyed by the identity it is sent with (no
         * type in the key), and counted. */
        assert_int_equal(apply_full(c, "acme", "antavo", "coupon_issued",
                                    "{'email': 'x@y'}", "{'coupon_code': 'C'}"),
                         RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/x@y");
        assert_int_equal(relay_connection_fallback_keys(c), 1);

        /* Records that are not produced are not counted. */
        assert_int_equal(apply_full(c, "acme", "antavo", "coupon_issued",
                                    "{'email': 'x@y'}", "{}"),
                         RELAY_MAP_ERROR);
        assert_int_equal(
            apply_full(c, "acme", "antavo", "nosuch", "{'email': 'x@y'}", "{}"),
            RELAY_MAP_SKIP);
        assert_int_equal(relay_connection_fallback_keys(c), 1);
        relay_mapping_destroy(m);

        /* A person in data: null is as absent as a missing field; a number
         * keys by its text. */
        text = edit("  tenant", "  person = \"member\"; tenant");
        m = load_ok("person-data.cfg", text);
        free(text);
        c = relay_mapping_get(m, 0);
        assert_string_equal(relay_connection_person(c), "data.member");
        assert_int_equal(apply_full(c, "acme", "antavo", "coupon_issued",
                                    "{'email': 'a@b'}",
                                    "{'coupon_code': 'C', 'member': 42}"),
                         RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/42");
        assert_int_equal(apply_full(c, "acme", "antavo", "coupon_issued",
                                    "{'email': 'a@b'}",
                                    "{'coupon_code': 'C', 'member': null}"),
                         RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/a@b");
        assert_int_equal(relay_connection_fallback_keys(c), 1);
        relay_mapping_destroy(m);
}

static void test_identity_not_utf8(void **state)
{
        static const char *const bad_bytes[] = {
            "\xff\xfe(\xb2Z", /* not UTF-8 at all */
            "c-\xc3",         /* a sequence cut short */
            "\xc0\xaf",       /* overlong '/' */
            "\xed\xa0\x80",   /* a UTF-16 surrogate */
            /* ASCII is passed eight bytes at a time: the bad byte last of
             * a word, first after one, cut short after two, a sequence
             * across the words' border */
            "abcdefg\xff",
            "abcdefgh\xff",
            "abcdefghijklmnop\xc3",
            "abcdefg\xc3(xyzuvw",
        };
        for (size_t i = 0; i < sizeof(bad_bytes) / sizeof(*bad_bytes); i++) {
                build("acme", "antavo", "opt_in", both_ids, "{}");
                set_raw("identities", "customer_id", bad_bytes[i],
                        strlen(bad_bytes[i]));
                /* Refused, not repaired, and not replaced by the email
                 * that comes next in the list. */
                assert_int_equal(run(acme()), RELAY_MAP_ERROR);
                assert_string_equal(err, "connection " CONN ": identity "
                                         "identities.customer_id is not "
                                         "valid UTF-8");
        }

        /* UTF-8 beyond ASCII is an identity like any other. */
        build("acme", "antavo", "opt_in", both_ids, "{}");
        set_raw("identities", "customer_id", "c-\xc3\xa9\xe2\x82\xac", 7);
        assert_int_equal(run(acme()), RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/c-\xc3\xa9\xe2\x82\xac");
        build("acme", "antavo", "opt_in", both_ids, "{}");
        set_raw("identities", "customer_id",
                "abcdefg\xc3\xa9 abcdefgh\xe2\x82\xac", 21);
        assert_int_equal(run(acme()), RELAY_MAP_OUT);
        assert_string_equal(key.data,
                            "acme/abcdefg\xc3\xa9 abcdefgh\xe2\x82\xac");

        /* An identity that is not chosen is not sent, nor checked. */
        build("acme", "antavo", "opt_in", both_ids, "{}");
        set_raw("identities", "email", "\xff", 1);
        assert_int_equal(run(acme()), RELAY_MAP_OUT);
        assert_field("identity_value", "'c-1'");

        /* Other strings go on, with U+FFFD where they reach JSON. */
        build("acme", "antavo", "coupon_issued", both_ids, "{}");
        set_raw("data", "coupon_code", "W\xff", 2);
        assert_int_equal(run(acme()), RELAY_MAP_OUT);
        assert_field("attributes/description", "'Coupon W\xef\xbf\xbd issued'");

        /* The person's value is checked too: it is the key. */
        char *text =
            edit("  tenant", "  person = \"identities.customer_id\"; tenant");
        relay_mapping_t *m = load_ok("person-utf8.cfg", text);
        free(text);
        build("acme", "antavo", "coupon_issued", "{'email': 'a@b'}",
              "{'coupon_code': 'C'}");
        set_raw("identities", "customer_id", "\xff", 1);
        assert_int_equal(run(relay_mapping_get(m, 0)), RELAY_MAP_ERROR);
        assert_string_equal(err, "connection t1: person identities.customer_id "
                                 "is not valid UTF-8");
        relay_mapping_destroy(m);
}

/* Tests that read the log capture it for their whole run (setup and
 * teardown), so that one failing midway leaves the stream to the next. */
static FILE *log_mem;
static char *log_buf;
static size_t log_len;

static int log_capture(void **state)
{
        if (!(log_mem = open_memstream(&log_buf, &log_len)))
                return -1;
        relay_log_set_stream(log_mem);
        relay_log_level = LOG_INFO;
        return 0;
}

static int log_release(void **state)
{
        relay_log_set_stream(NULL);
        fclose(log_mem);
        free(log_buf);
        log_buf = NULL;
        relay_mapping_notice_interval_ms = 60 * 1000;
        return 0;
}

/* What was logged since the test began. */
static const char *log_text(void)
{
        fflush(log_mem);
        return log_buf ? log_buf : "";
}

static int occurrences(const char *hay, const char *needle)
{
        int n = 0;
        for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

static void assert_unmapped(const relay_connection_t *c, size_t i,
                            const char *type, uint64_t count)
{
        uint64_t got = 0;
        const char *t = relay_connection_unmapped_get(c, i, &got);
        if (!t || strcmp(t, type) || got != count)
                fail_msg("unmapped type %zu: got '%s' x %llu, want '%s' x "
                         "%llu",
                         i, t ? t : "(none)", (unsigned long long)got, type,
                         (unsigned long long)count);
}

static void test_unmapped_skip(void **state)
{
        char *text = edit("  events = (\n",
                          "  events = (\n"
                          "    { on = \"profile_view\"; drop = true; },\n");
        relay_mapping_t *m = load_ok("unmapped-skip.cfg", text);
        free(text);
        const relay_connection_t *c = relay_mapping_get(m, 0);
        assert_int_equal(relay_connection_unmapped_types(c), 0);
        assert_null(relay_connection_unmapped_get(c, 0, NULL));
        const char *types[] = {"nosuch", "nosuch", "other", "profile_view",
                               "nosuch"};
        for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++) {
                assert_int_equal(apply_full(c, "acme", "antavo", types[i],
                                            "{'email': 'a@b'}", "{}"),
                                 RELAY_MAP_SKIP);
                assert_string_equal(err, "");
        }
        /* Counted per type, in the order first seen; the dropped type is
         * associated, so neither counted nor logged. */
        assert_int_equal(relay_connection_unmapped_types(c), 2);
        assert_unmapped(c, 0, "nosuch", 3);
        assert_unmapped(c, 1, "other", 1);
        assert_null(relay_connection_unmapped_get(c, 2, NULL));

        /* Logged once per type within the interval, naming both. */
        const char *log = log_text();
        assert_int_equal(occurrences(log, "has no rule"), 2);
        assert_contains(log, "connection 't1': event type 'nosuch' has no "
                             "rule: 1 record(s) skipped since last logged, "
                             "1 in all");
        assert_contains(log, "connection 't1': event type 'other' has no "
                             "rule: 1 record(s) skipped");
        assert_int_equal(occurrences(log, "profile_view"), 0);

        /* Once the interval is over, the next one is logged with what was
         * skipped quietly meanwhile. */
        relay_mapping_notice_interval_ms = 0; /* log_release() restores */
        apply_full(c, "acme", "antavo", "nosuch", "{'email': 'a@b'}", "{}");
        log = log_text();
        assert_int_equal(occurrences(log, "event type 'nosuch' has no rule"),
                         2);
        assert_contains(log, "event type 'nosuch' has no rule: 3 record(s) "
                             "skipped since last logged, 4 in all");
        assert_unmapped(c, 0, "nosuch", 4);

        /* Counts are per connection: the example's are its own. */
        for (size_t i = 0; relay_connection_unmapped_get(acme(), i, NULL); i++)
                assert_string_not_equal(
                    relay_connection_unmapped_get(acme(), i, NULL), "other");
        relay_mapping_destroy(m);
}

/* A producer sending any string as a type cannot grow the table (or a
 * metric's labels) without bound. */
static void test_unmapped_bounded(void **state)
{
        relay_mapping_t *m = load_ok("unmapped-many.cfg", base);
        const relay_connection_t *c = relay_mapping_get(m, 0);
        char type[300];
        for (int i = 0; i < 300; i++) {
                snprintf(type, sizeof(type), "type-%d", i);
                assert_int_equal(apply_full(c, "acme", "antavo", type,
                                            "{'email': 'a@b'}", "{}"),
                                 RELAY_MAP_SKIP);
        }
        memset(type, 'x', 200);
        type[200] = '\0';
        apply_full(c, "acme", "antavo", type, "{'email': 'a@b'}", "{}");
        assert_int_equal(occurrences(log_text(), "has no rule"), 256);
        assert_int_equal(occurrences(log_text(), "'(other types)'"), 1);
        assert_int_equal(relay_connection_unmapped_types(c), 257);
        assert_unmapped(c, 0, "type-0", 1);
        assert_unmapped(c, 255, "type-255", 1);
        assert_unmapped(c, 256, "(other types)", 45);
        assert_null(relay_connection_unmapped_get(c, 257, NULL));
        relay_mapping_destroy(m);
}

static void test_unmapped_dead_letter(void **state)
{
        char *text = edit("  tenant", "  unmapped = \"dead_letter\"; tenant");
        char *with_drop = edit_text(text, "  events = (\n",
                                    "  events = (\n"
                                    "    { on = \"profile_view\"; drop = "
                                    "true; },\n");
        relay_mapping_t *m = load_ok("unmapped-dl.cfg", with_drop);
        free(text);
        free(with_drop);
        const relay_connection_t *c = relay_mapping_get(m, 0);
        assert_int_equal(apply_full(c, "acme", "antavo", "coupon_expired",
                                    "{'email': 'a@b'}", "{}"),
                         RELAY_MAP_ERROR);
        assert_string_equal(err, "event type 'coupon_expired' has no rule in "
                                 "connection 't1' (unmapped = dead_letter)");
        assert_unmapped(c, 0, "coupon_expired", 1);
        /* The dead letter says it; no log line per type on top. */
        assert_int_equal(occurrences(log_text(), "has no rule"), 0);

        /* Dropped types stay quiet skips; associated ones map. */
        assert_int_equal(apply_full(c, "acme", "antavo", "profile_view",
                                    "{'email': 'a@b'}", "{}"),
                         RELAY_MAP_SKIP);
        assert_string_equal(err, "");
        assert_int_equal(apply_full(c, "acme", "antavo", "coupon_issued",
                                    "{'email': 'a@b'}", "{'coupon_code': 'C'}"),
                         RELAY_MAP_OUT);
        /* Another tenant's records are not this connection's to refuse. */
        assert_int_equal(apply_full(c, "globex", "antavo", "coupon_expired",
                                    "{'email': 'a@b'}", "{}"),
                         RELAY_MAP_SKIP);
        assert_int_equal(relay_connection_unmapped_types(c), 1);
        relay_mapping_destroy(m);

        /* "skip", written out, is the default. */
        text = edit("  tenant", "  unmapped = \"skip\"; tenant");
        m = load_ok("unmapped-skip-explicit.cfg", text);
        free(text);
        assert_int_equal(apply_full(relay_mapping_get(m, 0), "acme", "antavo",
                                    "coupon_expired", "{'email': 'a@b'}", "{}"),
                         RELAY_MAP_SKIP);
        relay_mapping_destroy(m);
}

static void test_find(void **state)
{
        assert_ptr_equal(relay_mapping_find(example, CONN), acme());
        assert_null(relay_mapping_find(example, "acme"));
        assert_null(relay_mapping_find(example, NULL));
}

static void test_directory(void **state)
{
        /* Files load in name order; other names are not connections. */
        const char *dir = make_dir("dir");
        char *b = edit("\"t1\"", "\"second\"");
        write_file("dir/b.cfg", b);
        write_file("dir/a.cfg", base);
        write_file("dir/README.md", "not a connection");
        write_file("dir/.hidden.cfg", "not = a connection;");
        write_file("dir/notes.cfg.txt", "{{{");
        relay_mapping_t *m = relay_mapping_load(dir, loyalty, err, sizeof(err));
        if (!m)
                fail_msg("%s", err);
        assert_int_equal(relay_mapping_count(m), 2);
        assert_string_equal(relay_connection_id(relay_mapping_get(m, 0)), "t1");
        assert_string_equal(relay_connection_id(relay_mapping_get(m, 1)),
                            "second");
        relay_mapping_destroy(m);
        free(b);

        /* The same id in two files: the second names the first. */
        const char *dup = make_dir("dup");
        const char *first = write_file("dup/a.cfg", base);
        const char *second = write_file("dup/b.cfg", base);
        assert_null(relay_mapping_load(dup, loyalty, err, sizeof(err)));
        char want[1200];
        snprintf(want, sizeof(want),
                 "%s:2: connection id 't1' is also used "
                 "by %s",
                 second, first);
        assert_string_equal(err, want);

        /* One bad file fails the directory, naming it. */
        const char *mixed = make_dir("mixed");
        write_file("mixed/a.cfg", base);
        const char *broken = write_file("mixed/b.cfg", "connection = {\n");
        assert_null(relay_mapping_load(mixed, loyalty, err, sizeof(err)));
        snprintf(want, sizeof(want), "%s:", broken);
        assert_contains(err, want);

        const char *empty = make_dir("empty");
        m = relay_mapping_load(empty, loyalty, err, sizeof(err));
        assert_non_null(m);
        assert_int_equal(relay_mapping_count(m), 0);
        assert_null(relay_mapping_get(m, 0));
        relay_mapping_destroy(m);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_load_example),
            cmocka_unit_test(test_coupon_issued),
            cmocka_unit_test(test_identity_fallback),
            cmocka_unit_test(test_checkout_numbers),
            cmocka_unit_test(test_number_text_as_libc),
            cmocka_unit_test(test_points_typed_copy),
            cmocka_unit_test(test_field_sync),
            cmocka_unit_test(test_skip),
            cmocka_unit_test(test_errors),
            cmocka_unit_test(test_conversions_and_production),
            cmocka_unit_test(test_operations_and_identities),
            cmocka_unit_test(test_names_given_twice),
            cmocka_unit_test(test_load_errors),
            cmocka_unit_test(test_fields_read),
            cmocka_unit_test(test_event_field),
            cmocka_unit_test(test_person_key),
            cmocka_unit_test(test_identity_not_utf8),
            cmocka_unit_test_setup_teardown(test_unmapped_skip, log_capture,
                                            log_release),
            cmocka_unit_test_setup_teardown(test_unmapped_bounded, log_capture,
                                            log_release),
            cmocka_unit_test_setup_teardown(test_unmapped_dead_letter,
                                            log_capture, log_release),
            cmocka_unit_test(test_find),
            cmocka_unit_test(test_directory),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
