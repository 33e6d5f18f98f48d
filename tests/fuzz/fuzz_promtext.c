/*
 * Fuzz target: a worker's /metrics page as relayctl top reads it (any
 * bytes an endpoint might answer), through the exposition reader with
 * every name wanted and with a few, as top asks. Each sample it
 * hands back must be well formed: NUL-terminated names and values within
 * their sizes, at most RELAY_PROMTEXT_LABELS labels.
 */
#include "relay/promtext.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const relay_promtext_sample_t *s, void *arg)
{
        size_t *n = arg;
        if (s->nlabels > RELAY_PROMTEXT_LABELS ||
            strnlen(s->name, RELAY_PROMTEXT_NAME_MAX) ==
                RELAY_PROMTEXT_NAME_MAX ||
            !s->name[0])
                abort();
        for (size_t i = 0; i < s->nlabels; i++)
                if (strnlen(s->labels[i].name, RELAY_PROMTEXT_NAME_MAX) ==
                        RELAY_PROMTEXT_NAME_MAX ||
                    strnlen(s->labels[i].value, RELAY_PROMTEXT_VALUE_MAX) ==
                        RELAY_PROMTEXT_VALUE_MAX ||
                    relay_promtext_label(s, s->labels[i].name) == NULL)
                        abort();
        (*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* Names of the seeds, so the wanted path sees labels too. */
        static const char *const wanted[] = {
            "relay_breaker_open", "relay_paused", "odd_labels", NULL};
        size_t all = 0, some = 0;
        size_t bad_all =
            relay_promtext_parse((const char *)data, size, NULL, check, &all);
        size_t bad_some = relay_promtext_parse((const char *)data, size, wanted,
                                               check, &some);
        /* Wanting fewer names can only find fewer samples and bad lines. */
        if (some > all || bad_some > bad_all)
                abort();
        return 0;
}
