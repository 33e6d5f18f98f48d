/*
 * End offsets of the partitions a consumer holds, asked of the broker by a
 * thread of their own (see relay/kafka.h). librdkafka's statistics take a
 * partition's end offset from its fetches, and a paused partition is not
 * fetched: while a platform is down and the work waits, its lag would stay
 * where it was when the pause began, exactly when an operator looks at it.
 */
#include "relay/kafka.h"
#include "relay/common.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct end {
        char *topic;
        int32_t partition;
        int64_t end; /* -1 until known */
};

struct relay_kafka_ends {
        rd_kafka_t *rk;
        long interval_ms;
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int stop;
        struct end *v; /* under mu */
        size_t n;
};

static struct end *find(relay_kafka_ends_t *e, const char *topic,
                        int32_t partition)
{
        for (size_t i = 0; i < e->n; i++)
                if (e->v[i].partition == partition &&
                    !strcmp(e->v[i].topic, topic))
                        return &e->v[i];
        return NULL;
}

static void *run(void *arg)
{
        relay_kafka_ends_t *e = arg;
        pthread_mutex_lock(&e->mu);
        while (!e->stop) {
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_sec += e->interval_ms / 1000;
                until.tv_nsec += (e->interval_ms % 1000) * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&e->cv, &e->mu, &until);
                /* Ask for each partition without the lock held: the
                 * worker's thread may change the set meanwhile. */
                for (size_t i = 0; !e->stop && i < e->n; i++) {
                        char *topic = relay_strdup(e->v[i].topic);
                        int32_t partition = e->v[i].partition;
                        pthread_mutex_unlock(&e->mu);
                        int64_t lo = -1, hi = -1;
                        rd_kafka_resp_err_t err =
                            rd_kafka_query_watermark_offsets(
                                e->rk, topic, partition, &lo, &hi,
                                (int)(e->interval_ms < 5000 ? e->interval_ms
                                                            : 5000));
                        pthread_mutex_lock(&e->mu);
                        struct end *x = find(e, topic, partition);
                        if (!err && x && hi > x->end)
                                x->end = hi;
                        free(topic);
                }
        }
        pthread_mutex_unlock(&e->mu);
        return NULL;
}

relay_kafka_ends_t *relay_kafka_ends_new(rd_kafka_t *rk, long interval_ms)
{
        relay_kafka_ends_t *e = relay_calloc(1, sizeof(*e));
        e->rk = rk;
        e->interval_ms = interval_ms > 100 ? interval_ms : 100;
        pthread_mutex_init(&e->mu, NULL);
        pthread_cond_init(&e->cv, NULL);
        if (pthread_create(&e->thread, NULL, run, e)) {
                pthread_mutex_destroy(&e->mu);
                pthread_cond_destroy(&e->cv);
                free(e);
                return NULL;
        }
        return e;
}

void relay_kafka_ends_add(relay_kafka_ends_t *e, const char *topic,
                          int32_t partition)
{
        if (!e)
                return;
        pthread_mutex_lock(&e->mu);
        if (!find(e, topic, partition)) {
                e->v = relay_realloc(e->v, (e->n + 1) * sizeof(*e->v));
                e->v[e->n++] = (struct end){relay_strdup(topic), partition, -1};
                pthread_cond_signal(&e->cv); /* ask at once */
        }
        pthread_mutex_unlock(&e->mu);
}

void relay_kafka_ends_remove(relay_kafka_ends_t *e, const char *topic,
                             int32_t partition)
{
        if (!e)
                return;
        pthread_mutex_lock(&e->mu);
        struct end *x = find(e, topic, partition);
        if (x) {
                free(x->topic);
                *x = e->v[--e->n];
        }
        pthread_mutex_unlock(&e->mu);
}

int64_t relay_kafka_ends_get(relay_kafka_ends_t *e, const char *topic,
                             int32_t partition)
{
        if (!e)
                return -1;
        pthread_mutex_lock(&e->mu);
        struct end *x = find(e, topic, partition);
        int64_t end = x ? x->end : -1;
        pthread_mutex_unlock(&e->mu);
        return end;
}

void relay_kafka_ends_destroy(relay_kafka_ends_t *e)
{
        if (!e)
                return;
        pthread_mutex_lock(&e->mu);
        e->stop = 1;
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
        for (size_t i = 0; i < e->n; i++)
                free(e->v[i].topic);
        free(e->v);
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        free(e);
}
