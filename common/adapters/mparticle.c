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

        char *url;     /* <base_url>/bulkevents, owned */
        char *userpwd; /* key:secret for Basic auth, owned */
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

/* Append a scalar (the attribute maps' union) as JSON. -1 when too long. */
static int put_scalar(relay_buf_t *b, const avro_value_t *v)
{
        avro_value_t cur = *v, br;
        if (avro_value_get_type(&cur) == AVRO_UNION) {
                if (avro_value_get_current_branch(&cur, &br))
                        return 0;
                cur = br;
        }
        double d;
        switch (avro_value_get_type(&cur)) {
        case AVRO_STRING: {
                const char *s;
                size_t n;
                avro_value_get_string(&cur, &s, &n);
                n = n ? n - 1 : 0;
                if (n > MP_MAX_VALUE_CHARS)
                        return -1;
                relay_buf_json_str(b, s, n);
                return 0;
        }
        case AVRO_DOUBLE:
                /* JSON has no NaN or infinity; a finite double is written
                 * as the shortest text that reads back, below. */
                avro_value_get_double(&cur, &d);
                if (!isfinite(d)) {
                        relay_buf_puts(b, "null");
                        return 0;
                }
                /* fall through */
        case AVRO_INT64:
        case AVRO_BOOLEAN:
                relay_avro_to_text(&cur, b);
                return 0;
        default:
                relay_buf_puts(b, "null");
                return 0;
        }
}

/* Append a map field of the record as a JSON object. -1 + errstr. */
static int put_map(relay_buf_t *b, const avro_value_t *rec, const char *field,
                   size_t max_entries, char *errstr, size_t errstr_size)
{
        avro_value_t map, v;
        size_t n;
        avro_value_get_by_name(rec, field, &map, NULL);
        avro_value_get_size(&map, &n);
        if (n > max_entries) {
                relay_seterr(errstr, errstr_size,
                             "%zu %s; mParticle accepts at most %zu", n, field,
                             max_entries);
                return -1;
        }
        relay_buf_puts(b, "{");
        for (size_t i = 0; i < n; i++) {
                const char *name;
                avro_value_get_by_index(&map, i, &v, &name);
                if (i)
                        relay_buf_puts(b, ",");
                relay_buf_json_str(b, name, strlen(name));
                relay_buf_puts(b, ":");
                if (put_scalar(b, &v)) {
                        relay_seterr(errstr, errstr_size,
                                     "%s '%s' is longer than mParticle's %d "
                                     "characters",
                                     field, name, MP_MAX_VALUE_CHARS);
                        return -1;
                }
        }
        relay_buf_puts(b, "}");
        return 0;
}

/* Append the string field as JSON; 0, or -1 when null. */
static int put_field_str(relay_buf_t *b, const avro_value_t *rec,
                         const char *field)
{
        avro_value_t v, br;
        const char *s;
        size_t n;
        avro_value_get_by_name(rec, field, &v, NULL);
        if (avro_value_get_type(&v) == AVRO_UNION) {
                if (avro_value_get_current_branch(&v, &br) ||
                    avro_value_get_type(&br) != AVRO_STRING)
                        return -1;
                v = br;
        }
        if (avro_value_get_string(&v, &s, &n))
                return -1;
        relay_buf_json_str(b, s, n ? n - 1 : 0);
        return 0;
}

static enum relay_result mparticle_encode(void *state, const avro_value_t *rec,
                                          relay_buf_t *b, char *errstr,
                                          size_t errstr_size)
{
        struct mparticle *mp = state;
        avro_value_t v;
        int env = 0;
        int64_t ts = 0;
        size_t start = b->len;

        avro_value_get_by_name(rec, "environment", &v, NULL);
        avro_value_get_enum(&v, &env);
        avro_value_get_by_name(rec, "occurred_at", &v, NULL);
        avro_value_get_long(&v, &ts);

        /* An identity type mParticle does not know would fail the whole
         * request with a 400; refuse the record alone instead. */
        avro_value_get_by_name(rec, "identity_type", &v, NULL);
        const char *idt;
        size_t idn;
        if (avro_value_get_string(&v, &idt, &idn) ||
            !relay_adapter_vocab_has(mparticle_identities, idt) ||
            strlen(idt) + 1 != idn) {
                relay_seterr(errstr, errstr_size,
                             "identity type '%.64s' is not one mParticle "
                             "accepts",
                             idt ? idt : "");
                return RELAY_FATAL;
        }
        relay_buf_printf(b,
                         "{\"schema_version\":2,\"environment\":\"%s\","
                         "\"source_request_id\":",
                         env == 1 ? "development" : "production");
        put_field_str(b, rec, "event_id");
        relay_buf_printf(b,
                         ",\"timestamp_unixtime_ms\":%lld,"
                         "\"user_identities\":{",
                         (long long)ts);
        put_field_str(b, rec, "identity_type");
        relay_buf_puts(b, ":");
        put_field_str(b, rec, "identity_value");
        relay_buf_puts(b, "},\"user_attributes\":");
        if (put_map(b, rec, "user_attributes", (size_t)mp->max_user_attrs,
                    errstr, errstr_size))
                return RELAY_FATAL;
        relay_buf_puts(b, ",\"events\":[");
        size_t before = b->len;
        relay_buf_puts(b, "{\"event_type\":\"custom_event\",\"data\":{"
                          "\"event_name\":");
        if (put_field_str(b, rec, "event_name") == 0) {
                relay_buf_puts(b, ",\"custom_event_type\":");
                if (put_field_str(b, rec, "event_category"))
                        relay_buf_puts(b, "\"other\"");
                relay_buf_puts(b, ",\"source_message_id\":");
                put_field_str(b, rec, "event_id");
                relay_buf_printf(b,
                                 ",\"timestamp_unixtime_ms\":%lld,"
                                 "\"custom_attributes\":",
                                 (long long)ts);
                if (put_map(b, rec, "attributes", 10000, errstr, errstr_size))
                        return RELAY_FATAL;
                relay_buf_puts(b, "}}");
        } else {
                b->len = before; /* profile-only update: no event */
        }
        relay_buf_puts(b, "]}");
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
        relay_buf_puts(body, "[");
        for (size_t i = 0; i < n; i++) {
                if (i)
                        relay_buf_puts(body, ",");
                relay_buf_append(body, items[i].data, items[i].len);
        }
        relay_buf_puts(body, "]");
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
