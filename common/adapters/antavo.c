/*
 * Antavo Events API (apidocs.antavo.com/api/events.html), signed with
 * Escher (escherauth.io).
 *
 * One out.antavo record becomes one Antavo event:
 *   {"customer": identity_value, "action": event_name,
 *    "data": {...attributes, ...user_attributes}}
 * Every identity type and event category goes (Antavo's customer is its
 * own id or the external one; the action is any event name). An attribute
 * wins over a user attribute of the same name. A "checkout" without
 * attributes.transaction_id gets the record's event_id as its
 * transaction_id: Antavo has no idempotency key, but refuses a checkout
 * whose transaction_id it has taken (ERR_TX_ALREADY_EXISTS), so a retry
 * of a request that had in fact arrived is recognised. A record without
 * event_name or without a string identity_value is dead-lettered.
 *
 * Requests. antavo.max_events_per_request 1 (the default): POST
 * <antavo.url>/events with the event object, as documented. Above 1: POST
 * <antavo.url><antavo.bulk_path> (default /events/bulk) with a JSON array
 * of events; Antavo documents bulk submission of up to 50 events but not
 * its path, so this is unconfirmed and off by default. The API key
 * travels as the api_key query parameter.
 *
 * Signature, as implemented (the Escher reference libraries' algorithm,
 * with Antavo's settings; relay_sign_escher in common/core/sign.c):
 *   Host: the authority of antavo.url, sent explicitly so that what is
 *         signed is what is sent
 *   Date: the send time as an HTTP date, "Tue, 25 Nov 2025 10:01:00 GMT"
 *   canonical request =
 *     POST \n <path> \n api_key=<key, percent-encoded> \n
 *     date:<Date> \n host:<Host> \n \n date;host \n hex(SHA-256(body))
 *   string to sign =
 *     ANTAVO-HMAC-SHA256 \n <YYYYMMDDTHHMMSSZ> \n
 *     <YYYYMMDD>/<region>/api/antavo_request \n hex(SHA-256(canonical))
 *   signing key = HMAC-SHA256("ANTAVO" + api_secret, <YYYYMMDD>), then
 *     HMAC-SHA256(key, x) for x in <region>, "api", "antavo_request"
 *   Authorization: ANTAVO-HMAC-SHA256 Credential=<api_key>/<YYYYMMDD>/
 *     <region>/api/antavo_request, SignedHeaders=date;host,
 *     Signature=<hex(HMAC-SHA256(signing key, string to sign))>
 * The algorithm prefix (antavo.algo_prefix), the key prefix
 * (antavo.vendor_key), the region (antavo.region, "eu") and the rest of
 * the scope (antavo.scope, "api/antavo_request") are settings: Antavo's
 * documentation shows only the example header, so all but its shape is
 * unconfirmed. Antavo takes a signed request once within a time window,
 * and the engine calls request() for every send, so each retry goes with
 * a fresh Date and signature; a retry within the second of the send
 * before it (the Date has whole seconds) is dated a second later, within
 * Escher's clock skew, so that its signature is a new one too.
 *
 * Answers: 2xx delivered; 409, or any answer naming ERR_TX_ALREADY_EXISTS,
 * is a checkout Antavo already has: delivered, logged (in a bulk request
 * of several its events are re-sent one by one, so that only the one that
 * exists counts as delivered); 400 and 422 the record's fault, with the
 * error envelope's message ({"error":{"type","code","message"}}); 401, 403
 * and 404 the engine reads as refused credentials or a module not enabled
 * (it pauses and probes); 408, 429 and 5xx are retried.
 */
#include "relay/adapter.h"
#include "relay/avro.h"
#include "relay/log.h"
#include "relay/sign.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Signatures remembered against replays of our own (see struct antavo). */
#define RECENT 64

/* What the adapter runs on. The first block is written by
 * relay_conf_bind() from antavo_props (strings owned by the conf); the
 * rest is built from it by antavo_init() and is read-only afterwards. */
struct antavo {
        const char *base_url;
        const char *api_key, *api_secret;
        const char *region, *scope_tail, *algo_prefix, *vendor_key;
        const char *bulk_path;
        long long max_items, max_request;

        char *url;       /* <base><path>?api_key=<key>, owned */
        char *path;      /* the path of url, owned */
        char *query;     /* api_key=<key>, percent-encoded, owned */
        char *host;      /* the authority of url, owned */
        char *host_line; /* "Host: <host>", owned */
        char *scope;     /* <region>/<scope_tail>, owned */
        relay_sign_escher_t escher;
        relay_out_index_t out; /* the envelope's slots */
        /* The latest signatures sent (hex), so that a request identical
         * to one sent in the same second (a quick retry) is dated a second
         * later rather than sent as a replay Antavo refuses. Written by
         * request(), which the engine calls from its one thread. */
        char recent[RECENT][2 * RELAY_SIGN_SHA256_LEN];
        size_t recent_at;
};

static const relay_conf_prop_t antavo_props[] = {
    {"antavo.url", RELAY_CONF_STRING, "https://api.antavo.com", 0, -1,
     RELAY_CONF_BIND,
     "API base of the Antavo environment (https://api.<env>.antavo.com)",
     offsetof(struct antavo, base_url)},
    {"antavo.api_key", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET | RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "API key: the api_key query parameter and the signature's Credential",
     offsetof(struct antavo, api_key)},
    {"antavo.api_secret", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET | RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "API secret the requests are signed with (Escher)",
     offsetof(struct antavo, api_secret)},
    {"antavo.region", RELAY_CONF_STRING, "eu", 0, -1, RELAY_CONF_BIND,
     "first part of the Escher credential scope (unconfirmed)",
     offsetof(struct antavo, region)},
    {"antavo.scope", RELAY_CONF_STRING, "api/antavo_request", 0, -1,
     RELAY_CONF_BIND,
     "the credential scope after the region (unconfirmed)",
     offsetof(struct antavo, scope_tail)},
    {"antavo.algo_prefix", RELAY_CONF_STRING, "ANTAVO", 0, -1,
     RELAY_CONF_BIND,
     "Escher algorithm prefix: <prefix>-HMAC-SHA256 (unconfirmed)",
     offsetof(struct antavo, algo_prefix)},
    {"antavo.vendor_key", RELAY_CONF_STRING, "ANTAVO", 0, -1,
     RELAY_CONF_BIND,
     "prefix of the secret in the first key of the Escher key chain "
     "(Escher's libraries use the algo prefix; unconfirmed)",
     offsetof(struct antavo, vendor_key)},
    {"antavo.max_events_per_request", RELAY_CONF_INT, "1", 1, 50,
     RELAY_CONF_BIND,
     "events per request: 1 is POST /events (documented); more is a JSON "
     "array to antavo.bulk_path (unconfirmed)",
     offsetof(struct antavo, max_items)},
    {"antavo.bulk_path", RELAY_CONF_STRING, "/events/bulk", 0, -1,
     RELAY_CONF_BIND,
     "path of bulk submission, after antavo.url (unconfirmed: Antavo does "
     "not document it)",
     offsetof(struct antavo, bulk_path)},
    {"antavo.max_request_bytes", RELAY_CONF_INT, "1048576", 1024, 16777216,
     RELAY_CONF_BIND,
     "largest request body sent (unconfirmed); a larger event is "
     "dead-lettered",
     offsetof(struct antavo, max_request)},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

/* A literal of the request, appended. */
#define PUT(b, lit) relay_buf_append((b), (lit), sizeof(lit) - 1)

static void antavo_term(void *state)
{
        struct antavo *av = state;
        if (!av)
                return;
        free(av->url);
        free(av->path);
        free(av->query);
        free(av->host);
        free(av->host_line);
        free(av->scope);
        free(av);
}

static int antavo_init(void **state, const relay_conf_t *conf, char *errstr,
                       size_t errstr_size)
{
        if (relay_conf_require_table(conf, antavo_props, errstr, errstr_size))
                return -1;
        struct antavo *av = relay_calloc(1, sizeof(*av));
        relay_conf_bind(conf, antavo_props, av);

        const char *u = av->base_url, *auth;
        if (!strncmp(u, "http://", 7))
                auth = u + 7;
        else if (!strncmp(u, "https://", 8))
                auth = u + 8;
        else {
                relay_seterr(errstr, errstr_size,
                             "antavo.url '%.200s' is not an http:// or "
                             "https:// URL",
                             u);
                goto fail;
        }
        size_t hl = strcspn(auth, "/?#");
        if (!hl || memchr(auth, '@', hl) || strpbrk(auth + hl, "?#")) {
                relay_seterr(errstr, errstr_size,
                             "antavo.url '%.200s' must be scheme://host[:port]"
                             "[/path], without credentials, query or "
                             "fragment",
                             u);
                goto fail;
        }
        if (av->max_items > 1 && av->bulk_path[0] != '/') {
                relay_seterr(errstr, errstr_size,
                             "antavo.bulk_path '%.200s' does not start with /",
                             av->bulk_path);
                goto fail;
        }
        if (!av->region[0] || strchr(av->region, '/')) {
                relay_seterr(errstr, errstr_size,
                             "antavo.region '%.100s' must be one non-empty "
                             "part of the credential scope (no /)",
                             av->region);
                goto fail;
        }
        av->host = relay_strndup(auth, hl);
        relay_buf_t b;
        relay_buf_init(&b);
        relay_buf_printf(&b, "Host: %s", av->host);
        av->host_line = b.data;

        /* The path: the base's own (without a trailing slash), then the
         * endpoint's. */
        const char *bp = auth + hl;
        size_t bl = strlen(bp);
        while (bl && bp[bl - 1] == '/')
                bl--;
        relay_buf_init(&b);
        relay_buf_append(&b, bp, bl);
        relay_buf_puts(&b, av->max_items > 1 ? av->bulk_path : "/events");
        av->path = b.data;

        relay_buf_init(&b);
        PUT(&b, "api_key=");
        relay_buf_url_encode(&b, av->api_key, strlen(av->api_key));
        av->query = b.data;

        relay_buf_init(&b);
        relay_buf_append(&b, u, (size_t)(auth - u) + hl);
        relay_buf_puts(&b, av->path);
        PUT(&b, "?");
        relay_buf_puts(&b, av->query);
        av->url = b.data;

        relay_buf_init(&b);
        relay_buf_printf(&b, "%s/%s", av->region, av->scope_tail);
        av->scope = b.data;

        av->escher.algo_prefix = av->algo_prefix;
        av->escher.key_prefix = av->vendor_key;
        av->escher.scope = av->scope;
        av->escher.access_key = av->api_key;
        av->escher.secret = av->api_secret;
        relay_log(LOG_INFO, "antavo",
                  "events to %s%s (%lld per request), signed %s-HMAC-SHA256 "
                  "with scope %s",
                  av->host, av->path, av->max_items, av->algo_prefix,
                  av->scope);
        *state = av;
        return 0;
fail:
        antavo_term(av);
        return -1;
}

static int key_is(const relay_slot_t *k, const char *name, size_t n)
{
        return k->n == n && !memcmp(k->v.p, name, n);
}

/* Whether map (of rec) has a key equal to k's. */
static int map_has(const relay_slots_t *rec, const relay_slot_t *map,
                   const relay_slot_t *k)
{
        size_t n = map->type == AVRO_MAP ? map->n : 0;
        for (size_t i = 0; i < n; i++)
                if (key_is(&rec->s[map->v.first + 2 * i], k->v.p, k->n))
                        return 1;
        return 0;
}

/* Append map's members (no braces), each after a comma when *comma; skip
 * the keys other has. */
static void put_members(relay_buf_t *b, const relay_slots_t *rec,
                        const relay_slot_t *map, const relay_slot_t *other,
                        int *comma)
{
        size_t n = map->type == AVRO_MAP ? map->n : 0;
        for (size_t i = 0; i < n; i++) {
                const relay_slot_t *k = &rec->s[map->v.first + 2 * i];
                if (other && map_has(rec, other, k))
                        continue;
                if (*comma)
                        PUT(b, ",");
                *comma = 1;
                relay_buf_json_str(b, k->v.p, k->n);
                PUT(b, ":");
                relay_slot_json(k + 1, b);
        }
}

#define TX_KEY "transaction_id"

static enum relay_result antavo_encode(void *state, const relay_slots_t *rec,
                                       relay_buf_t *b, char *errstr,
                                       size_t errstr_size)
{
        struct antavo *av = state;
        const relay_out_index_t *ix = relay_out_index(&av->out, rec->shape);
        const relay_slot_t *idv =
            relay_out_get(ix, rec, RELAY_OUT_IDENTITY_VALUE);
        const relay_slot_t *name = relay_out_get(ix, rec, RELAY_OUT_EVENT_NAME);
        const relay_slot_t *attrs =
            relay_out_get(ix, rec, RELAY_OUT_ATTRIBUTES);
        const relay_slot_t *uattrs =
            relay_out_get(ix, rec, RELAY_OUT_USER_ATTRIBUTES);
        const relay_slot_t *eid = relay_out_get(ix, rec, RELAY_OUT_EVENT_ID);
        size_t start = b->len;

        if (name->type != AVRO_STRING || !name->n) {
                relay_seterr(errstr, errstr_size,
                             "no event_name: an Antavo event needs an action "
                             "(profile-only updates have no Antavo event)");
                return RELAY_FATAL;
        }
        if (idv->type != AVRO_STRING || !idv->n) {
                relay_seterr(errstr, errstr_size,
                             "no identity_value: an Antavo event needs a "
                             "customer");
                return RELAY_FATAL;
        }
        PUT(b, "{\"customer\":");
        relay_buf_json_str(b, idv->v.p, idv->n);
        PUT(b, ",\"action\":");
        relay_buf_json_str(b, name->v.p, name->n);
        PUT(b, ",\"data\":{");
        int comma = 0;
        put_members(b, rec, attrs, NULL, &comma);
        /* A checkout's transaction_id is what Antavo de-duplicates on; the
         * record's event_id is the same for every retry of it. */
        int tx = 0;
        if (key_is(name, "checkout", 8) && eid->type == AVRO_STRING) {
                relay_slot_t k = {0};
                k.v.p = TX_KEY;
                k.n = sizeof(TX_KEY) - 1;
                if (!map_has(rec, attrs, &k)) {
                        if (comma)
                                PUT(b, ",");
                        PUT(b, "\"" TX_KEY "\":");
                        relay_buf_json_str(b, eid->v.p, eid->n);
                        comma = tx = 1;
                }
        }
        size_t n = uattrs->type == AVRO_MAP ? uattrs->n : 0;
        for (size_t i = 0; i < n; i++) {
                const relay_slot_t *k = &rec->s[uattrs->v.first + 2 * i];
                if (map_has(rec, attrs, k) ||
                    (tx && key_is(k, TX_KEY, sizeof(TX_KEY) - 1)))
                        continue;
                if (comma)
                        PUT(b, ",");
                comma = 1;
                relay_buf_json_str(b, k->v.p, k->n);
                PUT(b, ":");
                relay_slot_json(k + 1, b);
        }
        PUT(b, "}}");
        if (b->len - start > (size_t)av->max_request - 2) {
                relay_seterr(errstr, errstr_size,
                             "event of %zu bytes does not fit in a request "
                             "of antavo.max_request_bytes %lld",
                             b->len - start, av->max_request);
                b->len = start;
                return RELAY_FATAL;
        }
        return RELAY_OK;
}

static void antavo_limits(void *state, size_t *max_items, size_t *max_bytes)
{
        struct antavo *av = state;
        *max_items = (size_t)av->max_items;
        /* A bulk body adds its two brackets; the engine counts a separator
         * per item, which is the comma. */
        *max_bytes = (size_t)av->max_request - 2;
}

/* Room for the header lines after the body: the Authorization line's
 * fixed words, the date and the hex signature, and the settings'. */
static size_t header_room(const struct antavo *av)
{
        return 256 + strlen(av->algo_prefix) + strlen(av->api_key) +
               strlen(av->scope) + RELAY_SIGN_HTTP_DATE_SIZE;
}

/* Whether the signature that ends auth's text was sent lately; if not,
 * it is remembered. A signature covers the Date to the second, so the
 * same request twice in one second would be one Antavo takes only once. */
static int seen_recently(struct antavo *av, const relay_buf_t *auth)
{
        const char *sig = auth->data + auth->len - 2 * RELAY_SIGN_SHA256_LEN;
        for (size_t i = 0; i < RECENT; i++)
                if (!memcmp(av->recent[i], sig, 2 * RELAY_SIGN_SHA256_LEN))
                        return 1;
        memcpy(av->recent[av->recent_at], sig, 2 * RELAY_SIGN_SHA256_LEN);
        av->recent_at = (av->recent_at + 1) % RECENT;
        return 0;
}

/* The header lines live in body's buffer, after the body's bytes (past
 * req->body_len): they must stay valid until the request is answered,
 * as the body must, and several requests may be under way at once, each
 * with a body buffer of its own (as in webhook.c). */
static void antavo_request(void *state, const relay_buf_t *items, size_t n,
                           relay_buf_t *body, relay_http_request_t *req)
{
        struct antavo *av = state;
        size_t total = header_room(av) + 2;
        for (size_t i = 0; i < n; i++)
                total += items[i].len + 1;
        relay_buf_reset(body);
        /* Reserved at once, so that no append below moves the body while
         * the signature reads it. */
        relay_buf_reserve(body, total);
        int bulk = av->max_items > 1;
        relay_adapter_join(body, bulk ? "[" : "", items, n, bulk ? "]" : "");
        size_t body_len = body->len;
        relay_buf_append(body, "", 1);

        char date[RELAY_SIGN_HTTP_DATE_SIZE] = "";
        size_t auth_line = body->len;
        PUT(body, "Authorization: ");
        size_t auth_at = body->len;
        int64_t t = relay_now_ms() / 1000;
        int signed_ok = 0;
        for (int tries = 0; tries <= RECENT; tries++, t++) {
                body->len = auth_at;
                signed_ok = relay_sign_escher(&av->escher, "POST", av->path,
                                              av->query, av->host, t,
                                              body->data, body_len, date,
                                              body) == 0;
                if (!signed_ok || !seen_recently(av, body))
                        break;
        }
        relay_buf_append(body, "", 1);
        size_t date_line = body->len;
        relay_buf_printf(body, "Date: %s", date);
        if (!signed_ok)
                /* Sent unsigned, Antavo refuses it (401) and the engine
                 * pauses the platform, saying so. */
                relay_log(LOG_ERR, "antavo",
                          "libcrypto could not sign a request; sending it "
                          "without Authorization");

        memset(req, 0, sizeof(*req));
        req->method = "POST";
        req->url = av->url;
        req->headers[0] = "Content-Type: application/json";
        req->headers[1] = av->host_line;
        int h = 2;
        if (date[0])
                req->headers[h++] = body->data + date_line;
        if (signed_ok)
                req->headers[h++] = body->data + auth_line;
        req->body = body->data;
        req->body_len = body_len;
}

#define TX_EXISTS "ERR_TX_ALREADY_EXISTS"

/* The usual reading (relay_adapter_answer), but for a checkout Antavo
 * already has (409 or ERR_TX_ALREADY_EXISTS: a retried request that had
 * arrived), which is delivered; the reason is the error envelope's
 * message, {"error":{"type":...,"code":...,"message":"..."}}, when there
 * is one. 401, 403 and 404 the engine reads as the connection's. */
static enum relay_result antavo_classify(void *state,
                                         const relay_http_response_t *resp,
                                         char *errstr, size_t errstr_size)
{
        (void)state;
        long s = resp->status;
        if (!resp->transport_error && (s < 200 || s >= 300) &&
            (s == 409 || relay_http_body_has(resp, TX_EXISTS))) {
                relay_log(LOG_NOTICE, "antavo",
                          "HTTP %ld, " TX_EXISTS ": Antavo has this "
                          "checkout's transaction_id already (a retried "
                          "request that had arrived); counted as delivered",
                          s);
                return RELAY_OK;
        }
        enum relay_result r = relay_adapter_answer(resp, errstr, errstr_size);
        if (r == RELAY_OK || resp->transport_error || !resp->body.len)
                return r;
        json_t *j = json_loadb(resp->body.data, resp->body.len, 0, NULL);
        const char *msg = json_string_value(
            json_object_get(json_object_get(j, "error"), "message"));
        if (msg)
                relay_adapter_reason_text(errstr, errstr_size, s, msg,
                                          strlen(msg));
        json_decref(j);
        return r;
}

/* A bulk request answered "already exists" names no event: each is sent
 * again alone, where the answer speaks for that one event only. */
static int antavo_partial(void *state, const relay_http_response_t *resp,
                          const relay_buf_t *items, size_t n,
                          relay_item_result_t *out)
{
        (void)state;
        (void)items;
        if (n < 2 || (resp->status >= 200 && resp->status < 300))
                return 0;
        for (size_t i = 0; i < n; i++) {
                out[i].result = RELAY_RETRY;
                snprintf(out[i].why, sizeof(out[i].why),
                         "HTTP %ld: " TX_EXISTS " in a bulk request of %zu; "
                         "re-sent alone",
                         resp->status, n);
        }
        return 1;
}

const struct relay_adapter relay_adapter_antavo = {
    .name = "antavo",
    .props = antavo_props,
    .event_categories = NULL, /* any */
    .identity_types = NULL,   /* any */
    .init = antavo_init,
    .encode = antavo_encode,
    .limits = antavo_limits,
    .request = antavo_request,
    .classify = antavo_classify,
    .partial = antavo_partial,
    .term = antavo_term,
};
