/*
 * Unit tests of common/crm: the e-mail, phone and address normalisers
 * against the texts the crm.records docs define, the name-based UUID
 * against Python's uuid.uuid5, the column spec (file errors with their
 * line, binding to a header, a row to its content, rejections and
 * identities left out, record ids and event ids), and the delta state
 * (save, load, escaping, a file that is not one, what is missing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "relay/crm.h"
#include "relay/sign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

/* What a normaliser made, as text: the normalised value, "ABSENT" or
 * "INVALID: why". b is freed. */
static char got[512];

static const char *shown(enum relay_crm_norm k, relay_buf_t *b,
                         const char *why)
{
        snprintf(got, sizeof(got), "%s%s",
                 k == RELAY_CRM_VALID     ? b->data
                 : k == RELAY_CRM_ABSENT ? "ABSENT"
                                         : "INVALID: ",
                 k == RELAY_CRM_INVALID ? why : "");
        relay_buf_free(b);
        return got;
}

static const char *email(const char *cell)
{
        relay_buf_t b;
        relay_buf_init(&b);
        const char *why = NULL;
        enum relay_crm_norm k = relay_crm_email(cell, strlen(cell), &b, &why);
        return shown(k, &b, why);
}

static const char *phone(const char *cell, const char *country)
{
        relay_buf_t b;
        relay_buf_init(&b);
        const char *why = NULL;
        enum relay_crm_norm k =
            relay_crm_phone(cell, strlen(cell), country, &b, &why);
        return shown(k, &b, why);
}

static const char *address(const char *street, const char *pc,
                           const char *city, const char *country,
                           const char *def)
{
        relay_crm_address_t a = {street,         pc,         city,
                                 country,        strlen(street), strlen(pc),
                                 strlen(city),   strlen(country)};
        relay_buf_t b;
        relay_buf_init(&b);
        const char *why = NULL;
        enum relay_crm_norm k = relay_crm_address(&a, def, &b, &why);
        return shown(k, &b, why);
}

static void test_email(void **state)
{
        assert_string_equal(email("  John.Doe@Example.COM \t"),
                            "john.doe@example.com");
        assert_string_equal(email("a+tag@sub.example.co.uk"),
                            "a+tag@sub.example.co.uk");
        /* A no-break space around it is trimmed too. */
        assert_string_equal(email("\xC2\xA0X@Y.nl\xC2\xA0"), "x@y.nl");
        /* Non-ASCII capitals of the table are lowercased. */
        assert_string_equal(email("J\xC3\x9CRGEN@m\xC3\x9Cller.DE"),
                            "j\xC3\xBCrgen@m\xC3\xBCller.de");
        assert_string_equal(email(""), "ABSENT");
        assert_string_equal(email("   "), "ABSENT");
        assert_string_equal(email("john"), "INVALID: not one '@'");
        assert_string_equal(email("a@b@c.d"), "INVALID: not one '@'");
        assert_string_equal(email("@example.com"),
                            "INVALID: the part before '@' is empty or longer "
                            "than 64");
        assert_contains(email("jo hn@example.com"), "INVALID: a space");
        assert_contains(email("john@localhost"), "a domain without a dot");
        assert_contains(email("john@example..com"), "a bad domain");
        assert_contains(email("john@-example.com"), "a bad domain");
        assert_contains(email("john@exa_mple.com"), "a bad domain");
        assert_contains(email(".john@example.com"), "a dot at either end");
}

static void test_phone(void **state)
{
        /* National numbers: the trunk prefix dropped, the code put first. */
        assert_string_equal(phone("06-12345678", "NL"), "+31612345678");
        assert_string_equal(phone("(06) 123 456 78", "nl"), "+31612345678");
        assert_string_equal(phone("0151 2345 6789", "DE"), "+4915123456789");
        assert_string_equal(phone("07700 900123", "GB"), "+447700900123");
        /* NANP: a leading 1 is the trunk prefix, or absent. */
        assert_string_equal(phone("(555) 123-4567", "US"), "+15551234567");
        assert_string_equal(phone("1 555 123 4567", "US"), "+15551234567");
        /* Italy keeps its leading 0. */
        assert_string_equal(phone("06 1234 5678", "IT"), "+390612345678");
        /* International forms, whatever the default country. */
        assert_string_equal(phone("+31 6 12345678", "DE"), "+31612345678");
        assert_string_equal(phone("0031 6 1234 5678", "DE"), "+31612345678");
        assert_string_equal(phone("+31 (0)6 1234 5678", "US"),
                            "+31612345678");
        assert_string_equal(phone("0031 (0)6 1234 5678", "US"),
                            "+31612345678");
        assert_string_equal(phone("+44.20.7946.0958", NULL), "+442079460958");
        assert_string_equal(phone("", "NL"), "ABSENT");
        assert_contains(phone("0612345678", NULL), "INVALID: a national number");
        assert_contains(phone("0612345678", "XX"), "INVALID: a national number");
        assert_contains(phone("06-1234 ext 5", "NL"), "INVALID: a character");
        assert_contains(phone("+31 6", "NL"), "INVALID: not 8 to 15 digits");
        assert_contains(phone("+1234567890123456", "NL"), "not 8 to 15");
        assert_contains(phone("+0612345678", "NL"), "starting with 0");
        assert_contains(phone("06+12345678", "NL"), "INVALID: a character");
        /* What the rule does not know: a national number written with
         * the country code but no '+' gets the code twice. */
        assert_string_equal(phone("31612345678", "NL"), "+3131612345678");
        assert_string_equal(relay_crm_calling_code("gb"), "44");
        assert_null(relay_crm_calling_code("XX"));
        assert_null(relay_crm_calling_code("NLD"));
}

static void test_address(void **state)
{
        assert_string_equal(address("  Main   Street 1 ", "1234 AB",
                                    " Amsterdam", "NL", NULL),
                            "main street 1|1234ab|amsterdam|nl");
        /* The default country for an empty one; tabs as spaces. */
        assert_string_equal(address("Königstraße\t7", "80 331",
                                    "M\xC3\x9C"
                                    "NCHEN",
                                    "", "DE"),
                            "königstraße 7|80331|m\xC3\xBC"
                            "nchen|de");
        assert_string_equal(address("", "", "", "NL", "NL"), "ABSENT");
        assert_string_equal(address("Main 1", "", "Utrecht", "NL", NULL),
                            "INVALID: incomplete: no postcode");
        assert_string_equal(address("", "1234", "Utrecht", "NL", NULL),
                            "INVALID: incomplete: no street");
        assert_contains(address("Main 1", "1234", "Utrecht", "Netherlands",
                                NULL),
                        "not an ISO 3166-1 alpha-2");
        assert_contains(address("Main 1", "1234", "Utrecht", "", NULL),
                        "not an ISO 3166-1 alpha-2");
        /* The hash the schema means: SHA-256 of exactly that text. */
        relay_sign_part_t p = {"main street 1|1234ab|amsterdam|nl", 33};
        char hex[65];
        relay_sign_sha256_hex(&p, 1, hex);
        assert_int_equal(strlen(hex), 64);
}

static void test_lower(void **state)
{
        relay_buf_t b;
        relay_buf_init(&b);
        /* ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic; U+0130 and
         * other scripts unchanged. */
        const char *in = "AZ\xC3\x80\xC3\x9E\xC3\x97\xC5\x81\xC5\xB8"
                         "\xCE\x91\xD0\x96\xD0\x81\xC4\xB0\xE4\xB8\xAD";
        relay_crm_lower(&b, in, strlen(in));
        assert_string_equal(b.data, "az\xC3\xA0\xC3\xBE\xC3\x97\xC5\x82"
                                    "\xC3\xBF\xCE\xB1\xD0\xB6\xD1\x91"
                                    "\xC4\xB0\xE4\xB8\xAD");
        relay_buf_free(&b);
}

static void test_uuid5(void **state)
{
        /* relay_sign_uuid5 itself is checked against Python's uuid5 in
         * test_poll; here the CRM ids made with it. */
        char a[37], b[37], c[37];
        relay_crm_event_id("acme", "crm", "c1", 2, "ab", a);
        relay_crm_event_id("acme", "crm", "c1", 2, "ab", b);
        relay_crm_event_id("acme", "crm", "c1", 2, "ac", c);
        assert_string_equal(a, b);
        assert_string_not_equal(a, c);
        assert_int_equal(a[14], '5');
}

/* --- spec and rows ------------------------------------------------- */

/* A record of the fields in a ','-separated line (no quoting). */
struct rec {
        relay_csv_field_t f[32];
        relay_csv_record_t r;
        char text[1024];
};

static const relay_csv_record_t *row(struct rec *x, const char *line,
                                     uint64_t lineno)
{
        snprintf(x->text, sizeof(x->text), "%s", line);
        size_t n = 0;
        char *p = x->text;
        for (;;) {
                char *e = strchr(p, ',');
                x->f[n] = (relay_csv_field_t){p, e ? (size_t)(e - p)
                                                   : strlen(p), 0};
                n++;
                if (!e)
                        break;
                p = e + 1;
        }
        x->r = (relay_csv_record_t){x->f, n, lineno, lineno, NULL, 0};
        return &x->r;
}

static void test_spec_errors(void **state)
{
        char errstr[512];
        assert_int_equal(unit_tmpdir_make("crm"), 0);
        const char *bad[][2] = {
            {"columns = { mail = \"E-mail\"; };\n", "1: columns.mail: not a"},
            {"\n\nfoo = 1;\n", ":3: unknown key 'foo'"},
            {"delimiter = \";;\";\n", ":1: delimiter: one character"},
            {"attributes = ( { column = \"x\"; type = \"int\"; } );\n",
             ":1: type 'int': expected string"},
            {"attributes = ( { column = \"x\"; type = \"list\"; } );\n",
             ":1: attributes: a list needs its separator"},
            {"attributes = ( { column = \"x\"; colour = \"y\"; } );\n",
             "unknown key 'colour'"},
            {"other_columns = \"keep\";\n", "other_columns"},
            {"columns = { email = ",  ":1: syntax error"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                char name[32];
                snprintf(name, sizeof(name), "bad%zu.cfg", i);
                const char *path = write_file(name, bad[i][0]);
                relay_crm_spec_t *s =
                    relay_crm_spec_load(path, errstr, sizeof(errstr));
                assert_null(s);
                assert_contains(errstr, path);
                assert_contains(errstr, bad[i][1]);
        }
        assert_null(relay_crm_spec_load("/nonexistent/x.cfg", errstr,
                                        sizeof(errstr)));
        assert_contains(errstr, "cannot read it");
        unit_tmpdir_remove();
}

static void test_bind(void **state)
{
        char errstr[512];
        struct rec h;
        assert_int_equal(unit_tmpdir_make("crm"), 0);
        const char *path = write_file(
            "s.cfg", "columns = { customer_id = \"Klant Nr\"; email = "
                     "\"E-mail\"; };\nconsent = { news = \"Nieuwsbrief\"; };\n"
                     "attributes = ( { column = \"Naam\"; type = \"drop\"; } "
                     ");\n");
        relay_crm_spec_t *s = relay_crm_spec_load(path, errstr, sizeof(errstr));
        assert_non_null(s);
        relay_crm_cols_t *c = relay_crm_cols_new(
            s, row(&h, " klant  nr,E-MAIL,Naam,Nieuwsbrief,Stad", 1), errstr,
            sizeof(errstr));
        assert_non_null(c);
        assert_int_equal(relay_crm_cols_count(c), 5);
        relay_crm_cols_destroy(c);
        assert_null(relay_crm_cols_new(s, row(&h, "Klant Nr,Naam,Nieuwsbrief", 1),
                                       errstr, sizeof(errstr)));
        assert_string_equal(errstr,
                            "no column 'e-mail' (columns.email of the spec)");
        assert_null(relay_crm_cols_new(
            s, row(&h, "Klant Nr,E-mail,e-mail,Naam,Nieuwsbrief", 1), errstr,
            sizeof(errstr)));
        assert_string_equal(errstr, "columns 2 and 3 are both 'e-mail'");
        assert_null(relay_crm_cols_new(
            s, row(&h, "Klant Nr,E-mail,,Naam,Nieuwsbrief", 1), errstr,
            sizeof(errstr)));
        assert_string_equal(errstr, "column 3 has no name");
        relay_crm_spec_destroy(s);
        unit_tmpdir_remove();
}

/* The default spec bound to the header of every field. */
static const char *const HEADER =
    "customer_id,email,phone,street,postcode,city,country,customer_since,"
    "lifetime_value,currency,consent_email_marketing,Favourite Colour";

static void test_row(void **state)
{
        char errstr[256];
        struct rec h, x;
        relay_crm_spec_t *s = relay_crm_spec_load(NULL, errstr, 0);
        relay_crm_cols_t *c =
            relay_crm_cols_new(s, row(&h, HEADER, 1), errstr, sizeof(errstr));
        assert_non_null(c);
        relay_crm_row_t r;
        relay_crm_row_init(&r);
        assert_int_equal(
            relay_crm_row_map(c,
                              row(&x,
                                  " c1 , Ann@Example.com,06 12345678,Main 1,"
                                  "1234 ab,Utrecht,,2020-02-29,1234.5,eur,Yes,"
                                  " blue ",
                                  2),
                              "NL", &r),
            0);
        char e[65], p[65], a[65];
        relay_sign_part_t pe = {"ann@example.com", 15};
        relay_sign_part_t pp = {"+31612345678", 12};
        relay_sign_part_t pa = {"main 1|1234ab|utrecht|nl", 24};
        relay_sign_sha256_hex(&pe, 1, e);
        relay_sign_sha256_hex(&pp, 1, p);
        relay_sign_sha256_hex(&pa, 1, a);
        char want[1024];
        snprintf(want, sizeof(want),
                 "{'identities': {'customer_id': 'c1', 'email_sha256': '%s', "
                 "'mobile_sha256': '%s', 'address_sha256': '%s'}, "
                 "'customer_since': 18321, 'lifetime_value_minor': 123450, "
                 "'currency': 'EUR', 'consent': {'email_marketing': true}, "
                 "'attributes': {'favourite_colour': 'blue'}}",
                 e, p, a);
        assert_json_text(json_incref(r.content), want);
        assert_string_equal(r.record_id.data, "c1");
        assert_int_equal(strlen(r.content_hash), 64);
        assert_int_equal(r.dropped, 0);
        char hash1[65];
        memcpy(hash1, r.content_hash, 65);

        /* The same content on another line, with other spacing: the same
         * hash. A changed cell: another. */
        relay_crm_row_map(c,
                          row(&x,
                              "c1,ann@example.com ,+31 6 1234 5678,Main  1,"
                              "1234AB,utrecht,NL,2020-02-29,1234.50,EUR,y,blue",
                              9),
                          "NL", &r);
        assert_string_equal(r.content_hash, hash1);
        relay_crm_row_map(c,
                          row(&x,
                              "c1,ann@example.com,0612345678,Main 1,1234AB,"
                              "Utrecht,NL,2020-02-29,1234.50,EUR,y,red",
                              2),
                          "NL", &r);
        assert_string_not_equal(r.content_hash, hash1);

        /* An invalid e-mail and phone are left out, the row still goes. */
        assert_int_equal(relay_crm_row_map(c,
                                           row(&x,
                                               "c2,ann@,12,Main 1,1234AB,"
                                               "Utrecht,NL,,,,,",
                                               3),
                                           "NL", &r),
                         0);
        assert_int_equal(r.dropped,
                         RELAY_CRM_DROPPED_EMAIL | RELAY_CRM_DROPPED_PHONE);
        assert_contains(r.dropped_detail, "e-mail left out: column 2 (email)");
        assert_contains(r.dropped_detail, "phone left out: column 3 (phone)");
        assert_json_text(json_incref(json_object_get(r.content, "consent")),
                         "{}");
        assert_json_text(json_incref(json_object_get(r.content, "attributes")),
                         "{'favourite_colour': null}");

        /* Rejections: the class and the column. */
        struct {
                const char *line, *reason, *detail;
        } bad[] = {
            {",a@b.nl,,,,,,,,,,", "no customer id", "column 1 (customer_id)"},
            {"c3,ann@,,,,,,,,,,", "no identity", "e-mail left out"},
            {"c3,,,,,,,,,,,", "no identity", "no e-mail, phone or address"},
            {"c3,a@b.nl,,,,,,2020-02-30,,,,", "bad customer_since",
             "column 8 (customer_since): not a date"},
            {"c3,a@b.nl,,,,,,,12.345,EUR,,", "bad lifetime_value",
             "column 9"},
            {"c3,a@b.nl,,,,,,,1 234,,,", "bad lifetime_value", "column 9"},
            {"c3,a@b.nl,,,,,,,1,EURO,,", "bad currency", "column 10"},
            {"c3,a@b.nl,,,,,,,,,maybe,", "bad consent",
             "column 11 (consent_email_marketing)"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                assert_int_equal(
                    relay_crm_row_map(c, row(&x, bad[i].line, 4), "NL", &r), 1);
                assert_string_equal(r.reason, bad[i].reason);
                assert_contains(r.detail, bad[i].detail);
                assert_null(r.content);
        }
        /* A rejected row keeps its record id, for the delta's "gone". */
        assert_string_equal(r.record_id.data, "c3");
        /* JPY has no minor unit; KWD three. */
        relay_crm_row_map(c, row(&x, "c4,a@b.nl,,,,,,,1500,jpy,,", 5), NULL,
                          &r);
        assert_json_text(
            json_incref(json_object_get(r.content, "lifetime_value_minor")),
            "1500");
        relay_crm_row_map(c, row(&x, "c4,a@b.nl,,,,,,,-1.5,KWD,,", 5), NULL,
                          &r);
        assert_json_text(
            json_incref(json_object_get(r.content, "lifetime_value_minor")),
            "-1500");
        relay_crm_row_clear(&r);
        relay_crm_cols_destroy(c);
        relay_crm_spec_destroy(s);
}

static void test_row_types_and_ids(void **state)
{
        char errstr[512];
        struct rec h, x;
        assert_int_equal(unit_tmpdir_make("crm"), 0);
        const char *path = write_file(
            "t.cfg",
            "delimiter = \";\";\ncolumns = { email = \"mail\"; phone = "
            "\"tel\"; };\nattributes = (\n { column = \"tags\"; type = "
            "\"list\"; separator = \"|\"; name = \"interests\"; },\n"
            " { column = \"n\"; type = \"long\"; },\n { column = \"x\"; type "
            "= \"double\"; },\n { column = \"vip\"; type = \"boolean\"; },\n"
            " { column = \"first name\"; type = \"drop\"; } );\n"
            "other_columns = \"drop\";\n");
        relay_crm_spec_t *s = relay_crm_spec_load(path, errstr, sizeof(errstr));
        assert_non_null(s);
        assert_int_equal(relay_crm_spec_delimiter(s), ';');
        assert_false(relay_crm_spec_has_customer_id(s));
        relay_crm_cols_t *c = relay_crm_cols_new(
            s, row(&h, "mail,tel,tags,n,x,vip,first name,other", 1), errstr,
            sizeof(errstr));
        assert_non_null(c);
        relay_crm_row_t r;
        relay_crm_row_init(&r);
        assert_int_equal(relay_crm_row_map(c,
                                           row(&x,
                                               ",+31612345678, a | b||c ,-7,"
                                               "2.5e1,TRUE,Ann,secret",
                                               2),
                                           NULL, &r),
                         0);
        assert_json_text(json_incref(json_object_get(r.content, "attributes")),
                         "{'interests': ['a', 'b', 'c'], 'n': -7, 'x': 25.0, "
                         "'vip': true}");
        assert_json_text(json_incref(json_object_get(r.content, "consent")),
                         "null");
        /* No customer id column: the record id is the first identity. */
        assert_contains(r.record_id.data, "mobile_sha256:");
        assert_int_equal(r.record_id.len, 14 + 64);
        const char *bad[][2] = {{",+31612345678,,x,,,,", "not a long"},
                                {",+31612345678,,,1.2.3,,,", "not a double"},
                                {",+31612345678,,,inf,,,", "not a double"},
                                {",+31612345678,,,,2,,", "not a boolean"}};
        for (size_t i = 0; i < 4; i++) {
                assert_int_equal(
                    relay_crm_row_map(c, row(&x, bad[i][0], 3), NULL, &r), 1);
                assert_string_equal(r.reason, "bad attribute");
                assert_contains(r.detail, bad[i][1]);
        }
        relay_crm_row_clear(&r);
        relay_crm_cols_destroy(c);
        relay_crm_spec_destroy(s);
        unit_tmpdir_remove();
}

static void test_state(void **state)
{
        char errstr[512];
        assert_int_equal(unit_tmpdir_make("crm"), 0);
        const char *path = unit_path("acme.crm.state");
        relay_crm_state_t *s = relay_crm_state_new();
        assert_int_equal(relay_crm_state_load(s, path, errstr, sizeof(errstr)),
                         1);
        const char *h1 =
            "1111111111111111111111111111111111111111111111111111111111111111";
        const char *h2 =
            "2222222222222222222222222222222222222222222222222222222222222222";
        /* Enough ids to grow the table, and some that need escaping. */
        char id[32];
        for (int i = 0; i < 1000; i++) {
                snprintf(id, sizeof(id), "id-%d", i);
                relay_crm_state_put(s, id, strlen(id), i % 2 ? h1 : h2,
                                    (uint64_t)i + 2);
        }
        relay_crm_state_put(s, "a%b\nc\r\0d", 8, h1, 5);
        relay_crm_state_put(s, "id-7", 4, h2, 9); /* replaces */
        assert_int_equal(relay_crm_state_count(s), 1001);
        assert_int_equal(relay_crm_state_line(s, "id-7", 4), 9);
        assert_int_equal(relay_crm_state_line(s, "nope", 4), 0);
        assert_int_equal(relay_crm_state_save(s, path, errstr, sizeof(errstr)),
                         0);
        relay_crm_state_t *t = relay_crm_state_new();
        assert_int_equal(relay_crm_state_load(t, path, errstr, sizeof(errstr)),
                         0);
        assert_int_equal(relay_crm_state_count(t), 1001);
        assert_string_equal(relay_crm_state_get(t, "id-7", 4), h2);
        assert_string_equal(relay_crm_state_get(t, "id-8", 4), h2);
        assert_string_equal(relay_crm_state_get(t, "id-9", 4), h1);
        assert_string_equal(relay_crm_state_get(t, "a%b\nc\r\0d", 8), h1);
        assert_null(relay_crm_state_get(t, "a%b\nc\r", 6));
        assert_int_equal(relay_crm_state_missing(s, t, NULL), 0);

        /* What t has and a smaller state does not, less what b holds. */
        relay_crm_state_t *a = relay_crm_state_new(), *b = relay_crm_state_new();
        relay_crm_state_put(a, "id-1", 4, h1, 0);
        relay_crm_state_put(b, "id-2", 4, h1, 0);
        assert_int_equal(relay_crm_state_missing(t, a, NULL), 1000);
        assert_int_equal(relay_crm_state_missing(t, a, b), 999);
        assert_int_equal(relay_crm_state_missing(a, t, b), 0);

        /* No temporary file is left beside it. */
        char tmp[600];
        snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
        assert_int_equal(access(tmp, F_OK), -1);

        /* Not a state file: refused, naming the line. */
        const char *bad = write_file("bad.state", "relay-onboard-state 1\n"
                                                  "xyz id\n");
        assert_int_equal(relay_crm_state_load(a, bad, errstr, sizeof(errstr)),
                         -1);
        assert_contains(errstr, "bad.state:2: not a relayctl onboard state");
        bad = write_file("other.state", "hello\n");
        assert_int_equal(relay_crm_state_load(a, bad, errstr, sizeof(errstr)),
                         -1);
        /* A directory that does not exist: save fails, says where. */
        assert_int_equal(relay_crm_state_save(s, "/nonexistent/dir/x.state",
                                              errstr, sizeof(errstr)),
                         -1);
        assert_contains(errstr, "/nonexistent/dir/x.state");
        relay_crm_state_destroy(a);
        relay_crm_state_destroy(b);
        relay_crm_state_destroy(s);
        relay_crm_state_destroy(t);
        relay_crm_state_destroy(NULL);
        unit_tmpdir_remove();
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_email),
            cmocka_unit_test(test_phone),
            cmocka_unit_test(test_address),
            cmocka_unit_test(test_lower),
            cmocka_unit_test(test_uuid5),
            cmocka_unit_test(test_spec_errors),
            cmocka_unit_test(test_bind),
            cmocka_unit_test(test_row),
            cmocka_unit_test(test_row_types_and_ids),
            cmocka_unit_test(test_state),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
