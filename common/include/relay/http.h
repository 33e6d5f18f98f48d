/*
 * A small HTTP client on libcurl for delivery workers: one reusable easy
 * handle per client so that connections stay alive between requests, a
 * total timeout per request, and the response (status, body, Retry-After)
 * captured for the adapter to classify; and a set of such clients that
 * run requests concurrently on libcurl's multi interface.
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
        /* The platform's rate-limit headers (X-RateLimit-Remaining and
         * -Reset, or the IETF RateLimit-Remaining and -Reset): requests
         * left in the window, -1 when absent; milliseconds until the
         * window resets (an epoch-seconds Reset, as Braze sends, is
         * turned into a delay), -1 when absent. */
        long ratelimit_remaining;
        long ratelimit_reset_ms;
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

/* ---- several requests at once (libcurl multi) ---------------------------
 *
 * A fixed number of slots, each running at most one request; their
 * connections are kept alive in one shared pool. */
typedef struct relay_http_multi relay_http_multi_t;

/* slots requests at once, each with the timeouts of relay_http_new. NULL
 * when libcurl cannot be set up. */
relay_http_multi_t *relay_http_multi_new(size_t slots, long timeout_ms,
                                         long connect_timeout_ms);
/* Abandons what is still running. Accepts NULL. */
void relay_http_multi_destroy(relay_http_multi_t *m);
/* As relay_http_set_abort, for every slot. */
void relay_http_multi_set_abort(relay_http_multi_t *m, int (*fn)(void *arg),
                                void *arg);
size_t relay_http_multi_slots(const relay_http_multi_t *m);
/* Requests under way. */
size_t relay_http_multi_running(const relay_http_multi_t *m);
/* 1 while slot runs a request. */
int relay_http_multi_busy(const relay_http_multi_t *m, size_t slot);
/* Start req on a free slot; its answer goes into resp once
 * relay_http_multi_run reports the slot done. req's strings and body, and
 * resp, are borrowed until then (the request struct itself is not). 0, or
 * -1 when it could not start (resp says why; the slot stays free). */
int relay_http_multi_start(relay_http_multi_t *m, size_t slot,
                           const relay_http_request_t *req,
                           relay_http_response_t *resp);
/* Move the requests on, waiting at most wait_ms for one to end when none
 * has; the slots whose requests ended (their responses filled as
 * relay_http_perform fills one, the slot free again) go into done[], at
 * most max_done; returns how many. */
size_t relay_http_multi_run(relay_http_multi_t *m, long wait_ms, size_t *done,
                            size_t max_done);
/* Abandon slot's request: its response says aborted, the slot is free. */
void relay_http_multi_abort(relay_http_multi_t *m, size_t slot);

/* The default classification of an answer: 2xx → OK; transport errors,
 * timeouts, 3xx, 408, 425, 429, 5xx and anything not a final status →
 * RETRY; any other status (4xx) → FATAL. */
enum relay_result relay_http_classify(const relay_http_response_t *resp);

#endif
