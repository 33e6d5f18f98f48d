/*
 * The schema registry client: Confluent Schema Registry REST API v1 calls
 * made with one relay_http client (so one keep-alive connection) and
 * answers read with jansson. Every answer goes through one place, call(),
 * which turns an HTTP exchange into the RELAY_OK / RELAY_FATAL /
 * RELAY_RETRY of relay/registry.h; the public functions only build a path
 * and a body and check the shape of the JSON that came back.
 *
 * Nothing the registry sends is trusted: a 2xx body that is not the JSON
 * the API promises (garbage from a proxy, an id that is a string, out of
 * int32 range or negative) is RELAY_RETRY with the reason and an excerpt,
 * never a crash and never a made-up value. Text from the registry that
 * ends up in errstr is made printable and bounded first, since errstr is
 * logged and may be written into dead-letter headers.
 */
#include "relay/registry.h"
#include "relay/http.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REGISTRY_TIMEOUT_MS 10000

#define REGISTRY_CONTENT_TYPE "application/vnd.schemaregistry.v1+json"
/* What Confluent's own clients accept: the versioned type first, then the
 * unversioned one, then plain JSON for compatible registries and proxies. */
#define REGISTRY_ACCEPT                                                        \
        "application/vnd.schemaregistry.v1+json, "                             \
        "application/vnd.schemaregistry+json; q=0.9, application/json; q=0.5"

/* relay_http keeps at most this much of an answer (relay/http.h) and says
 * nothing when it cut one; a body this long is taken as cut, so that the
 * reason given is the size and not a puzzling JSON syntax error. */
#define REGISTRY_BODY_MAX ((size_t)1 << 20)

/* Bounds on registry text copied into errstr. */
#define EXCERPT_MAX 200
#define MESSAGE_MAX 1024

/* The longest compatibility level is "BACKWARD_TRANSITIVE"; anything much
 * longer is not one. */
#define LEVEL_MAX 64

struct relay_registry {
        relay_http_t *http;
        char *base;    /* scheme://authority[/prefix], no trailing slash */
        char *userpwd; /* NULL without Basic auth */
        long timeout_ms;
        /* The current call, reused so a steady caller stops allocating: */
        const char *method;
        relay_buf_t path; /* API path under base, query string included */
        relay_buf_t url;
        relay_buf_t body;
        relay_http_response_t resp;
};

/* ---- text helpers ------------------------------------------------------- */

/* Append up to max bytes of s[0..n) to b so that it reads on one line:
 * runs of whitespace and control bytes become one space, bytes that are
 * not UTF-8 become '?', and a cut is marked with "...". */
static void append_printable(relay_buf_t *b, const char *s, size_t n,
                             size_t max)
{
        const unsigned char *u = (const unsigned char *)s;
        size_t start = b->len, i = 0;
        int space = 0;

        while (i < n && b->len - start < max) {
                size_t len = 1;

                if (u[i] <= 0x20 || u[i] == 0x7f) {
                        space = 1;
                        i++;
                        continue;
                }
                if (space && b->len > start)
                        relay_buf_append(b, " ", 1);
                space = 0;
                if (u[i] >= 0x80)
                        len = relay_utf8_len(u + i, n - i);
                if (len)
                        relay_buf_append(b, s + i, len);
                else
                        relay_buf_append(b, "?", 1);
                i += len ? len : 1;
        }
        /* Trailing whitespace alone is no cut worth marking. */
        while (i < n && (u[i] <= 0x20 || u[i] == 0x7f))
                i++;
        if (i < n)
                relay_buf_puts(b, "...");
}

/* The answer body as text ("" when there was none). */
static const char *body_text(const relay_http_response_t *resp)
{
        return resp->body.data ? resp->body.data : "";
}

/* errstr = "registry METHOD /path: " and the formatted reason. The query
 * string is left out: it adds nothing a reader needs. */
static void seterr(relay_registry_t *r, char *errstr, size_t errstr_size,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void seterr(relay_registry_t *r, char *errstr, size_t errstr_size,
                   const char *fmt, ...)
{
        size_t path_len = strcspn(r->path.data ? r->path.data : "", "?");
        va_list ap;
        int n;

        if (!errstr || !errstr_size)
                return;
        if (path_len > 512)
                path_len = 512;
        n = snprintf(errstr, errstr_size, "registry %s %.*s: ", r->method,
                     (int)path_len, r->path.data ? r->path.data : "");
        if (n < 0 || (size_t)n >= errstr_size)
                return;
        va_start(ap, fmt);
        vsnprintf(errstr + n, errstr_size - (size_t)n, fmt, ap);
        va_end(ap);
}

/* A 2xx answer that is not what the API promises: RELAY_RETRY, with the
 * reason and an excerpt of the body in errstr. */
static enum relay_result bad_answer(relay_registry_t *r, char *errstr,
                                    size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum relay_result bad_answer(relay_registry_t *r, char *errstr,
                                    size_t errstr_size, const char *fmt, ...)
{
        relay_buf_t reason, why;
        va_list ap;
        int n;

        relay_buf_init(&reason);
        relay_buf_init(&why);
        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n > 0) {
                relay_buf_reserve(&reason, (size_t)n);
                va_start(ap, fmt);
                vsnprintf(reason.data, (size_t)n + 1, fmt, ap);
                va_end(ap);
                reason.len = (size_t)n;
        }
        /* The reason can quote the body too (jansson's "near '...'"). */
        append_printable(&why, reason.data ? reason.data : "", reason.len,
                         EXCERPT_MAX);
        relay_buf_puts(&why, ": ");
        append_printable(&why, body_text(&r->resp), r->resp.body.len,
                         EXCERPT_MAX);
        seterr(r, errstr, errstr_size, "unexpected answer (HTTP %ld): %s",
               r->resp.status, why.data);
        relay_buf_free(&reason);
        relay_buf_free(&why);
        return RELAY_RETRY;
}

/* errstr for a non-2xx answer: the registry's error_code and message when
 * the body is its JSON error, else an excerpt of whatever came. */
static void status_error(relay_registry_t *r, char *errstr, size_t errstr_size)
{
        const relay_http_response_t *resp = &r->resp;
        json_t *j = json_loadb(body_text(resp), resp->body.len, 0, NULL);
        json_t *code = json_object_get(j, "error_code");
        json_t *msg = json_object_get(j, "message");
        relay_buf_t text;

        relay_buf_init(&text);
        relay_buf_printf(&text, "HTTP %ld", resp->status);
        if (json_is_integer(code))
                relay_buf_printf(&text, " error_code %" JSON_INTEGER_FORMAT,
                                 json_integer_value(code));
        if (json_is_string(msg)) {
                relay_buf_puts(&text, ": ");
                append_printable(&text, json_string_value(msg),
                                 json_string_length(msg), MESSAGE_MAX);
        } else if (!json_is_integer(code)) {
                if (resp->body.len) {
                        relay_buf_puts(&text, ": ");
                        append_printable(&text, body_text(resp), resp->body.len,
                                         EXCERPT_MAX);
                } else {
                        relay_buf_puts(&text, " (empty body)");
                }
        }
        /* Every registry answers its own 404s with an error_code; a bare
         * one more likely comes from a web server at the wrong path. */
        if (resp->status == 404 && !json_is_integer(code))
                relay_buf_puts(&text, " (not a registry error: is the URL "
                                      "path prefix right?)");
        seterr(r, errstr, errstr_size, "%s", text.data);
        relay_buf_free(&text);
        json_decref(j);
}

/* ---- one call ------------------------------------------------------------ */

/* Start a call: its method and the fixed head of its path. */
static void begin(relay_registry_t *r, const char *method, const char *path)
{
        r->method = method;
        relay_buf_reset(&r->path);
        relay_buf_puts(&r->path, path);
}

/* Append one path segment, percent-encoding every byte that is not an
 * RFC 3986 unreserved character: subjects are free text ("a/b", "x y"). */
static void path_segment(relay_registry_t *r, const char *seg)
{
        static const char hex[] = "0123456789ABCDEF";
        /* "." and ".." would be dot-segments that libcurl and servers
         * resolve ("/subjects/.." is "/"); encoded they stay a name. */
        int dots_only = strspn(seg, ".") == strlen(seg);

        for (const unsigned char *p = (const unsigned char *)seg; *p; p++) {
                unsigned char c = *p;
                char esc[3] = {'%', hex[c >> 4], hex[c & 0xf]};

                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                    c == '~' || (c == '.' && !dots_only))
                        relay_buf_append(&r->path, p, 1);
                else
                        relay_buf_append(&r->path, esc, 3);
        }
}

/* Perform the call begun with begin() with body (NULL for none). On
 * RELAY_OK *answer is the parsed JSON object or array, owned by the
 * caller (NULL only for an empty body when empty_ok); otherwise errstr
 * says why and *not_found (when not NULL) is 1 for a 404. */
static enum relay_result call(relay_registry_t *r, const char *body,
                              int empty_ok, json_t **answer, int *not_found,
                              char *errstr, size_t errstr_size)
{
        relay_http_request_t req = {.method = r->method, .userpwd = r->userpwd};
        relay_http_response_t *resp = &r->resp;
        json_error_t jerr;
        long st;

        *answer = NULL;
        relay_buf_reset(&r->url);
        relay_buf_puts(&r->url, r->base);
        relay_buf_append(&r->url, r->path.data, r->path.len);
        req.url = r->url.data;
        req.headers[0] = "Accept: " REGISTRY_ACCEPT;
        if (body) {
                req.headers[1] = "Content-Type: " REGISTRY_CONTENT_TYPE;
                req.body = body;
                req.body_len = strlen(body);
        }

        if (relay_http_perform(r->http, &req, resp) != 0) {
                if (resp->timed_out)
                        seterr(r, errstr, errstr_size,
                               "no answer within %ld ms: %s", r->timeout_ms,
                               resp->error);
                else
                        seterr(r, errstr, errstr_size, "no answer: %s",
                               resp->error);
                return RELAY_RETRY;
        }

        st = resp->status;
        if (st >= 200 && st < 300) {
                if (resp->body.len == 0 && empty_ok)
                        return RELAY_OK;
                if (resp->body.len >= REGISTRY_BODY_MAX)
                        return bad_answer(r, errstr, errstr_size,
                                          "answer cut at %zu bytes",
                                          resp->body.len);
                *answer = json_loadb(body_text(resp), resp->body.len, 0, &jerr);
                if (!*answer)
                        return bad_answer(r, errstr, errstr_size,
                                          "not JSON (%s)", jerr.text);
                return RELAY_OK;
        }

        status_error(r, errstr, errstr_size);
        if (st == 404) {
                if (not_found)
                        *not_found = 1;
                return RELAY_FATAL;
        }
        /* 408, 425 and 429 are about the moment, not the request. 1xx and
         * 3xx (redirects are not followed) are left to retry too: a
         * misconfigured URL must not dead-letter every record. */
        if (st >= 400 && st < 500 && st != 408 && st != 425 && st != 429)
                return RELAY_FATAL;
        return RELAY_RETRY;
}

/* ---- answer fields ------------------------------------------------------- */

/* Member key of object o as an integer in [min, max]: 0, or -1 with the
 * reason in errstr. */
static int get_int(relay_registry_t *r, json_t *o, const char *key,
                   json_int_t min, json_int_t max, json_int_t *out,
                   char *errstr, size_t errstr_size)
{
        json_t *v = json_object_get(o, key);

        if (!json_is_integer(v)) {
                bad_answer(r, errstr, errstr_size, "no integer \"%s\"", key);
                return -1;
        }
        if (json_integer_value(v) < min || json_integer_value(v) > max) {
                bad_answer(r, errstr, errstr_size,
                           "\"%s\" %" JSON_INTEGER_FORMAT " out of range", key,
                           json_integer_value(v));
                return -1;
        }
        *out = json_integer_value(v);
        return 0;
}

/* Member "id" as a schema id: a non-negative int32. */
static int get_id(relay_registry_t *r, json_t *o, int32_t *id, char *errstr,
                  size_t errstr_size)
{
        json_int_t v;

        if (get_int(r, o, "id", 0, INT32_MAX, &v, errstr, errstr_size) != 0)
                return -1;
        if (id)
                *id = (int32_t)v;
        return 0;
}

/* Member "version" as a subject version: they count from 1. */
static int get_version(relay_registry_t *r, json_t *o, int *version,
                       char *errstr, size_t errstr_size)
{
        json_int_t v;

        if (get_int(r, o, "version", 1, INT32_MAX, &v, errstr, errstr_size) !=
            0)
                return -1;
        if (version)
                *version = (int)v;
        return 0;
}

/* Member "schema" as non-empty text. */
static const char *get_schema(relay_registry_t *r, json_t *o, char *errstr,
                              size_t errstr_size)
{
        json_t *v = json_object_get(o, "schema");

        if (!json_is_string(v) || json_string_length(v) == 0) {
                bad_answer(r, errstr, errstr_size, "no \"schema\" text");
                return NULL;
        }
        return json_string_value(v);
}

static int want_object(relay_registry_t *r, json_t *j, char *errstr,
                       size_t errstr_size)
{
        if (json_is_object(j))
                return 0;
        bad_answer(r, errstr, errstr_size, "not a JSON object");
        return -1;
}

/* The strings of array a (key NULL), or member key of each of its objects,
 * as a NULL-terminated malloc'd array. */
static enum relay_result strv_from(relay_registry_t *r, json_t *a,
                                   const char *key, char ***out, size_t *n,
                                   char *errstr, size_t errstr_size)
{
        size_t i, len = json_array_size(a);
        char **v;
        json_t *e;

        if (!json_is_array(a))
                return bad_answer(r, errstr, errstr_size, "not a JSON array");
        json_array_foreach(a, i, e)
        {
                json_t *s = key ? json_object_get(e, key) : e;

                if (!json_is_string(s) && key)
                        return bad_answer(r, errstr, errstr_size,
                                          "element %zu has no \"%s\" string", i,
                                          key);
                if (!json_is_string(s))
                        return bad_answer(r, errstr, errstr_size,
                                          "element %zu is not a string", i);
        }
        v = relay_calloc(len + 1, sizeof(*v));
        json_array_foreach(a, i, e)
        {
                json_t *s = key ? json_object_get(e, key) : e;

                v[i] =
                    relay_strndup(json_string_value(s), json_string_length(s));
        }
        *out = v;
        *n = len;
        return RELAY_OK;
}

/* ---- request checks ------------------------------------------------------ */

static int check_subject(const char *subject, char *errstr, size_t errstr_size)
{
        if (subject && *subject)
                return 0;
        relay_seterr(errstr, errstr_size, "registry: empty subject name");
        return -1;
}

/* r->body = {"schema": "<schema>"}. The text goes out byte for byte, so
 * it must be UTF-8 already: a replaced byte would make lookups miss. */
static int schema_body(relay_registry_t *r, const char *schema, char *errstr,
                       size_t errstr_size)
{
        const unsigned char *u = (const unsigned char *)schema;
        size_t n = schema ? strlen(schema) : 0;

        if (n == 0) {
                seterr(r, errstr, errstr_size, "empty schema text");
                return -1;
        }
        for (size_t i = 0, len; i < n; i += len) {
                len = u[i] < 0x80 ? 1 : relay_utf8_len(u + i, n - i);
                if (!len) {
                        seterr(r, errstr, errstr_size,
                               "schema text is not UTF-8 at byte %zu", i);
                        return -1;
                }
        }
        relay_buf_reset(&r->body);
        relay_buf_puts(&r->body, "{\"schema\":");
        relay_buf_json_str(&r->body, schema, n);
        relay_buf_puts(&r->body, "}");
        return 0;
}

/* A compatibility level is upper-case letters and '_' ("FULL_TRANSITIVE"). */
static int is_level(const char *s, size_t n)
{
        if (n == 0 || n >= LEVEL_MAX)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_'))
                        return 0;
        return 1;
}

/* "http[s]://host..." with a host and nothing the paths cannot be appended
 * to: 0, or -1 with the reason in errstr. */
static int check_url(const char *url, char *errstr, size_t errstr_size)
{
        const char *p, *host, *end;

        if (strncasecmp(url, "http://", 7) == 0)
                p = url + 7;
        else if (strncasecmp(url, "https://", 8) == 0)
                p = url + 8;
        else {
                relay_seterr(errstr, errstr_size,
                             "registry URL \"%.200s\" must start with http:// "
                             "or https://",
                             url);
                return -1;
        }
        for (const unsigned char *c = (const unsigned char *)url; *c; c++)
                if (*c <= 0x20 || *c == 0x7f) {
                        relay_seterr(errstr, errstr_size,
                                     "registry URL has a space or control "
                                     "character at offset %zu",
                                     (size_t)((const char *)c - url));
                        return -1;
                }
        if (strpbrk(url, "?#")) {
                relay_seterr(errstr, errstr_size,
                             "registry URL must not have a query string or "
                             "fragment: API paths are appended to it");
                return -1;
        }
        end = p + strcspn(p, "/");
        /* Credentials ("user:pw@") end at the last '@' of the authority. */
        host = p;
        for (const char *c = p; c < end; c++)
                if (*c == '@')
                        host = c + 1;
        if (host == end || *host == ':') {
                relay_seterr(errstr, errstr_size, "registry URL has no host");
                return -1;
        }
        return 0;
}

/* ---- the API ------------------------------------------------------------- */

relay_registry_t *relay_registry_new(const relay_registry_conf_t *conf,
                                     char *errstr, size_t errstr_size)
{
        relay_registry_t *r;
        size_t n;

        if (!conf || !conf->url || !*conf->url) {
                relay_seterr(errstr, errstr_size, "registry URL not set");
                return NULL;
        }
        if (check_url(conf->url, errstr, errstr_size) != 0)
                return NULL;

        r = relay_calloc(1, sizeof(*r));
        relay_buf_init(&r->path);
        relay_buf_init(&r->url);
        relay_buf_init(&r->body);
        relay_http_response_init(&r->resp);
        r->method = "GET";
        r->base = relay_strdup(conf->url);
        n = strlen(r->base);
        while (n > 0 && r->base[n - 1] == '/')
                r->base[--n] = '\0';
        if (conf->userpwd && *conf->userpwd)
                r->userpwd = relay_strdup(conf->userpwd);
        r->timeout_ms =
            conf->timeout_ms > 0 ? conf->timeout_ms : REGISTRY_TIMEOUT_MS;
        /* The total timeout bounds the connect as well. */
        r->http = relay_http_new(r->timeout_ms, r->timeout_ms);
        if (!r->http) {
                relay_seterr(errstr, errstr_size,
                             "registry: cannot create an HTTP client");
                goto fail;
        }
        return r;

fail:
        relay_registry_destroy(r);
        return NULL;
}

void relay_registry_destroy(relay_registry_t *r)
{
        if (!r)
                return;
        relay_http_destroy(r->http);
        relay_http_response_reset(&r->resp);
        relay_buf_free(&r->path);
        relay_buf_free(&r->url);
        relay_buf_free(&r->body);
        free(r->base);
        free(r->userpwd);
        free(r);
}

void relay_registry_strv_free(char **v, size_t n)
{
        if (!v)
                return;
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static int check_id(int32_t id, char *errstr, size_t errstr_size)
{
        if (id >= 0)
                return 0;
        relay_seterr(errstr, errstr_size,
                     "registry: schema id %" PRId32 " is negative", id);
        return -1;
}

enum relay_result relay_registry_schema_by_id(relay_registry_t *r, int32_t id,
                                              char **schema, int *not_found,
                                              char *errstr, size_t errstr_size)
{
        enum relay_result rc;
        const char *text;
        json_t *j;
        char path[64];

        *schema = NULL;
        if (not_found)
                *not_found = 0;
        if (check_id(id, errstr, errstr_size) != 0)
                return RELAY_FATAL;
        snprintf(path, sizeof(path), "/schemas/ids/%" PRId32, id);
        begin(r, "GET", path);
        rc = call(r, NULL, 0, &j, not_found, errstr, errstr_size);
        if (rc != RELAY_OK)
                return rc;
        if (want_object(r, j, errstr, errstr_size) != 0 ||
            !(text = get_schema(r, j, errstr, errstr_size))) {
                json_decref(j);
                return RELAY_RETRY;
        }
        *schema = relay_strdup(text);
        json_decref(j);
        return RELAY_OK;
}

enum relay_result relay_registry_subjects_of(relay_registry_t *r, int32_t id,
                                             char ***subjects, size_t *n,
                                             int *not_found, char *errstr,
                                             size_t errstr_size)
{
        enum relay_result rc;
        json_t *j;
        char path[64];

        *subjects = NULL;
        *n = 0;
        if (not_found)
                *not_found = 0;
        if (check_id(id, errstr, errstr_size) != 0)
                return RELAY_FATAL;
        snprintf(path, sizeof(path), "/schemas/ids/%" PRId32 "/versions", id);
        begin(r, "GET", path);
        rc = call(r, NULL, 0, &j, not_found, errstr, errstr_size);
        if (rc != RELAY_OK)
                return rc;
        rc = strv_from(r, j, "subject", subjects, n, errstr, errstr_size);
        json_decref(j);
        return rc;
}

enum relay_result relay_registry_lookup(relay_registry_t *r,
                                        const char *subject, const char *schema,
                                        int32_t *id, int *version,
                                        int *not_found, char *errstr,
                                        size_t errstr_size)
{
        enum relay_result rc;
        json_t *j;
        int32_t i;
        int v;

        if (not_found)
                *not_found = 0;
        if (check_subject(subject, errstr, errstr_size) != 0)
                return RELAY_FATAL;
        begin(r, "POST", "/subjects/");
        path_segment(r, subject);
        if (schema_body(r, schema, errstr, errstr_size) != 0)
                return RELAY_FATAL;
        rc = call(r, r->body.data, 0, &j, not_found, errstr, errstr_size);
        if (rc != RELAY_OK)
                return rc;
        if (want_object(r, j, errstr, errstr_size) != 0 ||
            get_id(r, j, &i, errstr, errstr_size) != 0 ||
            get_version(r, j, &v, errstr, errstr_size) != 0) {
                json_decref(j);
                return RELAY_RETRY;
        }
        json_decref(j);
        if (id)
                *id = i;
        if (version)
                *version = v;
        return RELAY_OK;
}

enum relay_result relay_registry_register(relay_registry_t *r,
                                          const char *subject,
                                          const char *schema, int32_t *id,
                                          char *errstr, size_t errstr_size)
{
        enum relay_result rc;
        json_t *j;
        int32_t i;

        if (check_subject(subject, errstr, errstr_size) != 0)
                return RELAY_FATAL;
        begin(r, "POST", "/subjects/");
        path_segment(r, subject);
        relay_buf_puts(&r->path, "/versions");
        if (schema_body(r, schema, errstr, errstr_size) != 0)
                return RELAY_FATAL;
        rc = call(r, r->body.data, 0, &j, NULL, errstr, errstr_size);
        if (rc != RELAY_OK)
                return rc;
        if (want_object(r, j, errstr, errstr_size) != 0 ||
            get_id(r, j, &i, errstr, errstr_size) != 0) {
                json_decref(j);
                return RELAY_RETRY;
        }
        json_decref(j);
        if (id)
                *id = i;
        return RELAY_OK;
}

enum relay_result relay_registry_get(relay_registry_t *r, const char *subject,
                                     const char *version, int32_t *id,
                                     int *version_out, char **schema,
                                     int *not_found, char *errstr,
                                     size_t errstr_size)
{
        enum relay_result rc;
        const char *text = NULL;
        json_t *j;
        int32_t i;
        int v;

        if (schema)
                *schema = NULL;
        if (not_found)
                *not_found = 0;
        if (check_subject(subject, errstr, errstr_size) != 0)
                return RELAY_FATAL;
        if (!version || !*version) {
                relay_seterr(errstr, errstr_size, "registry: empty version");
                return RELAY_FATAL;
        }
        begin(r, "GET", "/subjects/");
        path_segment(r, subject);
        relay_buf_puts(&r->path, "/versions/");
        path_segment(r, version);
        rc = call(r, NULL, 0, &j, not_found, errstr, errstr_size);
        if (rc != RELAY_OK)
                return rc;
        if (want_object(r, j, errstr, errstr_size) != 0 ||
            get_id(r, j, &i, errstr, errstr_size) != 0 ||
            get_version(r, j, &v, errstr, errstr_size) != 0 ||
            (schema && !(text = get_schema(r, j, errstr, errstr_size)))) {
                json_decref(j);
                return RELAY_RETRY;
        }
        if (id)
                *id = i;
        if (version_out)
                *version_out = v;
        if (schema)
                *schema = relay_strdup(text);
        json_decref(j);
        return RELAY_OK;
}

/* The registry's verbose messages joined with "; ": strings as they are,
 * anything else as compact JSON. */
static void join_messages(json_t *messages, char *why, size_t why_size)
{
        relay_buf_t b;
        size_t i;
        json_t *m;

        if (!why || !why_size)
                return;
        relay_buf_init(&b);
        relay_buf_puts(&b, "");
        if (json_is_string(messages)) {
                append_printable(&b, json_string_value(messages),
                                 json_string_length(messages), why_size);
        } else {
                json_array_foreach(messages, i, m)
                {
                        char *dump = NULL;
                        const char *s;
                        size_t n;

                        if (b.len >= why_size)
                                break;
                        if (json_is_string(m)) {
                                s = json_string_value(m);
                                n = json_string_length(m);
                        } else {
                                dump = json_dumps(m, JSON_COMPACT |
                                                         JSON_ENCODE_ANY);
                                s = dump ? dump : "";
                                n = strlen(s);
                        }
                        if (b.len)
                                relay_buf_puts(&b, "; ");
                        append_printable(&b, s, n, why_size);
                        free(dump);
                }
        }
        snprintf(why, why_size, "%s", b.data);
        relay_buf_free(&b);
}

enum relay_result relay_registry_check(relay_registry_t *r, const char *subject,
                                       const char *schema, int *compatible,
                                       char *why, size_t why_size,
                                       int *not_found, char *errstr,
                                       size_t errstr_size)
{
        enum relay_result rc;
        json_t *j, *ok;

        if (why && why_size)
                why[0] = '\0';
        if (not_found)
                *not_found = 0;
        if (check_subject(subject, errstr, errstr_size) != 0)
                return RELAY_FATAL;
        begin(r, "POST", "/compatibility/subjects/");
        path_segment(r, subject);
        relay_buf_puts(&r->path, "/versions/latest?verbose=true");
        if (schema_body(r, schema, errstr, errstr_size) != 0)
                return RELAY_FATAL;
        rc = call(r, r->body.data, 0, &j, not_found, errstr, errstr_size);
        if (rc != RELAY_OK)
                return rc;
        if (want_object(r, j, errstr, errstr_size) != 0) {
                json_decref(j);
                return RELAY_RETRY;
        }
        ok = json_object_get(j, "is_compatible");
        if (!json_is_boolean(ok)) {
                json_decref(j);
                return bad_answer(r, errstr, errstr_size,
                                  "no boolean \"is_compatible\"");
        }
        if (compatible)
                *compatible = json_is_true(ok);
        /* Confluent answers a "messages" list; Apicurio a "reason". */
        json_t *msgs = json_object_get(j, "messages");
        join_messages(msgs ? msgs : json_object_get(j, "reason"), why,
                      why_size);
        json_decref(j);
        return RELAY_OK;
}

/* The level in a /config answer, copied to level. */
static enum relay_result read_level(relay_registry_t *r, json_t *j, char *level,
                                    size_t level_size, char *errstr,
                                    size_t errstr_size)
{
        json_t *v;

        if (!json_is_object(j))
                return bad_answer(r, errstr, errstr_size, "not a JSON object");
        /* Confluent says "compatibilityLevel", some others "compatibility". */
        v = json_object_get(j, "compatibilityLevel");
        if (!v)
                v = json_object_get(j, "compatibility");
        if (!json_is_string(v) ||
            !is_level(json_string_value(v), json_string_length(v)))
                return bad_answer(r, errstr, errstr_size,
                                  "no \"compatibilityLevel\" level");
        if (json_string_length(v) >= level_size) {
                seterr(r, errstr, errstr_size,
                       "level %s does not fit in %zu bytes",
                       json_string_value(v), level_size);
                return RELAY_FATAL;
        }
        memcpy(level, json_string_value(v), json_string_length(v) + 1);
        return RELAY_OK;
}

enum relay_result relay_registry_get_compat(relay_registry_t *r,
                                            const char *subject, char *level,
                                            size_t level_size, char *errstr,
                                            size_t errstr_size)
{
        enum relay_result rc;
        int not_found = 0;
        json_t *j;

        if (level && level_size)
                level[0] = '\0';
        if (!level || !level_size) {
                relay_seterr(errstr, errstr_size, "registry: no level buffer");
                return RELAY_FATAL;
        }
        if (subject) {
                if (check_subject(subject, errstr, errstr_size) != 0)
                        return RELAY_FATAL;
                begin(r, "GET", "/config/");
                path_segment(r, subject);
                relay_buf_puts(&r->path, "?defaultToGlobal=true");
                rc = call(r, NULL, 0, &j, &not_found, errstr, errstr_size);
                if (rc == RELAY_OK) {
                        rc = read_level(r, j, level, level_size, errstr,
                                        errstr_size);
                        json_decref(j);
                        return rc;
                }
                /* Registries without defaultToGlobal answer 404 for a
                 * subject that has no level of its own. */
                if (!not_found)
                        return rc;
        }
        begin(r, "GET", "/config");
        rc = call(r, NULL, 0, &j, NULL, errstr, errstr_size);
        if (rc != RELAY_OK)
                return rc;
        rc = read_level(r, j, level, level_size, errstr, errstr_size);
        json_decref(j);
        return rc;
}

enum relay_result relay_registry_set_compat(relay_registry_t *r,
                                            const char *subject,
                                            const char *level, char *errstr,
                                            size_t errstr_size)
{
        enum relay_result rc;
        json_t *j;

        if (!level || !is_level(level, strlen(level))) {
                relay_seterr(errstr, errstr_size,
                             "registry: \"%.64s\" is not a compatibility level",
                             level ? level : "");
                return RELAY_FATAL;
        }
        if (subject) {
                if (check_subject(subject, errstr, errstr_size) != 0)
                        return RELAY_FATAL;
                begin(r, "PUT", "/config/");
                path_segment(r, subject);
        } else {
                begin(r, "PUT", "/config");
        }
        relay_buf_reset(&r->body);
        relay_buf_printf(&r->body, "{\"compatibility\":\"%s\"}", level);
        /* The answer echoes the level; a bare 2xx says the same. */
        rc = call(r, r->body.data, 1, &j, NULL, errstr, errstr_size);
        if (rc != RELAY_OK || !j)
                return rc;
        if (want_object(r, j, errstr, errstr_size) != 0)
                rc = RELAY_RETRY;
        json_decref(j);
        return rc;
}

enum relay_result relay_registry_subjects(relay_registry_t *r, char ***subjects,
                                          size_t *n, char *errstr,
                                          size_t errstr_size)
{
        enum relay_result rc;
        json_t *j;

        *subjects = NULL;
        *n = 0;
        begin(r, "GET", "/subjects");
        rc = call(r, NULL, 0, &j, NULL, errstr, errstr_size);
        if (rc != RELAY_OK)
                return rc;
        rc = strv_from(r, j, NULL, subjects, n, errstr, errstr_size);
        json_decref(j);
        return rc;
}
