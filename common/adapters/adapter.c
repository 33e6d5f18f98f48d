/*
 * The table of delivery adapters and the dispatch helpers around it.
 */
#include "relay/adapter.h"

#include <string.h>

extern const struct relay_adapter relay_adapter_mparticle;
extern const struct relay_adapter relay_adapter_braze;
extern const struct relay_adapter relay_adapter_webhook;
extern const struct relay_adapter relay_adapter_antavo;
extern const struct relay_adapter relay_adapter_cmcdp;
extern const struct relay_adapter relay_adapter_mappengage;
extern const struct relay_adapter relay_adapter_eagleeye;
extern const struct relay_adapter relay_adapter_digitalaudience;

const struct relay_adapter *const relay_adapters[] = {
    &relay_adapter_mparticle,
    &relay_adapter_braze,
    &relay_adapter_webhook,
    &relay_adapter_antavo,
    &relay_adapter_cmcdp,
    &relay_adapter_mappengage,
    &relay_adapter_eagleeye,
    &relay_adapter_digitalaudience,
    NULL,
};

const struct relay_adapter *relay_adapter_find(const char *name)
{
        for (size_t i = 0; relay_adapters[i]; i++)
                if (!strcmp(relay_adapters[i]->name, name))
                        return relay_adapters[i];
        return NULL;
}

enum relay_result relay_adapter_classify(const struct relay_adapter *a,
                                         void *state,
                                         const relay_http_response_t *resp,
                                         char *errstr, size_t errstr_size)
{
        if (a->classify)
                return a->classify(state, resp, errstr, errstr_size);
        return relay_adapter_answer(resp, errstr, errstr_size);
}

enum relay_result relay_adapter_answer(const relay_http_response_t *resp,
                                       char *errstr, size_t errstr_size)
{
        if (resp->transport_error) {
                relay_seterr(errstr, errstr_size, "%s", resp->error);
                return RELAY_RETRY;
        }
        enum relay_result r = relay_http_classify(resp);
        if (r != RELAY_OK)
                relay_adapter_reason(errstr, errstr_size, resp);
        return r;
}

void relay_adapter_reason_text(char *errstr, size_t errstr_size, long status,
                               const char *text, size_t n)
{
        char t[201];
        if (n > 200)
                n = 200;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)text[i];
                t[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
        }
        while (n && t[n - 1] == ' ')
                n--;
        t[n] = '\0';
        relay_seterr(errstr, errstr_size, "HTTP %ld: %s", status,
                     n ? t : "(no body)");
}

void relay_adapter_reason(char *errstr, size_t errstr_size,
                          const relay_http_response_t *resp)
{
        relay_adapter_reason_text(errstr, errstr_size, resp->status,
                                  resp->body.data ? resp->body.data : "",
                                  resp->body.data ? resp->body.len : 0);
}

void relay_adapter_join(relay_buf_t *body, const char *head,
                        const relay_buf_t *items, size_t n, const char *tail)
{
        /* The whole body's room at once: one growth at most per request. */
        size_t total = strlen(head) + strlen(tail) + n;
        for (size_t i = 0; i < n; i++)
                total += items[i].len;
        relay_buf_reserve(body, total);
        relay_buf_puts(body, head);
        for (size_t i = 0; i < n; i++) {
                if (i)
                        relay_buf_append(body, ",", 1);
                relay_buf_append(body, items[i].data, items[i].len);
        }
        relay_buf_puts(body, tail);
}

int relay_http_body_has(const relay_http_response_t *resp, const char *s)
{
        size_t n = strlen(s);
        if (!resp->body.data || resp->body.len < n)
                return 0;
        for (size_t i = 0; i + n <= resp->body.len; i++)
                if (!memcmp(resp->body.data + i, s, n))
                        return 1;
        return 0;
}

const char *const relay_adapter_any_operation[] = {"*", NULL};

int relay_adapter_has_operation(const struct relay_adapter *a, const char *op)
{
        if (!a->operations)
                return 0;
        if (a->operations == relay_adapter_any_operation)
                return 1;
        return relay_adapter_vocab_has(a->operations, op);
}

int relay_adapter_vocab_has(const char *const *vocab, const char *word)
{
        return relay_adapter_vocab_has_n(vocab, word, strlen(word));
}

int relay_adapter_vocab_has_n(const char *const *vocab, const char *word,
                              size_t n)
{
        if (!vocab)
                return 1;
        /* Called per record (mParticle's identity types): the first byte
         * rules out most words before their length is taken. */
        char first = n ? word[0] : '\0';
        for (size_t i = 0; vocab[i]; i++)
                if (vocab[i][0] == first && strlen(vocab[i]) == n &&
                    !memcmp(vocab[i], word, n))
                        return 1;
        return 0;
}
