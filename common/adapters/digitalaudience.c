/*
 * digitalAudience: matched cookie-sync pairs and hashed CRM records
 * uploaded to a client's match table (platform "digitalaudience",
 * out.digitalaudience, dlq.digitalaudience).
 *
 * digitalAudience documents no public upload API that we could find
 * (PLATFORMS.md section 7), so everything below about the wire is OUR
 * ASSUMPTION, and every part of it that is not plain HTTP is a setting:
 * the base URL, the path (digitalaudience.upload_path), the client id in
 * it, the identity kinds read, the limits. What we assume:
 *
 *   POST <digitalaudience.url><digitalaudience.upload_path>
 *        (default "/v1/clients/{client}/uploads", {client} the
 *        digitalaudience.client_id)
 *   Authorization: Bearer <digitalaudience.api_token>
 *   Content-Type: application/json
 *   {"uploads":[<upload>, ...]}
 *
 * where each record (one operation, relay.out.Operation) is one upload:
 *
 *   op "match.upload": a matched pair, the DMP's cookie id and the
 *   partner's id of the same browser, for the partner DMP named by the
 *   operation's target (tealium, relay42, squeezely, weborama ...):
 *     {"type":"match","partner":<target>,
 *      "dmp_id":<identities[digitalaudience.dmp_id_kind]>,
 *      "partner_id":<identities[digitalaudience.partner_id_kind]>,
 *      "seen_at":<occurred_at, "YYYY-MM-DDTHH:MM:SS.mmmZ">,
 *      "upload_id":<event_id>}
 *
 *   op "crm.upload": a CRM record onboarded with its identifiers hashed
 *   (schemas/crm.records.avsc fixes the normalisation before hashing):
 *     {"type":"crm","record_id":<target>,
 *      "hashes":{<kind>:<value>, ...},  every identity whose kind ends in
 *                                       "_sha256", in the record's order
 *      "upload_id":<event_id>}
 *   Nothing else of the person goes: other identities are left out. A
 *   hashed kind whose value is not 64 lowercase hex digits (a clear
 *   e-mail by mistake, a SHA-1) is refused before it is written anywhere
 *   (RELAY_FATAL, the value itself not quoted in the reason), so an
 *   unhashed value never leaves the client.
 *
 * Every upload says what it is, so one request carries pairs of several
 * partners and CRM records together, however the engine batched them;
 * upload_id (the envelope's event_id) lets the platform recognise a
 * retried upload. A 2xx is the whole request taken, unless its body lists
 * {"rejected":[{"index":i,"reason":"..."}]}: uploads[i] is then
 * dead-lettered with the reason and the others are delivered
 * (da_partial). 400/413/422 (and other 4xx) are the records' fault, which
 * the engine narrows down by splitting; 401/403/404 the engine reads as a
 * refused token or a wrong URL (pause, probe, re-read the token file);
 * 408, 429, 5xx and 3xx are retried. Request limits
 * (digitalaudience.max_items_per_request, .max_request_bytes) are guesses.
 */
#include "relay/adapter.h"
#include "relay/avro.h"
#include "relay/log.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the adapter runs on. The first block is written by
 * relay_conf_bind() from da_props (strings owned by the conf); the rest
 * is built from it by da_init(). */
struct da {
        const char *base_url;  /* digitalaudience.url */
        const char *api_token; /* digitalaudience.api_token */
        const char *client_id;
        const char *upload_path; /* with {client} */
        const char *dmp_kind, *partner_kind;
        long long max_items, max_request;

        char *url;             /* the upload URL, owned */
        char *auth;            /* "Authorization: Bearer <token>", owned */
        relay_out_index_t out; /* the envelope's slots */
};

/* The keys are REQUIRED_IF_USED, not REQUIRED: every adapter's table is
 * declared in each deliver worker, but only this platform's count. */
static const relay_conf_prop_t da_props[] = {
    {"digitalaudience.url", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "base URL of digitalAudience's upload API, http:// or https:// "
     "(unconfirmed: no public API documentation was found)",
     offsetof(struct da, base_url)},
    {"digitalaudience.api_token", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET | RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "API token sent as Authorization: Bearer (unconfirmed: the scheme is "
     "our assumption)",
     offsetof(struct da, api_token)},
    {"digitalaudience.client_id", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "the client (advertiser) whose match table is written: {client} in "
     "upload_path; letters, digits, '.', '_' and '-'",
     offsetof(struct da, client_id)},
    {"digitalaudience.upload_path", RELAY_CONF_STRING,
     "/v1/clients/{client}/uploads", 0, -1, RELAY_CONF_BIND,
     "path after url that takes {\"uploads\":[...]}, {client} replaced by "
     "client_id (unconfirmed: our assumption)",
     offsetof(struct da, upload_path)},
    {"digitalaudience.dmp_id_kind", RELAY_CONF_STRING, "dmp_cookie_id", 0, -1,
     RELAY_CONF_BIND,
     "identity kind holding the DMP cookie id of a match.upload",
     offsetof(struct da, dmp_kind)},
    {"digitalaudience.partner_id_kind", RELAY_CONF_STRING, "partner_user_id",
     0, -1, RELAY_CONF_BIND,
     "identity kind holding the partner's user id of a match.upload",
     offsetof(struct da, partner_kind)},
    {"digitalaudience.max_items_per_request", RELAY_CONF_INT, "1000", 1,
     100000, RELAY_CONF_BIND,
     "uploads (records) per request (unconfirmed: no documented limit)",
     offsetof(struct da, max_items)},
    {"digitalaudience.max_request_bytes", RELAY_CONF_INT, "4194304", 1024,
     67108864, RELAY_CONF_BIND,
     "largest request body sent; a larger single upload is dead-lettered "
     "(unconfirmed: no documented limit)",
     offsetof(struct da, max_request)},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

static const char *const da_operations[] = {"match.upload", "crm.upload",
                                            NULL};

/* A literal of the request, appended. */
#define PUT(b, lit) relay_buf_append((b), (lit), sizeof(lit) - 1)

#define BODY_HEAD "{\"uploads\":["
#define BODY_TAIL "]}"
/* Every item starts with one of these (da_partial names the type). */
#define MATCH_HEAD "{\"type\":\"match\""
#define CRM_HEAD "{\"type\":\"crm\""
#define SHA_SUFFIX "_sha256"

static int client_ok(const char *s)
{
        if (!*s)
                return 0;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
                      *s == '-'))
                        return 0;
        return 1;
}

static void da_term(void *state)
{
        struct da *da = state;
        if (!da)
                return;
        free(da->url);
        if (da->auth)
                memset(da->auth, 0, strlen(da->auth));
        free(da->auth);
        free(da);
}

static int da_init(void **state, const relay_conf_t *conf, char *errstr,
                   size_t errstr_size)
{
        if (relay_conf_require_table(conf, da_props, errstr, errstr_size))
                return -1;
        struct da *da = relay_calloc(1, sizeof(*da));
        relay_conf_bind(conf, da_props, da);
        if (strncmp(da->base_url, "http://", 7) &&
            strncmp(da->base_url, "https://", 8)) {
                relay_seterr(errstr, errstr_size,
                             "digitalaudience.url '%.200s' is not an http:// "
                             "or https:// URL",
                             da->base_url);
                goto fail;
        }
        if (!client_ok(da->client_id)) {
                relay_seterr(errstr, errstr_size,
                             "digitalaudience.client_id '%.100s' must be "
                             "letters, digits, '.', '_' or '-' (it goes into "
                             "the URL as it is)",
                             da->client_id);
                goto fail;
        }
        if (da->upload_path[0] != '/') {
                relay_seterr(errstr, errstr_size,
                             "digitalaudience.upload_path '%.200s' must start "
                             "with '/'",
                             da->upload_path);
                goto fail;
        }
        if (!*da->dmp_kind || !*da->partner_kind ||
            !strcmp(da->dmp_kind, da->partner_kind)) {
                relay_seterr(errstr, errstr_size,
                             "digitalaudience.dmp_id_kind and partner_id_kind "
                             "must be two different identity kinds");
                goto fail;
        }
        relay_buf_t b;
        relay_buf_init(&b);
        size_t bl = strlen(da->base_url);
        while (bl && da->base_url[bl - 1] == '/')
                bl--;
        relay_buf_append(&b, da->base_url, bl);
        for (const char *p = da->upload_path; *p;) {
                if (!strncmp(p, "{client}", 8)) {
                        relay_buf_puts(&b, da->client_id);
                        p += 8;
                } else {
                        relay_buf_append(&b, p++, 1);
                }
        }
        relay_buf_append(&b, "", 1);
        da->url = b.data;
        relay_buf_init(&b);
        relay_buf_printf(&b, "Authorization: Bearer %s", da->api_token);
        da->auth = b.data;
        *state = da;
        return 0;
fail:
        da_term(da);
        return -1;
}

/* Whether slot k (a string) is the n bytes of s. */
static int is(const relay_slot_t *k, const char *s, size_t n)
{
        return k->type == AVRO_STRING && k->n == n && !memcmp(k->v.p, s, n);
}

static int is_str(const relay_slot_t *k, const char *s)
{
        return is(k, s, strlen(s));
}

/* The value of identity kind in rec's identities, or NULL. */
static const relay_slot_t *identity(const relay_out_index_t *ix,
                                    const relay_slots_t *rec, const char *kind)
{
        const relay_slot_t *m;
        size_t n = relay_out_identities(ix, rec, &m);
        for (size_t i = 0; i < n; i++)
                if (is_str(relay_out_map_key(rec, m, i), kind))
                        return relay_out_map_value(rec, m, i);
        return NULL;
}

static int sha256_kind(const relay_slot_t *k)
{
        size_t s = sizeof(SHA_SUFFIX) - 1;
        return k->n > s && !memcmp(k->v.p + k->n - s, SHA_SUFFIX, s);
}

/* 64 lowercase hex digits: the only form a hashed identifier leaves in. */
static int sha256_hex(const relay_slot_t *v)
{
        if (v->type != AVRO_STRING || v->n != 64)
                return 0;
        for (size_t i = 0; i < 64; i++) {
                char c = v->v.p[i];
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                        return 0;
        }
        return 1;
}

/* Append ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC), quoted.
 * -1 outside the years 1970 to 9999. Arithmetic rather than gmtime_r
 * (which takes a lock and may read zone files): H. Hinnant's
 * civil_from_days. */
static int put_iso_ms(relay_buf_t *b, int64_t ms)
{
        if (ms < 0 || ms >= 253402300800000LL)
                return -1;
        int64_t secs = ms / 1000, days = secs / 86400 + 719468;
        int64_t sod = secs % 86400, milli = ms % 1000;
        int64_t era = days / 146097, doe = days - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        int64_t day = doy - (153 * mp + 2) / 5 + 1;
        int64_t mon = mp < 10 ? mp + 3 : mp - 9;
        int64_t year = yoe + era * 400 + (mon <= 2);
        char t[] = "\"YYYY-MM-DDTHH:MM:SS.mmmZ\"";
        int64_t parts[][3] = {{1, 4, year},       {6, 2, mon},
                              {9, 2, day},        {12, 2, sod / 3600},
                              {15, 2, sod / 60 % 60}, {18, 2, sod % 60},
                              {21, 3, milli}};
        for (size_t p = 0; p < sizeof(parts) / sizeof(parts[0]); p++) {
                int64_t x = parts[p][2];
                for (int64_t i = parts[p][1]; i > 0; i--, x /= 10)
                        t[parts[p][0] + i - 1] = (char)('0' + x % 10);
        }
        relay_buf_append(b, t, sizeof(t) - 1);
        return 0;
}

/* A short text of a string slot for a reason ("" for other types). */
#define SHOWN(sl)                                                              \
        ((sl)->type == AVRO_STRING && (sl)->n < 64 ? (int)(sl)->n : 0),        \
            ((sl)->type == AVRO_STRING ? (sl)->v.p : "")

static enum relay_result encode_match(struct da *da,
                                      const relay_out_index_t *ix,
                                      const relay_slots_t *rec,
                                      const relay_slot_t *target,
                                      relay_buf_t *b, char *errstr,
                                      size_t errstr_size)
{
        const relay_slot_t *dmp = identity(ix, rec, da->dmp_kind);
        const relay_slot_t *partner = identity(ix, rec, da->partner_kind);
        if (target->type != AVRO_STRING || !target->n) {
                relay_seterr(errstr, errstr_size,
                             "match.upload without a partner: the "
                             "operation's target names the partner DMP");
                return RELAY_FATAL;
        }
        if (!dmp || !dmp->n || !partner || !partner->n) {
                relay_seterr(errstr, errstr_size,
                             "match.upload without a pair: identities.%s "
                             "and identities.%s are both needed%s",
                             da->dmp_kind, da->partner_kind,
                             !dmp || !dmp->n ? " (the DMP id is missing)"
                                             : " (the partner id is missing)");
                return RELAY_FATAL;
        }
        int64_t at = relay_out_get(ix, rec, RELAY_OUT_OCCURRED_AT)->v.l;
        PUT(b, MATCH_HEAD ",\"partner\":");
        relay_buf_json_str(b, target->v.p, target->n);
        PUT(b, ",\"dmp_id\":");
        relay_buf_json_str(b, dmp->v.p, dmp->n);
        PUT(b, ",\"partner_id\":");
        relay_buf_json_str(b, partner->v.p, partner->n);
        PUT(b, ",\"seen_at\":");
        if (put_iso_ms(b, at)) {
                relay_seterr(errstr, errstr_size,
                             "occurred_at %lld ms is outside the years 1970 "
                             "to 9999",
                             (long long)at);
                return RELAY_FATAL;
        }
        return RELAY_OK;
}

static enum relay_result encode_crm(const relay_out_index_t *ix,
                                    const relay_slots_t *rec,
                                    const relay_slot_t *target, relay_buf_t *b,
                                    char *errstr, size_t errstr_size)
{
        if (target->type != AVRO_STRING || !target->n) {
                relay_seterr(errstr, errstr_size,
                             "crm.upload without a record id: the "
                             "operation's target is the CRM record id");
                return RELAY_FATAL;
        }
        /* Every hashed value is checked before any is written. */
        const relay_slot_t *m;
        size_t n = relay_out_identities(ix, rec, &m), hashes = 0;
        for (size_t i = 0; i < n; i++) {
                const relay_slot_t *k = relay_out_map_key(rec, m, i);
                if (!sha256_kind(k))
                        continue;
                const relay_slot_t *v = relay_out_map_value(rec, m, i);
                if (!sha256_hex(v)) {
                        /* The value is not quoted: it may be the clear
                         * e-mail address or phone number. */
                        relay_seterr(errstr, errstr_size,
                                     "identities.%.*s is not a SHA-256 in "
                                     "lowercase hex (64 characters; got %u "
                                     "characters): an unhashed or malformed "
                                     "value must never leave the client, so "
                                     "the record is not sent",
                                     (int)(k->n < 64 ? k->n : 64), k->v.p,
                                     (unsigned)v->n);
                        return RELAY_FATAL;
                }
                hashes++;
        }
        if (!hashes) {
                relay_seterr(errstr, errstr_size,
                             "crm.upload without a hashed identity: no "
                             "identity kind ending in _sha256");
                return RELAY_FATAL;
        }
        PUT(b, CRM_HEAD ",\"record_id\":");
        relay_buf_json_str(b, target->v.p, target->n);
        PUT(b, ",\"hashes\":{");
        int comma = 0;
        for (size_t i = 0; i < n; i++) {
                const relay_slot_t *k = relay_out_map_key(rec, m, i);
                if (!sha256_kind(k))
                        continue;
                const relay_slot_t *v = relay_out_map_value(rec, m, i);
                if (comma)
                        PUT(b, ",");
                comma = 1;
                relay_buf_json_str(b, k->v.p, k->n);
                PUT(b, ":");
                relay_buf_json_str(b, v->v.p, v->n);
        }
        PUT(b, "}");
        return RELAY_OK;
}

static enum relay_result da_encode(void *state, const relay_slots_t *rec,
                                   relay_buf_t *b, char *errstr,
                                   size_t errstr_size)
{
        struct da *da = state;
        const relay_out_index_t *ix = relay_out_index(&da->out, rec->shape);
        size_t nops = relay_out_ops(ix, rec), start = b->len;
        if (nops != 1) {
                relay_seterr(errstr, errstr_size,
                             "%zu operations: a digitalaudience record "
                             "carries exactly one (match.upload or "
                             "crm.upload)",
                             nops);
                return RELAY_FATAL;
        }
        const relay_slot_t *op = relay_out_op_get(ix, rec, 0, RELAY_OUT_OP);
        const relay_slot_t *target =
            relay_out_op_get(ix, rec, 0, RELAY_OUT_OP_TARGET);
        enum relay_result r;
        if (is_str(op, "match.upload"))
                r = encode_match(da, ix, rec, target, b, errstr, errstr_size);
        else if (is_str(op, "crm.upload"))
                r = encode_crm(ix, rec, target, b, errstr, errstr_size);
        else {
                relay_seterr(errstr, errstr_size,
                             "operation '%.*s' is not one digitalaudience "
                             "performs (match.upload, crm.upload)",
                             SHOWN(op));
                r = RELAY_FATAL;
        }
        if (r != RELAY_OK) {
                b->len = start;
                return r;
        }
        PUT(b, ",\"upload_id\":");
        const relay_slot_t *id = relay_out_get(ix, rec, RELAY_OUT_EVENT_ID);
        relay_buf_json_str(b, id->v.p, id->n);
        PUT(b, "}");

        size_t most = (size_t)da->max_request - (sizeof(BODY_HEAD) - 1) -
                      (sizeof(BODY_TAIL) - 1);
        if (b->len - start > most) {
                relay_seterr(errstr, errstr_size,
                             "upload of %zu bytes does not fit in a request "
                             "of digitalaudience.max_request_bytes %lld",
                             b->len - start, da->max_request);
                b->len = start;
                return RELAY_FATAL;
        }
        return RELAY_OK;
}

static void da_limits(void *state, size_t *max_items, size_t *max_bytes)
{
        struct da *da = state;
        *max_items = (size_t)da->max_items;
        /* The engine counts each item's bytes and one separator; the body
         * adds its head and tail around them. */
        *max_bytes = (size_t)da->max_request - (sizeof(BODY_HEAD) - 1) -
                     (sizeof(BODY_TAIL) - 1);
}

static void da_request(void *state, const relay_buf_t *items, size_t n,
                       relay_buf_t *body, relay_http_request_t *req)
{
        struct da *da = state;
        relay_buf_reset(body);
        relay_adapter_join(body, BODY_HEAD, items, n, BODY_TAIL);
        memset(req, 0, sizeof(*req));
        req->method = "POST";
        req->url = da->url;
        req->headers[0] = "Content-Type: application/json";
        req->headers[1] = da->auth;
        req->body = body->data;
        req->body_len = body->len;
}

/* The usual reading (relay_adapter_answer): 2xx delivered (da_partial
 * then reads per-upload rejections); 408, 425, 429, 5xx, 3xx and
 * transport failures retried; 401/403/404 (and 405/407) returned as
 * RELAY_FATAL, which the engine reads as a refused token or endpoint
 * (pause, no dead letter); 400, 413, 422 and other 4xx the records' fault.
 * The reason is the answer's "message" (or "error") when its body is JSON
 * that has one. */
static enum relay_result da_classify(void *state,
                                     const relay_http_response_t *resp,
                                     char *errstr, size_t errstr_size)
{
        (void)state;
        enum relay_result r = relay_adapter_answer(resp, errstr, errstr_size);
        if (r == RELAY_OK || resp->transport_error || !resp->body.len)
                return r;
        json_t *j = json_loadb(resp->body.data, resp->body.len, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "message"));
        if (!msg)
                msg = json_string_value(json_object_get(j, "error"));
        if (msg)
                relay_adapter_reason_text(errstr, errstr_size, resp->status,
                                          msg, strlen(msg));
        json_decref(j);
        return r;
}

/* A 2xx (200 or 207) that refused some uploads:
 * {"rejected":[{"index":i,"reason":"..."}, ...]}, i the upload's place in
 * the request's uploads, which is the item's (one upload per item). */
static int da_partial(void *state, const relay_http_response_t *resp,
                      const relay_buf_t *items, size_t n,
                      relay_item_result_t *out)
{
        (void)state;
        if (!relay_http_body_has(resp, "\"rejected\""))
                return 0;
        json_t *j = json_loadb(resp->body.data, resp->body.len, 0, NULL);
        json_t *rejected = json_object_get(j, "rejected");
        size_t nrej = json_array_size(rejected), placed = 0;
        for (size_t i = 0; i < n; i++) {
                out[i].result = RELAY_OK;
                out[i].why[0] = '\0';
        }
        for (size_t e = 0; e < nrej; e++) {
                json_t *rj = json_array_get(rejected, e);
                json_t *jix = json_object_get(rj, "index");
                const char *reason =
                    json_string_value(json_object_get(rj, "reason"));
                if (!json_is_integer(jix) || json_integer_value(jix) < 0 ||
                    (size_t)json_integer_value(jix) >= n) {
                        relay_log(LOG_WARNING, "digitalaudience",
                                  "a rejection that names no upload of the "
                                  "request (%zu uploads): %.200s",
                                  n, reason ? reason : "(no reason)");
                        continue;
                }
                size_t i = (size_t)json_integer_value(jix);
                if (out[i].result == RELAY_FATAL)
                        continue; /* the first reason stays */
                const relay_buf_t *it = &items[i];
                int match = it->len >= sizeof(MATCH_HEAD) - 1 &&
                            !memcmp(it->data, MATCH_HEAD,
                                    sizeof(MATCH_HEAD) - 1);
                out[i].result = RELAY_FATAL;
                snprintf(out[i].why, sizeof(out[i].why),
                         "HTTP %ld: digitalAudience rejected uploads[%zu] "
                         "(%s): %.160s",
                         resp->status, i, match ? "match" : "crm",
                         reason ? reason : "(no reason)");
                placed++;
        }
        json_decref(j);
        return placed ? 1 : 0;
}

const struct relay_adapter relay_adapter_digitalaudience = {
    .name = "digitalaudience",
    .props = da_props,
    .event_categories = NULL, /* not read: the operation says it all */
    .identity_types = NULL,
    .operations = da_operations,
    .init = da_init,
    .encode = da_encode,
    .limits = da_limits,
    .request = da_request,
    .classify = da_classify,
    .partial = da_partial,
    .term = da_term,
};
