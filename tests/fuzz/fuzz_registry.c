/*
 * Fuzz target: the schema registry's answers, outside input to every
 * worker with a registry (relay/registry.h). The scripted HTTP/1.1 server
 * of tests/unit/httpd.h, started once, answers with the fuzz input as the
 * body; one registry client, on one keep-alive connection, makes every
 * call of the API against it with status 200 (the JSON parsing and shape
 * checks), then the call the first byte picks with the error status it
 * picks too (404, 409, 422 or 500: the error body, the 404 fallbacks).
 *
 * Besides not crashing, the answers must keep registry.h's promises: a
 * known result, out strings and arrays complete on RELAY_OK, errstr and
 * the compatibility messages on one printable line. A broken promise
 * aborts, so the fuzzer reports it like a crash.
 */
#include "relay/common.h"
#include "relay/http.h"
#include "relay/registry.h"

#include "../unit/httpd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SUBJECT "loyalty.events-value"
#define SCHEMA                                                                 \
        "{\"type\":\"record\",\"name\":\"E\",\"fields\":"                      \
        "[{\"name\":\"a\",\"type\":\"string\"}]}"

static void *state; /* the struct server */
static relay_registry_t *reg;
static struct reply reply;
static relay_buf_t body; /* the answer body: a copy of the input */

static void fini(void)
{
        relay_registry_destroy(reg);
        httpd_teardown(&state);
        relay_buf_free(&body);
        relay_http_global_cleanup();
}

static void init(void)
{
        char url[64], errstr[256];
        relay_registry_conf_t conf = {.url = url, .timeout_ms = 2000};

        if (relay_http_global_init() != 0 || httpd_setup(&state) != 0) {
                fprintf(stderr, "fuzz_registry: cannot start the server\n");
                abort();
        }
        make_url(url, sizeof(url), ((struct server *)state)->port, "");
        reg = relay_registry_new(&conf, errstr, sizeof(errstr));
        if (!reg) {
                fprintf(stderr, "fuzz_registry: %s\n", errstr);
                abort();
        }
        relay_buf_init(&body);
        atexit(fini); /* leak checkers see a clean exit */
}

static void broken(const char *call, const char *what, const char *text)
{
        fprintf(stderr, "fuzz_registry: %s: %s: \"%s\"\n", call, what,
                text ? text : "(null)");
        abort();
}

/* Text meant for logs: one line, no control bytes. */
static void check_printable(const char *call, const char *what, const char *s)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        broken(call, what, s);
}

static void check_result(const char *call, enum relay_result rc,
                         const char *errstr)
{
        if (rc != RELAY_OK && rc != RELAY_RETRY && rc != RELAY_FATAL)
                broken(call, "not a result", "");
        if (rc != RELAY_OK) {
                if (!errstr[0])
                        broken(call, "failed without a reason", errstr);
                check_printable(call, "errstr", errstr);
        }
}

/* A string array out: n strings, then NULL; NULL and 0 unless OK. */
static void check_strv(const char *call, enum relay_result rc, char **v,
                       size_t n)
{
        if (rc != RELAY_OK) {
                if (v || n)
                        broken(call, "array out on failure", "");
                return;
        }
        if (!v || v[n])
                broken(call, "array not NULL-terminated", "");
        for (size_t i = 0; i < n; i++)
                if (!v[i])
                        broken(call, "NULL string in array", "");
        relay_registry_strv_free(v, n);
}

/* Each call of the API, with the checks of its outs. */

static void call_schema_by_id(char *errstr, size_t errstr_size)
{
        enum relay_result rc;
        char *schema;
        int nf;

        rc = relay_registry_schema_by_id(reg, 7, &schema, &nf, errstr,
                                         errstr_size);
        check_result("schema_by_id", rc, errstr);
        if ((rc == RELAY_OK) != (schema != NULL))
                broken("schema_by_id", "schema out", schema);
        if (rc == RELAY_OK && !schema[0])
                broken("schema_by_id", "empty schema", schema);
        free(schema);
}

static void call_subjects_of(char *errstr, size_t errstr_size)
{
        enum relay_result rc;
        char **v;
        size_t n;
        int nf;

        rc = relay_registry_subjects_of(reg, 7, &v, &n, &nf, errstr,
                                        errstr_size);
        check_result("subjects_of", rc, errstr);
        check_strv("subjects_of", rc, v, n);
}

static void call_lookup(char *errstr, size_t errstr_size)
{
        enum relay_result rc;
        int32_t id = -1;
        int version = 0, nf;

        rc = relay_registry_lookup(reg, SUBJECT, SCHEMA, &id, &version, &nf,
                                   errstr, errstr_size);
        check_result("lookup", rc, errstr);
        if (rc == RELAY_OK && (id < 0 || version < 1))
                broken("lookup", "id or version out of range", "");
}

static void call_register(char *errstr, size_t errstr_size)
{
        enum relay_result rc;
        int32_t id = -1;

        rc = relay_registry_register(reg, SUBJECT, SCHEMA, &id, errstr,
                                     errstr_size);
        check_result("register", rc, errstr);
        if (rc == RELAY_OK && id < 0)
                broken("register", "negative id", "");
}

static void call_get(char *errstr, size_t errstr_size)
{
        enum relay_result rc;
        int32_t id = -1;
        int version = 0, nf;
        char *schema;

        rc = relay_registry_get(reg, SUBJECT, "latest", &id, &version, &schema,
                                &nf, errstr, errstr_size);
        check_result("get", rc, errstr);
        if ((rc == RELAY_OK) != (schema != NULL))
                broken("get", "schema out", schema);
        if (rc == RELAY_OK && (id < 0 || version < 1))
                broken("get", "id or version out of range", "");
        free(schema);
}

static void call_check(char *errstr, size_t errstr_size)
{
        enum relay_result rc;
        char why[256];
        int ok = -1, nf;

        rc = relay_registry_check(reg, SUBJECT, SCHEMA, &ok, why, sizeof(why),
                                  &nf, errstr, errstr_size);
        check_result("check", rc, errstr);
        if (rc == RELAY_OK && ok != 0 && ok != 1)
                broken("check", "compatible is not 0 or 1", "");
        check_printable("check", "why", why);
}

static void call_get_compat(char *errstr, size_t errstr_size)
{
        enum relay_result rc;
        char level[20];

        rc = relay_registry_get_compat(reg, SUBJECT, level, sizeof(level),
                                       errstr, errstr_size);
        check_result("get_compat", rc, errstr);
        if (rc == RELAY_OK &&
            (!level[0] ||
             strspn(level, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != strlen(level)))
                broken("get_compat", "not a level", level);
}

static void call_set_compat(char *errstr, size_t errstr_size)
{
        enum relay_result rc;

        rc = relay_registry_set_compat(reg, SUBJECT, "BACKWARD", errstr,
                                       errstr_size);
        check_result("set_compat", rc, errstr);
}

static void call_subjects(char *errstr, size_t errstr_size)
{
        enum relay_result rc;
        char **v;
        size_t n;

        rc = relay_registry_subjects(reg, &v, &n, errstr, errstr_size);
        check_result("subjects", rc, errstr);
        check_strv("subjects", rc, v, n);
}

/* In the order the first byte picks for the error answer: (byte >> 2) % 9
 * with the status error_status[byte & 3], so that seeds choose with
 * their leading JSON whitespace: ' ' is get_compat with 404, '\n' and '\t'
 * are register with 422 and 409, '<' (an HTML page) is lookup with 404,
 * '{' is check with 500. */
static void (*const calls[])(char *, size_t) = {
    call_subjects, call_subjects_of,  call_register,
    call_check,    call_get,          call_set_compat,
    call_lookup,   call_schema_by_id, call_get_compat,
};
#define NCALLS (sizeof(calls) / sizeof(calls[0]))

static void run(size_t i)
{
        char errstr[512];

        errstr[0] = '\0';
        calls[i](errstr, sizeof(errstr));
}

/* Answer every request from now on with status and the input. */
static void answer(int status)
{
        struct server *s = state;

        server_forget(s);
        reply = (struct reply){
            .status = status,
            .headers = "Content-Type: application/vnd.schemaregistry.v1+json"
                       "\r\n",
            .body = body.len ? body.data : NULL,
            .body_len = body.len,
        };
        server_script(s, &reply, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const int error_status[] = {404, 409, 422, 500};

        if (!reg)
                init();
        relay_buf_reset(&body);
        relay_buf_append(&body, data, size);

        answer(200);
        for (size_t i = 0; i < NCALLS; i++)
                run(i);
        /* An error body is read the same way by every call; one call, the
         * first byte's pick, is enough (get_compat for a 404 also takes
         * its fallback to the global level). */
        if (size) {
                answer(error_status[data[0] & 3]);
                run((size_t)(data[0] >> 2) % NCALLS);
        }
        return 0;
}
