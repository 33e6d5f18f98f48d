/*
 * The compiled codec (relay/codec.h): what the workers' hot path does per
 * record, and that it allocates nothing once warm. test_avro.c holds the
 * compiled path against avro-c's on every evolution and bad-input case,
 * tests/schemas/roundtrip.py on every schema and sample, fuzz_codec on
 * mutations of them; this file covers what those do not reach: several
 * map blocks around nested elements, repeated map keys, projection,
 * paths through unions and maps, encoder errors, and the allocation count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"
#include "relay/avro.h"
#include "relay/codec.h"
#include "relay/mapping.h"

#include <avro.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_count.h"

static char err[1024];

static relay_schemas_t *catalogue(void)
{
        char path[1024];
        const char *src = getenv("RELAY_SOURCE_DIR");
        snprintf(path, sizeof(path), "%s/schemas/manifest.cfg",
                 src ? src : ".");
        relay_schemas_t *s = relay_schemas_load(path, err, sizeof(err));
        if (!s)
                fail_msg("%s", err);
        return s;
}

/* A framed record of subject from natural JSON (' for "), in out. */
static size_t frame_of(relay_schemas_t *s, const char *subject,
                       const char *json_text, unsigned char *out, size_t size)
{
        relay_avro_writer_t *w =
            relay_avro_writer_new(s, subject, err, sizeof(err));
        assert_non_null(w);
        json_t *j = js(json_text);
        if (relay_avro_from_json(relay_avro_writer_value(w), j, err,
                                 sizeof(err)))
                fail_msg("%s", err);
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

/* Typical loyalty events, as tests/integration/gen_events.py makes them. */
static const char *const events[] = {
    "{'event_id': '7d1b0b0e-1c1f-4b7e-9a55-000000000001', 'occurred_at': "
    "1764000000001, 'tenant': 'acme', 'source': 'antavo', 'event_type': "
    "'coupon_issued', 'identities': {'customer_id': 'c-1'}, 'data': "
    "{'first_name': 'Name1', 'points_balance': '10', 'tier': 'silver', "
    "'coupon_code': 'C00001'}}",
    "{'event_id': '7d1b0b0e-1c1f-4b7e-9a55-000000000002', 'occurred_at': "
    "1764000000002, 'tenant': 'acme', 'source': 'antavo', 'event_type': "
    "'checkout', 'identities': {'customer_id': 'c-2', 'email': "
    "'two@example.com'}, 'data': {'first_name': 'Name2', 'points_balance': "
    "'20', 'tier': 'gold', 'transaction_id': 'tx-2', 'total': 2.5, 'points': "
    "2}}",
    "{'event_id': '7d1b0b0e-1c1f-4b7e-9a55-000000000003', 'occurred_at': "
    "1764000000003, 'tenant': 'acme', 'source': 'antavo', 'event_type': "
    "'point_add', 'identities': {'email': 'three@example.com'}, 'data': "
    "{'first_name': 'Name3', 'points_balance': '30', 'tier': 'silver', "
    "'points': 3, 'action_reason': 'test'}}",
    "{'event_id': '7d1b0b0e-1c1f-4b7e-9a55-000000000004', 'occurred_at': "
    "1764000000004, 'tenant': 'acme', 'source': 'antavo', 'event_type': "
    "'opt_in', 'identities': {'customer_id': 'c-4'}, 'data': {'first_name': "
    "'Name4', 'points_balance': '40', 'tier': 'silver'}}",
    "{'event_id': '7d1b0b0e-1c1f-4b7e-9a55-000000000005', 'occurred_at': "
    "1764000000005, 'tenant': 'other', 'source': 'antavo', 'event_type': "
    "'opt_in', 'identities': {'customer_id': 'c-5'}, 'data': {}}",
};
#define NEVENTS (sizeof(events) / sizeof(events[0]))

/* transform's per-record work (decode, apply every connection, encode)
 * allocates nothing once warm: a malloc, calloc or realloc in the steady
 * state fails the test. */
static void test_steady_state_allocates_nothing(void **state)
{
        (void)state;
        relay_schemas_t *s = catalogue();
        relay_avro_reader_t *r = relay_avro_reader_new(
            s, "loyalty.events-value", 0, err, sizeof(err));
        relay_avro_writer_t *w =
            relay_avro_writer_new(s, "out.mparticle-value", err, sizeof(err));
        assert_non_null(r);
        assert_non_null(w);
        char path[1024];
        const char *src = getenv("RELAY_SOURCE_DIR");
        snprintf(path, sizeof(path), "%s/deploy/config/connections",
                 src ? src : ".");
        relay_mapping_t *m = relay_mapping_load(
            path, relay_schemas_local(s, "loyalty.events-value"), err,
            sizeof(err));
        if (!m)
                fail_msg("%s", err);
        /* As transform does: only what the connections read. */
        relay_avro_reader_want(r, relay_mapping_fields(m));
        static unsigned char frames[NEVENTS][2048];
        size_t lens[NEVENTS];
        for (size_t i = 0; i < NEVENTS; i++)
                lens[i] = frame_of(s, "loyalty.events-value", events[i],
                                   frames[i], sizeof(frames[i]));
        relay_buf_t key;
        relay_buf_init(&key);
        size_t outs = 0, bytes = 0;
        for (int round = 0; round < 2; round++) {
                /* Round 0 warms up (buffers grow, plans are compiled);
                 * round 1 is counted. */
                allocations = 0;
                counting = round;
                for (size_t n = 0; n < 200 * NEVENTS; n++) {
                        size_t i = n % NEVENTS;
                        const relay_slots_t *in;
                        if (relay_avro_reader_decode_slots(
                                r, frames[i], lens[i], &in, NULL, err,
                                sizeof(err)) != RELAY_OK)
                                break;
                        for (size_t k = 0; k < relay_mapping_count(m); k++) {
                                relay_slots_t *out = relay_avro_writer_slots(w);
                                if (relay_connection_apply(
                                        relay_mapping_get(m, k), in, out, &key,
                                        err, sizeof(err)) != RELAY_MAP_OUT)
                                        continue;
                                const void *buf;
                                size_t len;
                                if (relay_avro_writer_encode_slots(
                                        w, &buf, &len, err, sizeof(err)) !=
                                    RELAY_OK)
                                        break;
                                outs += (size_t)round;
                                bytes += round ? len : 0;
                        }
                }
                counting = 0;
        }
        /* The tenant 'other' record maps to nothing: 4 of 5 are out. */
        assert_int_equal(outs, 200 * 4);
        assert_true(bytes > outs * 100);
        if (allocations)
                fail_msg("%zu allocation(s) in %d records of the steady state",
                         (size_t)allocations, (int)(200 * NEVENTS));
        relay_buf_free(&key);
        relay_mapping_destroy(m);
        relay_avro_writer_destroy(w);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* ---- schemas of the tests' own ----------------------------------------- */

static avro_schema_t schema_of(const char *text)
{
        json_t *j = js(text);
        char *t = json_dumps(j, 0);
        avro_schema_t sc;
        avro_schema_error_t aerr;
        if (avro_schema_from_json(t, (int32_t)strlen(t), &sc, &aerr))
                fail_msg("schema: %s", avro_strerror());
        free(t);
        json_decref(j);
        return sc;
}

/* Decode body with both paths (schema as writer and reader); the compiled
 * encoding must equal avro-c's, which must equal want (hex). */
static void recode_is(avro_schema_t sc, const unsigned char *body, size_t n,
                      const char *want_hex)
{
        relay_shape_t *sh = relay_shape_new(sc, err, sizeof(err));
        assert_non_null(sh);
        relay_plan_t *pl =
            relay_plan_new(sc, 9, sh, NULL, NULL, err, sizeof(err));
        assert_non_null(pl);
        relay_slots_t s;
        relay_slots_init(&s, sh);
        if (relay_plan_decode(pl, body, n, &s, err, sizeof(err)))
                fail_msg("compiled decode: %s", err);
        relay_buf_t a, hex;
        relay_buf_init(&a);
        relay_buf_init(&hex);
        assert_int_equal(relay_shape_encode(sh, &s, &a, err, sizeof(err)), 0);
        for (size_t i = 0; i < a.len; i++)
                relay_buf_printf(&hex, "%02x", (unsigned char)a.data[i]);

        avro_value_iface_t *iface = avro_generic_class_from_schema(sc);
        avro_value_t v;
        avro_generic_value_new(iface, &v);
        avro_reader_t rd = avro_reader_memory((const char *)body, (int64_t)n);
        assert_int_equal(avro_value_read(rd, &v), 0);
        avro_reader_free(rd);
        char ref[1024];
        avro_writer_t wr = avro_writer_memory(ref, sizeof(ref));
        assert_int_equal(avro_value_write(wr, &v), 0);
        size_t rn = (size_t)avro_writer_tell(wr);
        avro_writer_free(wr);
        if (a.len != rn || memcmp(a.data, ref, rn)) {
                relay_buf_t rh;
                relay_buf_init(&rh);
                for (size_t i = 0; i < rn; i++)
                        relay_buf_printf(&rh, "%02x", (unsigned char)ref[i]);
                fail_msg("compiled %s, avro-c %s", hex.data, rh.data);
        }
        assert_string_equal(hex.data, want_hex);

        avro_value_decref(&v);
        avro_value_iface_decref(iface);
        relay_buf_free(&a);
        relay_buf_free(&hex);
        relay_slots_free(&s);
        relay_plan_destroy(pl);
        relay_shape_destroy(sh);
}

/* A map written in two blocks (the first with a byte size, as Java's
 * blocking encoder writes), whose values are arrays: the second block
 * comes after the first block's nested elements were laid out, so the
 * map's elements move. */
static void test_map_blocks(void **state)
{
        (void)state;
        avro_schema_t sc = schema_of(
            "{'type': 'record', 'name': 'R', 'fields': [{'name': 'm', "
            "'type': {'type': 'map', 'values': {'type': 'array', 'items': "
            "'string'}}}]}");
        /* block -1 (6 bytes): "a" -> ["x"]; block 2: "b" -> [], "c" ->
         * ["y", "z"]; end */
        static const unsigned char body[] = {
            0x01, 0x0c, 0x02, 'a',  0x02, 0x02, 'x',  0x00, 0x04, 0x02, 'b',
            0x00, 0x02, 'c',  0x04, 0x02, 'y',  0x02, 'z',  0x00, 0x00};
        recode_is(sc, body, sizeof(body),
                  /* one block of 3: a -> [x], b -> [], c -> [y, z] */
                  "06026102027800026200026304027902"
                  "7a0000");
        avro_schema_decref(sc);
}

/* A map that gives a key twice is refused by both paths (avro-c would
 * append the arrays, or replace a scalar): no writer writes one, and
 * neither answer is the record's. */
static void test_map_repeated_key(void **state)
{
        (void)state;
        relay_schemas_t *s = catalogue();
        relay_avro_reader_t *r = relay_avro_reader_new(
            s, "loyalty.events-value", 0, err, sizeof(err));
        unsigned char f[2048];
        size_t n = frame_of(s, "loyalty.events-value", events[3], f, sizeof(f));
        /* identities {customer_id: c-4} (18 bytes) -> {customer_id: c-4,
         * customer_id: c-5} (34 bytes) */
        static const char one[] = "\x02\x16"
                                  "customer_id\x06"
                                  "c-4\x00";
        static const char two[] = "\x04\x16"
                                  "customer_id\x06"
                                  "c-4\x16"
                                  "customer_id\x06"
                                  "c-5\x00";
        size_t k = 0;
        while (k + 18 <= n && memcmp(f + k, one, 18))
                k++;
        assert_true(k + 18 <= n);
        unsigned char g[2048];
        memcpy(g, f, k);
        memcpy(g + k, two, 34);
        memcpy(g + k + 34, f + k + 18, n - k - 18);
        size_t gn = n + 16;
        const relay_slots_t *in;
        assert_int_equal(relay_avro_reader_decode_slots(r, g, gn, &in, NULL,
                                                        err, sizeof(err)),
                         RELAY_FATAL);
        assert_non_null(strstr(err, "a map has a key twice"));
        avro_value_t *v;
        assert_int_equal(
            relay_avro_reader_decode(r, g, gn, &v, NULL, err, sizeof(err)),
            RELAY_FATAL);
        /* The same bytes with the second key changed are fine. */
        g[k + 18] = 'X';
        assert_int_equal(relay_avro_reader_decode_slots(r, g, gn, &in, NULL,
                                                        err, sizeof(err)),
                         RELAY_OK);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* Only the fields asked for are read; the others stay unset, and an
 * encoder refuses a record with an unset field, naming it. */
static void test_projection_and_unset(void **state)
{
        (void)state;
        relay_schemas_t *s = catalogue();
        relay_avro_reader_t *r = relay_avro_reader_new(
            s, "loyalty.events-value", 0, err, sizeof(err));
        static const char *const want[] = {"event_id", "data", NULL};
        relay_avro_reader_want(r, want);
        unsigned char f[2048];
        size_t n = frame_of(s, "loyalty.events-value", events[1], f, sizeof(f));
        const relay_slots_t *in;
        assert_int_equal(relay_avro_reader_decode_slots(r, f, n, &in, NULL, err,
                                                        sizeof(err)),
                         RELAY_OK);
        const relay_shape_t *sh = relay_avro_reader_shape(r);
        const relay_slot_t *id = &in->s[relay_shape_field(sh, "event_id")];
        assert_int_equal(id->type, AVRO_STRING);
        assert_int_equal(id->n, 36);
        assert_memory_equal(id->v.p, "7d1b0b0e-1c1f-4b7e-9a55-000000000002",
                            36);
        assert_int_equal(in->s[relay_shape_field(sh, "tenant")].type,
                         RELAY_SLOT_UNSET);
        assert_int_equal(in->s[relay_shape_field(sh, "identities")].type,
                         RELAY_SLOT_UNSET);
        relay_path_t p;
        enum relay_found st;
        assert_int_equal(relay_path_compile(sh, "data.total", &p), 0);
        const relay_slot_t *v = relay_path_get(&p, in, &st);
        assert_non_null(v);
        assert_int_equal(v->type, AVRO_DOUBLE);
        assert_true(v->v.d == 2.5);
        relay_path_free(&p);

        relay_buf_t b;
        relay_buf_init(&b);
        assert_int_equal(relay_shape_encode(sh, in, &b, err, sizeof(err)), -1);
        assert_string_equal(err, "field occurred_at is not set");
        relay_buf_free(&b);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* Paths through a union's record branch and map keys holding dots, with
 * absent and null told apart. */
static void test_paths(void **state)
{
        (void)state;
        relay_schemas_t *s = catalogue();
        relay_avro_reader_t *r = relay_avro_reader_new(
            s, "audience.changes-value", 0, err, sizeof(err));
        assert_non_null(r);
        const char *rec =
            "{'event_id': 'e', 'occurred_at': 1, 'tenant': 't', 'source': "
            "'mappdmp', 'identities': {'dmp_cookie_id': 'c'}, 'change': "
            "'ENTER', 'audience_id': 'a', 'audience_name': null, "
            "'audience_type': 'LOOKALIKE', 'lookalike': {'seed_audience_id': "
            "'s', 'similarity': 0.25, 'reach': null}, 'audience_platform': "
            "'mappdmp', 'expires_at': null, 'attributes': {'geo.city': "
            "'Berlin'}}";
        unsigned char f[2048];
        size_t n = frame_of(s, "audience.changes-value", rec, f, sizeof(f));
        const relay_slots_t *in;
        assert_int_equal(relay_avro_reader_decode_slots(r, f, n, &in, NULL, err,
                                                        sizeof(err)),
                         RELAY_OK);
        const relay_shape_t *sh = relay_avro_reader_shape(r);
        struct {
                const char *path;
                enum relay_found st;
                const char *text;
        } cases[] = {
            {"lookalike.similarity", RELAY_FOUND, "0.25"},
            {"lookalike.reach", RELAY_FOUND_NULL, NULL},
            {"lookalike.seed_audience_id", RELAY_FOUND, "s"},
            {"audience_type", RELAY_FOUND, "LOOKALIKE"},
            {"attributes.geo.city", RELAY_FOUND, "Berlin"},
            {"attributes.geo", RELAY_FOUND_ABSENT, NULL},
            {"identities.email", RELAY_FOUND_ABSENT, NULL},
            {"audience_name", RELAY_FOUND_NULL, NULL},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                relay_path_t p;
                enum relay_found st;
                assert_int_equal(relay_path_compile(sh, cases[i].path, &p), 0);
                const relay_slot_t *v = relay_path_get(&p, in, &st);
                if (st != cases[i].st)
                        fail_msg("%s: found %d, not %d", cases[i].path, st,
                                 cases[i].st);
                if (cases[i].text) {
                        relay_buf_t b;
                        relay_buf_init(&b);
                        assert_int_equal(relay_slot_text(sh, &p, v, &b), 0);
                        assert_string_equal(b.data, cases[i].text);
                        relay_buf_free(&b);
                }
                relay_path_free(&p);
        }
        relay_path_t p;
        assert_int_equal(relay_path_compile(sh, "lookalike.nope", &p), -1);
        assert_int_equal(relay_path_compile(sh, "change.x", &p), -1);
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* The shortest %.15g..%.17g form of d that reads back as d: the text a
 * double slot had before decimals got their own path. */
static void reference_text(double d, char *t, size_t n)
{
        for (int prec = 15;; prec++) {
                snprintf(t, n, "%.*g", prec, d);
                if (prec >= 17 || strtod(t, NULL) == d)
                        return;
        }
}

static void check_double_text(double d)
{
        char want[64];
        reference_text(d, want, sizeof(want));
        relay_buf_t b;
        relay_buf_init(&b);
        relay_slot_t v = {.type = AVRO_DOUBLE, .v.d = d};
        assert_int_equal(relay_slot_scalar_text(&v, &b), 0);
        if (strcmp(b.data, want)) {
                fprintf(stderr, "double %a: got '%s', want '%s'\n", d, b.data,
                        want);
                fail();
        }
        relay_buf_free(&b);
}

/* The text of a double is what snprintf's shortest round trip writes,
 * whether it takes the short path for decimals (amounts, points: m / 10^k
 * up to 15 digits and 6 places) or not: every decimal of a grid over the
 * whole short range and its edges, and doubles of random bits. */
static void test_double_text(void **state)
{
        (void)state;
        static const double edges[] = {0.0,
                                       -0.0,
                                       1e-4,
                                       9.9999e-5,
                                       1e-5,
                                       0.1,
                                       0.2,
                                       0.3,
                                       1.0 / 3,
                                       2.5,
                                       -2.5,
                                       100,
                                       1e14,
                                       999999999999999.0,
                                       1e15,
                                       1e15 - 0.5,
                                       123456789012345.6,
                                       12345678901234.56,
                                       0.000123456,
                                       4503599627370495.5,
                                       9007199254740993.0,
                                       1e300,
                                       -1e-300,
                                       5e-324};
        for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
                check_double_text(edges[i]);
        static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7};
        uint64_t x = 88172645463325252ull; /* xorshift64 */
        for (int i = 0; i < 200000; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                int k = (int)(x % 8), digits = 1 + (int)((x >> 3) % 16);
                uint64_t m = (x >> 8) % (uint64_t)(p10[digits % 8] *
                                                   (digits > 7 ? 1e8 : 1));
                double d = (double)m / p10[k];
                check_double_text(x & 1 ? -d : d);
                double r;
                memcpy(&r, &x, sizeof(r));
                if (r == r) /* not a NaN */
                        check_double_text(r);
        }
}

/* relay_path_get (inline: the leaf's slot kept in the path, map keys
 * compared inline) answers what the plain walk does, pointer and
 * status, on every path of the loyalty events and of a record with
 * union branches and dotted keys: present, absent, null, unset by
 * projection, keys that share a prefix or a length. */
static void get_is_walk(const relay_shape_t *sh, const relay_slots_t *in,
                        const char *path)
{
        relay_path_t p;
        if (relay_path_compile(sh, path, &p))
                fail_msg("%s does not compile", path);
        enum relay_found a = RELAY_FOUND, b = RELAY_FOUND_NULL;
        const relay_slot_t *x = relay_path_get(&p, in, &a),
                           *y = relay_path_walk(&p, in, &b);
        if (x != y || a != b)
                fail_msg("%s: get %p (%d), walk %p (%d)", path, (void *)x, a,
                         (void *)y, b);
        relay_path_free(&p);
}

static void test_path_get_is_walk(void **state)
{
        (void)state;
        relay_schemas_t *s = catalogue();
        static const char *const loyalty[] = {
            "event_id",           "occurred_at",        "tenant",
            "source",             "event_type",         "identities.customer_id",
            "identities.email",   "identities.custome", "identities.x",
            "identities.c",       "data.points",        "data.points_balance",
            "data.pointz",        "data.total",         "data.first_name",
            "data.coupon_code",   "data.action_reason", "data.nope",
            "data.tier",          "data.transaction_id"};
        static const char *const want[] = {"event_id", "identities", NULL};
        for (int projected = 0; projected < 2; projected++) {
                relay_avro_reader_t *r = relay_avro_reader_new(
                    s, "loyalty.events-value", 0, err, sizeof(err));
                assert_non_null(r);
                if (projected)
                        relay_avro_reader_want(r, want);
                for (size_t e = 0; e < NEVENTS; e++) {
                        unsigned char f[2048];
                        size_t n = frame_of(s, "loyalty.events-value",
                                            events[e], f, sizeof(f));
                        const relay_slots_t *in;
                        assert_int_equal(
                            relay_avro_reader_decode_slots(r, f, n, &in, NULL,
                                                           err, sizeof(err)),
                            RELAY_OK);
                        for (size_t i = 0;
                             i < sizeof(loyalty) / sizeof(loyalty[0]); i++)
                                get_is_walk(relay_avro_reader_shape(r), in,
                                            loyalty[i]);
                }
                relay_avro_reader_destroy(r);
        }

        relay_avro_reader_t *r = relay_avro_reader_new(
            s, "audience.changes-value", 0, err, sizeof(err));
        assert_non_null(r);
        static const char *const recs[] = {
            "{'event_id': 'e', 'occurred_at': 1, 'tenant': 't', 'source': "
            "'mappdmp', 'identities': {'dmp_cookie_id': 'c'}, 'change': "
            "'ENTER', 'audience_id': 'a', 'audience_name': null, "
            "'audience_type': 'LOOKALIKE', 'lookalike': {'seed_audience_id': "
            "'s', 'similarity': 0.25, 'reach': null}, 'audience_platform': "
            "'mappdmp', 'expires_at': null, 'attributes': {'geo.city': "
            "'Berlin', 'geo.cite': 'x', '': 'empty'}}",
            "{'event_id': 'e', 'occurred_at': 1, 'tenant': 't', 'source': "
            "'mappdmp', 'identities': {}, 'change': 'EXIT', 'audience_id': "
            "'a', 'audience_name': 'n', 'audience_type': 'SEGMENT', "
            "'lookalike': null, 'audience_platform': 'mappdmp', "
            "'expires_at': 5, 'attributes': {}}"};
        static const char *const audience[] = {
            "lookalike.similarity", "lookalike.reach",
            "lookalike.seed_audience_id", "audience_type",
            "attributes.geo.city", "attributes.geo.cite", "attributes.geo",
            "attributes.x", "identities.email", "identities.dmp_cookie_id",
            "audience_name", "expires_at"};
        for (size_t e = 0; e < sizeof(recs) / sizeof(recs[0]); e++) {
                unsigned char f[2048];
                size_t n = frame_of(s, "audience.changes-value", recs[e], f,
                                    sizeof(f));
                const relay_slots_t *in;
                assert_int_equal(relay_avro_reader_decode_slots(
                                     r, f, n, &in, NULL, err, sizeof(err)),
                                 RELAY_OK);
                for (size_t i = 0; i < sizeof(audience) / sizeof(audience[0]);
                     i++)
                        get_is_walk(relay_avro_reader_shape(r), in,
                                    audience[i]);
        }
        relay_avro_reader_destroy(r);
        relay_schemas_destroy(s);
}

/* Strings and map keys of every length from 0 to 40 (the encoder copies
 * short ones itself, in overlapping words) encode as avro-c writes them. */
static void test_string_lengths(void **state)
{
        (void)state;
        avro_schema_t sc = schema_of(
            "{'type': 'record', 'name': 'S', 'fields': ["
            "{'name': 's', 'type': 'string'}, {'name': 'b', 'type': 'bytes'},"
            "{'name': 'm', 'type': {'type': 'map', 'values': 'string'}}]}");
        relay_shape_t *sh = relay_shape_new(sc, err, sizeof(err));
        assert_non_null(sh);
        avro_value_iface_t *iface = avro_generic_class_from_schema(sc);
        avro_value_t v;
        avro_generic_value_new(iface, &v);
        relay_slots_t s;
        relay_slots_init(&s, sh);
        char text[48], ref[256];
        for (size_t i = 0; i < sizeof(text); i++)
                text[i] = (char)('a' + i % 26);
        for (size_t n = 0; n <= 40; n++) {
                relay_slots_reset(&s);
                size_t fs = (size_t)relay_shape_field(sh, "s"),
                       fb = (size_t)relay_shape_field(sh, "b"),
                       fm = (size_t)relay_shape_field(sh, "m");
                s.s[fs].type = AVRO_STRING;
                s.s[fs].v.p = text + 1;
                s.s[fs].n = (uint32_t)n;
                s.s[fb].type = AVRO_BYTES;
                s.s[fb].v.p = text + 2;
                s.s[fb].n = (uint32_t)n;
                size_t el = relay_slots_append(&s, 2, 1);
                s.s[el].type = AVRO_STRING;
                s.s[el].v.p = text + 3;
                s.s[el].n = (uint32_t)n;
                s.s[el + 1].type = AVRO_STRING;
                s.s[el + 1].v.p = text + 4;
                s.s[el + 1].n = (uint32_t)n;
                s.s[fm].type = AVRO_MAP;
                s.s[fm].n = 1;
                s.s[fm].v.first = el;
                relay_buf_t a;
                relay_buf_init(&a);
                assert_int_equal(relay_shape_encode(sh, &s, &a, err,
                                                    sizeof(err)),
                                 0);

                char key[48], val[48];
                memcpy(key, text + 3, n);
                key[n] = '\0';
                memcpy(val, text + 4, n);
                val[n] = '\0';
                avro_value_t f, e;
                avro_value_reset(&v);
                char sv[48];
                memcpy(sv, text + 1, n);
                sv[n] = '\0';
                avro_value_get_by_name(&v, "s", &f, NULL);
                avro_value_set_string_len(&f, sv, n + 1);
                avro_value_get_by_name(&v, "b", &f, NULL);
                avro_value_set_bytes(&f, text + 2, n);
                avro_value_get_by_name(&v, "m", &f, NULL);
                avro_value_add(&f, key, &e, NULL, NULL);
                avro_value_set_string_len(&e, val, n + 1);
                avro_writer_t wr = avro_writer_memory(ref, sizeof(ref));
                assert_int_equal(avro_value_write(wr, &v), 0);
                size_t rn = (size_t)avro_writer_tell(wr);
                avro_writer_free(wr);
                if (a.len != rn || memcmp(a.data, ref, rn))
                        fail_msg("length %zu: not as avro-c writes it", n);
                relay_buf_free(&a);
        }
        relay_slots_free(&s);
        avro_value_decref(&v);
        avro_value_iface_decref(iface);
        relay_shape_destroy(sh);
        avro_schema_decref(sc);
}

/* A map key with a NUL byte is refused wherever the byte is, for keys of
 * 1 to 24 bytes, as the pre-scan refuses it, and a key without one is
 * taken. */
static void test_map_key_nul(void **state)
{
        (void)state;
        avro_schema_t sc = schema_of("{'type': 'map', 'values': 'null'}");
        relay_shape_t *sh = relay_shape_new(sc, err, sizeof(err));
        assert_non_null(sh);
        relay_plan_t *pl =
            relay_plan_new(sc, 9, sh, NULL, NULL, err, sizeof(err));
        assert_non_null(pl);
        relay_slots_t s;
        relay_slots_init(&s, sh);
        for (size_t n = 1; n <= 24; n++) {
                for (size_t at = 0; at <= n; at++) {
                        /* at == n: no NUL at all */
                        unsigned char body[40];
                        size_t k = 0;
                        body[k++] = 2;                  /* one item */
                        body[k++] = (unsigned char)(2 * n); /* key length */
                        for (size_t i = 0; i < n; i++)
                                body[k++] =
                                    i == at ? 0 : (unsigned char)(0x80 + i);
                        body[k++] = 0; /* the end block */
                        int rc = relay_plan_decode(pl, body, k, &s, err,
                                                   sizeof(err));
                        if (at < n) {
                                if (rc != -1 ||
                                    !strstr(err, "a map key holds a NUL byte"))
                                        fail_msg("%zu bytes, NUL at %zu: "
                                                 "taken",
                                                 n, at);
                        } else if (rc) {
                                fail_msg("%zu bytes without NUL: %s", n, err);
                        }
                }
        }
        relay_slots_free(&s);
        relay_plan_destroy(pl);
        relay_shape_destroy(sh);
        avro_schema_decref(sc);
}

/* The encoder's errors name the field as the value's nearest named node:
 * a nested record's field by its own name, a union's branch and a map's
 * values by the union's or the map's. Every record is first encoded
 * whole, and its bytes held against avro-c's. */
static const char enc_schema[] =
    "{'type': 'record', 'name': 'R', 'fields': ["
    "{'name': 'a', 'type': {'type': 'record', 'name': 'In', 'fields': "
    "[{'name': 'x', 'type': 'int'}]}},"
    "{'name': 'u', 'type': ['null', {'type': 'record', 'name': 'B', "
    "'fields': [{'name': 'y', 'type': 'string'}]}]},"
    "{'name': 'm', 'type': {'type': 'map', 'values': ['null', {'type': "
    "'record', 'name': 'C', 'fields': [{'name': 'z', 'type': 'long'}]}]}},"
    "{'name': 'e', 'type': {'type': 'enum', 'name': 'E', 'symbols': "
    "['p', 'q']}},"
    "{'name': 'f', 'type': {'type': 'fixed', 'name': 'F', 'size': 2}}]}";

/* A valid record of enc_schema in s; *elem: the map element's block. */
static void enc_fill(relay_slots_t *s, const relay_shape_t *sh, size_t *elem)
{
        relay_slots_reset(s);
        size_t a = (size_t)relay_shape_field(sh, "a"),
               u = (size_t)relay_shape_field(sh, "u"),
               m = (size_t)relay_shape_field(sh, "m"),
               e = (size_t)relay_shape_field(sh, "e"),
               f = (size_t)relay_shape_field(sh, "f");
        s->s[a].type = AVRO_INT32;
        s->s[a].v.l = -3;
        s->s[u].type = AVRO_RECORD;
        s->s[u].branch = 1;
        s->s[u + 1].type = AVRO_STRING;
        s->s[u + 1].v.p = "yy";
        s->s[u + 1].n = 2;
        size_t el = relay_slots_append(s, 3, 1);
        s->s[el].type = AVRO_STRING;
        s->s[el].v.p = "k";
        s->s[el].n = 1;
        s->s[el + 1].type = AVRO_RECORD;
        s->s[el + 1].branch = 1;
        s->s[el + 2].type = AVRO_INT64;
        s->s[el + 2].v.l = 300;
        s->s[m].type = AVRO_MAP;
        s->s[m].n = 1;
        s->s[m].v.first = el;
        s->s[e].type = AVRO_ENUM;
        s->s[e].v.l = 1;
        s->s[f].type = AVRO_FIXED;
        s->s[f].v.p = "ab";
        s->s[f].n = 2;
        *elem = el;
}

static void enc_fails(const relay_shape_t *sh, const relay_slots_t *s,
                      const char *want)
{
        relay_buf_t b;
        relay_buf_init(&b);
        assert_int_equal(relay_shape_encode(sh, s, &b, err, sizeof(err)), -1);
        assert_string_equal(err, want);
        relay_buf_free(&b);
}

static void test_encoder_errors(void **state)
{
        (void)state;
        avro_schema_t sc = schema_of(enc_schema);
        relay_shape_t *sh = relay_shape_new(sc, err, sizeof(err));
        assert_non_null(sh);
        relay_slots_t s;
        relay_slots_init(&s, sh);
        size_t el, u = (size_t)relay_shape_field(sh, "u"),
                   e = (size_t)relay_shape_field(sh, "e"),
                   f = (size_t)relay_shape_field(sh, "f");

        enc_fill(&s, sh, &el);
        relay_buf_t b;
        relay_buf_init(&b);
        assert_int_equal(relay_shape_encode(sh, &s, &b, err, sizeof(err)), 0);
        /* x -3, u branch 1 "yy", m {k: branch 1 z 300}, e 1, f "ab" */
        static const unsigned char want[] = {0x05, 0x02, 0x04, 'y', 'y',
                                             0x02, 0x02, 'k',  0x02, 0xd8,
                                             0x04, 0x00, 0x02, 'a',  'b'};
        assert_int_equal(b.len, sizeof(want));
        assert_memory_equal(b.data, want, sizeof(want));
        avro_value_iface_t *iface = avro_generic_class_from_schema(sc);
        avro_value_t v;
        avro_generic_value_new(iface, &v);
        avro_reader_t rd = avro_reader_memory(b.data, (int64_t)b.len);
        assert_int_equal(avro_value_read(rd, &v), 0);
        avro_reader_free(rd);
        char ref[64];
        avro_writer_t wr = avro_writer_memory(ref, sizeof(ref));
        assert_int_equal(avro_value_write(wr, &v), 0);
        assert_int_equal((size_t)avro_writer_tell(wr), b.len);
        assert_memory_equal(ref, b.data, b.len);
        avro_writer_free(wr);
        avro_value_decref(&v);
        avro_value_iface_decref(iface);
        relay_buf_free(&b);

        enc_fill(&s, sh, &el);
        s.s[relay_shape_field(sh, "a")].type = RELAY_SLOT_UNSET;
        enc_fails(sh, &s, "field x is not set");
        enc_fill(&s, sh, &el);
        s.s[u].type = RELAY_SLOT_UNSET;
        enc_fails(sh, &s, "field u: no union branch is set");
        enc_fill(&s, sh, &el);
        s.s[u].type = AVRO_STRING;
        enc_fails(sh, &s, "field u: branch 1 is a record");
        enc_fill(&s, sh, &el);
        s.s[u + 1].type = AVRO_INT64;
        enc_fails(sh, &s, "field y holds a value of type 3, not string");
        enc_fill(&s, sh, &el);
        s.s[u].type = AVRO_INT64;
        s.s[u].branch = 0;
        enc_fails(sh, &s, "field u holds a value of type 3, not null");
        enc_fill(&s, sh, &el);
        s.s[el].type = RELAY_SLOT_UNSET;
        enc_fails(sh, &s, "field m: a map key is not set");
        enc_fill(&s, sh, &el);
        s.s[el + 1].branch = 7;
        enc_fails(sh, &s, "field m: no union branch is set");
        enc_fill(&s, sh, &el);
        s.s[el + 2].type = RELAY_SLOT_UNSET;
        enc_fails(sh, &s, "field z is not set");
        enc_fill(&s, sh, &el);
        s.s[e].v.l = 2;
        enc_fails(sh, &s, "field e: enum index 2 out of range");
        enc_fill(&s, sh, &el);
        s.s[f].n = 1;
        enc_fails(sh, &s, "field f: 1 bytes for a fixed of 2");

        relay_slots_free(&s);
        relay_shape_destroy(sh);
        avro_schema_decref(sc);
}

int main(void)
{
        count_init();
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_steady_state_allocates_nothing),
            cmocka_unit_test(test_map_blocks),
            cmocka_unit_test(test_map_repeated_key),
            cmocka_unit_test(test_projection_and_unset),
            cmocka_unit_test(test_paths),
            cmocka_unit_test(test_path_get_is_walk),
            cmocka_unit_test(test_double_text),
            cmocka_unit_test(test_encoder_errors),
            cmocka_unit_test(test_string_lengths),
            cmocka_unit_test(test_map_key_nul),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
