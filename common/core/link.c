/*
 * Signed links (see relay/link.h): HMAC-SHA256 from relay/sign.h over
 * "<kid>.<payload>", the payload JSON through jansson. The checks run in
 * the order that costs least for a forged token: shape and lengths, key
 * id, signature (constant time), and only then is the payload decoded and
 * parsed, so unsigned input never reaches the JSON parser.
 */
#include "relay/link.h"
#include "relay/sign.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct key {
        char id[RELAY_LINK_KID_MAX + 1];
        unsigned char *secret;
        size_t len;
};

struct relay_link_keys {
        struct key *k;
        size_t n;
};

static int kid_ok(const char *s, size_t n)
{
        if (n == 0 || n > RELAY_LINK_KID_MAX)
                return 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '-' || c == '_'))
                        return 0;
        }
        return 1;
}

void relay_link_keys_destroy(relay_link_keys_t *k)
{
        if (!k)
                return;
        for (size_t i = 0; i < k->n; i++) {
                OPENSSL_cleanse(k->k[i].secret, k->k[i].len);
                free(k->k[i].secret);
        }
        free(k->k);
        free(k);
}

size_t relay_link_keys_count(const relay_link_keys_t *k)
{
        return k ? k->n : 0;
}

relay_link_keys_t *relay_link_keys_parse(const char *text, char *errstr,
                                         size_t errstr_size)
{
        relay_link_keys_t *k = relay_calloc(1, sizeof(*k));
        const char *p = text ? text : "";
        size_t entry = 0;
        while (*p) {
                const char *end = strchr(p, ',');
                size_t n = end ? (size_t)(end - p) : strlen(p);
                const char *colon = memchr(p, ':', n);
                entry++;
                if (!colon || !kid_ok(p, (size_t)(colon - p)) ||
                    colon + 1 == p + n) {
                        relay_seterr(errstr, errstr_size,
                                     "link key %zu: want id:secret, the id "
                                     "1-%d letters, digits, '-' or '_', the "
                                     "secret not empty",
                                     entry, RELAY_LINK_KID_MAX);
                        goto fail;
                }
                size_t idn = (size_t)(colon - p);
                for (size_t i = 0; i < k->n; i++)
                        if (strlen(k->k[i].id) == idn &&
                            !memcmp(k->k[i].id, p, idn)) {
                                relay_seterr(errstr, errstr_size,
                                             "link key %zu: id '%.*s' given "
                                             "twice",
                                             entry, (int)idn, p);
                                goto fail;
                        }
                k->k = relay_realloc(k->k, (k->n + 1) * sizeof(*k->k));
                struct key *e = &k->k[k->n++];
                memcpy(e->id, p, idn);
                e->id[idn] = '\0';
                e->len = n - idn - 1;
                e->secret = relay_malloc(e->len);
                memcpy(e->secret, colon + 1, e->len);
                p = end ? end + 1 : p + n;
        }
        if (!k->n) {
                relay_seterr(errstr, errstr_size,
                             "no link keys (want id:secret[,id:secret...])");
                goto fail;
        }
        return k;
fail:
        relay_link_keys_destroy(k);
        return NULL;
}

static const struct key *key_find(const relay_link_keys_t *k, const char *id,
                                  size_t n)
{
        for (size_t i = 0; k && i < k->n; i++)
                if (strlen(k->k[i].id) == n && !memcmp(k->k[i].id, id, n))
                        return &k->k[i];
        return NULL;
}

int relay_link_url_ok(const char *url)
{
        size_t skip;
        if (!url)
                return 0;
        if (!strncasecmp(url, "https://", 8))
                skip = 8;
        else if (!strncasecmp(url, "http://", 7))
                skip = 7;
        else
                return 0;
        size_t n = strlen(url);
        if (n > 2048 || n == skip || url[skip] == '/' || url[skip] == '\\')
                return 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)url[i];
                if (c <= 0x20 || c == 0x7f || c == '\\')
                        return 0;
        }
        return 1;
}

/* The payload's fields: JSON name, offset in relay_link_t, required. */
static const struct field {
        const char *name;
        size_t off;
        int required;
} fields[] = {
    {"t", offsetof(relay_link_t, tenant), 1},
    {"s", offsetof(relay_link_t, source), 0},
    {"m", offsetof(relay_link_t, message_id), 1},
    {"g", offsetof(relay_link_t, campaign), 0},
    {"l", offsetof(relay_link_t, link_id), 0},
    {"u", offsetof(relay_link_t, url), 1},
    {"c", offsetof(relay_link_t, contact), 0},
    {"e", offsetof(relay_link_t, email_sha256), 0},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))
#define FIELD(l, f) (*(char **)((char *)(l) + (f)->off))
#define FIELD_MAX 2048

static void mac_of(const struct key *k, const char *signed_part, size_t n,
                   unsigned char mac[RELAY_SIGN_SHA256_LEN])
{
        relay_sign_part_t part = {signed_part, n};
        relay_sign_hmac_sha256(k->secret, k->len, &part, 1, mac);
}

int relay_link_sign(const relay_link_t *l, const relay_link_keys_t *keys,
                    const char *kid, relay_buf_t *out, char *errstr,
                    size_t errstr_size)
{
        const struct key *k = key_find(keys, kid, strlen(kid));
        if (!k) {
                relay_seterr(errstr, errstr_size, "no link key with id '%s'",
                             kid);
                return -1;
        }
        json_t *o = json_object();
        for (size_t i = 0; i < NFIELDS; i++) {
                const char *v = FIELD(l, &fields[i]);
                if (!v && fields[i].required) {
                        relay_seterr(errstr, errstr_size,
                                     "a link needs its %s",
                                     fields[i].name[0] == 't'   ? "tenant"
                                     : fields[i].name[0] == 'm' ? "message id"
                                                                : "url");
                        json_decref(o);
                        return -1;
                }
                if (v && (strlen(v) > FIELD_MAX ||
                          json_object_set_new(o, fields[i].name,
                                              json_string(v)))) {
                        relay_seterr(errstr, errstr_size,
                                     "link field '%s' is longer than %d "
                                     "bytes or not UTF-8",
                                     fields[i].name, FIELD_MAX);
                        json_decref(o);
                        return -1;
                }
        }
        if (!relay_link_url_ok(l->url)) {
                relay_seterr(errstr, errstr_size,
                             "link url must be http:// or https:// with a "
                             "host and no spaces or control characters");
                json_decref(o);
                return -1;
        }
        char *js = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        size_t jn = strlen(js);
        size_t start = out->len;
        relay_buf_reserve(out, strlen(kid) + RELAY_SIGN_BASE64_LEN(jn) +
                                   RELAY_SIGN_BASE64_LEN(32) + 4);
        relay_buf_puts(out, kid);
        relay_buf_append(out, ".", 1);
        out->len += relay_sign_base64url(js, jn, out->data + out->len);
        free(js);
        unsigned char mac[RELAY_SIGN_SHA256_LEN];
        mac_of(k, out->data + start, out->len - start, mac);
        relay_buf_append(out, ".", 1);
        out->len += relay_sign_base64url(mac, sizeof(mac), out->data + out->len);
        if (out->len - start > RELAY_LINK_MAX) {
                out->len = start;
                relay_seterr(errstr, errstr_size,
                             "the signed link would be longer than %d bytes",
                             RELAY_LINK_MAX);
                return -1;
        }
        return 0;
}

void relay_link_free(relay_link_t *l)
{
        for (size_t i = 0; i < NFIELDS; i++) {
                free(FIELD(l, &fields[i]));
                FIELD(l, &fields[i]) = NULL;
        }
}

int relay_link_verify(const char *token, size_t n, const relay_link_keys_t *keys,
                      relay_link_t *l, char *errstr, size_t errstr_size)
{
        memset(l, 0, sizeof(*l));
        if (n == 0 || n > RELAY_LINK_MAX) {
                relay_seterr(errstr, errstr_size, "link token empty or longer "
                             "than %d bytes", RELAY_LINK_MAX);
                return -1;
        }
        const char *d1 = memchr(token, '.', n);
        const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - token))
                            : NULL;
        if (!d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - token))) {
                relay_seterr(errstr, errstr_size,
                             "link token is not <key>.<payload>.<signature>");
                return -1;
        }
        const struct key *k = key_find(keys, token, (size_t)(d1 - token));
        if (!k) {
                relay_seterr(errstr, errstr_size,
                             "link token signed with an unknown key");
                return -1;
        }
        unsigned char sig[RELAY_SIGN_SHA256_LEN + 3], mac[RELAY_SIGN_SHA256_LEN];
        long sn = relay_sign_unbase64url(d2 + 1, n - (size_t)(d2 + 1 - token),
                                         sig, sizeof(sig));
        mac_of(k, token, (size_t)(d2 - token), mac);
        if (sn != RELAY_SIGN_SHA256_LEN ||
            !relay_sign_equal(sig, mac, sizeof(mac))) {
                relay_seterr(errstr, errstr_size, "link token signature is "
                             "wrong");
                return -1;
        }
        /* Signed by us from here on; still checked as if it were not. */
        size_t pn = (size_t)(d2 - d1 - 1);
        unsigned char *js = relay_malloc(pn / 4 * 3 + 3);
        long jn = relay_sign_unbase64url(d1 + 1, pn, js, pn / 4 * 3 + 3);
        json_error_t jerr;
        json_t *o = jn < 0 ? NULL
                           : json_loadb((const char *)js, (size_t)jn,
                                        JSON_REJECT_DUPLICATES, &jerr);
        free(js);
        if (!json_is_object(o)) {
                json_decref(o);
                relay_seterr(errstr, errstr_size,
                             "link payload is not a JSON object");
                return -1;
        }
        for (size_t i = 0; i < NFIELDS; i++) {
                json_t *v = json_object_get(o, fields[i].name);
                if (!v && !fields[i].required)
                        continue;
                if (!json_is_string(v) || json_string_length(v) > FIELD_MAX ||
                    strlen(json_string_value(v)) != json_string_length(v)) {
                        relay_seterr(errstr, errstr_size,
                                     "link payload field '%s' is missing or "
                                     "not a string",
                                     fields[i].name);
                        json_decref(o);
                        relay_link_free(l);
                        return -1;
                }
                FIELD(l, &fields[i]) = relay_strdup(json_string_value(v));
        }
        json_decref(o);
        if (!relay_link_url_ok(l->url)) {
                relay_seterr(errstr, errstr_size,
                             "link target is not an http(s) URL");
                relay_link_free(l);
                return -1;
        }
        return 0;
}
