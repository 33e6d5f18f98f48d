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
        enum relay_result r = relay_http_classify(resp);
        if (r == RELAY_OK)
                return r;
        if (resp->transport_error)
                relay_seterr(errstr, errstr_size, "%s", resp->error);
        else
                relay_seterr(errstr, errstr_size, "HTTP %ld: %.200s",
                             resp->status,
                             resp->body.data ? resp->body.data : "");
        return r;
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
        for (size_t i = 0; vocab[i]; i++)
                if (strlen(vocab[i]) == n && !memcmp(vocab[i], word, n))
                        return 1;
        return 0;
}
