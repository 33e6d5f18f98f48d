/*
 * A small HTTP client on libcurl for delivery workers: one reusable easy
 * handle per client so that connections stay alive between requests, a
 * total timeout per request, and the response (status, body, Retry-After)
 * captured for the adapter to classify.
 */
#ifndef RELAY_HTTP_H
#define RELAY_HTTP_H

#include "relay/common.h"

#include <stddef.h>

typedef struct relay_http relay_http_t;

typedef struct relay_http_request {
        const char *method; /* "POST", "PUT", "GET", ...; NULL = POST */
        const char *url;
        const char *headers[16]; /* "Name: value" lines, NULL-terminated */
        const char *userpwd;     /* "user:password" for Basic auth, or NULL */
        const char *body;
        size_t body_len;
} relay_http_request_t;

typedef struct relay_http_response {
        long status;         /* HTTP status, 0 when no answer came */
        int transport_error; /* 0, or a CURLcode: timeout, refused ... */
        int timed_out;       /* the request hit its timeout */
        int aborted;         /* relay_http_set_abort's function stopped it */
        char error[256];     /* transport error text, "" when none */
        relay_buf_t body;    /* answer body (owned; freed by _reset) */
        long retry_after_ms; /* parsed Retry-After, -1 when absent/bad */
        char content_type[128];
        double seconds; /* total time of the request */
} relay_http_response_t;

/* Process-wide libcurl init; call once from main() before any thread. */
int relay_http_global_init(void);
void relay_http_global_cleanup(void);

/* A client with a total per-request timeout and a connect timeout (ms). */
relay_http_t *relay_http_new(long timeout_ms, long connect_timeout_ms);
void relay_http_destroy(relay_http_t *h);

/* fn (may be NULL) is asked at least once a second during a request;
 * non-zero aborts it (e.g. the shutdown grace ran out). */
void relay_http_set_abort(relay_http_t *h, int (*fn)(void *arg), void *arg);

void relay_http_response_init(relay_http_response_t *r);
void relay_http_response_reset(relay_http_response_t *r);

/* Perform one request. Returns 0 when an HTTP answer came (any status), -1
 * on a transport failure (resp->transport_error, resp->error say which).
 * Bodies larger than 1 MiB are truncated. */
int relay_http_perform(relay_http_t *h, const relay_http_request_t *req,
                       relay_http_response_t *resp);

/* The default classification of an answer: 2xx → OK; transport errors,
 * timeouts, 408, 425, 429 and 5xx → RETRY; any other status → FATAL. */
enum relay_result relay_http_classify(const relay_http_response_t *resp);

#endif
