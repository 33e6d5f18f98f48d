/*
 * The generic signed webhook: "any other platform", an HTTPS endpoint of
 * the customer's that takes relay's events as they are, signed by the
 * Standard Webhooks convention (standardwebhooks.com).
 *
 * A request is POST webhook.url with
 *   {"type":"relay.events","data":[<one object per record>]}
 * each object the relay.out.Outbound envelope as JSON (occurred_at as
 * ISO-8601 UTC with milliseconds, the identity as {type, value}), and the
 * headers webhook-id, webhook-timestamp (Unix seconds at send time) and
 * webhook-signature: "v1," + base64(HMAC-SHA256(key, "<id>.<ts>.<body>")).
 * The key is webhook.secret: "whsec_<base64>" is decoded after the
 * prefix; a secret without the prefix is used as raw bytes.
 *
 * webhook-id is what receivers de-duplicate on, so a retried request must
 * carry the same one: a request of one record uses the record's event_id,
 * a request of several "msg_" and 32 hex digits of the SHA-256 of their
 * event ids, the same for the same records in the same order. The engine
 * calls request() for every send, so each retry is signed afresh with the
 * time it leaves (receivers refuse timestamps minutes old).
 *
 * There is no vocabulary: any event category and identity type goes.
 */
#include "relay/adapter.h"
#include "relay/avro.h"
#include "relay/log.h"
#include "relay/sign.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the adapter runs on. The first block is written by
 * relay_conf_bind() from webhook_props (strings owned by the conf); the
 * rest is built from it by webhook_init(). */
struct webhook {
        const char *url;    /* webhook.url */
        const char *secret; /* webhook.secret */
        long long max_items, max_request;

        unsigned char *key; /* the HMAC key, owned */
        size_t key_len;
        relay_buf_t ids;       /* scratch of request(): event ids hashed */
        relay_out_index_t out; /* the envelope's slots */
};

static const relay_conf_prop_t webhook_props[] = {
    {"webhook.url", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "endpoint the events are POSTed to (http:// or https://)",
     offsetof(struct webhook, url)},
    {"webhook.secret", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET | RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "signing secret: whsec_<base64 key> (Standard Webhooks), or any "
     "other text, used as the key's raw bytes",
     offsetof(struct webhook, secret)},
    {"webhook.max_events_per_request", RELAY_CONF_INT, "100", 1, 10000,
     RELAY_CONF_BIND, "events (records) per request",
     offsetof(struct webhook, max_items)},
    {"webhook.max_request_bytes", RELAY_CONF_INT, "1048576", 1024, 16777216,
     RELAY_CONF_BIND,
     "largest request body sent; a larger single event is dead-lettered",
     offsetof(struct webhook, max_request)},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

/* A literal of the request, appended. */
#define PUT(b, lit) relay_buf_append((b), (lit), sizeof(lit) - 1)

#define BODY_HEAD "{\"type\":\"relay.events\",\"data\":["
#define BODY_TAIL "]}"
/* Every item starts so (encode writes it first); the event id's JSON
 * string follows. */
#define ITEM_HEAD "{\"event_id\":"
/* An event id longer than this, or with bytes a header cannot carry, is
 * not used as webhook-id; the hashed form is. */
#define MAX_ID_CHARS 200

static int webhook_init(void **state, const relay_conf_t *conf, char *errstr,
                        size_t errstr_size)
{
        if (relay_conf_require_table(conf, webhook_props, errstr,
                                     errstr_size))
                return -1;
        struct webhook *wh = relay_calloc(1, sizeof(*wh));
        relay_conf_bind(conf, webhook_props, wh);
        relay_buf_init(&wh->ids);
        if (strncmp(wh->url, "http://", 7) && strncmp(wh->url, "https://", 8)) {
                relay_seterr(errstr, errstr_size,
                             "webhook.url '%.200s' is not an http:// or "
                             "https:// URL",
                             wh->url);
                goto fail;
        }
        char why[256];
        if (relay_sign_webhook_key(wh->secret, &wh->key, &wh->key_len, why,
                                   sizeof(why))) {
                relay_seterr(errstr, errstr_size, "webhook.secret: %s", why);
                goto fail;
        }
        if (strncmp(wh->secret, "whsec_", 6))
                relay_log(LOG_INFO, "webhook",
                          "webhook.secret has no whsec_ prefix: its %zu "
                          "bytes are the signing key as they are",
                          wh->key_len);
        *state = wh;
        return 0;
fail:
        relay_buf_free(&wh->ids);
        free(wh);
        return -1;
}

static void webhook_term(void *state)
{
        struct webhook *wh = state;
        if (!wh)
                return;
        if (wh->key)
                memset(wh->key, 0, wh->key_len);
        free(wh->key);
        relay_buf_free(&wh->ids);
        free(wh);
}

/* Append a map field of the record as a JSON object. */
static void put_map(relay_buf_t *b, const relay_slots_t *rec,
                    const relay_slot_t *map)
{
        size_t n = map->type == AVRO_MAP ? map->n : 0;
        PUT(b, "{");
        for (size_t i = 0; i < n; i++) {
                const relay_slot_t *k = relay_out_map_key(rec, map, i);
                if (i)
                        PUT(b, ",");
                relay_buf_json_str(b, k->v.p, k->n);
                PUT(b, ":");
                relay_slot_json(relay_out_map_value(rec, map, i), b);
        }
        PUT(b, "}");
}

/* Version 2 of the envelope: the person's identities and the
 * operations, each only when the record has some. */
static void put_v2(relay_buf_t *b, const relay_out_index_t *ix,
                   const relay_slots_t *rec)
{
        const relay_slot_t *ids;
        if (relay_out_identities(ix, rec, &ids)) {
                PUT(b, ",\"identities\":");
                put_map(b, rec, ids);
        }
        size_t n = relay_out_ops(ix, rec);
        if (!n)
                return;
        PUT(b, ",\"operations\":[");
        for (size_t k = 0; k < n; k++) {
                const relay_slot_t *op = relay_out_op_get(ix, rec, k, RELAY_OUT_OP),
                                   *t = relay_out_op_get(ix, rec, k,
                                                         RELAY_OUT_OP_TARGET);
                if (k)
                        PUT(b, ",");
                PUT(b, "{\"op\":");
                relay_buf_json_str(b, op->v.p, op->n);
                PUT(b, ",\"target\":");
                relay_slot_json(t, b);
                PUT(b, ",\"attributes\":");
                put_map(b, rec,
                        relay_out_op_get(ix, rec, k, RELAY_OUT_OP_ATTRIBUTES));
                PUT(b, "}");
        }
        PUT(b, "]");
}

/* Append a string field as JSON, null when it is null. */
static void put_str(relay_buf_t *b, const relay_out_index_t *ix,
                    const relay_slots_t *rec, enum relay_out_field f)
{
        const relay_slot_t *v = relay_out_get(ix, rec, f);
        if (v->type == AVRO_STRING)
                relay_buf_json_str(b, v->v.p, v->n);
        else
                PUT(b, "null");
}

static enum relay_result webhook_encode(void *state, const relay_slots_t *rec,
                                        relay_buf_t *b, char *errstr,
                                        size_t errstr_size)
{
        struct webhook *wh = state;
        const relay_out_index_t *ix = relay_out_index(&wh->out, rec->shape);
        size_t start = b->len;

        PUT(b, ITEM_HEAD);
        put_str(b, ix, rec, RELAY_OUT_EVENT_ID);
        PUT(b, ",\"occurred_at\":");
        int64_t at = relay_out_get(ix, rec, RELAY_OUT_OCCURRED_AT)->v.l;
        if (relay_buf_iso_ms(b, at)) {
                relay_seterr(errstr, errstr_size,
                             "occurred_at %lld ms is outside the years 0000 "
                             "to 9999",
                             (long long)at);
                return RELAY_FATAL;
        }
        PUT(b, ",\"tenant\":");
        put_str(b, ix, rec, RELAY_OUT_TENANT);
        PUT(b, ",\"source\":");
        put_str(b, ix, rec, RELAY_OUT_SOURCE);
        PUT(b, ",\"connection\":");
        put_str(b, ix, rec, RELAY_OUT_CONNECTION);
        if (relay_out_get(ix, rec, RELAY_OUT_ENVIRONMENT)->v.l == 1)
                PUT(b, ",\"environment\":\"development\"");
        else
                PUT(b, ",\"environment\":\"production\"");
        PUT(b, ",\"identity\":{\"type\":");
        put_str(b, ix, rec, RELAY_OUT_IDENTITY_TYPE);
        PUT(b, ",\"value\":");
        put_str(b, ix, rec, RELAY_OUT_IDENTITY_VALUE);
        PUT(b, "},\"event_name\":");
        put_str(b, ix, rec, RELAY_OUT_EVENT_NAME);
        PUT(b, ",\"event_category\":");
        put_str(b, ix, rec, RELAY_OUT_EVENT_CATEGORY);
        PUT(b, ",\"attributes\":");
        put_map(b, rec, relay_out_get(ix, rec, RELAY_OUT_ATTRIBUTES));
        PUT(b, ",\"user_attributes\":");
        put_map(b, rec, relay_out_get(ix, rec, RELAY_OUT_USER_ATTRIBUTES));
        put_v2(b, ix, rec);
        PUT(b, "}");

        size_t most = (size_t)wh->max_request - (sizeof(BODY_HEAD) - 1) -
                      (sizeof(BODY_TAIL) - 1);
        if (b->len - start > most) {
                relay_seterr(errstr, errstr_size,
                             "event of %zu bytes does not fit in a request "
                             "of webhook.max_request_bytes %lld",
                             b->len - start, wh->max_request);
                return RELAY_FATAL;
        }
        return RELAY_OK;
}

static void webhook_limits(void *state, size_t *max_items, size_t *max_bytes)
{
        struct webhook *wh = state;
        *max_items = (size_t)wh->max_items;
        /* The engine counts each item's bytes and one separator; the body
         * adds its head and tail around them. */
        *max_bytes = (size_t)wh->max_request - (sizeof(BODY_HEAD) - 1) -
                     (sizeof(BODY_TAIL) - 1);
}

/* The length of the JSON string that follows ITEM_HEAD in an item, quotes
 * included; *plain says whether it can stand in a header as it is (no
 * escapes, printable ASCII, not too long). */
static size_t id_literal(const relay_buf_t *item, int *plain)
{
        const unsigned char *p =
            (const unsigned char *)item->data + sizeof(ITEM_HEAD) - 1;
        size_t n = item->len - (sizeof(ITEM_HEAD) - 1), i = 1;
        *plain = 1;
        for (; i < n && p[i] != '"'; i++) {
                if (p[i] == '\\') {
                        i++;
                        *plain = 0;
                } else if (p[i] < 0x21 || p[i] > 0x7e) {
                        *plain = 0;
                }
        }
        if (i - 1 > MAX_ID_CHARS || i - 1 == 0)
                *plain = 0;
        return i + 1 < n ? i + 1 : n;
}

/* Append the webhook-id of items[0..n) to b: the one event id, or "msg_"
 * and the first 16 bytes of the SHA-256 of the ids' JSON strings, in
 * hex. */
static void put_id(struct webhook *wh, const relay_buf_t *items, size_t n,
                   relay_buf_t *b)
{
        int plain;
        if (n == 1) {
                size_t len = id_literal(&items[0], &plain);
                if (plain) {
                        relay_buf_append(
                            b, items[0].data + sizeof(ITEM_HEAD), len - 2);
                        return;
                }
        }
        relay_buf_reset(&wh->ids);
        for (size_t i = 0; i < n; i++)
                relay_buf_append(&wh->ids,
                                 items[i].data + sizeof(ITEM_HEAD) - 1,
                                 id_literal(&items[i], &plain));
        unsigned char h[RELAY_SIGN_SHA256_LEN];
        relay_sign_part_t part = {wh->ids.data, wh->ids.len};
        relay_sign_sha256(&part, 1, h);
        static const char hex[] = "0123456789abcdef";
        char t[4 + 32];
        memcpy(t, "msg_", 4);
        for (size_t i = 0; i < 16; i++) {
                t[4 + 2 * i] = hex[h[i] >> 4];
                t[5 + 2 * i] = hex[h[i] & 15];
        }
        relay_buf_append(b, t, sizeof(t));
}

/* The header lines live in body's buffer, after the body's bytes (past
 * req->body_len): they must stay valid until the request is answered, as
 * the body must, and several requests may be under way at once, each with
 * a body buffer of its own, so the adapter's state could not hold them. */
static void webhook_request(void *state, const relay_buf_t *items, size_t n,
                            relay_buf_t *body, relay_http_request_t *req)
{
        struct webhook *wh = state;
        relay_buf_reset(body);
        relay_adapter_join(body, BODY_HEAD, items, n, BODY_TAIL);
        size_t body_len = body->len;
        relay_buf_append(body, "", 1);

        size_t id_line = body->len;
        PUT(body, "webhook-id: ");
        size_t id_at = body->len;
        put_id(wh, items, n, body);
        size_t id_len = body->len - id_at;
        relay_buf_append(body, "", 1);

        int64_t ts = relay_now_ms() / 1000;
        size_t ts_line = body->len;
        relay_buf_printf(body, "webhook-timestamp: %lld", (long long)ts);
        relay_buf_append(body, "", 1);

        char sig[RELAY_SIGN_WEBHOOK_SIG_SIZE];
        if (relay_sign_webhook(wh->key, wh->key_len, body->data + id_at,
                               id_len, ts, body->data, body_len, sig)) {
                /* Sent unsigned, the receiver refuses it (401) and the
                 * engine pauses the platform, saying so. */
                relay_log(LOG_ERR, "webhook",
                          "libcrypto could not sign a request; sending it "
                          "without webhook-signature");
                sig[0] = '\0';
        }
        size_t sig_line = body->len;
        relay_buf_printf(body, "webhook-signature: %s", sig);

        memset(req, 0, sizeof(*req));
        req->method = "POST";
        req->url = wh->url;
        req->headers[0] = "Content-Type: application/json";
        req->headers[1] = body->data + id_line;
        req->headers[2] = body->data + ts_line;
        req->headers[3] = sig[0] ? body->data + sig_line : NULL;
        req->body = body->data;
        req->body_len = body_len;
}

/* Answers: the usual reading (no classify of its own, so
 * relay_adapter_answer): 2xx delivered; 408, 425, 429, 5xx and transport
 * failures retried (the engine honours Retry-After); 401, 403, 404, 405 and 407 are the
 * engine's to read as a refused secret or endpoint (it pauses); other
 * 4xx (400, 413, 422 ...) are the records' fault: the engine splits the
 * request down to the refused one and dead-letters it with the answer's
 * text. A 3xx is retried, not blamed on the records: an endpoint that
 * moved would otherwise dead-letter everything; retried, it opens the
 * circuit and the worker says why while it waits for a corrected URL. */
const struct relay_adapter relay_adapter_webhook = {
    .name = "webhook",
    .props = webhook_props,
    .event_categories = NULL, /* any */
    .identity_types = NULL,   /* any */
    .operations = relay_adapter_any_operation,
    .init = webhook_init,
    .encode = webhook_encode,
    .limits = webhook_limits,
    .request = webhook_request,
    .classify = NULL, /* relay_adapter_answer, as said above */
    .term = webhook_term,
};
