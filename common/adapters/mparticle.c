/*
 * mParticle server-to-server Events API v2 (POST /v2/bulkevents).
 *
 * One out.mparticle record becomes one mParticle batch (one user, one
 * custom event, its user attributes and identity); a request carries up to
 * 100 batches and 256 KB, a batch at most 128 KB (all settings, since the
 * figures are defaults mParticle can raise). Auth is HTTP Basic with the
 * API key and secret. mParticle has no idempotency key, so the record's
 * event_id travels as source_request_id and source_message_id for
 * recognising a retried batch downstream.
 */
#include "relay/adapter.h"
#include "relay/avro.h"
#include "relay/log.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the adapter runs on. The first block is written by
 * relay_conf_bind() from mparticle_props (strings owned by the conf); the
 * rest is built from it by mparticle_init(). */
struct mparticle {
        const char *base_url; /* mparticle.url */
        const char *api_key, *api_secret;
        long long max_items, max_request, max_batch, max_user_attrs;

        char *url;             /* <base_url>/bulkevents, owned */
        char *userpwd;         /* key:secret for Basic auth, owned */
        relay_out_index_t out; /* the envelope's slots */
};

/* The keys are REQUIRED_IF_USED, not REQUIRED: every adapter's table is
 * declared in each deliver worker, but only this platform's count. */
static const relay_conf_prop_t mparticle_props[] = {
    {"mparticle.url", RELAY_CONF_STRING, "https://s2s.mparticle.com/v2", 0, -1,
     RELAY_CONF_BIND,
     "Events API base URL of the pod (US1, US2, EU1, AU1), up to /v2",
     offsetof(struct mparticle, base_url)},
    {"mparticle.api_key", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET | RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "input feed API key", offsetof(struct mparticle, api_key)},
    {"mparticle.api_secret", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET | RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "input feed API secret", offsetof(struct mparticle, api_secret)},
    {"mparticle.max_batches_per_request", RELAY_CONF_INT, "100", 1, 100,
     RELAY_CONF_BIND, "batches (records) per /bulkevents request",
     offsetof(struct mparticle, max_items)},
    {"mparticle.max_request_bytes", RELAY_CONF_INT, "262144", 1024, 16777216,
     RELAY_CONF_BIND, "largest request body sent",
     offsetof(struct mparticle, max_request)},
    {"mparticle.max_batch_bytes", RELAY_CONF_INT, "131072", 256, 16777216,
     RELAY_CONF_BIND, "largest single batch; a larger record is dead-lettered",
     offsetof(struct mparticle, max_batch)},
    {"mparticle.max_user_attributes", RELAY_CONF_INT, "100", 1, 100000,
     RELAY_CONF_BIND, "user attributes per batch; more is dead-lettered",
     offsetof(struct mparticle, max_user_attrs)},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

static const char *const mparticle_event_types[] = {
    "navigation",      "location", "search", "transaction", "user_content",
    "user_preference", "social",   "other",  "media",       NULL};

static const char *const mparticle_identities[] = {
    "customer_id",
    "email",
    "other",
    "other_id_2",
    "other_id_3",
    "other_id_4",
    "other_id_5",
    "other_id_6",
    "other_id_7",
    "other_id_8",
    "other_id_9",
    "other_id_10",
    "mobile_number",
    "phone_number_2",
    "phone_number_3",
    "facebook",
    "twitter",
    "google",
    "microsoft",
    "yahoo",
    "alias",
    "facebook_custom_audience_id",
    NULL};

#define MP_MAX_VALUE_CHARS 4096

/* Setup from the conf; also what deliver re-runs (term, then init) after
 * relay_conf_reload_secrets() reports a rotated key. */
static int mparticle_init(void **state, const relay_conf_t *conf, char *errstr,
                          size_t errstr_size)
{
        if (relay_conf_require_table(conf, mparticle_props, errstr,
                                     errstr_size))
                return -1;
        struct mparticle *mp = relay_calloc(1, sizeof(*mp));
        relay_conf_bind(conf, mparticle_props, mp);
        relay_buf_t b;
        relay_buf_init(&b);
        size_t bl = strlen(mp->base_url);
        while (bl && mp->base_url[bl - 1] == '/')
                bl--;
        relay_buf_append(&b, mp->base_url, bl);
        relay_buf_puts(&b, "/bulkevents");
        mp->url = b.data;
        relay_buf_init(&b);
        relay_buf_printf(&b, "%s:%s", mp->api_key, mp->api_secret);
        mp->userpwd = b.data;
        *state = mp;
        return 0;
}

static void mparticle_term(void *state)
{
        struct mparticle *mp = state;
        if (!mp)
                return;
        free(mp->url);
        free(mp->userpwd);
        free(mp);
}

/* Append a scalar (the attribute maps' union) as JSON. -1 when too long.
 * Strings and integers, most values, are written here directly, as
 * relay_slot_json would write them, without its dispatch. */
static int put_scalar(relay_buf_t *b, const relay_slot_t *v)
{
        switch (v->type) {
        case AVRO_STRING:
                if (v->n > MP_MAX_VALUE_CHARS)
                        return -1;
                relay_buf_json_str(b, v->v.p, v->n);
                return 0;
        case AVRO_INT32:
        case AVRO_INT64:
                relay_buf_long(b, v->v.l);
                return 0;
        default:
                relay_slot_json(v, b);
                return 0;
        }
}

/* Append a field's text (the timestamp: a long), as
 * relay_slot_scalar_text would. */
static void put_text(relay_buf_t *b, const relay_slot_t *v)
{
        if (v->type == AVRO_INT64 || v->type == AVRO_INT32)
                relay_buf_long(b, v->v.l);
        else
                relay_slot_scalar_text(v, b);
}

/* Append a map field of the record as a JSON object. -1 + errstr. */
static int put_map(relay_buf_t *b, const relay_out_index_t *ix,
                   const relay_slots_t *rec, enum relay_out_field f,
                   size_t max_entries, char *errstr, size_t errstr_size)
{
        const relay_slot_t *map = relay_out_get(ix, rec, f);
        const char *field = relay_out_names[f];
        size_t n = map->type == AVRO_MAP ? map->n : 0;
        if (n > max_entries) {
                relay_seterr(errstr, errstr_size,
                             "%zu %s; mParticle accepts at most %zu", n, field,
                             max_entries);
                return -1;
        }
        relay_buf_append(b, "{", 1);
        for (size_t i = 0; i < n; i++) {
                const relay_slot_t *k = &rec->s[map->v.first + 2 * i];
                if (i)
                        relay_buf_append(b, ",", 1);
                relay_buf_json_str(b, k->v.p, k->n);
                relay_buf_append(b, ":", 1);
                if (put_scalar(b, k + 1)) {
                        relay_seterr(errstr, errstr_size,
                                     "%s '%.*s' is longer than mParticle's %d "
                                     "characters",
                                     field, (int)k->n, k->v.p,
                                     MP_MAX_VALUE_CHARS);
                        return -1;
                }
        }
        relay_buf_append(b, "}", 1);
        return 0;
}

/* Append the string field as JSON; 0, or -1 when null. */
static int put_field_str(relay_buf_t *b, const relay_out_index_t *ix,
                         const relay_slots_t *rec, enum relay_out_field f)
{
        const relay_slot_t *v = relay_out_get(ix, rec, f);
        if (v->type != AVRO_STRING)
                return -1;
        relay_buf_json_str(b, v->v.p, v->n);
        return 0;
}

/* Append again the n bytes of b that begin at from (earlier in b). */
static void put_again(relay_buf_t *b, size_t from, size_t n)
{
        relay_buf_reserve(b, n); /* may move b->data: copy after it */
        memcpy(b->data + b->len, b->data + from, n);
        b->len += n;
        b->data[b->len] = '\0';
}

/* A literal of the request, appended. */
#define PUT(b, lit) relay_buf_append((b), (lit), sizeof(lit) - 1)

static enum relay_result mparticle_encode(void *state, const relay_slots_t *rec,
                                          relay_buf_t *b, char *errstr,
                                          size_t errstr_size)
{
        struct mparticle *mp = state;
        const relay_out_index_t *ix = relay_out_index(&mp->out, rec->shape);
        size_t start = b->len;
        int64_t env = relay_out_get(ix, rec, RELAY_OUT_ENVIRONMENT)->v.l;

        /* An identity type mParticle does not know would fail the whole
         * request with a 400; refuse the record alone instead. */
        const relay_slot_t *idt =
            relay_out_get(ix, rec, RELAY_OUT_IDENTITY_TYPE);
        if (idt->type != AVRO_STRING ||
            !relay_adapter_vocab_has_n(mparticle_identities, idt->v.p,
                                       idt->n)) {
                relay_seterr(
                    errstr, errstr_size,
                    "identity type '%.*s' is not one mParticle "
                    "accepts",
                    idt->type == AVRO_STRING && idt->n < 64 ? (int)idt->n : 0,
                    idt->type == AVRO_STRING ? idt->v.p : "");
                return RELAY_FATAL;
        }
        if (env == 1)
                PUT(b, "{\"schema_version\":2,\"environment\":"
                       "\"development\",\"source_request_id\":");
        else
                PUT(b, "{\"schema_version\":2,\"environment\":"
                       "\"production\",\"source_request_id\":");
        size_t id = b->len; /* the event repeats it too */
        put_field_str(b, ix, rec, RELAY_OUT_EVENT_ID);
        size_t id_len = b->len - id;
        PUT(b, ",\"timestamp_unixtime_ms\":");
        size_t ts = b->len; /* the event repeats it */
        put_text(b, relay_out_get(ix, rec, RELAY_OUT_OCCURRED_AT));
        size_t ts_len = b->len - ts;
        PUT(b, ",\"user_identities\":{\"");
        /* one of mparticle_identities (checked above): nothing to escape */
        relay_buf_append(b, idt->v.p, idt->n);
        PUT(b, "\":");
        put_field_str(b, ix, rec, RELAY_OUT_IDENTITY_VALUE);
        PUT(b, "},\"user_attributes\":");
        if (put_map(b, ix, rec, RELAY_OUT_USER_ATTRIBUTES,
                    (size_t)mp->max_user_attrs, errstr, errstr_size))
                return RELAY_FATAL;
        PUT(b, ",\"events\":[");
        size_t before = b->len;
        PUT(b, "{\"event_type\":\"custom_event\",\"data\":{"
               "\"event_name\":");
        if (put_field_str(b, ix, rec, RELAY_OUT_EVENT_NAME) == 0) {
                PUT(b, ",\"custom_event_type\":");
                if (put_field_str(b, ix, rec, RELAY_OUT_EVENT_CATEGORY))
                        PUT(b, "\"other\"");
                PUT(b, ",\"source_message_id\":");
                put_again(b, id, id_len);
                PUT(b, ",\"timestamp_unixtime_ms\":");
                put_again(b, ts, ts_len);
                PUT(b, ",\"custom_attributes\":");
                if (put_map(b, ix, rec, RELAY_OUT_ATTRIBUTES, 10000, errstr,
                            errstr_size))
                        return RELAY_FATAL;
                PUT(b, "}}");
        } else {
                b->len = before; /* profile-only update: no event */
        }
        PUT(b, "]}");
        if (b->len - start > (size_t)mp->max_batch) {
                relay_seterr(errstr, errstr_size,
                             "batch of %zu bytes exceeds mParticle's batch "
                             "limit of %lld",
                             b->len - start, mp->max_batch);
                return RELAY_FATAL;
        }
        return RELAY_OK;
}

static void mparticle_limits(void *state, size_t *max_items, size_t *max_bytes)
{
        struct mparticle *mp = state;
        *max_items = (size_t)mp->max_items;
        *max_bytes = (size_t)mp->max_request - 2; /* the array's brackets */
}

static void mparticle_request(void *state, const relay_buf_t *items, size_t n,
                              relay_buf_t *body, relay_http_request_t *req)
{
        struct mparticle *mp = state;
        relay_buf_reset(body);
        relay_adapter_join(body, "[", items, n, "]");
        memset(req, 0, sizeof(*req));
        req->method = "POST";
        req->url = mp->url;
        req->headers[0] = "Content-Type: application/json";
        req->userpwd = mp->userpwd;
        req->body = body->data;
        req->body_len = body->len;
}

static enum relay_result mparticle_classify(void *state,
                                            const relay_http_response_t *resp,
                                            char *errstr, size_t errstr_size)
{
        enum relay_result r = relay_http_classify(resp);
        if (r == RELAY_OK) {
                /* 202 carries no body; bulk partial failures are invisible
                 * to us (documented), so anything else is only noted. */
                if (resp->body.len) {
                        json_t *j = json_loadb(resp->body.data, resp->body.len,
                                               0, NULL);
                        if (!j)
                                relay_log(LOG_WARNING, "mparticle",
                                          "HTTP %ld with an unparseable body "
                                          "(%.80s); counted as delivered",
                                          resp->status, resp->body.data);
                        json_decref(j);
                }
                return r;
        }
        if (resp->transport_error) {
                relay_seterr(errstr, errstr_size, "%s", resp->error);
                return r;
        }
        /* {"errors":[{"code":"BAD_REQUEST","message":"..."}]} */
        const char *msg = NULL;
        json_t *j = json_loadb(resp->body.data ? resp->body.data : "",
                               resp->body.len, 0, NULL);
        json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
        msg = json_string_value(json_object_get(e0, "message"));
        relay_seterr(errstr, errstr_size, "HTTP %ld: %.300s", resp->status,
                     msg ? msg
                         : (resp->body.data ? resp->body.data : "(no body)"));
        json_decref(j);
        return r;
}

const struct relay_adapter relay_adapter_mparticle = {
    .name = "mparticle",
    .props = mparticle_props,
    .event_categories = mparticle_event_types,
    .identity_types = mparticle_identities,
    .init = mparticle_init,
    .encode = mparticle_encode,
    .limits = mparticle_limits,
    .request = mparticle_request,
    .classify = mparticle_classify,
    .term = mparticle_term,
};
