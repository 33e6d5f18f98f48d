/*
 * CM.com Customer Data Platform, Events API v1.0, batch endpoint:
 *
 *   POST <cmcdp.url>/events/v1.0/tenants/<cmcdp.tenant_id>/events
 *   [{"EventTypeId":"<guid>","Event":{<flat fields>}}, ...]
 *
 * The batch endpoint rather than the per-type one (.../events/<type id>)
 * so that one request carries records of several event types.
 *
 * An event type is a GUID defined in the CDP ("Sources"); the record's
 * event_name picks it through cmcdp.event_types, "Name=guid,Name2=guid2"
 * (a string: the conf table has no list type). A record whose event_name is
 * not there, or that has none (a profile-only update: the Events API has
 * no such thing), can never be sent: RELAY_FATAL, dead-lettered.
 *
 * The Event object is flat, its field names those of the event type's
 * definition:
 *   <identity field>: identity_value, where the field is
 *       cmcdp.identity_field, or when unset "Email Address" for identity
 *       type email and the identity type itself for any other;
 *   every user attribute, then every attribute (an attribute and a user
 *       attribute of the same name: the attribute's value, written once);
 *   "occurred_at": ISO-8601 UTC with milliseconds.
 * The identity field and occurred_at are the record's own: an attribute of
 * either name is left out rather than sent as a duplicate JSON key.
 *
 * The product token goes in the X-CM-PRODUCTTOKEN header, or with
 * cmcdp.token_in = "query" as ?producttoken= (CM documents the query form
 * for the per-type endpoint; the header is the documented one here).
 * tenant_id and each event type id must be GUIDs: checked at init.
 *
 * CM.com publishes no request limits, status codes or rate limits
 * (PLATFORMS.md: unconfirmed): the limits are settings, and classify
 * follows HTTP: 400/413/422 (and other 4xx the engine does not read itself)
 * the record's fault, 408/429/5xx retried, 401/403/404 left to the engine,
 * which reads them as the token or tenant refused and pauses.
 *
 * There is no vocabulary: any event category and identity type goes.
 */
#include "relay/adapter.h"
#include "relay/avro.h"
#include "relay/log.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One entry of cmcdp.event_types. The name points into cmcdp.types_text. */
struct cmcdp_type {
        const char *name;
        size_t name_len;
        char id[37]; /* the GUID as written, NUL-terminated */
};

/* What the adapter runs on. The first block is written by
 * relay_conf_bind() from cmcdp_props (strings owned by the conf); the rest
 * is built from it by cmcdp_init(). */
struct cmcdp {
        const char *base_url;       /* cmcdp.url */
        const char *tenant_id;      /* cmcdp.tenant_id */
        const char *token;          /* cmcdp.product_token */
        const char *token_in;       /* cmcdp.token_in */
        const char *event_types;    /* cmcdp.event_types */
        const char *identity_field; /* cmcdp.identity_field, NULL if unset */
        long long max_items, max_request;

        char *url;          /* the batch endpoint (and ?producttoken=), owned */
        char *token_header; /* "X-CM-PRODUCTTOKEN: <token>" or NULL, owned */
        char *types_text;   /* a copy of event_types the names point into */
        struct cmcdp_type *types; /* owned, ntypes of them */
        size_t ntypes;
        relay_out_index_t out; /* the envelope's slots */
};

/* The keys are REQUIRED_IF_USED, not REQUIRED: every adapter's table is
 * declared in each deliver worker, but only this platform's count. */
static const relay_conf_prop_t cmcdp_props[] = {
    {"cmcdp.url", RELAY_CONF_STRING, "https://api.cdp.cm.com", 0, -1,
     RELAY_CONF_BIND, "base URL of the CM.com CDP API (http:// or https://)",
     offsetof(struct cmcdp, base_url)},
    {"cmcdp.tenant_id", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "CDP tenant, a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
     offsetof(struct cmcdp, tenant_id)},
    {"cmcdp.product_token", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET | RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "the tenant's product token (X-CM-PRODUCTTOKEN)",
     offsetof(struct cmcdp, token)},
    {"cmcdp.token_in", RELAY_CONF_STRING, "header", 0, -1, RELAY_CONF_BIND,
     "where the product token goes: \"header\" (X-CM-PRODUCTTOKEN) or "
     "\"query\" (?producttoken=)",
     offsetof(struct cmcdp, token_in)},
    {"cmcdp.event_types", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "event name to CDP event type GUID, \"Name=guid,Name2=guid2\"; a "
     "record whose event_name is not here is dead-lettered",
     offsetof(struct cmcdp, event_types)},
    {"cmcdp.identity_field", RELAY_CONF_STRING, NULL, 0, -1, RELAY_CONF_BIND,
     "Event field of the identity value; unset: \"Email Address\" for "
     "identity type email, else the identity type itself",
     offsetof(struct cmcdp, identity_field)},
    {"cmcdp.max_events_per_request", RELAY_CONF_INT, "100", 1, 10000,
     RELAY_CONF_BIND,
     "events (records) per request; CM.com publishes no limit "
     "(unconfirmed)",
     offsetof(struct cmcdp, max_items)},
    {"cmcdp.max_request_bytes", RELAY_CONF_INT, "1048576", 1024, 16777216,
     RELAY_CONF_BIND,
     "largest request body sent, a larger single event is dead-lettered; "
     "CM.com publishes no limit (unconfirmed)",
     offsetof(struct cmcdp, max_request)},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

/* A literal of the request, appended. */
#define PUT(b, lit) relay_buf_append((b), (lit), sizeof(lit) - 1)

#define BODY_HEAD "["
#define BODY_TAIL "]"
#define GUID_LEN  36
#define OCCURRED  "occurred_at"

/* Whether s[0..n) is a GUID: 8-4-4-4-12 hex digits, either case. */
static int is_guid(const char *s, size_t n)
{
        if (n != GUID_LEN)
                return 0;
        for (size_t i = 0; i < n; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return 0;
                } else if (!isxdigit((unsigned char)s[i])) {
                        return 0;
                }
        }
        return 1;
}

/* s[0..*n) without the white space around it. */
static const char *trim(const char *s, size_t *n)
{
        while (*n && isspace((unsigned char)*s)) {
                s++;
                (*n)--;
        }
        while (*n && isspace((unsigned char)s[*n - 1]))
                (*n)--;
        return s;
}

/* cmcdp.event_types into cd->types. 0, or -1 with errstr naming the key
 * and the entry. */
static int parse_types(struct cmcdp *cd, char *errstr, size_t errstr_size)
{
        size_t cap = 1;
        for (const char *p = cd->event_types; *p; p++)
                cap += *p == ',';
        cd->types_text = relay_strdup(cd->event_types);
        cd->types = relay_calloc(cap, sizeof(*cd->types));
        char *p = cd->types_text;
        for (size_t k = 1;; k++) {
                char *end = strchr(p, ',');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                char *eq = memchr(p, '=', len);
                if (!eq) {
                        size_t tl = len;
                        const char *t = trim(p, &tl);
                        relay_seterr(errstr, errstr_size,
                                     "cmcdp.event_types: entry %zu '%.*s' is "
                                     "not Name=guid",
                                     k, (int)(tl > 100 ? 100 : tl), t);
                        return -1;
                }
                size_t nl = (size_t)(eq - p), il = len - nl - 1;
                const char *name = trim(p, &nl), *id = trim(eq + 1, &il);
                if (!nl) {
                        relay_seterr(errstr, errstr_size,
                                     "cmcdp.event_types: entry %zu has no "
                                     "event name before '='",
                                     k);
                        return -1;
                }
                if (!is_guid(id, il)) {
                        relay_seterr(errstr, errstr_size,
                                     "cmcdp.event_types: the event type id "
                                     "'%.*s' of '%.*s' is not a GUID",
                                     (int)(il > 100 ? 100 : il), id,
                                     (int)(nl > 100 ? 100 : nl), name);
                        return -1;
                }
                for (size_t j = 0; j < cd->ntypes; j++)
                        if (cd->types[j].name_len == nl &&
                            !memcmp(cd->types[j].name, name, nl)) {
                                relay_seterr(errstr, errstr_size,
                                             "cmcdp.event_types: event '%.*s' "
                                             "is given twice",
                                             (int)(nl > 100 ? 100 : nl),
                                             name);
                                return -1;
                        }
                struct cmcdp_type *t = &cd->types[cd->ntypes++];
                t->name = name;
                t->name_len = nl;
                memcpy(t->id, id, GUID_LEN);
                t->id[GUID_LEN] = '\0';
                if (!end)
                        break;
                p = end + 1;
        }
        return 0;
}

/* Append s with every byte but RFC 3986's unreserved ones %-escaped. */
static void put_query_value(relay_buf_t *b, const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (isalnum(c) || c == '-' || c == '_' || c == '.' ||
                    c == '~') {
                        relay_buf_append(b, s, 1);
                } else {
                        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
                        relay_buf_append(b, e, 3);
                }
        }
}

static void cmcdp_term(void *state)
{
        struct cmcdp *cd = state;
        if (!cd)
                return;
        free(cd->url);
        if (cd->token_header)
                memset(cd->token_header, 0, strlen(cd->token_header));
        free(cd->token_header);
        free(cd->types_text);
        free(cd->types);
        free(cd);
}

static int cmcdp_init(void **state, const relay_conf_t *conf, char *errstr,
                      size_t errstr_size)
{
        if (relay_conf_require_table(conf, cmcdp_props, errstr, errstr_size))
                return -1;
        struct cmcdp *cd = relay_calloc(1, sizeof(*cd));
        relay_conf_bind(conf, cmcdp_props, cd);
        int query = !strcmp(cd->token_in, "query");
        if (!query && strcmp(cd->token_in, "header")) {
                relay_seterr(errstr, errstr_size,
                             "cmcdp.token_in '%.100s' is neither \"header\" "
                             "nor \"query\"",
                             cd->token_in);
                goto fail;
        }
        if (strncmp(cd->base_url, "http://", 7) &&
            strncmp(cd->base_url, "https://", 8)) {
                relay_seterr(errstr, errstr_size,
                             "cmcdp.url '%.200s' is not an http:// or "
                             "https:// URL",
                             cd->base_url);
                goto fail;
        }
        if (!is_guid(cd->tenant_id, strlen(cd->tenant_id))) {
                relay_seterr(errstr, errstr_size,
                             "cmcdp.tenant_id '%.100s' is not a GUID "
                             "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                             cd->tenant_id);
                goto fail;
        }
        if (!cd->token[0]) {
                relay_seterr(errstr, errstr_size,
                             "cmcdp.product_token is empty");
                goto fail;
        }
        if (cd->identity_field && !cd->identity_field[0]) {
                relay_seterr(errstr, errstr_size,
                             "cmcdp.identity_field is empty");
                goto fail;
        }
        if (parse_types(cd, errstr, errstr_size))
                goto fail;

        relay_buf_t u;
        relay_buf_init(&u);
        size_t bl = strlen(cd->base_url);
        while (bl && cd->base_url[bl - 1] == '/')
                bl--;
        relay_buf_append(&u, cd->base_url, bl);
        relay_buf_printf(&u, "/events/v1.0/tenants/%s/events", cd->tenant_id);
        if (query) {
                relay_buf_puts(&u, "?producttoken=");
                put_query_value(&u, cd->token);
        }
        cd->url = u.data; /* NUL-terminated; the buffer's memory is ours */
        if (!query) {
                if (strpbrk(cd->token, "\r\n")) {
                        relay_seterr(errstr, errstr_size,
                                     "cmcdp.product_token holds a line "
                                     "break, which a header cannot carry");
                        goto fail;
                }
                relay_buf_t h;
                relay_buf_init(&h);
                relay_buf_printf(&h, "X-CM-PRODUCTTOKEN: %s", cd->token);
                cd->token_header = h.data;
        }
        *state = cd;
        return 0;
fail:
        cmcdp_term(cd);
        return -1;
}

/* The event type of event name s[0..n), or NULL. */
static const struct cmcdp_type *find_type(const struct cmcdp *cd,
                                          const char *s, size_t n)
{
        for (size_t i = 0; i < cd->ntypes; i++)
                if (cd->types[i].name_len == n &&
                    !memcmp(cd->types[i].name, s, n))
                        return &cd->types[i];
        return NULL;
}

/* Whether map slot map has a key k[0..n). */
static int map_has(const relay_slots_t *rec, const relay_slot_t *map,
                   const char *k, size_t n)
{
        size_t m = map->type == AVRO_MAP ? map->n : 0;
        for (size_t i = 0; i < m; i++) {
                const relay_slot_t *key = &rec->s[map->v.first + 2 * i];
                if (key->n == n && !memcmp(key->v.p, k, n))
                        return 1;
        }
        return 0;
}

/* Append the fields of map as ,"key":value, leaving out the keys the
 * record's own fields take (the identity field, occurred_at) and, when
 * over is not NULL, the keys over has (the attributes win). */
static void put_fields(relay_buf_t *b, const relay_slots_t *rec,
                       const relay_slot_t *map, const relay_slot_t *over,
                       const char *id_field, size_t id_len)
{
        size_t n = map->type == AVRO_MAP ? map->n : 0;
        for (size_t i = 0; i < n; i++) {
                const relay_slot_t *k = &rec->s[map->v.first + 2 * i];
                if ((k->n == id_len && !memcmp(k->v.p, id_field, id_len)) ||
                    (k->n == sizeof(OCCURRED) - 1 &&
                     !memcmp(k->v.p, OCCURRED, k->n)) ||
                    (over && map_has(rec, over, k->v.p, k->n)))
                        continue;
                PUT(b, ",");
                relay_buf_json_str(b, k->v.p, k->n);
                PUT(b, ":");
                relay_slot_json(k + 1, b);
        }
}

static enum relay_result cmcdp_encode(void *state, const relay_slots_t *rec,
                                      relay_buf_t *b, char *errstr,
                                      size_t errstr_size)
{
        struct cmcdp *cd = state;
        const relay_out_index_t *ix = relay_out_index(&cd->out, rec->shape);
        size_t start = b->len;

        const relay_slot_t *name = relay_out_get(ix, rec, RELAY_OUT_EVENT_NAME);
        if (name->type != AVRO_STRING) {
                relay_seterr(errstr, errstr_size,
                             "no CM.com event type for a record without an "
                             "event_name (cmcdp.event_types)");
                return RELAY_FATAL;
        }
        const struct cmcdp_type *t = find_type(cd, name->v.p, name->n);
        if (!t) {
                relay_seterr(errstr, errstr_size,
                             "no CM.com event type for event '%.*s' "
                             "(cmcdp.event_types)",
                             (int)(name->n > 100 ? 100 : name->n), name->v.p);
                return RELAY_FATAL;
        }
        int64_t at = relay_out_get(ix, rec, RELAY_OUT_OCCURRED_AT)->v.l;

        const relay_slot_t *itype =
            relay_out_get(ix, rec, RELAY_OUT_IDENTITY_TYPE);
        const char *id_field = cd->identity_field;
        size_t id_len = id_field ? strlen(id_field) : 0;
        if (!id_field && itype->n == 5 && !memcmp(itype->v.p, "email", 5)) {
                id_field = "Email Address";
                id_len = sizeof("Email Address") - 1;
        } else if (!id_field) {
                id_field = itype->v.p;
                id_len = itype->n;
        }
        const relay_slot_t *ival =
            relay_out_get(ix, rec, RELAY_OUT_IDENTITY_VALUE);
        const relay_slot_t *attrs =
            relay_out_get(ix, rec, RELAY_OUT_ATTRIBUTES);
        const relay_slot_t *uattrs =
            relay_out_get(ix, rec, RELAY_OUT_USER_ATTRIBUTES);

        PUT(b, "{\"EventTypeId\":\"");
        relay_buf_append(b, t->id, GUID_LEN);
        PUT(b, "\",\"Event\":{");
        relay_buf_json_str(b, id_field, id_len);
        PUT(b, ":");
        relay_buf_json_str(b, ival->v.p, ival->n);
        put_fields(b, rec, uattrs, attrs, id_field, id_len);
        put_fields(b, rec, attrs, NULL, id_field, id_len);
        PUT(b, ",\"" OCCURRED "\":");
        if (relay_buf_iso_ms(b, at)) {
                relay_seterr(errstr, errstr_size,
                             "occurred_at %lld ms is outside the years 0000 "
                             "to 9999",
                             (long long)at);
                return RELAY_FATAL;
        }
        PUT(b, "}}");

        size_t most = (size_t)cd->max_request - (sizeof(BODY_HEAD) - 1) -
                      (sizeof(BODY_TAIL) - 1);
        if (b->len - start > most) {
                relay_seterr(errstr, errstr_size,
                             "event of %zu bytes does not fit in a request "
                             "of cmcdp.max_request_bytes %lld",
                             b->len - start, cd->max_request);
                return RELAY_FATAL;
        }
        return RELAY_OK;
}

static void cmcdp_limits(void *state, size_t *max_items, size_t *max_bytes)
{
        struct cmcdp *cd = state;
        *max_items = (size_t)cd->max_items;
        /* The engine counts each item's bytes and one separator; the body
         * adds its brackets around them. */
        *max_bytes = (size_t)cd->max_request - (sizeof(BODY_HEAD) - 1) -
                     (sizeof(BODY_TAIL) - 1);
}

static void cmcdp_request(void *state, const relay_buf_t *items, size_t n,
                          relay_buf_t *body, relay_http_request_t *req)
{
        struct cmcdp *cd = state;
        relay_buf_reset(body);
        relay_adapter_join(body, BODY_HEAD, items, n, BODY_TAIL);

        memset(req, 0, sizeof(*req));
        req->method = "POST";
        req->url = cd->url;
        req->headers[0] = "Content-Type: application/json";
        req->headers[1] = cd->token_header; /* NULL with the query form */
        req->body = body->data;
        req->body_len = body->len;
}

/* Answers: the usual reading (no classify of its own, so
 * relay_adapter_answer): 2xx delivered; 408, 425, 429, 5xx, 3xx and
 * transport failures retried (the engine honours Retry-After); 401, 403 and 404 are the engine's to read
 * as a refused token or an unknown tenant (it pauses); 400, 413, 422 and
 * any other 4xx are the records' fault: the engine splits the request
 * down to the refused one and dead-letters it with the answer's text. */
const struct relay_adapter relay_adapter_cmcdp = {
    .name = "cmcdp",
    .props = cmcdp_props,
    .event_categories = NULL, /* any */
    .identity_types = NULL,   /* any */
    .init = cmcdp_init,
    .encode = cmcdp_encode,
    .limits = cmcdp_limits,
    .request = cmcdp_request,
    .classify = NULL, /* relay_adapter_answer, as said above */
    .term = cmcdp_term,
};
