/*
 * The HTTP client the delivery workers use to call platform APIs, on
 * libcurl. A client (relay_http_t) owns one easy handle for its whole
 * life: libcurl keeps the connection (and the TLS session) in that handle,
 * so consecutive requests to the same platform reuse one keep-alive
 * connection instead of paying a handshake per batch. Each request starts
 * from curl_easy_reset(), which forgets every option of the previous
 * request but keeps the live connections, so nothing (a method, a body
 * pointer, a header list, credentials) can leak from one request into the
 * next.
 *
 * relay_http_multi_t runs several requests at once on libcurl's multi
 * interface: a fixed number of slots, each a client of its own, whose
 * connections go into the multi handle's shared pool (so a slot reuses
 * whichever kept-alive connection is free). Nothing blocks but
 * relay_http_multi_run, for at most the time it is given.
 *
 * Neither is thread-safe: use one per thread.
 */
#include "relay/http.h"
#include "relay/log.h"
#include "relay/retry.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* A platform answer is a status and a short JSON error; anything bigger is
 * kept only up to here so a misbehaving endpoint cannot balloon memory. */
#define HTTP_BODY_MAX ((size_t)1 << 20)

#define HTTP_USER_AGENT "relay/0.1"

struct relay_http {
        CURL *curl;
        long timeout_ms;
        long connect_timeout_ms;
        char errbuf[CURL_ERROR_SIZE];
        int (*abort_fn)(void *arg);
        void *abort_arg;
        /* of the request under way: its header list (freed by the next
         * request and by _destroy) and, for the log, method and URL */
        struct curl_slist *headers;
        const char *req_method, *req_url;
        size_t slot; /* its slot in a relay_http_multi_t */
};

/* libcurl's progress callback, at least once a second during a request:
 * non-zero aborts it (CURLE_ABORTED_BY_CALLBACK). */
static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
        (void)dltotal;
        (void)dlnow;
        (void)ultotal;
        (void)ulnow;
        relay_http_t *h = opaque;
        return h->abort_fn(h->abort_arg) ? 1 : 0;
}

void relay_http_set_abort(relay_http_t *h, int (*fn)(void *arg), void *arg)
{
        h->abort_fn = fn;
        h->abort_arg = arg;
}

int relay_http_global_init(void)
{
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);

        if (rc != CURLE_OK) {
                relay_log(LOG_ERR, "http", "curl_global_init failed: %s",
                          curl_easy_strerror(rc));
                return -1;
        }
        return 0;
}

void relay_http_global_cleanup(void)
{
        curl_global_cleanup();
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *opaque)
{
        relay_http_response_t *resp = opaque;
        size_t n = size * nmemb;
        size_t room = HTTP_BODY_MAX - resp->body.len;

        /* Returning less than n would abort the transfer with a write error;
         * claiming the bytes instead lets the request finish (and the
         * connection stay reusable) with a truncated body. */
        relay_buf_append(&resp->body, data, n < room ? n : room);
        return n;
}

static void clear_response_headers(relay_http_response_t *resp)
{
        resp->retry_after_ms = -1;
        resp->content_type[0] = '\0';
        resp->ratelimit_remaining = -1;
        resp->ratelimit_reset_ms = -1;
}

/* A rate-limit header's non-negative integer value, or -1. */
static long long header_count(const char *value, size_t len)
{
        long long v = 0;
        if (!len || len > 15)
                return -1;
        for (size_t i = 0; i < len; i++) {
                if (value[i] < '0' || value[i] > '9')
                        return -1;
                v = v * 10 + (value[i] - '0');
        }
        return v;
}

/* Whether the header line's name (name_len bytes) is X-RateLimit-<what>
 * or RateLimit-<what> (the IETF draft's). */
static int ratelimit_header(const char *line, size_t name_len,
                            const char *what)
{
        size_t wl = strlen(what);
        if (name_len == 10 + wl && !strncasecmp(line, "RateLimit-", 10))
                return !strncasecmp(line + 10, what, wl);
        if (name_len == 12 + wl && !strncasecmp(line, "X-RateLimit-", 12))
                return !strncasecmp(line + 12, what, wl);
        return 0;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *opaque)
{
        relay_http_response_t *resp = opaque;
        size_t n = size * nmemb;
        const char *colon, *value, *end;
        size_t name_len, value_len;

        /* Each status line starts a new response: a "100 Continue" or a
         * "103 Early Hints" before the real answer must not leave its
         * headers behind. */
        if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
                clear_response_headers(resp);
                return n;
        }

        colon = memchr(line, ':', n);
        if (!colon)
                return n;
        name_len = (size_t)(colon - line);
        value = colon + 1;
        end = line + n;
        while (value < end && (*value == ' ' || *value == '\t'))
                value++;
        while (end > value && (end[-1] == '\r' || end[-1] == '\n' ||
                               end[-1] == ' ' || end[-1] == '\t'))
                end--;
        value_len = (size_t)(end - value);

        if (name_len == 11 && strncasecmp(line, "Retry-After", 11) == 0) {
                char buf[128];

                /* Too long to be a valid value: leave it "absent". */
                if (value_len >= sizeof(buf))
                        return n;
                memcpy(buf, value, value_len);
                buf[value_len] = '\0';
                resp->retry_after_ms = relay_retry_after_parse(buf, time(NULL));
        } else if (ratelimit_header(line, name_len, "Remaining")) {
                long long v = header_count(value, value_len);
                resp->ratelimit_remaining = v > LONG_MAX ? LONG_MAX : (long)v;
        } else if (ratelimit_header(line, name_len, "Reset")) {
                /* Seconds until the reset (the IETF draft, GitHub's
                 * delta form) or the reset as Unix seconds (Braze,
                 * GitHub): a value past 2001-09-09 can only be a time. */
                long long v = header_count(value, value_len);
                if (v >= 1000000000LL) {
                        long long now = (long long)time(NULL);
                        v = v > now ? v - now : 0;
                }
                if (v >= 0 && v <= 86400LL * 366)
                        resp->ratelimit_reset_ms = (long)(v * 1000);
        } else if (name_len == 12 &&
                   strncasecmp(line, "Content-Type", 12) == 0) {
                if (value_len >= sizeof(resp->content_type))
                        value_len = sizeof(resp->content_type) - 1;
                memcpy(resp->content_type, value, value_len);
                resp->content_type[value_len] = '\0';
        }
        return n;
}

/* The options every request of this client shares; set again after each
 * curl_easy_reset(). */
static CURLcode set_client_options(relay_http_t *h, relay_http_response_t *resp)
{
        CURLcode rc = CURLE_OK;

#define SETOPT(opt, val)                                                       \
        do {                                                                   \
                if (rc == CURLE_OK)                                            \
                        rc = curl_easy_setopt(h->curl, (opt), (val));          \
        } while (0)

        /* No SIGALRM-based DNS timeouts: they are not thread-safe. */
        SETOPT(CURLOPT_NOSIGNAL, 1L);
        SETOPT(CURLOPT_TIMEOUT_MS, h->timeout_ms);
        SETOPT(CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
        /* A long-lived connection behind NAT or a load balancer is dropped
         * silently when idle; probes keep it, or reveal it dead early. */
        SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
        SETOPT(CURLOPT_USERAGENT, HTTP_USER_AGENT);
        /* A URL comes from config: never let it become file:// or smtp://. */
        SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
        /* A redirect from a delivery API is a configuration error the
         * operator must see, not something to follow with the body and the
         * credentials attached. */
        SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(CURLOPT_ERRORBUFFER, h->errbuf);
        SETOPT(CURLOPT_WRITEFUNCTION, on_body);
        SETOPT(CURLOPT_WRITEDATA, resp);
        SETOPT(CURLOPT_HEADERFUNCTION, on_header);
        SETOPT(CURLOPT_HEADERDATA, resp);
        if (h->abort_fn) {
                SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
                SETOPT(CURLOPT_XFERINFODATA, h);
                SETOPT(CURLOPT_NOPROGRESS, 0L);
        }
#undef SETOPT
        return rc;
}

relay_http_t *relay_http_new(long timeout_ms, long connect_timeout_ms)
{
        relay_http_t *h = relay_calloc(1, sizeof(*h));
        CURLcode rc;

        h->timeout_ms = timeout_ms;
        h->connect_timeout_ms = connect_timeout_ms;
        h->curl = curl_easy_init();
        if (!h->curl) {
                relay_log(LOG_ERR, "http", "curl_easy_init failed");
                goto fail;
        }
        /* Set once here as well so that a bad option (an old libcurl without
         * CURLOPT_PROTOCOLS_STR) fails at startup, not on the first record. */
        rc = set_client_options(h, NULL);
        if (rc != CURLE_OK) {
                relay_log(LOG_ERR, "http", "libcurl rejected an option: %s",
                          curl_easy_strerror(rc));
                goto fail;
        }
        return h;

fail:
        relay_http_destroy(h);
        return NULL;
}

void relay_http_destroy(relay_http_t *h)
{
        if (!h)
                return;
        if (h->curl)
                curl_easy_cleanup(h->curl);
        curl_slist_free_all(h->headers);
        free(h);
}

void relay_http_response_init(relay_http_response_t *r)
{
        memset(r, 0, sizeof(*r));
        relay_buf_init(&r->body);
        clear_response_headers(r);
}

void relay_http_response_reset(relay_http_response_t *r)
{
        /* Frees the body (the header makes _reset its owner's release) and
         * leaves r as fresh as after _init, ready for another request. */
        relay_buf_free(&r->body);
        relay_http_response_init(r);
}

/* Forget the previous answer but keep the body's memory: a worker sends the
 * same kind of request over and over, so the buffer settles at its size. */
static void response_clear(relay_http_response_t *r)
{
        r->status = 0;
        r->transport_error = 0;
        r->timed_out = 0;
        r->error[0] = '\0';
        relay_buf_reset(&r->body);
        clear_response_headers(r);
        r->seconds = 0;
}

/* The method, the body and the credentials of one request. */
static CURLcode set_request_options(relay_http_t *h,
                                    const relay_http_request_t *req,
                                    struct curl_slist *headers)
{
        const char *method = req->method ? req->method : "POST";
        /* POSTFIELDS with a NULL pointer would read the body from stdin. */
        const char *body = req->body ? req->body : "";
        curl_off_t body_len = req->body ? (curl_off_t)req->body_len : 0;
        CURLcode rc = CURLE_OK;

#define SETOPT(opt, val)                                                       \
        do {                                                                   \
                if (rc == CURLE_OK)                                            \
                        rc = curl_easy_setopt(h->curl, (opt), (val));          \
        } while (0)

        SETOPT(CURLOPT_URL, req->url);
        if (strcmp(method, "GET") == 0) {
                SETOPT(CURLOPT_HTTPGET, 1L);
        } else if (strcmp(method, "HEAD") == 0) {
                /* A HEAD answer has no body; without NOBODY libcurl would
                 * wait for the Content-Length bytes until the timeout. */
                SETOPT(CURLOPT_NOBODY, 1L);
        } else {
                /* An explicit size, set before the pointer, so that binary
                 * bodies with NUL bytes go out whole (no strlen()). */
                SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, body_len);
                SETOPT(CURLOPT_POSTFIELDS, body);
                if (strcmp(method, "POST") != 0)
                        SETOPT(CURLOPT_CUSTOMREQUEST, method);
        }
        SETOPT(CURLOPT_HTTPHEADER, headers);
        if (req->userpwd) {
                SETOPT(CURLOPT_USERPWD, req->userpwd);
                SETOPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        }
#undef SETOPT
        return rc;
}

/* The URL up to its query string: query strings can carry API keys, and a
 * debug log is no place for those. */
static int url_loggable_len(const char *url)
{
        size_t n = strcspn(url, "?#");

        return n > 512 ? 512 : (int)n;
}

/* Set up h's handle for req, answers into resp. 0, or -1 with resp
 * saying why (nothing to perform). */
static int prepare(relay_http_t *h, const relay_http_request_t *req,
                   relay_http_response_t *resp)
{
        struct curl_slist *tmp;
        CURLcode rc;

        response_clear(resp);
        resp->aborted = 0;
        h->req_method = req->method ? req->method : "POST";
        h->req_url = req->url;
        if (!req->url) {
                resp->transport_error = CURLE_URL_MALFORMAT;
                snprintf(resp->error, sizeof(resp->error), "no URL");
                return -1;
        }
        curl_slist_free_all(h->headers);
        h->headers = NULL;
        for (size_t i = 0; i < sizeof(req->headers) / sizeof(req->headers[0]) &&
                           req->headers[i];
             i++) {
                tmp = curl_slist_append(h->headers, req->headers[i]);
                if (!tmp)
                        goto oom;
                h->headers = tmp;
        }
        /* libcurl waits up to a second for "100 Continue" on larger bodies;
         * the platform APIs answer the whole request anyway. */
        tmp = curl_slist_append(h->headers, "Expect:");
        if (!tmp)
                goto oom;
        h->headers = tmp;

        curl_easy_reset(h->curl);
        h->errbuf[0] = '\0';
        rc = set_client_options(h, resp);
        if (rc == CURLE_OK)
                rc = set_request_options(h, req, h->headers);
        /* curl_easy_reset forgets it too: set again for every request */
        if (rc == CURLE_OK)
                rc = curl_easy_setopt(h->curl, CURLOPT_PRIVATE, (void *)h);
        if (rc != CURLE_OK) {
                resp->transport_error = (int)rc;
                snprintf(resp->error, sizeof(resp->error), "%s",
                         h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
                return -1;
        }
        return 0;

oom:
        resp->transport_error = CURLE_OUT_OF_MEMORY;
        snprintf(resp->error, sizeof(resp->error), "%s",
                 curl_easy_strerror(CURLE_OUT_OF_MEMORY));
        return -1;
}

/* The answer of h's request, which ended with rc: 0 when an HTTP answer
 * came, -1 on a transport failure. */
static int finish(relay_http_t *h, CURLcode rc, relay_http_response_t *resp)
{
        double seconds = 0;

        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &resp->status);
        if (curl_easy_getinfo(h->curl, CURLINFO_TOTAL_TIME, &seconds) ==
            CURLE_OK)
                resp->seconds = seconds;
        /* The handle still points at the header list; it is only read
         * while the request runs, and the next one starts with
         * curl_easy_reset() and a new list. */
        if (rc != CURLE_OK) {
                resp->transport_error = (int)rc;
                resp->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
                resp->aborted = rc == CURLE_ABORTED_BY_CALLBACK;
                snprintf(resp->error, sizeof(resp->error), "%s",
                         h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
                relay_log(LOG_DEBUG, "http", "%s %.*s failed after %.3fs: %s",
                          h->req_method, url_loggable_len(h->req_url),
                          h->req_url, resp->seconds, resp->error);
                return -1;
        }
        relay_log(LOG_DEBUG, "http", "%s %.*s -> %ld in %.3fs, %zu bytes",
                  h->req_method, url_loggable_len(h->req_url), h->req_url,
                  resp->status, resp->seconds, resp->body.len);
        return 0;
}

int relay_http_perform(relay_http_t *h, const relay_http_request_t *req,
                       relay_http_response_t *resp)
{
        if (prepare(h, req, resp))
                return -1;
        return finish(h, curl_easy_perform(h->curl), resp);
}

/* ---- several at once ---------------------------------------------------- */

struct relay_http_multi {
        CURLM *multi;
        size_t nslots;
        relay_http_t **slot;
        relay_http_response_t **resp; /* of a running slot, else NULL */
        size_t running;
};

relay_http_multi_t *relay_http_multi_new(size_t slots, long timeout_ms,
                                         long connect_timeout_ms)
{
        relay_http_multi_t *m = relay_calloc(1, sizeof(*m));
        m->nslots = slots;
        m->slot = relay_calloc(slots, sizeof(*m->slot));
        m->resp = relay_calloc(slots, sizeof(*m->resp));
        if (!(m->multi = curl_multi_init()))
                goto fail;
        /* Slots share the multi handle's connection pool: keep one
         * connection per slot alive between requests. */
        curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)slots);
        for (size_t i = 0; i < slots; i++) {
                if (!(m->slot[i] =
                          relay_http_new(timeout_ms, connect_timeout_ms)))
                        goto fail;
                m->slot[i]->slot = i;
        }
        return m;
fail:
        relay_http_multi_destroy(m);
        return NULL;
}

void relay_http_multi_destroy(relay_http_multi_t *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->nslots; i++) {
                if (m->resp[i])
                        curl_multi_remove_handle(m->multi, m->slot[i]->curl);
                relay_http_destroy(m->slot[i]);
        }
        if (m->multi)
                curl_multi_cleanup(m->multi);
        free(m->slot);
        free(m->resp);
        free(m);
}

void relay_http_multi_set_abort(relay_http_multi_t *m, int (*fn)(void *arg),
                                void *arg)
{
        for (size_t i = 0; i < m->nslots; i++)
                relay_http_set_abort(m->slot[i], fn, arg);
}

size_t relay_http_multi_slots(const relay_http_multi_t *m)
{
        return m->nslots;
}

size_t relay_http_multi_running(const relay_http_multi_t *m)
{
        return m->running;
}

int relay_http_multi_busy(const relay_http_multi_t *m, size_t slot)
{
        return m->resp[slot] != NULL;
}

int relay_http_multi_start(relay_http_multi_t *m, size_t slot,
                           const relay_http_request_t *req,
                           relay_http_response_t *resp)
{
        relay_http_t *h = m->slot[slot];
        if (m->resp[slot] || prepare(h, req, resp))
                return -1;
        CURLMcode mc = curl_multi_add_handle(m->multi, h->curl);
        if (mc != CURLM_OK) {
                resp->transport_error = CURLE_FAILED_INIT;
                snprintf(resp->error, sizeof(resp->error), "%s",
                         curl_multi_strerror(mc));
                return -1;
        }
        m->resp[slot] = resp;
        m->running++;
        return 0;
}

/* Slot of a finished transfer: its answer into its response. */
static size_t multi_done(relay_http_multi_t *m, CURL *easy, CURLcode rc)
{
        void *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        size_t i = ((relay_http_t *)priv)->slot;
        curl_multi_remove_handle(m->multi, easy);
        finish(m->slot[i], rc, m->resp[i]);
        m->resp[i] = NULL;
        m->running--;
        return i;
}

size_t relay_http_multi_run(relay_http_multi_t *m, long wait_ms, size_t *done,
                            size_t max_done)
{
        size_t n = 0;
        int still = 0, msgs = 0;
        CURLMsg *msg;

        if (!m->running)
                return 0;
        curl_multi_perform(m->multi, &still);
        /* Wait only when nothing has ended yet: what ended is answered
         * first. */
        if (wait_ms > 0 && (size_t)still == m->running) {
                curl_multi_poll(m->multi, NULL, 0, (int)wait_ms, NULL);
                curl_multi_perform(m->multi, &still);
        }
        while (n < max_done && (msg = curl_multi_info_read(m->multi, &msgs)))
                if (msg->msg == CURLMSG_DONE)
                        done[n++] =
                            multi_done(m, msg->easy_handle, msg->data.result);
        return n;
}

void relay_http_multi_abort(relay_http_multi_t *m, size_t slot)
{
        relay_http_response_t *resp = m->resp[slot];
        if (!resp)
                return;
        curl_multi_remove_handle(m->multi, m->slot[slot]->curl);
        m->resp[slot] = NULL;
        m->running--;
        resp->transport_error = CURLE_ABORTED_BY_CALLBACK;
        resp->aborted = 1;
        snprintf(resp->error, sizeof(resp->error), "aborted");
}

enum relay_result relay_http_classify(const relay_http_response_t *resp)
{
        long s = resp->status;

        /* No (complete) answer: the request may not have reached the
         * platform at all, so trying again is safe and usually succeeds. */
        if (resp->transport_error || resp->timed_out || s == 0)
                return RELAY_RETRY;
        if (s >= 200 && s < 300)
                return RELAY_OK;
        /* 408 Request Timeout, 425 Too Early, 429 Too Many Requests and
         * every 5xx are the server's trouble, not the record's; so is a
         * redirect (not followed: a POST's body does not go along), which
         * says the endpoint is misconfigured, and a status that is no
         * final answer. Retried, they open the circuit and pause the work
         * rather than dead-letter records that did nothing wrong. */
        if (s == 408 || s == 425 || s == 429 || s >= 500 || s < 200 ||
            (s >= 300 && s < 400))
                return RELAY_RETRY;
        return RELAY_FATAL;
}
