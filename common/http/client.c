/*
 * The HTTP client the delivery workers use to call platform APIs, on
 * libcurl's easy interface. A client owns one easy handle for its whole life:
 * libcurl keeps the connection (and the TLS session) in that handle, so
 * consecutive requests to the same platform reuse one keep-alive connection
 * instead of paying a handshake per batch. Each request starts from
 * curl_easy_reset(), which forgets every option of the previous request but
 * keeps the live connections, so nothing (a method, a body pointer, a
 * header list, credentials) can leak from one request into the next.
 *
 * A client is not thread-safe: use one per thread.
 */
#include "relay/http.h"
#include "relay/log.h"
#include "relay/retry.h"

#include <curl/curl.h>
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
        free(h);
}

void relay_http_response_init(relay_http_response_t *r)
{
        memset(r, 0, sizeof(*r));
        relay_buf_init(&r->body);
        r->retry_after_ms = -1;
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

int relay_http_perform(relay_http_t *h, const relay_http_request_t *req,
                       relay_http_response_t *resp)
{
        struct curl_slist *headers = NULL, *tmp;
        CURLcode rc;
        double seconds = 0;

        response_clear(resp);
        if (!req->url) {
                resp->transport_error = CURLE_URL_MALFORMAT;
                snprintf(resp->error, sizeof(resp->error), "no URL");
                return -1;
        }

        for (size_t i = 0; i < sizeof(req->headers) / sizeof(req->headers[0]) &&
                           req->headers[i];
             i++) {
                tmp = curl_slist_append(headers, req->headers[i]);
                if (!tmp)
                        goto oom;
                headers = tmp;
        }
        /* libcurl waits up to a second for "100 Continue" on larger bodies;
         * the platform APIs answer the whole request anyway. */
        tmp = curl_slist_append(headers, "Expect:");
        if (!tmp)
                goto oom;
        headers = tmp;

        curl_easy_reset(h->curl);
        h->errbuf[0] = '\0';
        rc = set_client_options(h, resp);
        if (rc == CURLE_OK)
                rc = set_request_options(h, req, headers);
        if (rc == CURLE_OK)
                rc = curl_easy_perform(h->curl);

        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &resp->status);
        if (curl_easy_getinfo(h->curl, CURLINFO_TOTAL_TIME, &seconds) ==
            CURLE_OK)
                resp->seconds = seconds;
        /* The handle still points at the list; it is only read during a
         * perform, and the next one starts with curl_easy_reset(). */
        curl_slist_free_all(headers);

        if (rc != CURLE_OK) {
                resp->transport_error = (int)rc;
                resp->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
                resp->aborted = rc == CURLE_ABORTED_BY_CALLBACK;
                snprintf(resp->error, sizeof(resp->error), "%s",
                         h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
                relay_log(LOG_DEBUG, "http", "%s %.*s failed after %.3fs: %s",
                          req->method ? req->method : "POST",
                          url_loggable_len(req->url), req->url, resp->seconds,
                          resp->error);
                return -1;
        }
        relay_log(LOG_DEBUG, "http", "%s %.*s -> %ld in %.3fs, %zu bytes",
                  req->method ? req->method : "POST",
                  url_loggable_len(req->url), req->url, resp->status,
                  resp->seconds, resp->body.len);
        return 0;

oom:
        curl_slist_free_all(headers);
        resp->transport_error = CURLE_OUT_OF_MEMORY;
        snprintf(resp->error, sizeof(resp->error), "%s",
                 curl_easy_strerror(CURLE_OUT_OF_MEMORY));
        return -1;
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
         * every 5xx are the server's trouble, not the record's. */
        if (s == 408 || s == 425 || s == 429 || (s >= 500 && s < 600))
                return RELAY_RETRY;
        return RELAY_FATAL;
}
