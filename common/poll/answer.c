/*
 * What a polled source answers, and what becomes of it: the answer's
 * records and next page, each record mapped to a loyalty.events record,
 * and the checkpoint record (see relay/poll.h).
 *
 * Answers are outside input: every step checks the JSON type it meets, an
 * answer that is not what the source promises is the source's trouble
 * (retried, never skipped), and a record that cannot be mapped is that
 * record's (dead-lettered by the worker with the reason).
 */
#include "relay/poll.h"
#include "relay/sign.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Nesting a payload may have before the rest of it is cut (kept as its
 * JSON text): a bound on the recursion for input from outside. */
#define FLATTEN_DEPTH 16

/* The value at a dotted path through objects ("" is root), or NULL. */
static json_t *path_get(json_t *root, const char *path)
{
        json_t *at = root;
        while (at && *path) {
                size_t n = strcspn(path, ".");
                at = json_is_object(at) ? json_object_getn(at, path, n) : NULL;
                path += n + (path[n] == '.');
        }
        return at;
}

enum relay_result relay_poll_answer_parse(const relay_poll_source_t *s,
                                          const char *body, size_t len,
                                          relay_poll_answer_t *a, char *errstr,
                                          size_t errstr_size)
{
        json_error_t jerr;
        memset(a, 0, sizeof(*a));
        if (!(a->root = json_loadb(body, len, 0, &jerr))) {
                relay_seterr(errstr, errstr_size,
                             "answer is not JSON: %s at line %d, column %d",
                             jerr.text, jerr.line, jerr.column);
                return RELAY_RETRY;
        }
        a->records = path_get(a->root, s->records);
        if (!json_is_array(a->records)) {
                relay_seterr(errstr, errstr_size,
                             "answer has no records array at '%s'",
                             *s->records ? s->records : "(the answer)");
                goto fail;
        }
        size_t i;
        json_t *rec;
        json_array_foreach(a->records, i, rec)
        {
                if (!json_is_object(rec)) {
                        relay_seterr(errstr, errstr_size,
                                     "answer's record %zu is not an object",
                                     i);
                        goto fail;
                }
        }
        if (s->paging_kind == RELAY_POLL_PAGING_PAGE) {
                a->more = json_array_size(a->records) >= (size_t)s->page_size;
        } else if (s->paging_kind == RELAY_POLL_PAGING_CURSOR) {
                json_t *next = path_get(a->root, s->next);
                if (json_is_string(next) && json_string_length(next))
                        a->cursor = relay_strndup(json_string_value(next),
                                                  json_string_length(next));
                else if (json_is_integer(next)) {
                        relay_buf_t b;
                        relay_buf_init(&b);
                        relay_buf_long(&b, json_integer_value(next));
                        a->cursor = b.data;
                } else if (next && !json_is_null(next)) {
                        relay_seterr(errstr, errstr_size,
                                     "answer's '%s' is neither a cursor nor "
                                     "null",
                                     s->next);
                        goto fail;
                }
                a->more = a->cursor != NULL;
        }
        return RELAY_OK;
fail:
        relay_poll_answer_free(a);
        return RELAY_RETRY;
}

void relay_poll_answer_free(relay_poll_answer_t *a)
{
        json_decref(a->root);
        free(a->cursor);
        memset(a, 0, sizeof(*a));
}

/* A scalar as text (string, integer) into b; -1 for anything else. */
static int scalar_text(const json_t *v, relay_buf_t *b)
{
        if (json_is_string(v)) {
                relay_buf_append(b, json_string_value(v), json_string_length(v));
                return 0;
        }
        if (json_is_integer(v)) {
                relay_buf_long(b, json_integer_value(v));
                return 0;
        }
        return -1;
}

/* The event id of rec into out (see relay_poll_record_map). */
static int event_id(const relay_poll_source_t *s, json_t *rec,
                    char out[RELAY_UUID_SIZE])
{
        /* 6ba7b811-9dad-11d1-80b4-00c04fd430c8, RFC 4122's URL namespace */
        static const unsigned char ns[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad,
                                             0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0,
                                             0x4f, 0xd4, 0x30, 0xc8};
        relay_buf_t name;
        relay_buf_init(&name);
        relay_buf_printf(&name, "relay-poll:%s/%s/", s->tenant, s->platform);
        size_t head = name.len;
        json_t *id = *s->map_event_id ? path_get(rec, s->map_event_id) : NULL;
        if (id && scalar_text(id, &name) == 0 && name.len > head) {
                if (relay_uuid_valid(name.data + head, name.len - head)) {
                        for (size_t i = 0; i < 36; i++)
                                out[i] = (char)tolower(
                                    (unsigned char)name.data[head + i]);
                        out[36] = '\0';
                        relay_buf_free(&name);
                        return 0;
                }
        } else {
                /* No id of its own: its content names it. */
                name.len = head;
                char *text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
                relay_buf_puts(&name, text ? text : "");
                free(text);
        }
        int rc = relay_sign_uuid5(ns, name.data, name.len, out);
        relay_buf_free(&name);
        return rc;
}

/* The record's time in ms. */
static int occurred_at(const relay_poll_source_t *s, json_t *v, int64_t *ms)
{
        if (s->record_format == RELAY_POLL_ISO8601)
                return json_is_string(v)
                           ? relay_iso_ms_parse(json_string_value(v),
                                                json_string_length(v), ms)
                           : -1;
        int64_t n;
        char *end = NULL;
        if (json_is_integer(v)) {
                n = json_integer_value(v);
        } else if (json_is_string(v) && json_string_length(v)) {
                n = strtoll(json_string_value(v), &end, 10);
                if (*end)
                        return -1;
        } else {
                return -1;
        }
        if (s->record_format == RELAY_POLL_EPOCH_S) {
                if (n > INT64_MAX / 1000 || n < INT64_MIN / 1000)
                        return -1;
                n *= 1000;
        }
        *ms = n;
        return 0;
}

/* v's leaves into data under prefix: objects' keys joined with dots,
 * array items by index, as the loyalty.events schema documents. */
static void flatten(json_t *data, relay_buf_t *prefix, json_t *v, int depth)
{
        size_t at = prefix->len;
        if ((json_is_object(v) || json_is_array(v)) &&
            depth >= FLATTEN_DEPTH) {
                char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                json_object_set_new(data, prefix->data,
                                    json_string(text ? text : ""));
                free(text);
        } else if (json_is_object(v)) {
                const char *k;
                size_t kn;
                json_t *e;
                json_object_keylen_foreach(v, k, kn, e)
                {
                        if (at)
                                relay_buf_append(prefix, ".", 1);
                        relay_buf_append(prefix, k, kn);
                        flatten(data, prefix, e, depth + 1);
                        prefix->len = at;
                        prefix->data[at] = '\0';
                }
        } else if (json_is_array(v)) {
                size_t i;
                json_t *e;
                json_array_foreach(v, i, e)
                {
                        if (at)
                                relay_buf_append(prefix, ".", 1);
                        relay_buf_long(prefix, (int64_t)i);
                        flatten(data, prefix, e, depth + 1);
                        prefix->len = at;
                        prefix->data[at] = '\0';
                }
        } else if (at) {
                /* A key with a NUL byte cannot be a map key here. */
                if (strlen(prefix->data) == at)
                        json_object_set(data, prefix->data, v);
        }
}

int relay_poll_record_map(const relay_poll_source_t *s, json_t *rec,
                          json_t **out, relay_buf_t *key, char *errstr,
                          size_t errstr_size)
{
        char id[RELAY_UUID_SIZE];
        int64_t ms;
        json_t *type = path_get(rec, s->map_event_type);
        json_t *when = path_get(rec, s->map_occurred_at);
        *out = NULL;
        relay_buf_reset(key);
        if (!json_is_string(type) || !json_string_length(type)) {
                relay_seterr(errstr, errstr_size,
                             "record has no event type (a string at '%s')",
                             s->map_event_type);
                return -1;
        }
        if (!when || occurred_at(s, when, &ms)) {
                relay_seterr(errstr, errstr_size,
                             "record has no time at '%s' in %s",
                             s->map_occurred_at, s->map_time_format);
                return -1;
        }
        if (event_id(s, rec, id)) {
                relay_seterr(errstr, errstr_size, "cannot hash the event id");
                return -1;
        }
        json_t *ids = json_object();
        relay_buf_t b;
        relay_buf_init(&b);
        for (size_t i = 0; i < s->nids; i++) {
                relay_buf_reset(&b);
                relay_buf_puts(&b, "");
                json_t *v = path_get(rec, s->id_path[i]);
                if (!v || scalar_text(v, &b) || !b.len ||
                    json_object_get(ids, s->id_kind[i]))
                        continue;
                json_object_set_new(ids, s->id_kind[i],
                                    json_stringn(b.data, b.len));
                if (!key->len && (!*s->map_key ||
                                  !strcmp(s->map_key, s->id_kind[i])))
                        relay_buf_printf(key, "%s/%s", s->tenant, b.data);
        }
        if (!key->len)
                relay_buf_puts(key, id);
        json_t *data = json_object();
        json_t *payload = *s->map_data ? path_get(rec, s->map_data) : rec;
        relay_buf_reset(&b);
        relay_buf_puts(&b, "");
        if (json_is_object(payload))
                flatten(data, &b, payload, 0);
        relay_buf_free(&b);
        *out = json_pack("{sssIsssssssoso}", "event_id", id, "occurred_at",
                         (json_int_t)ms, "tenant", s->tenant, "source",
                         s->platform, "event_type", json_string_value(type),
                         "identities", ids, "data", data);
        if (!*out) { /* the event type is not UTF-8 */
                relay_seterr(errstr, errstr_size,
                             "record's event type is not valid text");
                return -1;
        }
        return 0;
}

/* ---- checkpoints ------------------------------------------------------ */

void relay_poll_checkpoint_encode(const char *name,
                                  const relay_poll_checkpoint_t *c,
                                  relay_buf_t *out)
{
        relay_buf_reset(out);
        relay_buf_puts(out, "{\"source\":");
        relay_buf_json_str(out, name, strlen(name));
        relay_buf_printf(out,
                         ",\"window_start\":%lld,\"window_end\":%lld,"
                         "\"records\":%lld,\"written_at\":%lld}",
                         (long long)c->window_start, (long long)c->window_end,
                         (long long)c->records, (long long)c->written_at);
}

int relay_poll_checkpoint_decode(const char *name, const void *buf,
                                 size_t len, relay_poll_checkpoint_t *c,
                                 char *errstr, size_t errstr_size)
{
        json_error_t jerr;
        json_t *j = json_loadb(buf, len, 0, &jerr);
        const char *src = json_string_value(json_object_get(j, "source"));
        json_t *end = json_object_get(j, "window_end");
        int rc = -1;
        if (!j)
                relay_seterr(errstr, errstr_size, "not JSON: %s", jerr.text);
        else if (!src || strcmp(src, name))
                relay_seterr(errstr, errstr_size,
                             "the checkpoint of '%s', not of '%s'",
                             src ? src : "(no source)", name);
        else if (!json_is_integer(end))
                relay_seterr(errstr, errstr_size, "no window_end");
        else
                rc = 0;
        if (!rc) {
                c->window_end = json_integer_value(end);
                c->window_start =
                    json_integer_value(json_object_get(j, "window_start"));
                c->records = json_integer_value(json_object_get(j, "records"));
                c->written_at =
                    json_integer_value(json_object_get(j, "written_at"));
        }
        json_decref(j);
        return rc;
}
