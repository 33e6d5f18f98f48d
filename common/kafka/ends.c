/*
 * End offsets of the partitions a consumer holds, asked of the broker by a
 * thread of their own (see relay/kafka.h). librdkafka's statistics take a
 * partition's end offset from its fetches, and a paused partition is not
 * fetched: while a platform is down and the work waits, its lag would stay
 * where it was when the pause began, exactly when an operator looks at it.
 *
 * The same thread asks at once for a partition the worker's thread wakes:
 * the request is what wakes a fetcher librdkafka 2.0.2 left asleep, and
 * the worker's thread must not wait for its answer, which can queue behind
 * a fetch the broker holds for fetch.wait.max.ms (a wake asked and waited
 * for in the worker's thread once took 517 ms).
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
        int woken;   /* asked for by wake, not yet asked of the broker */
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
        size_t nwoken; /* of v, with woken set */
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

static void deadline(struct timespec *until, long ms)
{
        clock_gettime(CLOCK_REALTIME, until);
        until->tv_sec += ms / 1000;
        until->tv_nsec += (ms % 1000) * 1000000L;
        if (until->tv_nsec >= 1000000000L) {
                until->tv_sec++;
                until->tv_nsec -= 1000000000L;
        }
}

static int passed(const struct timespec *t)
{
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        return now.tv_sec > t->tv_sec ||
               (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* Ask for v[i] without the lock held (called and returning with it): the
 * worker's thread may change the set meanwhile. */
static void ask(relay_kafka_ends_t *e, size_t i)
{
        char *topic = relay_strdup(e->v[i].topic);
        int32_t partition = e->v[i].partition;
        if (e->v[i].woken) {
                e->v[i].woken = 0;
                e->nwoken--;
        }
        pthread_mutex_unlock(&e->mu);
        int64_t lo = -1, hi = -1;
        long ms = e->interval_ms > 0 && e->interval_ms < 5000 ? e->interval_ms
                                                              : 5000;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            e->rk, topic, partition, &lo, &hi, (int)ms);
        pthread_mutex_lock(&e->mu);
        struct end *x = find(e, topic, partition);
        if (!err && x && hi > x->end)
                x->end = hi;
        free(topic);
}

static void *run(void *arg)
{
        relay_kafka_ends_t *e = arg;
        struct timespec round;
        deadline(&round, e->interval_ms > 0 ? e->interval_ms : 0);
        pthread_mutex_lock(&e->mu);
        while (!e->stop) {
                if (!e->nwoken) {
                        if (e->interval_ms > 0)
                                pthread_cond_timedwait(&e->cv, &e->mu,
                                                       &round);
                        else
                                pthread_cond_wait(&e->cv, &e->mu);
                }
                /* The partitions woken first, then a round when due. */
                for (size_t i = 0; !e->stop && e->nwoken && i < e->n; i++)
                        if (e->v[i].woken) {
                                ask(e, i);
                                i = (size_t)-1; /* the set may have moved */
                        }
                if (e->interval_ms <= 0 || !passed(&round))
                        continue;
                for (size_t i = 0; !e->stop && i < e->n; i++)
                        ask(e, i);
                deadline(&round, e->interval_ms);
        }
        pthread_mutex_unlock(&e->mu);
        return NULL;
}

relay_kafka_ends_t *relay_kafka_ends_new(rd_kafka_t *rk, long interval_ms)
{
        relay_kafka_ends_t *e = relay_calloc(1, sizeof(*e));
        e->rk = rk;
        e->interval_ms = interval_ms <= 0    ? 0
                         : interval_ms > 100 ? interval_ms
                                             : 100;
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
                e->v[e->n++] =
                    (struct end){relay_strdup(topic), partition, -1, 1};
                e->nwoken++;
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
                if (x->woken)
                        e->nwoken--;
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

void relay_kafka_ends_wake(relay_kafka_ends_t *e, const char *topic,
                           int32_t partition)
{
        if (!e)
                return;
        pthread_mutex_lock(&e->mu);
        struct end *x = find(e, topic, partition);
        if (x && !x->woken) {
                x->woken = 1;
                e->nwoken++;
                pthread_cond_signal(&e->cv);
        }
        pthread_mutex_unlock(&e->mu);
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
