/*
 * Eagle Eye AIR (the wallet API; PLATFORMS.md section 3): reward issuance
 * and points on a wallet's account, one record, one operation, one call.
 *
 * A record (envelope version 2) carries exactly one operation; the wallet
 * is the identity named eagleeye.wallet_identity ("wallet_id") in the
 * record's identities, else identity_value when identity_type is that name:
 *
 *   reward.issue   POST  <url><eagleeye.issue_path>   (default
 *                  /2.0/token/create) {"resourceType":"CAMPAIGN",
 *                  "resourceId":<target>,"consumerIdentifier":{"reference":
 *                  <wallet>},"reference":<ref>[,"properties":{attributes}]}
 *   points.earn    PATCH <url>/2.0/wallet/<wallet>/account/<target>/earn
 *   points.debit   PATCH <url>/2.0/wallet/<wallet>/account/<target>/debit
 *                  {"points":<attributes.points>,"reference":<ref>}
 *
 * How a CDP issues a reward is not settled: PLATFORMS.md finds no
 * SERVICE.TRIGGER endpoint and says issuance from a CDP goes through
 * Eagle Eye Connect; "Create token" (POST /2.0/token/create, from public
 * code, secondary) is the call we know, so the path is a setting and the
 * body its published shape. The campaign reference goes as a JSON string
 * (whether AIR wants a number is unconfirmed).
 *
 * Authentication, on every send (the engine calls request() for each,
 * retries included): X-EES-AUTH-CLIENT-ID: <eagleeye.client_id> and
 * X-EES-AUTH-HASH: lowercase hex SHA-256 of the request URI path with its
 * /2.0 prefix (and the base URL's own path, if it has one), the query
 * string (none in our calls unless issue_path has one), the body bytes
 * exactly as sent, and eagleeye.client_secret. The body is sent with a
 * Content-Length (never chunked, which breaks the hash).
 *
 * Idempotency is our design: AIR's own mechanism is unconfirmed. Each
 * call carries a reference that is the same on every try of the same
 * record: the first 32 hex digits of SHA-256("<tenant>/<wallet>/<target>/
 * <event_id>"), in the body's "reference" and as X-EES-TRANSACTION-ID.
 * Our simulator answers a repeated transaction id with its first answer
 * and does nothing again; a 409 (the platform's "already done") counts as
 * delivered.
 *
 * Answers: 2xx and 409 delivered; 400 and 422 the record's fault
 * (dead-lettered with the body); 404 is ambiguous: a wallet, account or
 * campaign that does not exist is a wrong record, a path that does not
 * exist a wrong endpoint (the engine pauses on 404). They are told apart
 * by the answer's body: a 404 whose body contains one of
 * eagleeye.record_not_found_codes (by default WALLET_NOT_FOUND,
 * ACCOUNT_NOT_FOUND, CAMPAIGN_NOT_FOUND: our simulator's error codes; AIR's
 * error envelope is unconfirmed) is the record's, which record_refused
 * tells the engine (the record is dead-lettered with the body); any other
 * 404 pauses. 401 and 403 are the engine's (it pauses and re-reads the
 * secret); 408, 429, 3xx and 5xx are retried.
 *
 * A record with no operation or several, an operation other than the
 * three, no target, no wallet, or (earn/debit) no whole positive points is
 * dead-lettered with the reason. Nothing is allocated per record once
 * the buffers are warm: the reference is hashed through a kept context.
 */
#include "relay/adapter.h"
#include "relay/avro.h"
#include "relay/log.h"
#include "relay/sign.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the adapter runs on. The first block is written by
 * relay_conf_bind() from eagleeye_props (strings owned by the conf); the
 * rest is built from it by eagleeye_init(). */
struct eagleeye {
        const char *url, *client_id, *secret, *wallet_identity, *issue_path;
        const char *nf_codes;

        char *base;      /* url without a trailing '/', owned */
        size_t base_len;
        const char *base_path; /* the path part of base ("" when none) */
        char *client_hdr;      /* "X-EES-AUTH-CLIENT-ID: <id>", owned */
        char **codes;          /* record_not_found_codes, owned, NULL-ended */
        relay_sign_sha256_ctx_t *sha;
        relay_buf_t ref_in; /* scratch: the reference's input */
        relay_out_index_t out;
};

static const relay_conf_prop_t eagleeye_props[] = {
    {"eagleeye.url", RELAY_CONF_STRING, "https://wallet.uk.eagleeye.com", 0,
     -1, RELAY_CONF_BIND,
     "wallet API base, without /2.0 (UK host; other regions and sandbox "
     "unconfirmed)",
     offsetof(struct eagleeye, url)},
    {"eagleeye.client_id", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "X-EES-AUTH-CLIENT-ID", offsetof(struct eagleeye, client_id)},
    {"eagleeye.client_secret", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET | RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "the client secret hashed into X-EES-AUTH-HASH",
     offsetof(struct eagleeye, secret)},
    {"eagleeye.wallet_identity", RELAY_CONF_STRING, "wallet_id", 0, -1,
     RELAY_CONF_BIND,
     "the identity (identities key, or identity_type) holding the wallet id",
     offsetof(struct eagleeye, wallet_identity)},
    {"eagleeye.issue_path", RELAY_CONF_STRING, "/2.0/token/create", 0, -1,
     RELAY_CONF_BIND,
     "path of reward.issue, /2.0 prefix included (unconfirmed: issuance "
     "from a CDP may go through Eagle Eye Connect)",
     offsetof(struct eagleeye, issue_path)},
    {"eagleeye.record_not_found_codes", RELAY_CONF_STRING,
     "WALLET_NOT_FOUND,ACCOUNT_NOT_FOUND,CAMPAIGN_NOT_FOUND", 0, -1,
     RELAY_CONF_BIND,
     "a 404 whose body holds one of these (comma-separated) is the record's "
     "fault (dead-lettered); any other 404 pauses (unconfirmed: AIR's error "
     "codes)",
     offsetof(struct eagleeye, nf_codes)},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

enum ee_op { OP_ISSUE, OP_EARN, OP_DEBIT };
static const char *const eagleeye_ops[] = {"reward.issue", "points.earn",
                                           "points.debit", NULL};

/* The item header; request() reads it with memcpy, since an item's bytes
 * need not be aligned. The path (from /2.0 on) and the body follow. */
struct ee_item {
        uint32_t op;       /* enum ee_op */
        uint32_t path_len; /* bytes of the path */
        uint32_t body_len; /* bytes of the body */
        char ref[33];      /* the reference, NUL-terminated */
};

/* A literal of the request, appended. */
#define PUT(b, lit) relay_buf_append((b), (lit), sizeof(lit) - 1)

/* The most bytes of one call's body; a larger record is dead-lettered. */
#define MAX_REQUEST 1048576

static void free_codes(char **codes)
{
        if (!codes)
                return;
        for (size_t i = 0; codes[i]; i++)
                free(codes[i]);
        free(codes);
}

static int eagleeye_init(void **state, const relay_conf_t *conf,
                         char *errstr, size_t errstr_size)
{
        if (relay_conf_require_table(conf, eagleeye_props, errstr,
                                     errstr_size))
                return -1;
        struct eagleeye *ee = relay_calloc(1, sizeof(*ee));
        relay_conf_bind(conf, eagleeye_props, ee);
        relay_buf_init(&ee->ref_in);
        const char *u = ee->url;
        size_t skip = !strncmp(u, "https://", 8) ? 8
                      : !strncmp(u, "http://", 7) ? 7
                                                   : 0;
        if (!skip || !u[skip]) {
                relay_seterr(errstr, errstr_size,
                             "eagleeye.url '%.200s' is not an http:// or "
                             "https:// URL",
                             u);
                goto fail;
        }
        if (strchr(u, '?') || strchr(u, '#')) {
                relay_seterr(errstr, errstr_size,
                             "eagleeye.url '%.200s' has a query or fragment",
                             u);
                goto fail;
        }
        if (ee->issue_path[0] != '/') {
                relay_seterr(errstr, errstr_size,
                             "eagleeye.issue_path '%.200s' does not start "
                             "with '/'",
                             ee->issue_path);
                goto fail;
        }
        if (!ee->client_id[0] || strpbrk(ee->client_id, "\r\n")) {
                relay_seterr(errstr, errstr_size,
                             "eagleeye.client_id is empty or holds a line "
                             "break");
                goto fail;
        }
        relay_buf_t b;
        relay_buf_init(&b);
        size_t bl = strlen(u);
        while (bl > skip && u[bl - 1] == '/')
                bl--;
        relay_buf_append(&b, u, bl);
        ee->base = b.data;
        ee->base_len = bl;
        const char *slash = strchr(ee->base + skip, '/');
        ee->base_path = slash ? slash : ee->base + bl;
        relay_buf_init(&b);
        relay_buf_printf(&b, "X-EES-AUTH-CLIENT-ID: %s", ee->client_id);
        ee->client_hdr = b.data;

        size_t n = 1;
        for (const char *p = ee->nf_codes; *p; p++)
                n += *p == ',';
        ee->codes = relay_calloc(n + 1, sizeof(char *));
        size_t k = 0;
        for (const char *p = ee->nf_codes; *p;) {
                const char *e = strchr(p, ',');
                size_t len = e ? (size_t)(e - p) : strlen(p);
                while (len && (*p == ' ' || *p == '\t')) {
                        p++;
                        len--;
                }
                while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                        len--;
                if (len) {
                        ee->codes[k] = relay_calloc(1, len + 1);
                        memcpy(ee->codes[k++], p, len);
                }
                if (!e)
                        break;
                p = e + 1;
        }
        ee->sha = relay_sign_sha256_ctx_new();
        if (!ee->sha) {
                relay_seterr(errstr, errstr_size,
                             "libcrypto has no SHA-256 digest");
                goto fail;
        }
        *state = ee;
        return 0;
fail:
        free(ee->base);
        free(ee->client_hdr);
        free_codes(ee->codes);
        relay_buf_free(&ee->ref_in);
        free(ee);
        return -1;
}

static void eagleeye_term(void *state)
{
        struct eagleeye *ee = state;
        if (!ee)
                return;
        free(ee->base);
        free(ee->client_hdr);
        free_codes(ee->codes);
        relay_sign_sha256_ctx_destroy(ee->sha);
        relay_buf_free(&ee->ref_in);
        free(ee);
}

static int str_is(const relay_slot_t *s, const char *word)
{
        size_t n = strlen(word);
        return s->type == AVRO_STRING && s->n == n && !memcmp(s->v.p, word, n);
}

/* The wallet id of rec: the identities' wallet_identity, else the
 * primary identity when its type is that name; NULL when neither. */
static const relay_slot_t *wallet_of(struct eagleeye *ee,
                                     const relay_out_index_t *ix,
                                     const relay_slots_t *rec)
{
        const relay_slot_t *m;
        size_t n = relay_out_identities(ix, rec, &m);
        for (size_t i = 0; i < n; i++)
                if (str_is(relay_out_map_key(rec, m, i), ee->wallet_identity)) {
                        const relay_slot_t *v = relay_out_map_value(rec, m, i);
                        if (v->type == AVRO_STRING && v->n)
                                return v;
                }
        if (str_is(relay_out_get(ix, rec, RELAY_OUT_IDENTITY_TYPE),
                   ee->wallet_identity)) {
                const relay_slot_t *v =
                    relay_out_get(ix, rec, RELAY_OUT_IDENTITY_VALUE);
                if (v->type == AVRO_STRING && v->n)
                        return v;
        }
        return NULL;
}

/* Append s[0..n) percent-encoded as one path segment (RFC 3986
 * unreserved characters as they are). */
static void put_segment(relay_buf_t *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789ABCDEF";
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                    c == '_' || c == '~') {
                        relay_buf_append(b, &s[i], 1);
                } else {
                        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
                        relay_buf_append(b, e, 3);
                }
        }
}

/* The points of an earn or debit: a whole number above 0 (a long, or a
 * double without a fraction). -1 when there is none such. */
static long long points_of(const relay_slots_t *rec, const relay_slot_t *attrs,
                           const char **why)
{
        size_t n = attrs->type == AVRO_MAP ? attrs->n : 0;
        for (size_t i = 0; i < n; i++) {
                if (!str_is(relay_out_map_key(rec, attrs, i), "points"))
                        continue;
                const relay_slot_t *v = relay_out_map_value(rec, attrs, i);
                long long p;
                if (v->type == AVRO_INT64 || v->type == AVRO_INT32)
                        p = v->v.l;
                else if (v->type == AVRO_DOUBLE && isfinite(v->v.d) &&
                         v->v.d == floor(v->v.d) && fabs(v->v.d) < 9e15)
                        p = (long long)v->v.d;
                else {
                        *why = "is not a whole number";
                        return -1;
                }
                if (p <= 0) {
                        *why = "is not above 0";
                        return -1;
                }
                return p;
        }
        *why = "is missing";
        return -1;
}

static enum relay_result eagleeye_encode(void *state, const relay_slots_t *rec,
                                         relay_buf_t *b, char *errstr,
                                         size_t errstr_size)
{
        struct eagleeye *ee = state;
        const relay_out_index_t *ix = relay_out_index(&ee->out, rec->shape);
        size_t nops = relay_out_ops(ix, rec);
        if (nops != 1) {
                relay_seterr(errstr, errstr_size,
                             "the record carries %zu operations; Eagle Eye "
                             "takes exactly one a record (reward.issue, "
                             "points.earn or points.debit)",
                             nops);
                return RELAY_FATAL;
        }
        const relay_slot_t *op = relay_out_op_get(ix, rec, 0, RELAY_OUT_OP),
                           *target = relay_out_op_get(ix, rec, 0,
                                                      RELAY_OUT_OP_TARGET),
                           *attrs = relay_out_op_get(ix, rec, 0,
                                                     RELAY_OUT_OP_ATTRIBUTES);
        enum ee_op kind;
        if (str_is(op, "reward.issue"))
                kind = OP_ISSUE;
        else if (str_is(op, "points.earn"))
                kind = OP_EARN;
        else if (str_is(op, "points.debit"))
                kind = OP_DEBIT;
        else {
                relay_seterr(errstr, errstr_size,
                             "operation '%.*s' is not one Eagle Eye performs "
                             "(reward.issue, points.earn, points.debit)",
                             (int)(op->n > 100 ? 100 : op->n), op->v.p);
                return RELAY_FATAL;
        }
        if (target->type != AVRO_STRING || !target->n) {
                relay_seterr(errstr, errstr_size,
                             "%s has no target (the %s)", eagleeye_ops[kind],
                             kind == OP_ISSUE ? "campaign reference"
                                              : "account id");
                return RELAY_FATAL;
        }
        const relay_slot_t *wallet = wallet_of(ee, ix, rec);
        if (!wallet) {
                relay_seterr(errstr, errstr_size,
                             "the record has no '%.100s' identity (the wallet "
                             "id, eagleeye.wallet_identity) in identities or "
                             "as identity_type",
                             ee->wallet_identity);
                return RELAY_FATAL;
        }
        long long points = 0;
        if (kind != OP_ISSUE) {
                const char *why = "";
                points = points_of(rec, attrs, &why);
                if (points < 0) {
                        relay_seterr(errstr, errstr_size,
                                     "%s: attributes.points %s",
                                     eagleeye_ops[kind], why);
                        return RELAY_FATAL;
                }
        }

        /* The reference: the same for every try of this record. */
        const relay_slot_t *tenant = relay_out_get(ix, rec, RELAY_OUT_TENANT),
                           *eid = relay_out_get(ix, rec, RELAY_OUT_EVENT_ID);
        relay_sign_part_t parts[] = {
            {tenant->v.p, tenant->n}, {"/", 1}, {wallet->v.p, wallet->n},
            {"/", 1}, {target->v.p, target->n}, {"/", 1}, {eid->v.p, eid->n}};
        char hex[2 * RELAY_SIGN_SHA256_LEN + 1];
        if (relay_sign_sha256_hex_ctx(ee->sha, parts,
                                      sizeof(parts) / sizeof(parts[0]), hex)) {
                relay_seterr(errstr, errstr_size,
                             "libcrypto could not hash the reference");
                return RELAY_FATAL;
        }
        struct ee_item h = {.op = kind};
        memcpy(h.ref, hex, 32);
        h.ref[32] = '\0';

        size_t start = b->len;
        relay_buf_append(b, &h, sizeof(h));
        size_t path_at = b->len;
        if (kind == OP_ISSUE) {
                relay_buf_puts(b, ee->issue_path);
        } else {
                PUT(b, "/2.0/wallet/");
                put_segment(b, wallet->v.p, wallet->n);
                PUT(b, "/account/");
                put_segment(b, target->v.p, target->n);
                if (kind == OP_EARN)
                        PUT(b, "/earn");
                else
                        PUT(b, "/debit");
        }
        size_t body_at = b->len;
        if (kind == OP_ISSUE) {
                PUT(b, "{\"resourceType\":\"CAMPAIGN\",\"resourceId\":");
                relay_buf_json_str(b, target->v.p, target->n);
                PUT(b, ",\"consumerIdentifier\":{\"reference\":");
                relay_buf_json_str(b, wallet->v.p, wallet->n);
                PUT(b, "},\"reference\":\"");
                relay_buf_append(b, h.ref, 32);
                PUT(b, "\"");
                size_t na = attrs->type == AVRO_MAP ? attrs->n : 0;
                if (na) {
                        PUT(b, ",\"properties\":{");
                        for (size_t i = 0; i < na; i++) {
                                const relay_slot_t *k =
                                    relay_out_map_key(rec, attrs, i);
                                if (i)
                                        PUT(b, ",");
                                relay_buf_json_str(b, k->v.p, k->n);
                                PUT(b, ":");
                                relay_slot_json(
                                    relay_out_map_value(rec, attrs, i), b);
                        }
                        PUT(b, "}");
                }
                PUT(b, "}");
        } else {
                relay_buf_printf(b, "{\"points\":%lld,\"reference\":\"%s\"}",
                                 points, h.ref);
        }
        size_t body_len = b->len - body_at;
        if (body_len > MAX_REQUEST) {
                relay_seterr(errstr, errstr_size,
                             "a call of %zu bytes is larger than the %d "
                             "sent at most",
                             body_len, MAX_REQUEST);
                b->len = start;
                return RELAY_FATAL;
        }
        h.path_len = (uint32_t)(body_at - path_at);
        h.body_len = (uint32_t)body_len;
        memcpy(b->data + start, &h, sizeof(h));
        return RELAY_OK;
}

static void eagleeye_limits(void *state, size_t *max_items, size_t *max_bytes)
{
        (void)state;
        *max_items = 1; /* AIR's calls are per wallet */
        *max_bytes = MAX_REQUEST + sizeof(struct ee_item) + 4096;
}

/* The URL, the header lines and the body all live in body's buffer: they
 * must stay valid until the request is answered, and several requests
 * may be under way at once, each with a body buffer of its own. The body
 * comes first (req->body), then the rest, each NUL-terminated. */
static void eagleeye_request(void *state, const relay_buf_t *items, size_t n,
                             relay_buf_t *body, relay_http_request_t *req)
{
        struct eagleeye *ee = state;
        (void)n; /* limits: always 1 */
        struct ee_item h;
        memcpy(&h, items[0].data, sizeof(h));
        const char *path = items[0].data + sizeof(h);
        const char *json = path + h.path_len;

        relay_buf_reset(body);
        relay_buf_append(body, json, h.body_len);
        relay_buf_append(body, "", 1);

        size_t url_at = body->len;
        relay_buf_append(body, ee->base, ee->base_len);
        relay_buf_append(body, path, h.path_len);
        relay_buf_append(body, "", 1);

        size_t path_at = url_at + (size_t)(ee->base_path - ee->base);
        size_t path_len = body->len - 1 - path_at;
        relay_sign_part_t parts[] = {{body->data + path_at, path_len},
                                     {body->data, h.body_len},
                                     {ee->secret, strlen(ee->secret)}};
        char hash[2 * RELAY_SIGN_SHA256_LEN + 1];
        if (relay_sign_sha256_hex_ctx(ee->sha, parts, 3, hash))
                /* Sent without a valid hash, AIR refuses it (401) and the
                 * engine pauses the platform, saying so. */
                relay_log(LOG_ERR, "eagleeye",
                          "libcrypto could not hash a request; sending it "
                          "without X-EES-AUTH-HASH");
        size_t hash_at = body->len;
        relay_buf_printf(body, "X-EES-AUTH-HASH: %s", hash);
        relay_buf_append(body, "", 1);
        size_t txn_at = body->len;
        relay_buf_printf(body, "X-EES-TRANSACTION-ID: %s", h.ref);

        memset(req, 0, sizeof(*req));
        req->method = h.op == OP_ISSUE ? "POST" : "PATCH";
        req->url = body->data + url_at;
        req->headers[0] = "Content-Type: application/json";
        req->headers[1] = "Accept: application/json";
        req->headers[2] = ee->client_hdr;
        req->headers[3] = body->data + txn_at;
        req->headers[4] = hash[0] ? body->data + hash_at : NULL;
        req->body = body->data;
        req->body_len = h.body_len;
}

/* Whether a 404 is about the record (its body names a wallet, account or
 * campaign that does not exist) rather than the endpoint. */
static int record_not_found(const struct eagleeye *ee,
                            const relay_http_response_t *resp)
{
        if (resp->status != 404 || !resp->body.data)
                return 0;
        const char *d = resp->body.data;
        size_t n = resp->body.len;
        for (size_t c = 0; ee->codes[c]; c++) {
                size_t k = strlen(ee->codes[c]);
                for (size_t i = 0; k && i + k <= n; i++)
                        if (!memcmp(d + i, ee->codes[c], k))
                                return 1;
        }
        return 0;
}

static enum relay_result eagleeye_classify(void *state,
                                           const relay_http_response_t *resp,
                                           char *errstr, size_t errstr_size)
{
        (void)state;
        if (!resp->transport_error && resp->status == 409)
                return RELAY_OK; /* already done: the same reference */
        return relay_adapter_answer(resp, errstr, errstr_size);
}

/* A 404 naming a wallet, account or campaign that does not exist is the
 * record's fault, not the connection's (see the file's head). */
static int eagleeye_record_refused(void *state,
                                   const relay_http_response_t *resp)
{
        return record_not_found(state, resp);
}

const struct relay_adapter relay_adapter_eagleeye = {
    .name = "eagleeye",
    .props = eagleeye_props,
    .event_categories = NULL, /* any: the operation says what to do */
    .identity_types = NULL,   /* any: the wallet is found by name */
    .operations = eagleeye_ops,
    .init = eagleeye_init,
    .encode = eagleeye_encode,
    .limits = eagleeye_limits,
    .request = eagleeye_request,
    .classify = eagleeye_classify,
    .record_refused = eagleeye_record_refused,
    .term = eagleeye_term,
};
