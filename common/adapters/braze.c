/*
 * Braze REST API, POST <instance>/users/track.
 *
 * One out.braze record becomes up to two Braze objects, all carrying the
 * record's identifier:
 *
 *   identity_type "external_id" | "braze_id" | "email"
 *       → "external_id" | "braze_id" | "email": identity_value
 *   identity_type "user_alias"
 *       → "user_alias": {"alias_name": identity_value,
 *                        "alias_label": <braze.alias_label>}
 *   user_attributes, when not empty
 *       → attributes[]: {<identifier>, ...user_attributes}
 *   event_name set, event_category null or "custom_event"
 *       → events[]: {<identifier>, "name": event_name,
 *                    "time": occurred_at as "YYYY-MM-DDTHH:MM:SS.mmmZ",
 *                    "properties": attributes}
 *   event_category "purchase"
 *       → purchases[]: {<identifier>, "product_id": attributes.product_id
 *                       (event_name when absent), "currency":
 *                       attributes.currency, "price": attributes.price,
 *                       "quantity": attributes.quantity (1 when absent),
 *                       "time": ..., "properties": the other attributes}
 *
 * A purchase without currency or price, or a record with neither user
 * attributes nor an event, can never be sent: RELAY_FATAL with the reason.
 *
 * A request carries the objects of up to braze.max_objects_per_request
 * records (75, Braze's limit per array, so no array can pass it however the
 * records split into attributes, events and purchases). An item (what
 * encode() writes for one record) is a small fixed header with the lengths
 * of its attributes object and of its event or purchase object, then those
 * objects; request() places each into its array, in item order. Braze's
 * "minor errors" (a 2xx naming input_array and index of objects it refused)
 * are mapped back to their items by counting, in item order, the items
 * that gave an object to that array (braze_partial), so nothing about a
 * request is kept between request() and its answer: several may be in
 * flight at once.
 */
#define _GNU_SOURCE /* strcasestr */
#include "relay/adapter.h"
#include "relay/avro.h"
#include "relay/log.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What the adapter runs on. The first block is written by
 * relay_conf_bind() from braze_props (strings owned by the conf); the rest
 * is built from it by braze_init(). */
struct braze {
        const char *base_url; /* braze.url */
        const char *api_key;
        const char *alias_label; /* NULL when unset */
        long long max_items, max_request;

        char *url;             /* <base_url>/users/track, owned */
        char *auth;            /* "Authorization: Bearer <key>", owned */
        char *alias_tail;      /* ,"alias_label":"<label>"}, owned or NULL */
        relay_out_index_t out; /* the envelope's slots */
};

/* The keys are REQUIRED_IF_USED, not REQUIRED: every adapter's table is
 * declared in each deliver worker, but only this platform's count. */
static const relay_conf_prop_t braze_props[] = {
    {"braze.url", RELAY_CONF_STRING, "https://rest.iad-01.braze.com", 0, -1,
     RELAY_CONF_BIND,
     "REST endpoint of the Braze instance (e.g. https://rest.fra-01.braze.eu)",
     offsetof(struct braze, base_url)},
    {"braze.api_key", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET | RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "REST API key with the users.track permission",
     offsetof(struct braze, api_key)},
    {"braze.alias_label", RELAY_CONF_STRING, NULL, 0, -1, RELAY_CONF_BIND,
     "alias_label of user_alias identities (the identity value is the "
     "alias_name); a user_alias record without it is dead-lettered",
     offsetof(struct braze, alias_label)},
    {"braze.max_objects_per_request", RELAY_CONF_INT, "75", 1, 75,
     RELAY_CONF_BIND,
     "records per /users/track request; each gives at most one object to "
     "each array, so no array passes Braze's 75",
     offsetof(struct braze, max_items)},
    {"braze.max_request_bytes", RELAY_CONF_INT, "4194304", 1024, 67108864,
     RELAY_CONF_BIND,
     "largest request body sent (unconfirmed: Braze documents no size "
     "limit for /users/track); a larger record is dead-lettered",
     offsetof(struct braze, max_request)},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

/* An event_category of null means a custom event. */
static const char *const braze_categories[] = {"custom_event", "purchase",
                                               NULL};

enum braze_id { ID_EXTERNAL, ID_BRAZE, ID_EMAIL, ID_ALIAS };
static const char *const braze_identities[] = {"external_id", "braze_id",
                                               "email", "user_alias", NULL};

/* The item header; request() and partial() read it with memcpy, since an
 * item's bytes need not be aligned. */
enum braze_kind { KIND_NONE, KIND_EVENT, KIND_PURCHASE };
struct braze_item {
        uint32_t attrs; /* bytes of the attributes object, 0: none */
        uint32_t obj;   /* bytes of the event or purchase object, 0: none */
        uint32_t kind;  /* enum braze_kind of obj */
};

/* The three arrays of a request, in body order. */
static const char *const braze_arrays[] = {"attributes", "events",
                                           "purchases"};

static int braze_init(void **state, const relay_conf_t *conf, char *errstr,
                      size_t errstr_size)
{
        if (relay_conf_require_table(conf, braze_props, errstr, errstr_size))
                return -1;
        struct braze *bz = relay_calloc(1, sizeof(*bz));
        relay_conf_bind(conf, braze_props, bz);
        relay_buf_t b;
        relay_buf_init(&b);
        size_t bl = strlen(bz->base_url);
        while (bl && bz->base_url[bl - 1] == '/')
                bl--;
        relay_buf_append(&b, bz->base_url, bl);
        relay_buf_puts(&b, "/users/track");
        bz->url = b.data;
        relay_buf_init(&b);
        relay_buf_printf(&b, "Authorization: Bearer %s", bz->api_key);
        bz->auth = b.data;
        if (bz->alias_label) {
                relay_buf_init(&b);
                relay_buf_puts(&b, ",\"alias_label\":");
                relay_buf_json_str(&b, bz->alias_label,
                                   strlen(bz->alias_label));
                relay_buf_puts(&b, "}");
                bz->alias_tail = b.data;
        }
        *state = bz;
        return 0;
}

static void braze_term(void *state)
{
        struct braze *bz = state;
        if (!bz)
                return;
        free(bz->url);
        free(bz->auth);
        free(bz->alias_tail);
        free(bz);
}

/* A literal of the request, appended. */
#define PUT(b, lit) relay_buf_append((b), (lit), sizeof(lit) - 1)

static int key_is(const relay_slot_t *k, const char *name)
{
        size_t n = strlen(name);
        return k->n == n && !memcmp(k->v.p, name, n);
}

/* The purchase fields taken out of the attributes. */
static int purchase_key(const relay_slot_t *k)
{
        return key_is(k, "product_id") || key_is(k, "currency") ||
               key_is(k, "price") || key_is(k, "quantity");
}

/* Append the map field f as a JSON object's members (no braces), each
 * preceded by a comma when comma; skip(key) leaves a key out. */
static void put_members(relay_buf_t *b, const relay_slots_t *rec,
                        const relay_slot_t *map, int comma,
                        int (*skip)(const relay_slot_t *))
{
        size_t n = map->type == AVRO_MAP ? map->n : 0;
        for (size_t i = 0; i < n; i++) {
                const relay_slot_t *k = &rec->s[map->v.first + 2 * i];
                if (skip && skip(k))
                        continue;
                if (comma)
                        PUT(b, ",");
                comma = 1;
                relay_buf_json_str(b, k->v.p, k->n);
                PUT(b, ":");
                relay_slot_json(k + 1, b);
        }
}

/* The value of key name in map, or NULL. */
static const relay_slot_t *map_get(const relay_slots_t *rec,
                                   const relay_slot_t *map, const char *name)
{
        size_t n = map->type == AVRO_MAP ? map->n : 0;
        for (size_t i = 0; i < n; i++) {
                const relay_slot_t *k = &rec->s[map->v.first + 2 * i];
                if (key_is(k, name))
                        return k + 1;
        }
        return NULL;
}

/* Append the identifier member(s) that open every object of the record. */
static void put_identity(relay_buf_t *b, const struct braze *bz,
                         enum braze_id id, const relay_slot_t *v)
{
        switch (id) {
        case ID_EXTERNAL:
                PUT(b, "{\"external_id\":");
                break;
        case ID_BRAZE:
                PUT(b, "{\"braze_id\":");
                break;
        case ID_EMAIL:
                PUT(b, "{\"email\":");
                break;
        case ID_ALIAS:
                PUT(b, "{\"user_alias\":{\"alias_name\":");
                relay_buf_json_str(b, v->v.p, v->n);
                relay_buf_puts(b, bz->alias_tail);
                return;
        }
        relay_buf_json_str(b, v->v.p, v->n);
}

/* Milliseconds since the epoch from 1970 to the end of 9999, the range
 * the four-digit year of ISO-8601 covers. */
#define BRAZE_MAX_TIME_MS 253402300800000LL

/* A short text of a string slot for a reason ("" for other types). */
#define SHOWN(sl)                                                              \
        ((sl)->type == AVRO_STRING && (sl)->n < 64 ? (int)(sl)->n : 0),        \
            ((sl)->type == AVRO_STRING ? (sl)->v.p : "")

/* The purchase object's members after the identifier. RELAY_FATAL with
 * the reason when a field Braze requires is missing or of a wrong type. */
static enum relay_result put_purchase(relay_buf_t *b, const relay_slots_t *rec,
                                      const relay_slot_t *attrs,
                                      const relay_slot_t *name, char *errstr,
                                      size_t errstr_size)
{
        const relay_slot_t *pid = map_get(rec, attrs, "product_id");
        const relay_slot_t *cur = map_get(rec, attrs, "currency");
        const relay_slot_t *price = map_get(rec, attrs, "price");
        const relay_slot_t *qty = map_get(rec, attrs, "quantity");

        if (!pid || pid->type == AVRO_NULL)
                pid = name;
        if (pid->type != AVRO_STRING && pid->type != AVRO_INT64) {
                relay_seterr(errstr, errstr_size,
                             "purchase without product_id: no "
                             "attributes.product_id and no event_name");
                return RELAY_FATAL;
        }
        if (!cur || cur->type == AVRO_NULL) {
                relay_seterr(errstr, errstr_size,
                             "purchase without currency: "
                             "attributes.currency is missing");
                return RELAY_FATAL;
        }
        if (cur->type != AVRO_STRING || cur->n != 3) {
                relay_seterr(errstr, errstr_size,
                             "purchase currency '%.*s' is not a three-letter "
                             "ISO 4217 code",
                             SHOWN(cur));
                return RELAY_FATAL;
        }
        if (!price || price->type == AVRO_NULL) {
                relay_seterr(errstr, errstr_size,
                             "purchase without price: attributes.price is "
                             "missing");
                return RELAY_FATAL;
        }
        if (price->type != AVRO_INT64 &&
            (price->type != AVRO_DOUBLE || !isfinite(price->v.d))) {
                relay_seterr(errstr, errstr_size,
                             "purchase price is not a number: "
                             "attributes.price must be a long or a double");
                return RELAY_FATAL;
        }
        if (qty && qty->type != AVRO_NULL &&
            (qty->type != AVRO_INT64 || qty->v.l < 1)) {
                relay_seterr(errstr, errstr_size,
                             "purchase quantity is not a positive whole "
                             "number (attributes.quantity)");
                return RELAY_FATAL;
        }
        PUT(b, ",\"product_id\":");
        if (pid->type == AVRO_STRING) {
                relay_buf_json_str(b, pid->v.p, pid->n);
        } else {
                PUT(b, "\"");
                relay_slot_scalar_text(pid, b);
                PUT(b, "\"");
        }
        PUT(b, ",\"currency\":");
        relay_buf_json_str(b, cur->v.p, cur->n);
        PUT(b, ",\"price\":");
        relay_slot_scalar_text(price, b);
        PUT(b, ",\"quantity\":");
        if (qty && qty->type == AVRO_INT64)
                relay_slot_scalar_text(qty, b);
        else
                PUT(b, "1");
        return RELAY_OK;
}

static enum relay_result braze_encode(void *state, const relay_slots_t *rec,
                                      relay_buf_t *b, char *errstr,
                                      size_t errstr_size)
{
        struct braze *bz = state;
        const relay_out_index_t *ix = relay_out_index(&bz->out, rec->shape);
        const relay_slot_t *idt =
            relay_out_get(ix, rec, RELAY_OUT_IDENTITY_TYPE);
        const relay_slot_t *idv =
            relay_out_get(ix, rec, RELAY_OUT_IDENTITY_VALUE);
        const relay_slot_t *name = relay_out_get(ix, rec, RELAY_OUT_EVENT_NAME);
        const relay_slot_t *cat =
            relay_out_get(ix, rec, RELAY_OUT_EVENT_CATEGORY);
        const relay_slot_t *attrs =
            relay_out_get(ix, rec, RELAY_OUT_ATTRIBUTES);
        const relay_slot_t *uattrs =
            relay_out_get(ix, rec, RELAY_OUT_USER_ATTRIBUTES);
        int64_t at = relay_out_get(ix, rec, RELAY_OUT_OCCURRED_AT)->v.l;
        size_t start = b->len;
        struct braze_item h = {0, 0, KIND_NONE};

        /* An identifier Braze does not know would make every object of the
         * request invalid; refuse the record alone instead. */
        int id = -1;
        for (int i = 0; idt->type == AVRO_STRING && braze_identities[i]; i++)
                if (key_is(idt, braze_identities[i]))
                        id = i;
        if (id < 0) {
                relay_seterr(errstr, errstr_size,
                             "identity type '%.*s' is not one Braze accepts "
                             "(external_id, braze_id, email, user_alias)",
                             SHOWN(idt));
                return RELAY_FATAL;
        }
        if (id == ID_ALIAS && !bz->alias_tail) {
                relay_seterr(errstr, errstr_size,
                             "identity type user_alias needs braze.alias_label "
                             "to be set");
                return RELAY_FATAL;
        }
        int purchase = cat->type == AVRO_STRING && key_is(cat, "purchase");
        if (cat->type == AVRO_STRING && !purchase &&
            !key_is(cat, "custom_event")) {
                relay_seterr(errstr, errstr_size,
                             "event category '%.*s' is not one Braze accepts "
                             "(custom_event, purchase, or null)",
                             SHOWN(cat));
                return RELAY_FATAL;
        }
        int event = !purchase && name->type == AVRO_STRING;
        size_t nuser = uattrs->type == AVRO_MAP ? uattrs->n : 0;
        if (!nuser && !event && !purchase) {
                relay_seterr(errstr, errstr_size,
                             "nothing to send: no user_attributes, no "
                             "event_name");
                return RELAY_FATAL;
        }
        if ((event || purchase) && (at < 0 || at >= BRAZE_MAX_TIME_MS)) {
                relay_seterr(errstr, errstr_size,
                             "occurred_at %lld is outside the years "
                             "1970-9999",
                             (long long)at);
                return RELAY_FATAL;
        }

        relay_buf_append(b, &h, sizeof(h));
        if (nuser) {
                /* A user attribute named like an identifier would be a
                 * second identifier (or a repeated key) in the object. */
                for (size_t i = 0; i < nuser; i++) {
                        const relay_slot_t *k =
                            &rec->s[uattrs->v.first + 2 * i];
                        if (key_is(k, "external_id") || key_is(k, "braze_id") ||
                            key_is(k, "user_alias") ||
                            (id == ID_EMAIL && key_is(k, "email"))) {
                                relay_seterr(errstr, errstr_size,
                                             "user attribute '%.*s' would be "
                                             "a second identifier",
                                             (int)k->n, k->v.p);
                                b->len = start;
                                return RELAY_FATAL;
                        }
                }
                size_t from = b->len;
                put_identity(b, bz, (enum braze_id)id, idv);
                put_members(b, rec, uattrs, 1, NULL);
                PUT(b, "}");
                h.attrs = (uint32_t)(b->len - from);
        }
        if (event || purchase) {
                size_t from = b->len;
                put_identity(b, bz, (enum braze_id)id, idv);
                if (event) {
                        PUT(b, ",\"name\":");
                        relay_buf_json_str(b, name->v.p, name->n);
                } else if (put_purchase(b, rec, attrs, name, errstr,
                                        errstr_size) != RELAY_OK) {
                        b->len = start;
                        return RELAY_FATAL;
                }
                PUT(b, ",\"time\":");
                relay_buf_iso_ms(b, at); /* in range: checked above */
                PUT(b, ",\"properties\":{");
                put_members(b, rec, attrs, 0, purchase ? purchase_key : NULL);
                PUT(b, "}}");
                h.obj = (uint32_t)(b->len - from);
                h.kind = event ? KIND_EVENT : KIND_PURCHASE;
        }
        if (b->len - start > (size_t)bz->max_request - 64) {
                relay_seterr(errstr, errstr_size,
                             "record of %zu bytes exceeds the request limit "
                             "of %lld (braze.max_request_bytes)",
                             b->len - start, bz->max_request);
                b->len = start;
                return RELAY_FATAL;
        }
        memcpy(b->data + start, &h, sizeof(h));
        return RELAY_OK;
}

static void braze_limits(void *state, size_t *max_items, size_t *max_bytes)
{
        struct braze *bz = state;
        *max_items = (size_t)bz->max_items;
        /* The three arrays' names and brackets; an item's header is longer
         * than the comma that replaces it in the body. */
        *max_bytes = (size_t)bz->max_request - 64;
}

/* The object item gives to array a (0 attributes, 1 events, 2 purchases):
 * its bytes into *p, its length (0 when it gives none). */
static size_t item_part(const relay_buf_t *item, int a, const char **p)
{
        struct braze_item h;
        if (item->len < sizeof(h))
                return 0;
        memcpy(&h, item->data, sizeof(h));
        *p = item->data + sizeof(h);
        if (a == 0)
                return h.attrs;
        *p += h.attrs;
        if ((a == 1 && h.kind == KIND_EVENT) ||
            (a == 2 && h.kind == KIND_PURCHASE))
                return h.obj;
        return 0;
}

static void braze_request(void *state, const relay_buf_t *items, size_t n,
                          relay_buf_t *body, relay_http_request_t *req)
{
        struct braze *bz = state;
        size_t total = 64;
        for (size_t i = 0; i < n; i++)
                total += items[i].len + 1;
        relay_buf_reset(body);
        relay_buf_reserve(body, total);
        PUT(body, "{");
        int arrays = 0;
        for (int a = 0; a < 3; a++) {
                size_t objects = 0;
                for (size_t i = 0; i < n; i++) {
                        const char *p = NULL;
                        size_t len = item_part(&items[i], a, &p);
                        if (!len)
                                continue;
                        if (!objects++) {
                                if (arrays++)
                                        PUT(body, ",");
                                PUT(body, "\"");
                                relay_buf_puts(body, braze_arrays[a]);
                                PUT(body, "\":[");
                        } else {
                                PUT(body, ",");
                        }
                        relay_buf_append(body, p, len);
                }
                if (objects)
                        PUT(body, "]");
        }
        PUT(body, "}");
        memset(req, 0, sizeof(*req));
        req->method = "POST";
        req->url = bz->url;
        req->headers[0] = "Content-Type: application/json";
        req->headers[1] = bz->auth;
        req->body = body->data;
        req->body_len = body->len;
}

static enum relay_result braze_classify(void *state,
                                        const relay_http_response_t *resp,
                                        char *errstr, size_t errstr_size)
{
        (void)state;
        enum relay_result r = relay_http_classify(resp);
        if (resp->transport_error) {
                relay_seterr(errstr, errstr_size, "%s", resp->error);
                return r;
        }
        json_t *j = resp->body.len ? json_loadb(resp->body.data,
                                                resp->body.len, 0, NULL)
                                   : NULL;
        const char *msg = json_string_value(json_object_get(j, "message"));
        if (r == RELAY_OK) {
                /* 201 {"message":"success"}, or 202 {"message":"queued"}
                 * while Braze is in maintenance: taken either way. */
                if (!msg)
                        relay_log(LOG_WARNING, "braze",
                                  "HTTP %ld without a message (%.80s); "
                                  "counted as delivered",
                                  resp->status,
                                  resp->body.data ? resp->body.data : "");
                json_decref(j);
                return r;
        }
        /* {"message":"<fatal error>","errors":[...]}; 401/403/404 the
         * engine reads as a refused key, 429 and 5xx as retries. */
        if (!msg)
                msg = resp->body.len ? resp->body.data : "(no body)";
        relay_seterr(errstr, errstr_size, "HTTP %ld: %.300s", resp->status,
                     msg);
        json_decref(j);
        return r;
}

/* Whether a minor error's type reads as the platform's trouble rather
 * than the object's: such an item is sent again, any other refused. */
static int transient_type(const char *type)
{
        static const char *const words[] = {
            "timeout", "timed out", "unavailable", "internal",  "try again",
            "retry",   "rate limit", "throttl",    "temporar", NULL};
        for (size_t i = 0; words[i]; i++)
                if (strcasestr(type, words[i]))
                        return 1;
        return 0;
}

/* Braze's minor errors: {"message":"success","errors":[{"type":"...",
 * "input_array":"events","index":3}, ...]}. Each names an object by its
 * array and index there; the item that gave it is found by counting the
 * items that gave that array an object, in item order, as request()
 * placed them. */
static int braze_partial(void *state, const relay_http_response_t *resp,
                         const relay_buf_t *items, size_t n,
                         relay_item_result_t *out)
{
        (void)state;
        if (!relay_http_body_has(resp, "\"errors\""))
                return 0;
        json_t *j = json_loadb(resp->body.data, resp->body.len, 0, NULL);
        json_t *errors = json_object_get(j, "errors");
        size_t nerr = json_array_size(errors), placed = 0;
        for (size_t i = 0; i < n; i++) {
                out[i].result = RELAY_OK;
                out[i].why[0] = '\0';
        }
        for (size_t e = 0; e < nerr; e++) {
                json_t *err = json_array_get(errors, e);
                const char *arr =
                    json_string_value(json_object_get(err, "input_array"));
                json_t *jix = json_object_get(err, "index");
                const char *type =
                    json_string_value(json_object_get(err, "type"));
                int a = -1;
                for (int k = 0; arr && k < 3; k++)
                        if (!strcmp(arr, braze_arrays[k]))
                                a = k;
                if (a < 0 || !json_is_integer(jix) ||
                    json_integer_value(jix) < 0) {
                        relay_log(LOG_WARNING, "braze",
                                  "a minor error that names no object "
                                  "(%.200s): the request's other objects "
                                  "count as delivered",
                                  type ? type : "no type");
                        continue;
                }
                size_t want = (size_t)json_integer_value(jix), seen = 0, i;
                for (i = 0; i < n; i++) {
                        const char *p;
                        if (item_part(&items[i], a, &p) && seen++ == want)
                                break;
                }
                if (i == n) {
                        relay_log(LOG_WARNING, "braze",
                                  "a minor error for %s[%zu], which the "
                                  "request does not have (%zu records)",
                                  arr, want, n);
                        continue;
                }
                placed++;
                if (!type)
                        type = "(no type)";
                enum relay_result r =
                    transient_type(type) ? RELAY_RETRY : RELAY_FATAL;
                /* A refusal outweighs a retry; the first reason stays. */
                if (out[i].result == RELAY_FATAL ||
                    (out[i].result == RELAY_RETRY && r == RELAY_RETRY))
                        continue;
                out[i].result = r;
                snprintf(out[i].why, sizeof(out[i].why),
                         "HTTP %ld: Braze refused %s[%zu]: %.180s",
                         resp->status, arr, want, type);
        }
        json_decref(j);
        return placed ? 1 : 0;
}

const struct relay_adapter relay_adapter_braze = {
    .name = "braze",
    .props = braze_props,
    .event_categories = braze_categories,
    .identity_types = braze_identities,
    .init = braze_init,
    .encode = braze_encode,
    .limits = braze_limits,
    .request = braze_request,
    .classify = braze_classify,
    .partial = braze_partial,
    .term = braze_term,
};
