/*
 * What a polled source answers, and what becomes of it: the answer's
 * records and next page, each record mapped by the source's JSON mapping
 * (relay/json_map.h, the one relay-ingest uses), and the checkpoint record
 * (see relay/poll.h).
 *
 * Answers are outside input: every step checks the JSON type it meets, an
 * answer that is not what the source promises is the source's trouble
 * (retried, never skipped), and a record that cannot be mapped is that
 * record's (dead-lettered by the worker with the reason).
 */
#include "relay/json_map.h"
#include "relay/poll.h"

#include <stdlib.h>
#include <string.h>

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
        a->records = relay_json_map_path(a->root, s->records,
                                        strlen(s->records));
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
                json_t *next = relay_json_map_path(a->root, s->next,
                                                   strlen(s->next));
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

int relay_poll_record_map(const relay_poll_source_t *s,
                          const relay_poll_answer_t *a, json_t *rec,
                          relay_buf_t *key, const void **value,
                          size_t *value_len, char event_id[RELAY_UUID_SIZE],
                          char *errstr, size_t errstr_size)
{
        relay_json_map_req_t req = {NULL, NULL, a ? a->root : NULL};
        return relay_json_map_apply(s->map, &req, rec, key, value, value_len,
                                    event_id, errstr, errstr_size);
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
