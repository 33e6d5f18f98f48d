/*
 * Unit tests for the schema registry client against the scripted HTTP/1.1
 * server of httpd.h: what each call sends (method, path with the subject
 * percent-encoded, headers, credentials, the schema inside the JSON body,
 * parsed back with jansson) and what it makes of every class of answer
 * (good bodies, 404s, other 4xx, 5xx and 429, bodies of the wrong shape,
 * no answer at all).
 */
#include "relay/common.h"
#include "relay/registry.h"
#include "relay/http.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "httpd.h"
#include "unit.h"

#define CT "application/vnd.schemaregistry.v1+json"

/* A schema with everything that needs escaping inside a JSON string. */
static const char SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"Event\",\"namespace\":\"loyalty\","
    "\"fields\":[{\"name\":\"note\",\"type\":\"string\","
    "\"doc\":\"tab\\there \\\"q\\\" back\\\\slash caf\xc3\xa9 /\"}]}";

/* The reply for the next requests; see answer(). */
static struct reply next_reply;

/* Answer every request from now on with status and body (a string that
 * must live until the call returns). */
static void answer(struct server *s, int status, const char *body)
{
        pthread_mutex_lock(&s->mu);
        next_reply = (struct reply){.status = status, .body = body};
        s->script = &next_reply;
        s->nscript = 1;
        pthread_mutex_unlock(&s->mu);
}

static relay_registry_t *client(struct server *s, const char *prefix,
                                const char *userpwd, long timeout_ms)
{
        char url[256], err[256] = "";
        relay_registry_conf_t conf = {
            .url = url, .userpwd = userpwd, .timeout_ms = timeout_ms};
        relay_registry_t *r;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, prefix);
        r = relay_registry_new(&conf, err, sizeof(err));
        if (!r)
                fail_msg("relay_registry_new(%s): %s", url, err);
        return r;
}

/* Assert that request i was "method target HTTP/1.1" and return it. */
static struct request sent(struct server *s, int i, const char *method,
                           const char *target)
{
        struct request got = server_request(s, i);
        char line[1024];

        snprintf(line, sizeof(line), "%s %s HTTP/1.1\r\n", method, target);
        if (strncmp(got.head, line, strlen(line)) != 0)
                fail_msg("request %d was\n%.200s\nwanted %s", i, got.head,
                         line);
        return got;
}

/* Assert the headers of a registry request: JSON content types and, for
 * a body, its type; Basic credentials exactly when auth is not NULL. */
static void assert_headers(const struct request *got, int has_body,
                           const char *auth)
{
        char v[512];

        assert_true(find_header(got->head, "Accept", v, sizeof(v)));
        assert_contains(v, CT);
        assert_contains(v, "application/json");
        if (has_body) {
                assert_true(
                    find_header(got->head, "Content-Type", v, sizeof(v)));
                assert_string_equal(v, CT);
        } else {
                assert_false(
                    find_header(got->head, "Content-Type", v, sizeof(v)));
                assert_int_equal(got->body.len, 0);
        }
        if (auth) {
                assert_true(
                    find_header(got->head, "Authorization", v, sizeof(v)));
                assert_string_equal(v, auth);
        } else {
                assert_false(
                    find_header(got->head, "Authorization", v, sizeof(v)));
        }
}

/* The body of a request parsed as JSON: an object with exactly the one
 * member key, a string, returned (owned by the caller). */
static char *sent_string(const struct request *got, const char *key)
{
        json_error_t jerr;
        json_t *j = json_loadb(got->body.data, got->body.len, 0, &jerr);
        json_t *v;
        char *s;

        if (!j)
                fail_msg("request body is not JSON (%s): %.*s", jerr.text,
                         (int)got->body.len, got->body.data);
        assert_true(json_is_object(j));
        assert_int_equal(json_object_size(j), 1);
        v = json_object_get(j, key);
        assert_true(json_is_string(v));
        s = strdup(json_string_value(v));
        json_decref(j);
        return s;
}

static void assert_sent_schema(const struct request *got, const char *schema)
{
        char *s = sent_string(got, "schema");

        assert_string_equal(s, schema);
        free(s);
}

/* errstr is meant for logs: one line of printable text. */
static void assert_printable(const char *s)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        fail_msg("byte 0x%02x at %zu of \"%s\"", *p,
                                 (size_t)((const char *)p - s), s);
}

/* A registry answer with the schema text as a JSON string in it. */
static char *answer_with_schema(const char *fmt_head, const char *schema)
{
        json_t *j = json_pack("{s:s}", "schema", schema);
        char *text = json_dumps(j, JSON_COMPACT);
        relay_buf_t b;

        /* fmt_head is the members before "schema", e.g. "\"id\":7,". */
        relay_buf_init(&b);
        relay_buf_printf(&b, "{%s%s", fmt_head, text + 1);
        free(text);
        json_decref(j);
        return b.data;
}

/* ---- construction --------------------------------------------------- */

static void test_new_validates_url(void **state)
{
        static const struct {
                const char *url;
                const char *why;
        } bad[] = {
            {NULL, "URL not set"},
            {"", "URL not set"},
            {"127.0.0.1:8081", "must start with http:// or https://"},
            {"ftp://registry:8081", "must start with http:// or https://"},
            {"file:///etc/passwd", "must start with http:// or https://"},
            {"http://", "has no host"},
            {"https:///subjects", "has no host"},
            {"http://user:pw@/x", "has no host"},
            {"http://:8081", "has no host"},
            {"http://registry:8081/?x=1", "query string"},
            {"http://registry:8081/#top", "query string"},
            {"http://regi stry:8081", "space or control character"},
            {"http://registry:8081/\n", "space or control character"},
        };
        static const char *const good[] = {
            "http://registry:8081",
            "HTTPS://registry.example.com/",
            "http://u:p@127.0.0.1:8081/apis/ccompat/v7///",
            "http://[::1]:8081",
        };
        char err[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                relay_registry_conf_t conf = {.url = bad[i].url};

                strcpy(err, "untouched");
                assert_null(relay_registry_new(&conf, err, sizeof(err)));
                assert_contains(err, bad[i].why);
        }
        assert_null(relay_registry_new(NULL, err, sizeof(err)));
        assert_contains(err, "URL not set");
        /* A NULL errstr is allowed. */
        assert_null(relay_registry_new(NULL, NULL, 0));

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                relay_registry_conf_t conf = {.url = good[i]};
                relay_registry_t *r =
                    relay_registry_new(&conf, err, sizeof(err));

                if (!r)
                        fail_msg("%s: %s", good[i], err);
                relay_registry_destroy(r);
        }
        relay_registry_destroy(NULL);
        relay_registry_strv_free(NULL, 0);
}

/* ---- what each call sends, and its good answer --------------------------- */

static void test_schema_by_id(void **state)
{
        struct server *s = *state;
        relay_registry_t *r = client(s, "", "reg:s3cret", 2000);
        char *body = answer_with_schema("", SCHEMA);
        char *schema = (char *)"untouched", err[512] = "";
        int nf = -1;

        answer(s, 200, body);
        assert_int_equal(
            relay_registry_schema_by_id(r, 7, &schema, &nf, err, sizeof(err)),
            RELAY_OK);
        assert_string_equal(schema, SCHEMA);
        assert_int_equal(nf, 0);
        free(schema);
        struct request got = sent(s, 0, "GET", "/schemas/ids/7");
        assert_headers(&got, 0, "Basic cmVnOnMzY3JldA==");

        /* Other members (Confluent adds "references", "maxId") are fine;
         * the largest id there can be goes out in full. */
        answer(s, 200,
               "{\"schema\":\"\\\"string\\\"\",\"references\":[],\"maxId\":9}");
        assert_int_equal(relay_registry_schema_by_id(r, INT32_MAX, &schema, &nf,
                                                     err, sizeof(err)),
                         RELAY_OK);
        assert_string_equal(schema, "\"string\"");
        free(schema);
        sent(s, 1, "GET", "/schemas/ids/2147483647");

        /* A negative id is refused before anything is sent. */
        schema = (char *)"untouched";
        assert_int_equal(
            relay_registry_schema_by_id(r, -1, &schema, &nf, err, sizeof(err)),
            RELAY_FATAL);
        assert_null(schema);
        assert_int_equal(nf, 0);
        assert_contains(err, "schema id -1 is negative");
        assert_int_equal(server_nreq(s), 2);
        /* Both calls on one keep-alive connection. */
        assert_int_equal(server_accepts(s), 1);

        free(body);
        relay_registry_destroy(r);
}

static void test_lookup_encodes_subjects(void **state)
{
        struct server *s = *state;
        static const struct {
                const char *subject;
                const char *path;
        } cases[] = {
            {"loyalty.events-value", "/subjects/loyalty.events-value"},
            {"a/b c", "/subjects/a%2Fb%20c"},
            {"x?y#z%&+=:@", "/subjects/x%3Fy%23z%25%26%2B%3D%3A%40"},
            {"T_~caf\xc3\xa9", "/subjects/T_~caf%C3%A9"},
            {"..", "/subjects/%2E%2E"},
            {"a..b", "/subjects/a..b"},
        };
        relay_registry_t *r = client(s, "", NULL, 2000);
        char err[512] = "";

        answer(s, 200,
               "{\"subject\":\"s\",\"id\":100001,\"version\":3,"
               "\"schema\":\"\\\"string\\\"\"}");
        for (int i = 0; i < (int)(sizeof(cases) / sizeof(cases[0])); i++) {
                int32_t id = -5;
                int version = -5, nf = -1;
                struct request got;

                assert_int_equal(relay_registry_lookup(r, cases[i].subject,
                                                       SCHEMA, &id, &version,
                                                       &nf, err, sizeof(err)),
                                 RELAY_OK);
                assert_int_equal(id, 100001);
                assert_int_equal(version, 3);
                assert_int_equal(nf, 0);
                got = sent(s, i, "POST", cases[i].path);
                assert_headers(&got, 1, NULL);
                assert_sent_schema(&got, SCHEMA);
        }
        relay_registry_destroy(r);
}

static void test_register(void **state)
{
        struct server *s = *state;
        relay_registry_t *r = client(s, "", "u:p", 2000);
        char err[512] = "";
        int32_t id = -5;
        struct request got;

        answer(s, 200, "{\"id\":42}");
        assert_int_equal(relay_registry_register(r, "loyalty.events-value",
                                                 SCHEMA, &id, err, sizeof(err)),
                         RELAY_OK);
        assert_int_equal(id, 42);
        got = sent(s, 0, "POST", "/subjects/loyalty.events-value/versions");
        assert_headers(&got, 1, "Basic dTpw");
        assert_sent_schema(&got, SCHEMA);

        /* Incompatible: the registry's words in errstr, id untouched. */
        answer(s, 409,
               "{\"error_code\":409,\"message\":\"Schema being registered is "
               "incompatible with an earlier schema for subject "
               "\\\"loyalty.events-value\\\"\"}");
        id = -5;
        assert_int_equal(relay_registry_register(r, "loyalty.events-value",
                                                 SCHEMA, &id, err, sizeof(err)),
                         RELAY_FATAL);
        assert_int_equal(id, -5);
        assert_string_equal(
            err, "registry POST /subjects/loyalty.events-value/versions: "
                 "HTTP 409 error_code 409: Schema being registered is "
                 "incompatible with an earlier schema for subject "
                 "\"loyalty.events-value\"");

        answer(
            s, 422,
            "{\"error_code\":42201,\"message\":\"Invalid schema {type=x}\"}");
        assert_int_equal(relay_registry_register(r, "loyalty.events-value",
                                                 "{\"type\":\"x\"}", &id, err,
                                                 sizeof(err)),
                         RELAY_FATAL);
        assert_contains(err, "HTTP 422 error_code 42201: Invalid schema");
        got = sent(s, 2, "POST", "/subjects/loyalty.events-value/versions");
        assert_sent_schema(&got, "{\"type\":\"x\"}");

        /* Text that cannot go out byte for byte is refused unsent. */
        assert_int_equal(relay_registry_register(r, "s", "{\"doc\":\"\xff\"}",
                                                 &id, err, sizeof(err)),
                         RELAY_FATAL);
        assert_contains(err, "registry POST /subjects/s/versions: schema "
                             "text is not UTF-8 at byte 8");
        assert_int_equal(
            relay_registry_register(r, "s", "", &id, err, sizeof(err)),
            RELAY_FATAL);
        assert_contains(err, "empty schema text");
        assert_int_equal(
            relay_registry_register(r, "", SCHEMA, &id, err, sizeof(err)),
            RELAY_FATAL);
        assert_contains(err, "empty subject");
        assert_int_equal(
            relay_registry_register(r, NULL, SCHEMA, &id, err, sizeof(err)),
            RELAY_FATAL);
        assert_int_equal(server_nreq(s), 3);

        relay_registry_destroy(r);
}

static void test_get(void **state)
{
        struct server *s = *state;
        relay_registry_t *r = client(s, "", NULL, 2000);
        char *body = answer_with_schema(
            "\"subject\":\"loyalty.events-value\",\"id\":12,\"version\":4,",
            SCHEMA);
        char *schema = NULL, err[512] = "";
        int32_t id = -5;
        int version = -5, nf = -1;

        answer(s, 200, body);
        assert_int_equal(relay_registry_get(r, "loyalty.events-value", "latest",
                                            &id, &version, &schema, &nf, err,
                                            sizeof(err)),
                         RELAY_OK);
        assert_int_equal(id, 12);
        assert_int_equal(version, 4);
        assert_int_equal(nf, 0);
        assert_string_equal(schema, SCHEMA);
        free(schema);
        struct request got =
            sent(s, 0, "GET", "/subjects/loyalty.events-value/versions/latest");
        assert_headers(&got, 0, NULL);

        /* Schema not wanted: a body without one is fine then. */
        answer(s, 200, "{\"subject\":\"a b\",\"id\":13,\"version\":1}");
        assert_int_equal(relay_registry_get(r, "a b", "1", &id, &version, NULL,
                                            &nf, err, sizeof(err)),
                         RELAY_OK);
        assert_int_equal(id, 13);
        assert_int_equal(version, 1);
        sent(s, 1, "GET", "/subjects/a%20b/versions/1");

        /* ...but required when it is. */
        schema = (char *)"untouched";
        assert_int_equal(relay_registry_get(r, "a b", "1", &id, &version,
                                            &schema, &nf, err, sizeof(err)),
                         RELAY_RETRY);
        assert_null(schema);
        assert_contains(err, "registry GET /subjects/a%20b/versions/1: "
                             "unexpected answer (HTTP 200): no \"schema\" "
                             "text: {\"subject\":\"a b\"");

        answer(s, 404,
               "{\"error_code\":40402,\"message\":\"Version 9 not found.\"}");
        assert_int_equal(relay_registry_get(r, "s", "9", &id, &version, &schema,
                                            &nf, err, sizeof(err)),
                         RELAY_FATAL);
        assert_int_equal(nf, 1);
        assert_string_equal(err, "registry GET /subjects/s/versions/9: HTTP "
                                 "404 error_code 40402: Version 9 not found.");

        assert_int_equal(relay_registry_get(r, "s", "", &id, &version, &schema,
                                            &nf, err, sizeof(err)),
                         RELAY_FATAL);
        assert_int_equal(nf, 0);
        assert_contains(err, "empty version");
        assert_int_equal(server_nreq(s), 4);

        free(body);
        relay_registry_destroy(r);
}

static void test_check(void **state)
{
        struct server *s = *state;
        relay_registry_t *r = client(s, "", NULL, 2000);
        const char *path = "/compatibility/subjects/loyalty.events-value/"
                           "versions/latest?verbose=true";
        char why[256], small[8], err[512] = "";
        int compatible = -1, nf = -1;
        struct request got;

        answer(s, 200, "{\"is_compatible\":true,\"messages\":[]}");
        strcpy(why, "untouched");
        assert_int_equal(relay_registry_check(r, "loyalty.events-value", SCHEMA,
                                              &compatible, why, sizeof(why),
                                              &nf, err, sizeof(err)),
                         RELAY_OK);
        assert_int_equal(compatible, 1);
        assert_string_equal(why, "");
        assert_int_equal(nf, 0);
        got = sent(s, 0, "POST", path);
        assert_headers(&got, 1, NULL);
        assert_sent_schema(&got, SCHEMA);

        answer(s, 200,
               "{\"is_compatible\":false,\"messages\":[\"{errorType:"
               "'READER_FIELD_MISSING_DEFAULT_VALUE', description:'x'}\","
               "\"line\\none\",{\"k\":1}]}");
        assert_int_equal(relay_registry_check(r, "loyalty.events-value", SCHEMA,
                                              &compatible, why, sizeof(why),
                                              &nf, err, sizeof(err)),
                         RELAY_OK);
        assert_int_equal(compatible, 0);
        assert_string_equal(why, "{errorType:'READER_FIELD_MISSING_DEFAULT_"
                                 "VALUE', description:'x'}; line one; "
                                 "{\"k\":1}");

        /* No messages at all (not verbose), and a short why buffer. */
        answer(s, 200, "{\"is_compatible\":false}");
        assert_int_equal(relay_registry_check(r, "s", SCHEMA, &compatible, why,
                                              sizeof(why), &nf, err,
                                              sizeof(err)),
                         RELAY_OK);
        assert_int_equal(compatible, 0);
        assert_string_equal(why, "");
        answer(s, 200,
               "{\"is_compatible\":false,\"messages\":[\"abcdef\","
               "\"ghij\"]}");
        assert_int_equal(relay_registry_check(r, "s", SCHEMA, &compatible,
                                              small, sizeof(small), &nf, err,
                                              sizeof(err)),
                         RELAY_OK);
        assert_string_equal(small, "abcdef;");
        /* why is optional. */
        assert_int_equal(relay_registry_check(r, "s", SCHEMA, &compatible, NULL,
                                              0, &nf, err, sizeof(err)),
                         RELAY_OK);

        /* A subject without versions yet. */
        answer(s, 404,
               "{\"error_code\":40401,\"message\":\"Subject 's' not found.\"}");
        assert_int_equal(relay_registry_check(r, "s", SCHEMA, &compatible, why,
                                              sizeof(why), &nf, err,
                                              sizeof(err)),
                         RELAY_FATAL);
        assert_int_equal(nf, 1);
        assert_string_equal(err, "registry POST /compatibility/subjects/s/"
                                 "versions/latest: HTTP 404 error_code "
                                 "40401: Subject 's' not found.");

        answer(s, 422, "{\"error_code\":42201,\"message\":\"Invalid schema\"}");
        assert_int_equal(relay_registry_check(r, "s", "{", &compatible, why,
                                              sizeof(why), &nf, err,
                                              sizeof(err)),
                         RELAY_FATAL);
        assert_int_equal(nf, 0);
        assert_contains(err, "HTTP 422 error_code 42201: Invalid schema");

        answer(s, 200, "{\"is_compatible\":\"true\"}");
        compatible = -1;
        assert_int_equal(relay_registry_check(r, "s", SCHEMA, &compatible, why,
                                              sizeof(why), &nf, err,
                                              sizeof(err)),
                         RELAY_RETRY);
        assert_int_equal(compatible, -1);
        assert_contains(err, "no boolean \"is_compatible\"");

        relay_registry_destroy(r);
}

static void test_compat(void **state)
{
        struct server *s = *state;
        relay_registry_t *r = client(s, "", NULL, 2000);
        char level[32], tiny[4], err[512] = "";
        struct request got;
        char *sent_level;

        answer(s, 200, "{\"compatibilityLevel\":\"FULL_TRANSITIVE\"}");
        assert_int_equal(relay_registry_get_compat(r, "loyalty.events-value",
                                                   level, sizeof(level), err,
                                                   sizeof(err)),
                         RELAY_OK);
        assert_string_equal(level, "FULL_TRANSITIVE");
        got = sent(s, 0, "GET",
                   "/config/loyalty.events-value?defaultToGlobal=true");
        assert_headers(&got, 0, NULL);

        /* The other spelling of the key. */
        answer(s, 200, "{\"compatibility\":\"FORWARD\"}");
        assert_int_equal(relay_registry_get_compat(
                             r, NULL, level, sizeof(level), err, sizeof(err)),
                         RELAY_OK);
        assert_string_equal(level, "FORWARD");
        sent(s, 1, "GET", "/config");

        /* Not a level, or a level that does not fit. */
        answer(s, 200, "{\"compatibilityLevel\":\"drop table\"}");
        assert_int_equal(relay_registry_get_compat(
                             r, NULL, level, sizeof(level), err, sizeof(err)),
                         RELAY_RETRY);
        assert_contains(err, "no \"compatibilityLevel\" level");
        answer(s, 200, "{\"compatibilityLevel\":7}");
        assert_int_equal(relay_registry_get_compat(r, "s", level, sizeof(level),
                                                   err, sizeof(err)),
                         RELAY_RETRY);
        answer(s, 200, "{\"compatibilityLevel\":\"BACKWARD\"}");
        assert_int_equal(relay_registry_get_compat(r, NULL, tiny, sizeof(tiny),
                                                   err, sizeof(err)),
                         RELAY_FATAL);
        assert_string_equal(tiny, "");
        assert_contains(err, "does not fit");

        /* A global 404 is final. */
        answer(s, 404, "{\"error_code\":40401,\"message\":\"nope\"}");
        assert_int_equal(relay_registry_get_compat(
                             r, NULL, level, sizeof(level), err, sizeof(err)),
                         RELAY_FATAL);
        assert_contains(err, "registry GET /config: HTTP 404");

        /* PUT, for a subject and globally; the echo or an empty 2xx. */
        int n0 = server_nreq(s);
        answer(s, 200, "{\"compatibility\":\"FORWARD_TRANSITIVE\"}");
        assert_int_equal(relay_registry_set_compat(r, "loyalty.events-value",
                                                   "FORWARD_TRANSITIVE", err,
                                                   sizeof(err)),
                         RELAY_OK);
        got = sent(s, n0, "PUT", "/config/loyalty.events-value");
        assert_headers(&got, 1, NULL);
        sent_level = sent_string(&got, "compatibility");
        assert_string_equal(sent_level, "FORWARD_TRANSITIVE");
        free(sent_level);
        answer(s, 204, NULL);
        assert_int_equal(
            relay_registry_set_compat(r, NULL, "NONE", err, sizeof(err)),
            RELAY_OK);
        got = sent(s, n0 + 1, "PUT", "/config");
        sent_level = sent_string(&got, "compatibility");
        assert_string_equal(sent_level, "NONE");
        free(sent_level);

        answer(s, 422,
               "{\"error_code\":42203,\"message\":\"Invalid compatibility "
               "level\"}");
        assert_int_equal(
            relay_registry_set_compat(r, NULL, "FULL", err, sizeof(err)),
            RELAY_FATAL);
        assert_contains(err, "registry PUT /config: HTTP 422 error_code "
                             "42203: Invalid compatibility level");
        /* Not a level: refused unsent. */
        assert_int_equal(
            relay_registry_set_compat(r, NULL, "full\"}", err, sizeof(err)),
            RELAY_FATAL);
        assert_contains(err, "is not a compatibility level");
        assert_int_equal(
            relay_registry_set_compat(r, NULL, NULL, err, sizeof(err)),
            RELAY_FATAL);
        assert_int_equal(server_nreq(s), n0 + 3);

        relay_registry_destroy(r);
}

/* A registry without defaultToGlobal: 404 for the subject, then the
 * global level. */
static void test_compat_falls_back_to_global(void **state)
{
        struct server *s = *state;
        static const struct reply script[] = {
            {.status = 404,
             .body = "{\"error_code\":40408,\"message\":\"Subject 'a/b' does "
                     "not have subject-level compatibility configured\"}"},
            {.status = 200, .body = "{\"compatibilityLevel\":\"BACKWARD\"}"},
            {.status = 404,
             .body = "{\"error_code\":40401,\"message\":\"no\"}"},
        };
        relay_registry_t *r = client(s, "", NULL, 2000);
        char level[32], err[512] = "";

        server_script(s, script, 3);
        assert_int_equal(relay_registry_get_compat(
                             r, "a/b", level, sizeof(level), err, sizeof(err)),
                         RELAY_OK);
        assert_string_equal(level, "BACKWARD");
        sent(s, 0, "GET", "/config/a%2Fb?defaultToGlobal=true");
        sent(s, 1, "GET", "/config");
        assert_int_equal(server_nreq(s), 2);

        /* Both 404: the global answer is the one reported. */
        assert_int_equal(relay_registry_get_compat(
                             r, "a/b", level, sizeof(level), err, sizeof(err)),
                         RELAY_FATAL);
        assert_string_equal(level, "");
        assert_string_equal(err, "registry GET /config: HTTP 404 error_code "
                                 "40401: no");
        sent(s, 2, "GET", "/config/a%2Fb?defaultToGlobal=true");
        sent(s, 3, "GET", "/config");

        /* Any other failure for the subject is not a reason to ask for
         * the global level. */
        answer(s, 503, NULL);
        assert_int_equal(relay_registry_get_compat(
                             r, "a/b", level, sizeof(level), err, sizeof(err)),
                         RELAY_RETRY);
        assert_int_equal(server_nreq(s), 5);
        relay_registry_destroy(r);
}

static void test_subject_lists(void **state)
{
        struct server *s = *state;
        relay_registry_t *r = client(s, "/", NULL, 2000);
        char **v = NULL, err[512] = "";
        size_t n = 99;
        int nf = -1;

        answer(s, 200, "[\"loyalty.events-value\",\"a b\",\"\"]");
        assert_int_equal(relay_registry_subjects(r, &v, &n, err, sizeof(err)),
                         RELAY_OK);
        assert_int_equal(n, 3);
        assert_string_equal(v[0], "loyalty.events-value");
        assert_string_equal(v[1], "a b");
        assert_string_equal(v[2], "");
        assert_null(v[3]);
        relay_registry_strv_free(v, n);
        struct request got = sent(s, 0, "GET", "/subjects");
        assert_headers(&got, 0, NULL);

        answer(s, 200, "[]");
        assert_int_equal(relay_registry_subjects(r, &v, &n, err, sizeof(err)),
                         RELAY_OK);
        assert_int_equal(n, 0);
        assert_non_null(v);
        assert_null(v[0]);
        relay_registry_strv_free(v, n);

        answer(s, 200,
               "[{\"subject\":\"loyalty.events-value\",\"version\":1},"
               "{\"subject\":\"other\",\"version\":3}]");
        assert_int_equal(
            relay_registry_subjects_of(r, 5, &v, &n, &nf, err, sizeof(err)),
            RELAY_OK);
        assert_int_equal(nf, 0);
        assert_int_equal(n, 2);
        assert_string_equal(v[0], "loyalty.events-value");
        assert_string_equal(v[1], "other");
        relay_registry_strv_free(v, n);
        sent(s, 2, "GET", "/schemas/ids/5/versions");

        /* Wrong shapes: nothing comes out. */
        static const char *const bad[] = {
            "{\"subjects\":[]}",
            "[\"a\",7]",
            "[{\"subject\":\"a\"},{\"name\":\"b\"}]",
            "[[\"a\"]]",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                static char *stale[1];

                answer(s, 200, bad[i]);
                v = stale; /* must come back NULL */
                n = 99;
                assert_int_equal(relay_registry_subjects_of(r, 5, &v, &n, &nf,
                                                            err, sizeof(err)),
                                 RELAY_RETRY);
                assert_null(v);
                assert_int_equal(n, 0);
                assert_contains(err, "registry GET /schemas/ids/5/versions: "
                                     "unexpected answer (HTTP 200)");
        }
        answer(s, 200, "[\"a\",null]");
        assert_int_equal(relay_registry_subjects(r, &v, &n, err, sizeof(err)),
                         RELAY_RETRY);
        assert_contains(err, "element 1 is not a string");

        answer(s, 404,
               "{\"error_code\":40403,\"message\":\"Schema 5 not found\"}");
        assert_int_equal(
            relay_registry_subjects_of(r, 5, &v, &n, &nf, err, sizeof(err)),
            RELAY_FATAL);
        assert_int_equal(nf, 1);
        assert_null(v);

        relay_registry_destroy(r);
}

/* ---- answer classes ------------------------------------------------------ */

static void test_not_found(void **state)
{
        struct server *s = *state;
        relay_registry_t *r = client(s, "", NULL, 2000);
        char *schema = (char *)"untouched", err[512] = "";
        int32_t id = -5;
        int version = -5, nf = -1;

        answer(s, 404,
               "{\"error_code\":40403,\"message\":\"Schema 9 not found\"}");
        assert_int_equal(
            relay_registry_schema_by_id(r, 9, &schema, &nf, err, sizeof(err)),
            RELAY_FATAL);
        assert_null(schema);
        assert_int_equal(nf, 1);
        assert_string_equal(err, "registry GET /schemas/ids/9: HTTP 404 "
                                 "error_code 40403: Schema 9 not found");

        answer(s, 404,
               "{\"error_code\":40401,\"message\":\"Subject 'x' not found.\"}");
        nf = -1;
        assert_int_equal(relay_registry_lookup(r, "x", SCHEMA, &id, &version,
                                               &nf, err, sizeof(err)),
                         RELAY_FATAL);
        assert_int_equal(nf, 1);
        assert_int_equal(id, -5);
        assert_int_equal(version, -5);
        assert_contains(err, "error_code 40401: Subject 'x' not found.");

        /* A web server's own 404 (a wrong path prefix): still not found, as
         * the header promises, but errstr says what it looks like. */
        answer(s, 404, "<html><body>\n<h1>Not Found</h1>\n</body></html>\n");
        nf = -1;
        assert_int_equal(
            relay_registry_schema_by_id(r, 9, &schema, &nf, err, sizeof(err)),
            RELAY_FATAL);
        assert_int_equal(nf, 1);
        assert_string_equal(err, "registry GET /schemas/ids/9: HTTP 404: "
                                 "<html><body> <h1>Not Found</h1> "
                                 "</body></html> (not a registry error: is "
                                 "the URL path prefix right?)");

        /* not_found is optional. */
        assert_int_equal(relay_registry_lookup(r, "x", SCHEMA, NULL, NULL, NULL,
                                               err, sizeof(err)),
                         RELAY_FATAL);
        relay_registry_destroy(r);
}

static void test_fatal_statuses(void **state)
{
        struct server *s = *state;
        static const struct {
                int status;
                const char *body;
                const char *err;
        } cases[] = {
            {400, "{\"error_code\":400,\"message\":\"Bad Request\"}",
             "HTTP 400 error_code 400: Bad Request"},
            {401, "{\"error_code\":401,\"message\":\"Unauthorized\"}",
             "HTTP 401 error_code 401: Unauthorized"},
            {401, NULL, "HTTP 401 (empty body)"},
            {403, "Forbidden\r\n", "HTTP 403: Forbidden"},
            {403, "{\"message\":\"User cannot access the resource.\"}",
             "HTTP 403: User cannot access the resource."},
            {409, "{\"error_code\":409,\"message\":\"incompatible\"}",
             "HTTP 409 error_code 409: incompatible"},
            {422, "{\"error_code\":42202}", "HTTP 422 error_code 42202"},
            {415, "{\"error_code\":\"x\",\"message\":5}",
             "HTTP 415: {\"error_code\":\"x\",\"message\":5}"},
        };
        relay_registry_t *r = client(s, "", NULL, 2000);
        char err[512];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int32_t id = -5;
                int version = -5, nf = -1;
                char want[256];

                answer(s, cases[i].status, cases[i].body);
                assert_int_equal(relay_registry_lookup(r, "s", SCHEMA, &id,
                                                       &version, &nf, err,
                                                       sizeof(err)),
                                 RELAY_FATAL);
                assert_int_equal(nf, 0);
                assert_int_equal(id, -5);
                assert_int_equal(version, -5);
                snprintf(want, sizeof(want), "registry POST /subjects/s: %s",
                         cases[i].err);
                assert_string_equal(err, want);
        }
        relay_registry_destroy(r);
}

static void test_retry_statuses(void **state)
{
        struct server *s = *state;
        static const struct {
                int status;
                const char *body;
                const char *err;
        } cases[] = {
            {500,
             "{\"error_code\":50001,\"message\":\"Error in the backend data "
             "store\"}",
             "HTTP 500 error_code 50001: Error in the backend data store"},
            {502, "<html>Bad Gateway</html>", "HTTP 502: <html>Bad Gateway"},
            {503, NULL, "HTTP 503 (empty body)"},
            {504, "", "HTTP 504 (empty body)"},
            {429, "{\"error_code\":429,\"message\":\"Too Many Requests\"}",
             "HTTP 429 error_code 429: Too Many Requests"},
            {408, NULL, "HTTP 408"},
            {301, NULL, "HTTP 301"},
        };
        relay_registry_t *r = client(s, "", NULL, 2000);
        char err[512];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *schema = (char *)"untouched";
                int nf = -1;

                answer(s, cases[i].status, cases[i].body);
                assert_int_equal(relay_registry_schema_by_id(r, 3, &schema, &nf,
                                                             err, sizeof(err)),
                                 RELAY_RETRY);
                assert_null(schema);
                assert_int_equal(nf, 0);
                assert_contains(err, "registry GET /schemas/ids/3: ");
                assert_contains(err, cases[i].err);
        }
        relay_registry_destroy(r);
}

/* Bodies of a 200 that are not what the API promises: RETRY with the
 * reason, out values untouched, errstr printable. */
static void test_bad_answers(void **state)
{
        struct server *s = *state;
        static const struct {
                const char *body;
                size_t len;
                const char *err;
        } cases[] = {
            {"garbage", 0, "not JSON"},
            {"", 0, "not JSON"},
            {"{\"id\":", 0, "not JSON"},
            {"\"a string\"", 0, "not JSON"},
            {"{\"id\":1,\"version\":1}trailing", 0, "not JSON"},
            {"\x1f\x8b\x08\x00\x00\r\n\xff\xfe\x01", 0, "not JSON"},
            {"[{\"id\":1,\"version\":1}]", 0, "not a JSON object"},
            {"null", 0, "not JSON"},
            {"{}", 0, "no integer \"id\""},
            {"{\"id\":\"7\",\"version\":1}", 0, "no integer \"id\""},
            {"{\"id\":7.0,\"version\":1}", 0, "no integer \"id\""},
            {"{\"id\":null,\"version\":1}", 0, "no integer \"id\""},
            {"{\"id\":true,\"version\":1}", 0, "no integer \"id\""},
            {"{\"id\":-1,\"version\":1}", 0, "\"id\" -1 out of range"},
            {"{\"id\":2147483648,\"version\":1}", 0,
             "\"id\" 2147483648 out of range"},
            {"{\"id\":-9223372036854775808,\"version\":1}", 0, "out of range"},
            {"{\"id\":99999999999999999999999,\"version\":1}", 0,
             "not JSON (too big integer"},
            {"{\"id\":7}", 0, "no integer \"version\""},
            {"{\"id\":7,\"version\":0}", 0, "\"version\" 0 out of range"},
            {"{\"id\":7,\"version\":\"1\"}", 0, "no integer \"version\""},
            {"{\"id\":7,\"version\":4294967297}", 0, "out of range"},
            {"{\"id\":\"\\u0000\",\"version\":1}", 0, "not JSON"},
            {"{\"a\":\"\xc3\x28\"}", 0, "not JSON"},
        };
        relay_registry_t *r = client(s, "", NULL, 2000);
        char err[512];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int32_t id = -5;
                int version = -5, nf = -1;

                answer(s, 200, cases[i].body);
                strcpy(err, "untouched");
                assert_int_equal(relay_registry_lookup(r, "s", SCHEMA, &id,
                                                       &version, &nf, err,
                                                       sizeof(err)),
                                 RELAY_RETRY);
                assert_int_equal(id, -5);
                assert_int_equal(version, -5);
                assert_int_equal(nf, 0);
                assert_contains(err, "registry POST /subjects/s: unexpected "
                                     "answer (HTTP 200): ");
                assert_contains(err, cases[i].err);
                assert_printable(err);
        }
        relay_registry_destroy(r);
}

static void test_huge_bodies(void **state)
{
        struct server *s = *state;
        size_t big = (size_t)3 << 20;
        char *body = relay_malloc(big + 1);
        relay_registry_t *r = client(s, "", NULL, 5000);
        char *schema = (char *)"untouched", err[512];
        int nf = -1;

        /* A valid-looking start and a body far past what is kept. */
        memset(body, ' ', big);
        memcpy(body, "{\"schema\":\"", 11);
        memset(body + 11, 'x', big - 13);
        memcpy(body + big - 2, "\"}", 2);
        body[big] = '\0';
        answer(s, 200, body);
        assert_int_equal(
            relay_registry_schema_by_id(r, 1, &schema, &nf, err, sizeof(err)),
            RELAY_RETRY);
        assert_null(schema);
        assert_contains(err, "unexpected answer (HTTP 200): answer cut at "
                             "1048576 bytes: {\"schema\":\"xxx");
        assert_true(strlen(err) < 300);

        /* A huge error body: a bounded excerpt. */
        memset(body, 'e', big);
        answer(s, 400, body);
        assert_int_equal(
            relay_registry_schema_by_id(r, 1, &schema, &nf, err, sizeof(err)),
            RELAY_FATAL);
        assert_contains(err, "registry GET /schemas/ids/1: HTTP 400: eeee");
        assert_contains(err, "eee...");
        assert_true(strlen(err) < 300);

        /* A message too long for errstr: cut, still one string. */
        relay_buf_t msg;
        relay_buf_init(&msg);
        relay_buf_puts(&msg, "{\"error_code\":42201,\"message\":\"");
        for (int i = 0; i < 2000; i++)
                relay_buf_puts(&msg, "m\\n");
        relay_buf_puts(&msg, "\"}");
        answer(s, 422, msg.data);
        assert_int_equal(
            relay_registry_schema_by_id(r, 1, &schema, &nf, err, sizeof(err)),
            RELAY_FATAL);
        assert_int_equal(strlen(err), sizeof(err) - 1);
        assert_contains(err, "HTTP 422 error_code 42201: m m m m");
        assert_printable(err);
        /* A small errstr is fine too. */
        char tiny[16];
        assert_int_equal(
            relay_registry_schema_by_id(r, 1, &schema, &nf, tiny, sizeof(tiny)),
            RELAY_FATAL);
        assert_string_equal(tiny, "registry GET /s");

        relay_buf_free(&msg);
        free(body);
        relay_registry_destroy(r);
}

static void test_connection_refused(void **state)
{
        char url[64], err[512];
        relay_registry_conf_t conf = {.url = url, .timeout_ms = 2000};
        relay_registry_t *r;
        char **v = NULL;
        size_t n = 99;
        int64_t t0;

        snprintf(url, sizeof(url), "http://127.0.0.1:%d", httpd_closed_port());
        r = relay_registry_new(&conf, err, sizeof(err));
        assert_non_null(r);
        t0 = relay_mono_ms();
        assert_int_equal(relay_registry_subjects(r, &v, &n, err, sizeof(err)),
                         RELAY_RETRY);
        assert_true(relay_mono_ms() - t0 < 1500);
        assert_null(v);
        assert_int_equal(n, 0);
        assert_contains(err, "registry GET /subjects: no answer: ");
        assert_printable(err);
        relay_registry_destroy(r);
}

static void test_timeout(void **state)
{
        struct server *s = *state;
        /* Static: the server still reads it after the client gave up. */
        static const struct reply slow[] = {
            {.status = 200,
             .body = "{\"schema\":\"\\\"int\\\"\"}",
             .delay_ms = 1500}};
        relay_registry_t *r = client(s, "", NULL, 300);
        char *schema = (char *)"untouched", err[512];
        int nf = -1;
        int64_t t0;

        server_script(s, slow, 1);
        t0 = relay_mono_ms();
        assert_int_equal(
            relay_registry_schema_by_id(r, 1, &schema, &nf, err, sizeof(err)),
            RELAY_RETRY);
        assert_true(relay_mono_ms() - t0 < 1000);
        assert_null(schema);
        assert_int_equal(nf, 0);
        assert_contains(err, "registry GET /schemas/ids/1: no answer within "
                             "300 ms: ");
        relay_registry_destroy(r);
}

static void test_base_url_forms(void **state)
{
        struct server *s = *state;
        static const struct {
                const char *prefix;
                const char *target;
        } cases[] = {
            {"", "/subjects/loyalty.events-value/versions"},
            {"/", "/subjects/loyalty.events-value/versions"},
            {"//", "/subjects/loyalty.events-value/versions"},
            {"/apis/ccompat/v7", "/apis/ccompat/v7/subjects/"
                                 "loyalty.events-value/versions"},
            {"/apis/ccompat/v7/", "/apis/ccompat/v7/subjects/"
                                  "loyalty.events-value/versions"},
        };
        char err[512];

        answer(s, 200, "{\"id\":1}");
        for (int i = 0; i < (int)(sizeof(cases) / sizeof(cases[0])); i++) {
                relay_registry_t *r = client(s, cases[i].prefix, NULL, 0);
                int32_t id = -5;

                assert_int_equal(
                    relay_registry_register(r, "loyalty.events-value", SCHEMA,
                                            &id, err, sizeof(err)),
                    RELAY_OK);
                assert_int_equal(id, 1);
                sent(s, i, "POST", cases[i].target);
                relay_registry_destroy(r);
        }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, httpd_setup, httpd_teardown)
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_new_validates_url),
            T(test_schema_by_id),
            T(test_lookup_encodes_subjects),
            T(test_register),
            T(test_get),
            T(test_check),
            T(test_compat),
            T(test_compat_falls_back_to_global),
            T(test_subject_lists),
            T(test_not_found),
            T(test_fatal_statuses),
            T(test_retry_statuses),
            T(test_bad_answers),
            T(test_huge_bodies),
            cmocka_unit_test(test_connection_refused),
            T(test_timeout),
            T(test_base_url_forms),
        };
#undef T
        int failed;

        /* Every test is bounded on its own; this is the last line of
         * defence against a hang. */
        alarm(60);
        if (relay_http_global_init() != 0)
                return 1;
        failed = cmocka_run_group_tests(tests, NULL, NULL);
        relay_http_global_cleanup();
        return failed;
}
