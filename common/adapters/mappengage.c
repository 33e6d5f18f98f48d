/*
 * Mapp Engage (formerly Teradata / ECM) REST API v19: group membership
 * from audiences (PLATFORMS.md section 6).
 *
 * A record (envelope version 2) carries operations; each is one Engage
 * call, with HTTP Basic (mappengage.username, mappengage.password), Host
 * the web-service domain (mappengage.host, by default the URL's), Accept
 * and Content-Type application/json, parameters in the query string:
 *
 *   membership.add, by email  POST <url>/membership/subscribeByEmail
 *                             ?email=<enc>&groupId=<id>&subscriptionMode=<m>
 *   membership.remove, email  POST <url>/membership/unsubscribeByEmail
 *                             ?email=<enc>&groupId=<id>
 *   membership.add, user_id   POST <url>/membership/subscribe
 *                             ?userId=<id>&groupId=<id>&subscriptionMode=<m>
 *   membership.remove, uid    POST <url>/membership/unsubscribe
 *                             ?userId=<id>&groupId=<id>&unsubscriptionMode=<m>
 *
 * The identity is the identities map's "email" (or the record's primary
 * identity when its type is email), else its "user_id" (Engage's numeric
 * userId). unsubscribeByEmail is "unconfirmed" in PLATFORMS.md; it is in
 * Mapp's published per-endpoint OpenAPI (docs.mapp.com/apidocs, Membership)
 * with email and groupId, answering 204. The email is percent-encoded
 * except for unreserved characters and '@', so '+', '[' and ']' go as %2B,
 * %5B and %5D, as Mapp asks.
 *
 * An operation's target is a Mapp DMP audience (id or name); its Engage
 * group is the group named <mappengage.group_prefix><audience>, made the
 * first time the audience is met by cloning mappengage.default_group_id:
 *
 *   find   GET  <url>/group/find?name=<enc name>   (200: the groups)
 *   clone  POST <url>/group/clone?groupId=<default>  body GroupCloneOptions
 *          {"name", "description", "email", "includePreparedMessages",
 *           "includeTestUsers", "keepOwner", "withOwnerAsMember"} (200: the
 *          new group, {"id": ...})
 *
 * Neither call is in PLATFORMS.md. /group/clone and its options are Mapp's
 * (docs.mapp.com/apidocs/groupclone, groupcloneoptions); /group/find is in
 * Mapp's announcement "Work with Groups Through the REST API" (a paginated
 * list of groups with ids and names, "to resolve a group by name"), whose
 * parameter names were not found: the adapter sends name=<group name>,
 * reads the answer as an array of groups (or an object holding one) and
 * matches the name exactly itself. A clone needs a unique, valid group
 * email: <the name, lower case, [a-z0-9.-] only, 40 at most>-<8 hex of the
 * audience's FNV-1a>@<mappengage.group_email_domain>, the same on every try.
 *
 * Design (adapters never block): resolving a group goes through the
 * engine's own requests. The adapter keeps audience -> group id in its
 * state. encode() checks the record and writes an item (operation,
 * identity, audience) that does not depend on the group; request() looks
 * the audience up when the request leaves: a known group gives the
 * membership call; an unknown one the find call, or the clone call once a
 * find said there is none. Such an answer (a 2xx with a JSON body; the
 * membership calls answer 204 with none) is read by partial(), which has
 * the item: it records the group id (or "clone next") and hands the item
 * back as RELAY_RETRY, so the engine sends it again after a backoff and
 * request() now builds the next call. A new audience thus costs a find, a
 * clone and two short backoffs, once; after a restart (the state is
 * empty) the find returns the group, so nothing is cloned twice. Each such
 * step uses one of the record's deliver.max_attempts: give the worker two
 * more than it would otherwise need. Two lanes meeting the same new
 * audience at once: the one that builds the clone first marks it in
 * flight, the others find meanwhile; should two clones still race (or a
 * clone's answer be lost), Engage refuses the second name with 400
 * OBJECT_ALREADY_EXISTS, which classify() hands to partial() as well: the
 * audience goes back to find.
 *
 * Answers: 204/200 delivered; 400 the record's fault (dead-lettered with
 * the body: unknown recipient, bad email, archived group); 401, 403, 404
 * the engine's (it pauses and probes); 429 and 5xx retried.
 *
 * A request carries one record (limits) and a record one operation
 * (mappengage.max_operations_per_record is 1: a record of several would
 * need several calls for one item, which the engine cannot account for).
 * A record with no operation, an operation without a target, or no email
 * or user_id is dead-lettered with the reason.
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

enum group_state {
        G_FIND,  /* unknown: look it up by name next */
        G_CLONE, /* a find said there is none: clone next */
        G_KNOWN  /* id known */
};

struct audience {
        char *name; /* the audience (owned), not the group name */
        size_t len;
        uint32_t hash;
        enum group_state state;
        long long id;
        int64_t cloning_until; /* a clone in flight until (mono ms) */
};

/* What the adapter runs on. The first block is written by
 * relay_conf_bind() from mappengage_props (strings owned by the conf);
 * the rest is built from it by mappengage_init(). */
struct mappengage {
        const char *url_conf, *host_conf, *username, *password;
        const char *sub_mode, *unsub_mode, *prefix, *email_domain;
        long long default_group, max_ops, timeout_ms;

        char *base;    /* url without a trailing '/', owned */
        char *userpwd; /* "user:password", owned */
        char *host;    /* "Host: <domain>", owned */
        struct audience *aud;
        size_t naud, capaud;
        relay_out_index_t out; /* the envelope's slots */
};

static const relay_conf_prop_t mappengage_props[] = {
    {"mappengage.url", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "REST base up to the version, e.g. "
     "https://<your-engage-domain>/api/rest/v19",
     offsetof(struct mappengage, url_conf)},
    {"mappengage.host", RELAY_CONF_STRING, NULL, 0, -1, RELAY_CONF_BIND,
     "Host header, the web-service domain (default: the URL's host)",
     offsetof(struct mappengage, host_conf)},
    {"mappengage.username", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "API (or hybrid) system user for HTTP Basic",
     offsetof(struct mappengage, username)},
    {"mappengage.password", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET | RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "the system user's password", offsetof(struct mappengage, password)},
    {"mappengage.subscription_mode", RELAY_CONF_STRING, "OPT_IN", 0, -1,
     RELAY_CONF_BIND,
     "subscriptionMode of membership.add: OPT_IN, CONFIRMED_OPT_IN or "
     "DOUBLE_OPT_IN",
     offsetof(struct mappengage, sub_mode)},
    {"mappengage.unsubscription_mode", RELAY_CONF_STRING, "OPT_IN", 0, -1,
     RELAY_CONF_BIND,
     "unsubscriptionMode of membership.remove by user_id: OPT_IN or "
     "CONFIRMED_OPT_IN",
     offsetof(struct mappengage, unsub_mode)},
    {"mappengage.default_group_id", RELAY_CONF_INT, NULL, 1, INT64_MAX,
     RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "the group cloned for an audience met for the first time",
     offsetof(struct mappengage, default_group)},
    {"mappengage.group_prefix", RELAY_CONF_STRING, "relay-", 0, -1,
     RELAY_CONF_BIND, "an audience's group is named <prefix><audience>",
     offsetof(struct mappengage, prefix)},
    {"mappengage.group_email_domain", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "domain of the (unique) email a cloned group is given",
     offsetof(struct mappengage, email_domain)},
    {"mappengage.max_operations_per_record", RELAY_CONF_INT, "1", 1, 1,
     RELAY_CONF_BIND,
     "operations one record may carry; a record with more is "
     "dead-lettered (one call per record for now)",
     offsetof(struct mappengage, max_ops)},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

static const char *const mappengage_identities[] = {"email", "user_id",
                                                    NULL};
static const char *const mappengage_operations[] = {
    "membership.add", "membership.remove", NULL};

/* A clone is taken to be in flight this long (ms) after it was built; it
 * only keeps other lanes from cloning the same audience meanwhile. */
#define CLONE_WINDOW_MS 30000
#define MAX_AUDIENCE    150 /* Engage's group names are 150 at most */

/* The item: this header, then the audience, then the identity value
 * percent-encoded. request() and partial() read it with memcpy. */
enum op_kind { OP_ADD, OP_REMOVE };
enum id_kind { ID_EMAIL, ID_USER };
struct item_head {
        uint8_t op, id;
        uint16_t alen, vlen;
};

#define PUT(b, lit) relay_buf_append((b), (lit), sizeof(lit) - 1)

/* Percent-encode s[0..n) into b: all but unreserved characters and '@'. */
static void put_enc(relay_buf_t *b, const char *s, size_t n)
{
        static const char hex[] = "0123456789ABCDEF";
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                    c == '_' || c == '~' || c == '@') {
                        relay_buf_append(b, &s[i], 1);
                } else {
                        char t[3] = {'%', hex[c >> 4], hex[c & 15]};
                        relay_buf_append(b, t, 3);
                }
        }
}

static uint32_t fnv1a(const char *s, size_t n)
{
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < n; i++) {
                h ^= (unsigned char)s[i];
                h *= 16777619u;
        }
        return h;
}

static int mode_ok(const char *m, int with_double)
{
        return !strcmp(m, "OPT_IN") || !strcmp(m, "CONFIRMED_OPT_IN") ||
               (with_double && !strcmp(m, "DOUBLE_OPT_IN"));
}

static void mappengage_term(void *state)
{
        struct mappengage *me = state;
        if (!me)
                return;
        for (size_t i = 0; i < me->naud; i++)
                free(me->aud[i].name);
        free(me->aud);
        free(me->base);
        if (me->userpwd)
                memset(me->userpwd, 0, strlen(me->userpwd));
        free(me->userpwd);
        free(me->host);
        free(me);
}

static int mappengage_init(void **state, const relay_conf_t *conf,
                           char *errstr, size_t errstr_size)
{
        if (relay_conf_require_table(conf, mappengage_props, errstr,
                                     errstr_size))
                return -1;
        struct mappengage *me = relay_calloc(1, sizeof(*me));
        relay_conf_bind(conf, mappengage_props, me);
        const char *u = me->url_conf;
        size_t scheme = !strncmp(u, "https://", 8) ? 8
                        : !strncmp(u, "http://", 7) ? 7
                                                    : 0;
        if (!scheme) {
                relay_seterr(errstr, errstr_size,
                             "mappengage.url '%.200s' is not an http:// or "
                             "https:// URL",
                             u);
                goto fail;
        }
        if (strchr(me->username, ':')) {
                relay_seterr(errstr, errstr_size,
                             "mappengage.username may not contain ':' (HTTP "
                             "Basic cannot carry it)");
                goto fail;
        }
        if (!mode_ok(me->sub_mode, 1) || !mode_ok(me->unsub_mode, 0)) {
                relay_seterr(errstr, errstr_size,
                             "mappengage.subscription_mode '%.40s' or "
                             "unsubscription_mode '%.40s' is not one of "
                             "Engage's (OPT_IN, CONFIRMED_OPT_IN, and for "
                             "subscribing DOUBLE_OPT_IN)",
                             me->sub_mode, me->unsub_mode);
                goto fail;
        }
        relay_buf_t b;
        relay_buf_init(&b);
        size_t ul = strlen(u);
        while (ul > scheme && u[ul - 1] == '/')
                ul--;
        relay_buf_append(&b, u, ul);
        me->base = b.data;
        relay_buf_init(&b);
        relay_buf_printf(&b, "%s:%s", me->username, me->password);
        me->userpwd = b.data;
        relay_buf_init(&b);
        PUT(&b, "Host: ");
        if (me->host_conf) {
                relay_buf_puts(&b, me->host_conf);
        } else {
                const char *h = u + scheme;
                size_t hl = strcspn(h, "/?#");
                relay_buf_append(&b, h, hl);
        }
        me->host = b.data;
        *state = me;
        return 0;
fail:
        mappengage_term(me);
        return -1;
}

/* The audience entry for name (created in G_FIND when absent). */
static struct audience *audience_get(struct mappengage *me, const char *name,
                                     size_t len)
{
        uint32_t h = fnv1a(name, len);
        for (size_t i = 0; i < me->naud; i++) {
                struct audience *a = &me->aud[i];
                if (a->hash == h && a->len == len &&
                    !memcmp(a->name, name, len))
                        return a;
        }
        if (me->naud == me->capaud) {
                me->capaud = me->capaud ? 2 * me->capaud : 16;
                me->aud = relay_realloc(me->aud,
                                        me->capaud * sizeof(*me->aud));
        }
        struct audience *a = &me->aud[me->naud++];
        memset(a, 0, sizeof(*a));
        a->name = relay_malloc(len + 1);
        memcpy(a->name, name, len);
        a->name[len] = '\0';
        a->len = len;
        a->hash = h;
        return a;
}

/* The identity of rec: the identities map's email, the primary identity
 * when it is an email, else user_id (decimal digits only). 0 with *kind,
 * *v, *n; -1 when it has none. */
static int find_identity(const relay_out_index_t *ix, const relay_slots_t *rec,
                         int *kind, const char **v, size_t *n)
{
        const relay_slot_t *m = NULL;
        size_t nid = relay_out_identities(ix, rec, &m);
        const char *uid = NULL;
        size_t uidn = 0;
        for (size_t i = 0; i < nid; i++) {
                const relay_slot_t *k = relay_out_map_key(rec, m, i);
                const relay_slot_t *val = relay_out_map_value(rec, m, i);
                if (val->type != AVRO_STRING || !val->n)
                        continue;
                if (k->n == 5 && !memcmp(k->v.p, "email", 5)) {
                        *kind = ID_EMAIL;
                        *v = val->v.p;
                        *n = val->n;
                        return 0;
                }
                if (k->n == 7 && !memcmp(k->v.p, "user_id", 7)) {
                        uid = val->v.p;
                        uidn = val->n;
                }
        }
        const relay_slot_t *t = relay_out_get(ix, rec, RELAY_OUT_IDENTITY_TYPE);
        const relay_slot_t *pv =
            relay_out_get(ix, rec, RELAY_OUT_IDENTITY_VALUE);
        if (t->type == AVRO_STRING && pv->type == AVRO_STRING && pv->n) {
                if (t->n == 5 && !memcmp(t->v.p, "email", 5)) {
                        *kind = ID_EMAIL;
                        *v = pv->v.p;
                        *n = pv->n;
                        return 0;
                }
                if (!uid && t->n == 7 && !memcmp(t->v.p, "user_id", 7)) {
                        uid = pv->v.p;
                        uidn = pv->n;
                }
        }
        if (!uid)
                return -1;
        *kind = ID_USER;
        *v = uid;
        *n = uidn;
        return 0;
}

static enum relay_result mappengage_encode(void *state,
                                           const relay_slots_t *rec,
                                           relay_buf_t *b, char *errstr,
                                           size_t errstr_size)
{
        struct mappengage *me = state;
        const relay_out_index_t *ix = relay_out_index(&me->out, rec->shape);
        size_t nops = relay_out_ops(ix, rec);
        if (!nops) {
                relay_seterr(errstr, errstr_size,
                             "no operation: Mapp Engage takes "
                             "membership.add or membership.remove "
                             "(envelope version 2)");
                return RELAY_FATAL;
        }
        if (nops > (size_t)me->max_ops) {
                relay_seterr(errstr, errstr_size,
                             "%zu operations in one record; "
                             "mappengage.max_operations_per_record is %lld",
                             nops, me->max_ops);
                return RELAY_FATAL;
        }
        const relay_slot_t *op = relay_out_op_get(ix, rec, 0, RELAY_OUT_OP);
        struct item_head h = {0};
        if (op->n == 14 && !memcmp(op->v.p, "membership.add", 14)) {
                h.op = OP_ADD;
        } else if (op->n == 17 && !memcmp(op->v.p, "membership.remove", 17)) {
                h.op = OP_REMOVE;
        } else {
                relay_seterr(errstr, errstr_size,
                             "operation '%.*s' is not one Mapp Engage "
                             "performs (membership.add, membership.remove)",
                             (int)(op->n > 60 ? 60 : op->n),
                             (const char *)op->v.p);
                return RELAY_FATAL;
        }
        const relay_slot_t *tg =
            relay_out_op_get(ix, rec, 0, RELAY_OUT_OP_TARGET);
        if (tg->type != AVRO_STRING || !tg->n) {
                relay_seterr(errstr, errstr_size,
                             "%s without a target: the audience whose "
                             "group it changes is missing",
                             h.op == OP_ADD ? "membership.add"
                                            : "membership.remove");
                return RELAY_FATAL;
        }
        size_t plen = strlen(me->prefix);
        if (tg->n + plen > MAX_AUDIENCE) {
                relay_seterr(errstr, errstr_size,
                             "audience of %zu bytes: its group name would "
                             "pass Engage's 150 characters",
                             (size_t)tg->n);
                return RELAY_FATAL;
        }
        int kind;
        const char *v;
        size_t vn;
        if (find_identity(ix, rec, &kind, &v, &vn)) {
                relay_seterr(errstr, errstr_size,
                             "no email identity (nor user_id): Engage "
                             "membership needs the recipient's email");
                return RELAY_FATAL;
        }
        if (kind == ID_EMAIL && !memchr(v, '@', vn)) {
                relay_seterr(errstr, errstr_size,
                             "email identity '%.*s' has no '@'",
                             (int)(vn > 100 ? 100 : vn), v);
                return RELAY_FATAL;
        }
        if (kind == ID_USER && strspn(v, "0123456789") < vn) {
                relay_seterr(errstr, errstr_size,
                             "user_id '%.*s' is not Engage's numeric userId",
                             (int)(vn > 100 ? 100 : vn), v);
                return RELAY_FATAL;
        }
        h.id = (uint8_t)kind;
        h.alen = (uint16_t)tg->n;
        size_t at = b->len;
        relay_buf_append(b, &h, sizeof(h));
        relay_buf_append(b, tg->v.p, tg->n);
        size_t vat = b->len;
        put_enc(b, v, vn);
        if (b->len - vat > UINT16_MAX) {
                relay_seterr(errstr, errstr_size, "identity of %zu bytes",
                             vn);
                return RELAY_FATAL;
        }
        h.vlen = (uint16_t)(b->len - vat);
        memcpy(b->data + at, &h, sizeof(h));
        return RELAY_OK;
}

static void mappengage_limits(void *state, size_t *max_items,
                              size_t *max_bytes)
{
        (void)state;
        *max_items = 1;
        *max_bytes = SIZE_MAX / 2;
}

/* The parts of an item. */
static void item_parts(const relay_buf_t *item, struct item_head *h,
                       const char **aud, const char **val)
{
        memcpy(h, item->data, sizeof(*h));
        *aud = item->data + sizeof(*h);
        *val = *aud + h->alen;
}

/* The group name of audience aud, appended (JSON-escaped when json). */
static void put_group_name(struct mappengage *me, relay_buf_t *b,
                           const char *aud, size_t n, int json)
{
        if (json) {
                size_t at = b->len;
                relay_buf_puts(b, me->prefix);
                relay_buf_append(b, aud, n);
                size_t len = b->len - at;
                char *name = relay_malloc(len);
                memcpy(name, b->data + at, len);
                b->len = at;
                relay_buf_json_str(b, name, len);
                free(name);
                return;
        }
        put_enc(b, me->prefix, strlen(me->prefix));
        put_enc(b, aud, n);
}

/* The clone's group email: see the file's head. */
static void put_group_email(struct mappengage *me, relay_buf_t *b,
                            const char *aud, size_t n)
{
        size_t k = 0;
        for (const char *p = me->prefix; *p && k < 40; p++) {
                char c = *p >= 'A' && *p <= 'Z' ? (char)(*p + 32) : *p;
                if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.') {
                        relay_buf_append(b, &c, 1);
                        k++;
                }
        }
        for (size_t i = 0; i < n && k < 40; i++) {
                char c = aud[i] >= 'A' && aud[i] <= 'Z' ? (char)(aud[i] + 32)
                                                        : aud[i];
                if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.') {
                        relay_buf_append(b, &c, 1);
                        k++;
                }
        }
        relay_buf_printf(b, "-%08x@%s", (unsigned)fnv1a(aud, n),
                         me->email_domain);
}

/* The body buffer holds, in order: the request body, NUL, the URL, NUL;
 * they must live until the answer, and several requests may be under way,
 * each with its own body buffer. */
static void mappengage_request(void *state, const relay_buf_t *items,
                               size_t n, relay_buf_t *body,
                               relay_http_request_t *req)
{
        struct mappengage *me = state;
        struct item_head h;
        const char *aud, *val;
        (void)n; /* limits() keeps it 1 */
        item_parts(&items[0], &h, &aud, &val);
        struct audience *a = audience_get(me, aud, h.alen);
        int64_t now = relay_mono_ms();

        memset(req, 0, sizeof(*req));
        relay_buf_reset(body);
        size_t body_len = 0;
        const char *method = "POST";
        enum { CALL_MEMBER, CALL_FIND, CALL_CLONE } call;
        if (a->state == G_KNOWN)
                call = CALL_MEMBER;
        else if (a->state == G_CLONE && a->cloning_until <= now)
                call = CALL_CLONE;
        else
                call = CALL_FIND;

        if (call == CALL_CLONE) {
                a->cloning_until = now + CLONE_WINDOW_MS;
                PUT(body, "{\"name\":");
                put_group_name(me, body, aud, h.alen, 1);
                PUT(body, ",\"description\":");
                relay_buf_t d;
                relay_buf_init(&d);
                PUT(&d, "relay: Mapp DMP audience ");
                relay_buf_append(&d, aud, h.alen);
                relay_buf_json_str(body, d.data, d.len);
                relay_buf_free(&d);
                PUT(body, ",\"email\":\"");
                put_group_email(me, body, aud, h.alen);
                PUT(body, "\",\"includePreparedMessages\":false,"
                          "\"includeTestUsers\":false,\"keepOwner\":false,"
                          "\"withOwnerAsMember\":false}");
                body_len = body->len;
        }
        relay_buf_append(body, "", 1);
        size_t url_at = body->len;
        relay_buf_puts(body, me->base);
        switch (call) {
        case CALL_FIND:
                method = "GET";
                PUT(body, "/group/find?name=");
                put_group_name(me, body, aud, h.alen, 0);
                break;
        case CALL_CLONE:
                relay_buf_printf(body, "/group/clone?groupId=%lld",
                                 me->default_group);
                break;
        case CALL_MEMBER:
                if (h.id == ID_EMAIL) {
                        relay_buf_puts(body, h.op == OP_ADD
                                                 ? "/membership/subscribeByEmail"
                                                 : "/membership/"
                                                   "unsubscribeByEmail");
                        PUT(body, "?email=");
                } else {
                        relay_buf_puts(body, h.op == OP_ADD
                                                 ? "/membership/subscribe"
                                                 : "/membership/unsubscribe");
                        PUT(body, "?userId=");
                }
                relay_buf_append(body, val, h.vlen);
                relay_buf_printf(body, "&groupId=%lld", a->id);
                if (h.op == OP_ADD)
                        relay_buf_printf(body, "&subscriptionMode=%s",
                                         me->sub_mode);
                else if (h.id == ID_USER)
                        relay_buf_printf(body, "&unsubscriptionMode=%s",
                                         me->unsub_mode);
                break;
        }
        relay_buf_append(body, "", 1);

        req->method = method;
        req->url = body->data + url_at;
        req->userpwd = me->userpwd;
        req->headers[0] = me->host;
        req->headers[1] = "Accept: application/json";
        req->headers[2] = "Content-Type: application/json";
        req->body = body_len ? body->data : NULL;
        req->body_len = body_len;
}

/* 2xx delivered (a group step's answer goes on to partial()); 400
 * OBJECT_ALREADY_EXISTS is a clone that lost a race, also partial()'s;
 * other 400 and 4xx the record's; 401, 403, 404 the engine's (pause); 408,
 * 429, 5xx and transport failures retried. */
static enum relay_result mappengage_classify(void *state,
                                             const relay_http_response_t *resp,
                                             char *errstr, size_t errstr_size)
{
        (void)state;
        enum relay_result r = relay_adapter_answer(resp, errstr, errstr_size);
        if (r == RELAY_FATAL && resp->status == 400 &&
            relay_http_body_has(resp, "OBJECT_ALREADY_EXISTS"))
                return RELAY_OK;
        return r;
}

/* The id of the group named name in a find answer (an array of groups, or
 * an object holding one) or a clone answer (the group): -1 when absent. */
static long long group_id_in(json_t *j, const char *name, int depth)
{
        if (json_is_array(j)) {
                size_t i;
                json_t *e;
                json_array_foreach(j, i, e)
                {
                        long long id = group_id_in(e, name, depth + 1);
                        if (id > 0)
                                return id;
                }
                return -1;
        }
        if (!json_is_object(j) || depth > 2)
                return -1;
        json_t *nm = json_object_get(j, "name");
        json_t *id = json_object_get(j, "id");
        if (json_is_string(nm) && !strcmp(json_string_value(nm), name)) {
                if (json_is_integer(id))
                        return json_integer_value(id);
                if (json_is_string(id))
                        return strtoll(json_string_value(id), NULL, 10);
                return -1;
        }
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
                if (json_is_array(v)) {
                        long long gid = group_id_in(v, name, depth + 1);
                        if (gid > 0)
                                return gid;
                }
        }
        return -1;
}

/* A group step's answer (see the file's head): 0 for a membership call's
 * answer (the engine's verdict stands), 1 with out[0] for a find or
 * clone's. */
static int mappengage_partial(void *state, const relay_http_response_t *resp,
                              const relay_buf_t *items, size_t n,
                              relay_item_result_t *out)
{
        struct mappengage *me = state;
        struct item_head h;
        const char *aud, *val;
        if (n != 1)
                return 0;
        int exists = resp->status == 400;
        if (!exists && (resp->status == 204 || !resp->body.data ||
                        !resp->body.len))
                return 0;
        item_parts(&items[0], &h, &aud, &val);
        struct audience *a = audience_get(me, aud, h.alen);
        out[0].result = RELAY_RETRY;
        if (exists) {
                if (a->state != G_KNOWN)
                        a->state = G_FIND;
                a->cloning_until = 0;
                snprintf(out[0].why, sizeof(out[0].why),
                         "group of audience '%.60s' was created meanwhile: "
                         "looking it up by name",
                         a->name);
                return 1;
        }
        relay_buf_t nm;
        relay_buf_init(&nm);
        relay_buf_puts(&nm, me->prefix);
        relay_buf_append(&nm, aud, h.alen);
        relay_buf_append(&nm, "", 1);
        json_t *j = json_loadb(resp->body.data, resp->body.len,
                               JSON_DECODE_ANY, NULL);
        long long id = j ? group_id_in(j, nm.data, 0) : -1;
        int list = json_is_array(j) ||
                   (json_is_object(j) && !json_object_get(j, "id"));
        if (id > 0) {
                if (a->state != G_KNOWN)
                        relay_log(LOG_INFO, "mappengage",
                                  "audience '%.100s' is Engage group %lld "
                                  "(%.150s)",
                                  a->name, id, nm.data);
                a->state = G_KNOWN;
                a->id = id;
                a->cloning_until = 0;
                snprintf(out[0].why, sizeof(out[0].why),
                         "group %lld of audience '%.60s' found: membership "
                         "call next",
                         id, a->name);
        } else if (list) {
                if (a->state == G_FIND)
                        a->state = G_CLONE;
                snprintf(out[0].why, sizeof(out[0].why),
                         "no group '%.100s' yet: cloning group %lld next",
                         nm.data, me->default_group);
        } else {
                /* Neither a group list nor the group: not an answer the
                 * adapter knows. Sent again until the attempts run out. */
                char why[sizeof(out[0].why)];
                relay_adapter_reason(why, sizeof(why), resp);
                snprintf(out[0].why, sizeof(out[0].why),
                         "unexpected answer for audience '%.40s': %.150s",
                         a->name, why);
        }
        json_decref(j);
        relay_buf_free(&nm);
        return 1;
}

const struct relay_adapter relay_adapter_mappengage = {
    .name = "mappengage",
    .props = mappengage_props,
    .event_categories = NULL, /* any: membership comes from operations */
    .identity_types = mappengage_identities,
    .operations = mappengage_operations,
    .init = mappengage_init,
    .encode = mappengage_encode,
    .limits = mappengage_limits,
    .request = mappengage_request,
    .classify = mappengage_classify,
    .partial = mappengage_partial,
    .term = mappengage_term,
};
