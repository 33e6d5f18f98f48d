/*
 * The token bucket of relay/bucket.h: refilled lazily from the time of
 * each call, so it needs no timer.
 */
#include "relay/bucket.h"

#include <math.h>

static void refill(relay_bucket_t *b, int64_t now_ms)
{
        if (b->rate > 0 && now_ms > b->at) {
                b->tokens += b->rate * (double)(now_ms - b->at) / 1000.0;
                if (b->tokens > b->burst)
                        b->tokens = b->burst;
        }
        if (now_ms > b->at)
                b->at = now_ms;
}

void relay_bucket_init(relay_bucket_t *b, double rate, double burst,
                       int64_t now_ms)
{
        b->rate = rate > 0 ? rate : 0;
        b->burst = burst >= 1 ? burst : 1;
        b->tokens = b->burst;
        b->at = now_ms;
}

void relay_bucket_set_rate(relay_bucket_t *b, double rate, int64_t now_ms)
{
        refill(b, now_ms);
        b->rate = rate > 0 ? rate : 0;
}

int64_t relay_bucket_when(relay_bucket_t *b, double n, int64_t now_ms)
{
        if (b->rate <= 0)
                return now_ms;
        refill(b, now_ms);
        double need = n < b->burst ? n : b->burst;
        if (b->tokens >= need)
                return now_ms;
        return now_ms + (int64_t)ceil((need - b->tokens) / b->rate * 1000.0);
}

void relay_bucket_take(relay_bucket_t *b, double n, int64_t now_ms)
{
        if (b->rate <= 0)
                return;
        refill(b, now_ms);
        b->tokens -= n;
}
