/*
 * Unit tests for the mapping engine: the repository's example connection
 * (deploy/config/connections) applied to loyalty events, checked field by
 * field on the Outbound record it fills; records it must skip or refuse;
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
#include "relay/common.h"
#include "relay/mapping.h"

#include <avro.h>
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
static enum relay_map_result
apply_full(const relay_connection_t *c, const char *tenant, const char *source,
           const char *type, const char *identities, const char *data)
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
        avro_value_reset(&out);
        relay_buf_reset(&key);
        err[0] = '\0';
        return relay_connection_apply(c, &in, &out, &key, err, sizeof(err));
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
        assert_string_equal(key.data, "acme/customer_id/c-1");
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
                   "'loyalty_tier': 'gold', 'loyalty_points': 120}}");
}

static void test_identity_fallback(void **state)
{
        assert_int_equal(apply("opt_in",
                               "{'email': 'ada@example.com', "
                               "'mobile': '+44'}",
                               "{}"),
                         RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/email/ada@example.com");
        assert_field("identity_type", "'email'");
        assert_field("identity_value", "'ada@example.com'");

        /* An empty customer_id is no identity either. */
        assert_int_equal(apply("opt_in",
                               "{'customer_id': '', "
                               "'email': 'b@example.com'}",
                               "{}"),
                         RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/email/b@example.com");
        assert_field("identity_type", "'email'");

        /* First in the list wins, whatever the map's order. */
        assert_int_equal(apply("opt_in",
                               "{'email': 'c@example.com', "
                               "'customer_id': 'c-3'}",
                               "{}"),
                         RELAY_MAP_OUT);
        assert_string_equal(key.data, "acme/customer_id/c-3");
        assert_out("{'event_id': 'ev-1', 'occurred_at': 1700000000123, "
                   "'tenant': 'acme', 'source': 'antavo', "
                   "'connection': '" CONN "', 'destination': 'mparticle', "
                   "'environment': 'development', "
                   "'identity_type': 'customer_id', 'identity_value': 'c-3', "
                   "'event_name': 'Loyalty Opt-in', "
                   "'event_category': 'user_preference', "
                   "'attributes': {}, 'user_attributes': {}}");
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

        /* A null value is as missing as an absent one. */
        assert_int_equal(
            apply("coupon_issued", both_ids, "{'coupon_code': null}"),
            RELAY_MAP_ERROR);
        assert_contains(err, "names field data.coupon_code, which the record "
                             "lacks");

        assert_int_equal(apply("checkout", both_ids, "{'total': 5}"),
                         RELAY_MAP_ERROR);
        assert_string_equal(err, "connection " CONN ", event 'Purchase', "
                                 "attribute 'transaction_id': required field "
                                 "data.transaction_id is missing");

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
        assert_string_equal(key.data, "acme/email/a@b");
        assert_out("{'event_id': 'ev-1', 'occurred_at': 1700000000123, "
                   "'tenant': 'acme', 'source': 'antavo', "
                   "'connection': 'conv', 'destination': 'mparticle', "
                   "'environment': 'production', "
                   "'identity_type': 'email', 'identity_value': 'a@b', "
                   "'event_name': 'Anything', 'event_category': null, "
                   "'attributes': {'s': '5', 'b': true, 'n': 5, "
                   "'t': 'whatever/acme:5', 'lit': '{x} }', "
                   "'city': 'Paris', 'ok': true}, "
                   "'user_attributes': {}}");

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

/* base with the first occurrence of from replaced by to. */
static char *edit(const char *from, const char *to)
{
        const char *at = strstr(base, from);
        if (!at)
                fail_msg("\"%s\" is not in the base connection", from);
        size_t n = strlen(base) - strlen(from) + strlen(to) + 1;
        char *s = malloc(n);
        snprintf(s, n, "%.*s%s%s", (int)(at - base), base, to,
                 at + strlen(from));
        return s;
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

static void test_load_errors(void **state)
{
        /* The base itself loads. */
        relay_mapping_destroy(load_ok("base.cfg", base));

        bad("typo.cfg", "destination =", "destinaton =", 5,
            "unknown key 'destinaton' in connection");
        bad("dest.cfg", "\"mparticle\"", "\"braze\"", 5,
            "destination 'braze' has no delivery adapter");
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
            cmocka_unit_test(test_points_typed_copy),
            cmocka_unit_test(test_field_sync),
            cmocka_unit_test(test_skip),
            cmocka_unit_test(test_errors),
            cmocka_unit_test(test_conversions_and_production),
            cmocka_unit_test(test_load_errors),
            cmocka_unit_test(test_event_field),
            cmocka_unit_test(test_directory),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
