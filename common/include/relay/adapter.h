/*
 * Delivery adapters: one per destination platform, each a const vtable in
 * its own file under common/adapters/, gathered in one table and looked up
 * by name (like Redis's ConnectionType or librdkafka's SASL providers).
 *
 * The deliver worker owns batching, retries, offsets and the DLQ; an
 * adapter only knows its platform: its config keys, how one out.<platform>
 * record becomes one item of a request, how items become a request, and
 * what an answer means. Callers use the relay_adapter_*() wrappers, never
 * the vtable directly.
 */
#ifndef RELAY_ADAPTER_H
#define RELAY_ADAPTER_H

#include "relay/common.h"
#include "relay/conf.h"
#include "relay/http.h"
#include "relay/outbound.h"

#include <avro.h>

/* One item's outcome in a request the platform took in part. */
typedef struct relay_item_result {
        enum relay_result result;
        char why[240]; /* for the dead letter's header; "" when none */
} relay_item_result_t;

struct relay_adapter {
        const char *name; /* platform name; the topics are out.<name> */
        /* Config keys of this platform, NULL-name terminated. */
        const relay_conf_prop_t *props;
        /* Mapping-time vocabulary, each NULL-terminated or NULL for "any":
         * valid event categories and identity types for this platform. */
        const char *const *event_categories;
        const char *const *identity_types;
        /* The operations (relay.out.Operation's op: membership.add,
         * reward.issue ...) the adapter performs, NULL-terminated; NULL:
         * none, so a connection asking for one is refused at load;
         * relay_adapter_any_operation: whatever it is given (the generic
         * webhook passes them on). */
        const char *const *operations;

        /* Set up from the worker's conf. 0, or -1 with errstr. */
        int (*init)(void **state, const relay_conf_t *conf, char *errstr,
                    size_t errstr_size);
        /* Append one record (the relay.out.Outbound envelope, as slots;
         * relay/outbound.h finds its fields) as one item of a request.
         * RELAY_OK, or RELAY_FATAL with the reason when the record can
         * never be sent (it is dead-lettered). */
        enum relay_result (*encode)(void *state, const relay_slots_t *rec,
                                    relay_buf_t *item, char *errstr,
                                    size_t errstr_size);
        /* Most items and bytes (of items) one request may carry. */
        void (*limits)(void *state, size_t *max_items, size_t *max_bytes);
        /* Build the request for items[0..n); body goes into body, which
         * req->body then points at. */
        void (*request)(void *state, const relay_buf_t *items, size_t n,
                        relay_buf_t *body, relay_http_request_t *req);
        /* What an answer means; NULL = relay_http_classify(). A reason for
         * the DLQ header goes into errstr. Optional. */
        enum relay_result (*classify)(void *state,
                                      const relay_http_response_t *resp,
                                      char *errstr, size_t errstr_size);
        /* A 2xx answer that took a request in part (Braze's per-object
         * errors, "minor errors"): the outcome of each of its n items
         * (the same items, in the same order, that request() was given for
         * it: several requests may be under way at once), into out[0..n).
         * Returns
         * 0 when the answer speaks for the whole request (out is then not
         * read), 1 when out says it item by item. An item RELAY_OK is
         * delivered, RELAY_FATAL dead-lettered with its why, RELAY_RETRY
         * sent again (alone in its lane's order) like a failed request.
         * Called only when classify said RELAY_OK. Optional. */
        int (*partial)(void *state, const relay_http_response_t *resp,
                       const relay_buf_t *items, size_t n,
                       relay_item_result_t *out);
        /* Whether an answer the engine reads as the connection's (401,
         * 403, 404, 405, 407: credentials or endpoint refused, which
         * pause the work) speaks of the record instead, e.g. a 404 naming
         * a wallet that does not exist: 1, and the record is the one at
         * fault (split out and dead-lettered with classify's reason).
         * Optional: without it such answers always pause. */
        int (*record_refused)(void *state, const relay_http_response_t *resp);
        void (*term)(void *state); /* optional */
};

/* The adapter for a platform name, or NULL. */
const struct relay_adapter *relay_adapter_find(const char *name);
/* All adapters, NULL-terminated. */
extern const struct relay_adapter *const relay_adapters[];

static inline int relay_adapter_init(const struct relay_adapter *a,
                                     void **state, const relay_conf_t *conf,
                                     char *errstr, size_t errstr_size)
{
        *state = NULL;
        return a->init ? a->init(state, conf, errstr, errstr_size) : 0;
}

static inline enum relay_result
relay_adapter_encode(const struct relay_adapter *a, void *state,
                     const relay_slots_t *rec, relay_buf_t *item, char *errstr,
                     size_t errstr_size)
{
        return a->encode(state, rec, item, errstr, errstr_size);
}

static inline void relay_adapter_limits(const struct relay_adapter *a,
                                        void *state, size_t *max_items,
                                        size_t *max_bytes)
{
        a->limits(state, max_items, max_bytes);
}

static inline void relay_adapter_request(const struct relay_adapter *a,
                                         void *state, const relay_buf_t *items,
                                         size_t n, relay_buf_t *body,
                                         relay_http_request_t *req)
{
        a->request(state, items, n, body, req);
}

/* The usual reading of an answer, what an adapter without a classify of
 * its own gets and what most classify functions start from: 2xx
 * RELAY_OK; no answer (transport, timeout), 3xx (an endpoint that moved
 * must not dead-letter everything), 408, 425, 429 and 5xx RELAY_RETRY;
 * any other 4xx RELAY_FATAL (401/403/404/405/407 the engine reads as the
 * connection's). errstr gets the transport error or relay_adapter_reason. */
enum relay_result relay_adapter_answer(const relay_http_response_t *resp,
                                       char *errstr, size_t errstr_size);
/* "HTTP <status>: <text>" for a dead letter's reason: at most 200 bytes
 * of text on one line (control characters as spaces, trailing spaces
 * dropped), "(no body)" when there is none. _reason takes the body. */
void relay_adapter_reason_text(char *errstr, size_t errstr_size, long status,
                               const char *text, size_t n);
void relay_adapter_reason(char *errstr, size_t errstr_size,
                          const relay_http_response_t *resp);
/* A request body that is head, items[0..n) separated by commas, then
 * tail (a JSON array or an object around one), appended to body. */
void relay_adapter_join(relay_buf_t *body, const char *head,
                        const relay_buf_t *items, size_t n, const char *tail);
/* Whether resp's body holds the text s. */
int relay_http_body_has(const relay_http_response_t *resp, const char *s);

enum relay_result relay_adapter_classify(const struct relay_adapter *a,
                                         void *state,
                                         const relay_http_response_t *resp,
                                         char *errstr, size_t errstr_size);

/* 1 when resp's items each have their own outcome (filled into out), 0
 * when the answer is the whole request's (or the adapter cannot tell). */
static inline int relay_adapter_partial(const struct relay_adapter *a,
                                        void *state,
                                        const relay_http_response_t *resp,
                                        const relay_buf_t *items, size_t n,
                                        relay_item_result_t *out)
{
        return a->partial ? a->partial(state, resp, items, n, out) : 0;
}

/* 1 when resp, a refusal the engine would read as the connection's, is
 * about the record (see record_refused). */
static inline int relay_adapter_record_refused(const struct relay_adapter *a,
                                               void *state,
                                               const relay_http_response_t *resp)
{
        return a->record_refused ? a->record_refused(state, resp) : 0;
}

static inline void relay_adapter_term(const struct relay_adapter *a,
                                      void *state)
{
        if (a->term)
                a->term(state);
}

/* The operations vocabulary of an adapter that takes any operation. */
extern const char *const relay_adapter_any_operation[];
/* Whether adapter a performs operation op. */
int relay_adapter_has_operation(const struct relay_adapter *a, const char *op);

/* Whether word is in a NULL-terminated vocabulary (NULL vocab = any). */
int relay_adapter_vocab_has(const char *const *vocab, const char *word);
/* The same for a word of n bytes (not NUL-terminated). */
int relay_adapter_vocab_has_n(const char *const *vocab, const char *word,
                              size_t n);

#endif
