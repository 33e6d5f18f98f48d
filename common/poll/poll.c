/*
 * The poll worker (see relay/poll.h): every source it owns is read one
 * window at a time, page after page, each record produced as Avro, and
 * the window's end written as the source's checkpoint once every record of
 * the window was acknowledged by Kafka.
 *
 * Ownership. The checkpoints live in a compacted topic keyed by source
 * name; a source belongs to the partition its key hashes to (as the Java
 * client places it), and the replicas share those partitions out in one
 * consumer group. A replica polls only the sources of the partitions it
 * holds, and reads such a partition from its beginning to the end it had
 * when assigned before polling any of them: it starts from the last
 * checkpoint its predecessor wrote. A revoke first settles the sources
 * handed back (their request aborted, the acks and checkpoint of a window
 * whose pages are all read waited for), so the next owner starts exactly
 * there; with the group's eager rebalancing no two replicas hold one
 * partition at once.
 *
 * What a crash costs. The window in hand is read again by the next owner:
 * its records produced before the crash arrive twice (at most one window
 * per source, and each carries the same event id both times). Nothing is
 * skipped: a checkpoint names only windows whose every record is durable.
 *
 * Failures. A request that fails (transport, 5xx, 429 with Retry-After, a
 * refusal, an answer that is not what the source promises) is retried,
 * same page, after the engine's backoff (relay/retry.h); after
 * poll.max_attempts in a row the window is reported failed (metrics, an
 * error line) and retried on, never skipped. 401 and 403 re-read the token
 * first, so a rotated one heals without a restart. A record that cannot be
 * mapped is dead-lettered (its JSON, with the reason), and counted.
 *
 * Everything runs on one thread: requests go through libcurl's multi
 * interface (a slot per source) between polls of the consumer, so
 * rebalances are served while a source is slow.
 */
#include "relay/admin.h"
#include "relay/avro.h"
#include "relay/dlq.h"
#include "relay/http.h"
#include "relay/kafka.h"
#include "relay/log.h"
#include "relay/metrics.h"
#include "relay/poll.h"
#include "relay/retry.h"
#include "relay/worker.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define P(f) offsetof(struct relay_poll, f)

/* The acks of one answer's records (produced, or dead-lettered). */
struct page {
        struct page *next;
        size_t n;
        relay_kafka_ack_t acks[];
};

enum state {
        S_IDLE,  /* waiting for next_at: a window to be due, or a retry */
        S_FETCH, /* a request of the window is running */
        S_ACKS,  /* every page read; waiting for the records' acks */
        S_CKPT   /* the checkpoint is being written */
};

struct src {
        relay_poll_source_t *cfg;
        size_t slot;       /* its HTTP slot */
        int32_t partition; /* of the checkpoint topic */
        int owned, loaded; /* its partition is ours; its checkpoint read */
        int64_t ckpt;      /* the last window end, -1: none yet */
        enum state st;
        int64_t next_at; /* relay_mono_ms */
        relay_poll_window_t w;
        long long page, pages;
        char *cursor;
        int retrying, attempts, reported;
        long last_status;
        int64_t records, dead; /* of the window in hand */
        struct page *head, **tail;
        relay_kafka_ack_t ckpt_ack;
        char env[256]; /* the token's variable */
        relay_buf_t token, url, auth, ua;
        relay_http_request_t req;
        relay_http_response_t resp;
        rd_kafka_topic_t *rkt;
        relay_series_t *m_polled, *m_produced, *m_dead, *m_windows,
            *m_failed, *m_lag, *m_failing;
        relay_metric_t *m_requests;
};

struct part {
        int assigned, loaded, need_end;
        int64_t end;  /* its end offset when assigned */
        int64_t next; /* the offset after the last one read */
};

struct relay_poll {
        const relay_conf_t *conf;
        /* Bound from poll.* */
        const char *sources, *ckpt_topic, *group_id, *dlq_topic, *instance;
        long long ckpt_partitions, http_timeout_ms, connect_timeout_ms,
            backoff_base_ms, backoff_max_ms, max_attempts;

        relay_poll_source_t **cfgs;
        struct src *src;
        size_t n;
        relay_schemas_t *schemas;
        rd_kafka_t *consumer, *producer;
        relay_kafka_rebalance_t rebalance;
        relay_http_multi_t *http;
        relay_retry_policy_t retry;
        int32_t nparts;
        struct part *parts;
        struct page *grave; /* pages of abandoned windows, acks pending */
        char ua_instance[300];
        int fatal;
        relay_series_t *m_owned;
};

const relay_conf_prop_t relay_poll_props[] = {
    {"poll.sources", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_REQUIRED | RELAY_CONF_BIND,
     "directory of source files (*.cfg), or one file", P(sources)},
    {"poll.checkpoint_topic", RELAY_CONF_STRING, "poll.checkpoints", 0, -1,
     RELAY_CONF_BIND,
     "compacted topic of the sources' checkpoints (made if missing)",
     P(ckpt_topic)},
    {"poll.checkpoint_partitions", RELAY_CONF_INT, "12", 1, 10000,
     RELAY_CONF_BIND,
     "partitions of the checkpoint topic when it is made: the most "
     "replicas that share the sources",
     P(ckpt_partitions)},
    {"poll.group_id", RELAY_CONF_STRING, "relay-poll", 0, -1, RELAY_CONF_BIND,
     "consumer group sharing the sources out", P(group_id)},
    {"poll.dlq_topic", RELAY_CONF_STRING, "dlq.poll", 0, -1, RELAY_CONF_BIND,
     "where records that cannot be mapped go (their JSON, with the reason)",
     P(dlq_topic)},
    {"poll.http_timeout_ms", RELAY_CONF_INT, "30000", 100, 600000,
     RELAY_CONF_BIND, "time a request may take", P(http_timeout_ms)},
    {"poll.connect_timeout_ms", RELAY_CONF_INT, "5000", 100, 600000,
     RELAY_CONF_BIND, "time a connection may take", P(connect_timeout_ms)},
    {"poll.backoff_base_ms", RELAY_CONF_INT, "1000", 1, 3600000,
     RELAY_CONF_BIND, "wait before the second attempt, doubling",
     P(backoff_base_ms)},
    {"poll.backoff_max_ms", RELAY_CONF_INT, "300000", 1, 86400000,
     RELAY_CONF_BIND, "longest wait between attempts, Retry-After included",
     P(backoff_max_ms)},
    {"poll.max_attempts", RELAY_CONF_INT, "5", 1, 1000, RELAY_CONF_BIND,
     "failed attempts in a row after which a window is reported failed "
     "(it is still retried, never skipped)",
     P(max_attempts)},
    {"poll.instance", RELAY_CONF_STRING, NULL, 0, -1, RELAY_CONF_BIND,
     "this replica's name in the User-Agent (default host:pid)",
     P(instance)},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

/* ---- the records of an answer ---------------------------------------- */

static struct page *page_new(struct src *s, size_t n)
{
        struct page *pg =
            relay_calloc(1, sizeof(*pg) + (n ? n : 1) * sizeof(pg->acks[0]));
        pg->n = n;
        *s->tail = pg;
        s->tail = &pg->next;
        return pg;
}

/* Move s's pages to the grave: librdkafka still holds their acks until
 * their reports come (freed at the end, after the producer is flushed). */
static void pages_bury(struct relay_poll *p, struct src *s)
{
        if (s->head) {
                *s->tail = p->grave;
                p->grave = s->head;
        }
        s->head = NULL;
        s->tail = &s->head;
}

static void pages_free(struct page *pg)
{
        while (pg) {
                struct page *next = pg->next;
                for (size_t i = 0; i < pg->n; i++)
                        relay_kafka_ack_release(&pg->acks[i]);
                free(pg);
                pg = next;
        }
}

/* Produce once, waiting out a full local queue while serving reports. */
static rd_kafka_resp_err_t produce(struct relay_poll *p, rd_kafka_topic_t *rkt,
                                   const char *topic, const void *key,
                                   size_t key_len, const void *value,
                                   size_t len, rd_kafka_headers_t *h,
                                   relay_kafka_ack_t *ack)
{
        for (;;) {
                rd_kafka_headers_t *copy = h ? rd_kafka_headers_copy(h) : NULL;
                rd_kafka_resp_err_t err =
                    rkt ? relay_kafka_produce_once_rkt(p->producer, rkt, key,
                                                       key_len, value, len,
                                                       copy, ack, 1)
                        : relay_kafka_produce_once(p->producer, topic, key,
                                                   key_len, value, len, copy,
                                                   ack, 1);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        if (h)
                                rd_kafka_headers_destroy(h);
                        if (err) { /* a report that will never come */
                                ack->err = err;
                                ack->done = 1;
                        }
                        return err;
                }
                rd_kafka_poll(p->producer, 100);
        }
}

/* A record that cannot be mapped: its JSON to poll.dlq_topic, saying why
 * and where it came from. */
static void dead_letter(struct relay_poll *p, struct src *s, json_t *rec,
                        const char *why, relay_kafka_ack_t *ack)
{
        char *text = json_dumps(rec, JSON_COMPACT);
        rd_kafka_headers_t *h = rd_kafka_headers_new(8);
        relay_kafka_header_add(h, RELAY_DLQ_H_ERROR, why);
        relay_kafka_header_add(h, RELAY_DLQ_H_STAGE, "map");
        relay_kafka_header_add(h, RELAY_DLQ_H_WORKER, "poll");
        relay_kafka_header_add(h, "relay.source", s->cfg->name);
        relay_kafka_header_addf(h, "relay.window", "%lld/%lld",
                                (long long)s->w.from, (long long)s->w.to);
        relay_kafka_header_addf(h, RELAY_DLQ_H_FAILED_AT, "%lld",
                                (long long)relay_now_ms());
        relay_log(LOG_WARNING, "poll", "source %s: dead-lettering a record "
                  "to %s: %s", s->cfg->name, p->dlq_topic, why);
        produce(p, NULL, p->dlq_topic, s->cfg->name, strlen(s->cfg->name),
                text ? text : "", text ? strlen(text) : 0, h, ack);
        free(text);
        s->dead++;
}

/* Map, encode and produce every record of an answer. */
static void produce_records(struct relay_poll *p, struct src *s,
                            const relay_poll_answer_t *a)
{
        json_t *recs = a->records;
        struct page *pg = page_new(s, json_array_size(recs));
        relay_buf_t key;
        char why[512], id[RELAY_UUID_SIZE];
        size_t i;
        json_t *rec;
        relay_buf_init(&key);
        json_array_foreach(recs, i, rec)
        {
                const void *buf;
                size_t len;
                if (relay_poll_record_map(s->cfg, a, rec, &key, &buf, &len, id,
                                          why, sizeof(why)))
                        dead_letter(p, s, rec, why, &pg->acks[i]);
                else if (produce(p, s->rkt, NULL, key.data, key.len, buf, len,
                                 NULL, &pg->acks[i]))
                        relay_log(LOG_WARNING, "poll",
                                  "source %s: produce: %s", s->cfg->name,
                                  rd_kafka_err2str(pg->acks[i].err));
        }
        relay_buf_free(&key);
        s->records += (int64_t)pg->n;
        relay_metric_add(s->m_polled, (double)pg->n);
}

/* ---- requests --------------------------------------------------------- */

static void request_start(struct relay_poll *p, struct src *s)
{
        relay_poll_request_url(s->cfg, &s->w, s->page, s->cursor,
                               s->token.data, &s->url);
        memset(&s->req, 0, sizeof(s->req));
        s->req.method = "GET";
        s->req.url = s->url.data;
        size_t h = 0;
        s->req.headers[h++] = "Accept: application/json";
        s->req.headers[h++] = s->ua.data;
        if (!s->cfg->auth_query)
                s->req.headers[h++] = s->auth.data;
        relay_http_response_reset(&s->resp);
        s->st = S_FETCH;
        relay_log(LOG_DEBUG, "poll", "source %s: GET window %lld..%lld page "
                  "%lld", s->cfg->name, (long long)s->w.from,
                  (long long)s->w.to, s->pages + 1);
        if (relay_http_multi_start(p->http, s->slot, &s->req, &s->resp)) {
                /* Could not start: the same as a failed transport. */
                s->st = S_IDLE;
                s->retrying = 1;
                s->next_at = relay_mono_ms() + p->backoff_base_ms;
        }
}

/* The token from its variable (or file) into s->token and the header. */
static int token_load(struct src *s, char *errstr, size_t errstr_size)
{
        int got = relay_conf_secret_read(s->env, &s->token, errstr,
                                         errstr_size);
        if (got == 0)
                relay_seterr(errstr, errstr_size,
                             "%s: source %s has no token: set %s or %s_FILE",
                             s->cfg->file, s->cfg->name, s->env, s->env);
        if (got != 1)
                return -1;
        relay_buf_reset(&s->auth);
        relay_buf_printf(&s->auth, "%s: %s%s", s->cfg->auth_name,
                         s->cfg->auth_prefix, s->token.data);
        return 0;
}

/* A request failed: back off and ask again, the same page. */
static void request_failed(struct relay_poll *p, struct src *s,
                           const char *outcome, const char *why)
{
        char err[512];
        long status = s->resp.status;
        s->attempts++;
        relay_metric_add(relay_series(s->m_requests, s->cfg->name, outcome), 1);
        if ((status == 401 || status == 403) &&
            token_load(s, err, sizeof(err)))
                relay_log(LOG_WARNING, "poll", "source %s: token: %s",
                          s->cfg->name, err);
        long delay = relay_retry_delay_ms(
            &p->retry, s->attempts > 30 ? 30 : s->attempts,
            s->resp.retry_after_ms, relay_retry_random());
        relay_log(LOG_WARNING, "poll",
                  "source %s: window %lld..%lld page %lld: %s (attempt %d, "
                  "again in %ld ms)",
                  s->cfg->name, (long long)s->w.from, (long long)s->w.to,
                  s->pages + 1, why, s->attempts, delay);
        if (s->attempts >= p->max_attempts && !s->reported) {
                s->reported = 1;
                relay_metric_add(s->m_failed, 1);
                relay_metric_set(s->m_failing, 1);
                relay_log(LOG_ERR, "poll",
                          "source %s: window %lld..%lld failed %d times "
                          "(last: %s); it is retried, not skipped",
                          s->cfg->name, (long long)s->w.from,
                          (long long)s->w.to, s->attempts, why);
        }
        s->st = S_IDLE;
        s->retrying = 1;
        s->next_at = relay_mono_ms() + delay;
}

static void request_done(struct relay_poll *p, struct src *s)
{
        relay_http_response_t *r = &s->resp;
        char why[600];
        if (r->aborted) {
                s->st = S_IDLE;
                return;
        }
        enum relay_result res = relay_http_classify(r);
        if (res != RELAY_OK) {
                if (r->status)
                        snprintf(why, sizeof(why), "HTTP %ld: %.200s",
                                 r->status, r->body.data ? r->body.data : "");
                else
                        snprintf(why, sizeof(why), "%s", r->error);
                request_failed(p, s,
                               r->status == 429 ? "throttled"
                               : res == RELAY_FATAL ? "refused"
                                                    : "failed",
                               why);
                return;
        }
        relay_poll_answer_t a;
        if (relay_poll_answer_parse(s->cfg, r->body.data ? r->body.data : "",
                                    r->body.len, &a, why,
                                    sizeof(why)) != RELAY_OK) {
                request_failed(p, s, "bad_answer", why);
                return;
        }
        relay_metric_add(relay_series(s->m_requests, s->cfg->name, "ok"), 1);
        if (s->reported)
                relay_log(LOG_INFO, "poll", "source %s: answering again "
                          "after %d failed attempts", s->cfg->name,
                          s->attempts);
        s->attempts = 0;
        s->reported = 0;
        relay_metric_set(s->m_failing, 0);
        produce_records(p, s, &a);
        s->pages++;
        free(s->cursor);
        s->cursor = a.cursor;
        a.cursor = NULL;
        int more = a.more;
        relay_poll_answer_free(&a);
        if (!more) {
                s->st = S_ACKS;
        } else if (s->pages >= s->cfg->max_pages) {
                request_failed(p, s, "bad_answer",
                               "more pages than source.paging.max_pages");
                /* The window starts again: its pages so far are produced,
                 * and are produced again (the same event ids). */
                s->pages = 0;
                s->page = s->cfg->first_page;
                free(s->cursor);
                s->cursor = NULL;
        } else {
                s->page++;
                request_start(p, s);
        }
}

/* ---- windows and checkpoints ----------------------------------------- */

static void window_start(struct relay_poll *p, struct src *s)
{
        int64_t now = relay_now_ms();
        if (s->ckpt < 0)
                s->ckpt = relay_poll_window_origin(s->cfg, now);
        int64_t wait = relay_poll_window_next(s->cfg, s->ckpt, now, &s->w);
        if (wait > 0) {
                s->next_at = relay_mono_ms() + (wait < 1000 ? wait : 1000);
                return;
        }
        s->page = s->cfg->first_page;
        s->pages = s->records = s->dead = 0;
        free(s->cursor);
        s->cursor = NULL;
        request_start(p, s);
}

static void checkpoint_write(struct relay_poll *p, struct src *s)
{
        relay_poll_checkpoint_t c = {s->w.from, s->w.to, s->records,
                                     relay_now_ms()};
        relay_buf_t v;
        relay_buf_init(&v);
        relay_poll_checkpoint_encode(s->cfg->name, &c, &v);
        rd_kafka_resp_err_t err = relay_kafka_produce_to(
            p->producer, p->ckpt_topic, s->partition, s->cfg->name,
            strlen(s->cfg->name), v.data, v.len, &s->ckpt_ack);
        relay_buf_free(&v);
        if (err) { /* the queue is full, or worse: try again */
                s->ckpt_ack.err = err;
                s->ckpt_ack.done = 1;
        }
        s->st = S_CKPT;
}

/* Whether every record of the window is durable; failed ones are produced
 * again (a dead letter too large becomes a stub's worth: its reason). */
static int acks_settled(struct relay_poll *p, struct src *s)
{
        int all = 1;
        for (struct page *pg = s->head; pg; pg = pg->next)
                for (size_t i = 0; i < pg->n; i++) {
                        relay_kafka_ack_t *a = &pg->acks[i];
                        if (!a->done) {
                                all = 0;
                        } else if (a->err) {
                                all = 0;
                                enum relay_kafka_class c =
                                    relay_kafka_err_class(a->err);
                                if (c == RELAY_KAFKA_FATAL)
                                        p->fatal = 1;
                                if (!a->kept.topic || c == RELAY_KAFKA_FATAL)
                                        continue;
                                /* Let librdkafka's own retries settle a
                                 * moment between rounds. */
                                if (relay_mono_ms() < s->next_at)
                                        continue;
                                relay_log(LOG_WARNING, "poll",
                                          "source %s: producing a record "
                                          "again: %s",
                                          s->cfg->name,
                                          rd_kafka_err2str(a->err));
                                relay_kafka_ack_t old = *a;
                                memset(&a->kept, 0, sizeof(a->kept));
                                if (c == RELAY_KAFKA_RECORD)
                                        produce(p, NULL, p->dlq_topic,
                                                old.kept.key, old.kept.key_len,
                                                "", 0, NULL, a);
                                else
                                        produce(p, NULL, old.kept.topic,
                                                old.kept.key, old.kept.key_len,
                                                old.kept.value, old.kept.len,
                                                NULL, a);
                                relay_kafka_ack_release(&old);
                        }
                }
        if (!all && relay_mono_ms() >= s->next_at)
                s->next_at = relay_mono_ms() + 1000;
        return all;
}

static void window_done(struct src *s)
{
        relay_log(LOG_INFO, "poll",
                  "source %s: window %lld..%lld done: %lld record(s) in "
                  "%lld page(s)%s",
                  s->cfg->name, (long long)s->w.from, (long long)s->w.to,
                  (long long)s->records, s->pages,
                  s->dead ? ", some dead-lettered" : "");
        relay_metric_add(s->m_produced, (double)(s->records - s->dead));
        relay_metric_add(s->m_dead, (double)s->dead);
        relay_metric_add(s->m_windows, 1);
        s->ckpt = s->w.to;
        s->st = S_IDLE;
        s->retrying = 0;
        s->next_at = 0;
}

/* One step of a source's state machine. */
static void step(struct relay_poll *p, struct src *s)
{
        if (!s->owned || !s->loaded)
                return;
        int64_t now = relay_mono_ms();
        switch (s->st) {
        case S_IDLE:
                if (now < s->next_at)
                        return;
                if (s->retrying)
                        request_start(p, s);
                else
                        window_start(p, s);
                return;
        case S_FETCH:
                return; /* request_done moves it on */
        case S_ACKS:
                if (!acks_settled(p, s))
                        return;
                pages_free(s->head);
                s->head = NULL;
                s->tail = &s->head;
                checkpoint_write(p, s);
                return;
        case S_CKPT:
                if (!s->ckpt_ack.done)
                        return;
                if (!s->ckpt_ack.err) {
                        window_done(s);
                } else if (now >= s->next_at) {
                        relay_log(LOG_WARNING, "poll",
                                  "source %s: checkpoint: %s; writing it "
                                  "again",
                                  s->cfg->name,
                                  rd_kafka_err2str(s->ckpt_ack.err));
                        s->next_at = now + 1000;
                        checkpoint_write(p, s);
                }
                return;
        }
}

/* Bring s to rest by deadline (mono ms): its request aborted, and when
 * every page of its window is read, the window finished and checkpointed,
 * so that the next owner starts after it. What is not finished by then is
 * read again by the next owner. */
static void settle(struct relay_poll *p, struct src *s, int64_t deadline)
{
        if (s->st == S_FETCH) {
                relay_http_multi_abort(p->http, s->slot);
                relay_http_response_reset(&s->resp);
                s->st = S_IDLE;
        }
        while (s->st == S_ACKS || s->st == S_CKPT) {
                int64_t left = deadline - relay_mono_ms();
                if (left <= 0)
                        break;
                step(p, s);
                if (s->st == S_ACKS || s->st == S_CKPT)
                        rd_kafka_poll(p->producer, left < 50 ? (int)left : 50);
        }
        if (s->st != S_IDLE)
                relay_log(LOG_WARNING, "poll", "source %s: window %lld..%lld "
                          "left unfinished: the next owner reads it again",
                          s->cfg->name, (long long)s->w.from,
                          (long long)s->w.to);
        pages_bury(p, s);
        s->st = S_IDLE;
        s->retrying = 0;
        s->next_at = 0;
}

/* ---- ownership -------------------------------------------------------- */

static void owned_count(struct relay_poll *p)
{
        size_t n = 0;
        for (size_t i = 0; i < p->n; i++)
                n += p->src[i].owned;
        relay_metric_set(p->m_owned, (double)n);
}

static void on_assigned(void *opaque, rd_kafka_t *rk,
                        const rd_kafka_topic_partition_list_t *parts)
{
        struct relay_poll *p = opaque;
        (void)rk;
        relay_ready_set(RELAY_READY_ASSIGNED, NULL);
        for (int i = 0; i < parts->cnt; i++) {
                int32_t k = parts->elems[i].partition;
                if (k < 0 || k >= p->nparts)
                        continue;
                p->parts[k] = (struct part){.assigned = 1, .need_end = 1};
                for (size_t j = 0; j < p->n; j++)
                        if (p->src[j].partition == k) {
                                p->src[j].owned = 1;
                                p->src[j].loaded = 0;
                                p->src[j].ckpt = -1;
                                relay_log(LOG_INFO, "poll",
                                          "source %s is ours (partition "
                                          "%d of %s)",
                                          p->src[j].cfg->name, (int)k,
                                          p->ckpt_topic);
                        }
        }
        owned_count(p);
}

static void on_revoke(void *opaque, rd_kafka_t *rk,
                      const rd_kafka_topic_partition_list_t *parts)
{
        struct relay_poll *p = opaque;
        (void)rk;
        int64_t deadline = relay_mono_ms() + 10000;
        for (int i = 0; i < parts->cnt; i++) {
                int32_t k = parts->elems[i].partition;
                if (k < 0 || k >= p->nparts)
                        continue;
                p->parts[k].assigned = 0;
                for (size_t j = 0; j < p->n; j++) {
                        struct src *s = &p->src[j];
                        if (s->partition != k || !s->owned)
                                continue;
                        settle(p, s, deadline);
                        s->owned = s->loaded = 0;
                        relay_metric_hide(s->m_lag);
                        relay_log(LOG_INFO, "poll",
                                  "source %s handed back", s->cfg->name);
                }
        }
        owned_count(p);
}

/* A partition read to its end when assigned: its sources may start. */
static void part_loaded(struct relay_poll *p, int32_t k)
{
        p->parts[k].loaded = 1;
        for (size_t j = 0; j < p->n; j++) {
                struct src *s = &p->src[j];
                if (s->partition != k || !s->owned || s->loaded)
                        continue;
                s->loaded = 1;
                s->st = S_IDLE;
                s->next_at = 0;
                relay_buf_t t;
                relay_buf_init(&t);
                relay_poll_time_put(&t, RELAY_POLL_ISO8601,
                                    s->ckpt >= 0 ? s->ckpt
                                                 : relay_poll_window_origin(
                                                       s->cfg, relay_now_ms()));
                relay_log(LOG_INFO, "poll", "source %s: %s %s", s->cfg->name,
                          s->ckpt >= 0 ? "checkpoint" : "no checkpoint, "
                                                        "starting at",
                          t.data);
                relay_buf_free(&t);
        }
}

/* A checkpoint read from the topic, while its partition is loading. */
static void ckpt_read(struct relay_poll *p, const rd_kafka_message_t *m)
{
        int32_t k = m->partition;
        if (k < 0 || k >= p->nparts || !p->parts[k].assigned)
                return;
        struct part *pt = &p->parts[k];
        pt->next = m->offset + 1;
        if (!pt->loaded && m->key && m->payload) {
                for (size_t j = 0; j < p->n; j++) {
                        struct src *s = &p->src[j];
                        relay_poll_checkpoint_t c;
                        char why[256];
                        if (s->partition != k ||
                            strlen(s->cfg->name) != m->key_len ||
                            memcmp(s->cfg->name, m->key, m->key_len))
                                continue;
                        if (relay_poll_checkpoint_decode(
                                s->cfg->name, m->payload, m->len, &c, why,
                                sizeof(why)))
                                relay_log(LOG_WARNING, "poll",
                                          "source %s: checkpoint at "
                                          "offset %lld ignored: %s",
                                          s->cfg->name, (long long)m->offset,
                                          why);
                        else
                                s->ckpt = c.window_end;
                }
        }
        if (!pt->loaded && !pt->need_end && pt->next >= pt->end)
                part_loaded(p, k);
}

/* Serve the consumer: rebalances, and the checkpoints of partitions
 * being loaded. Waits up to wait_ms for the first event. */
static void consumer_serve(struct relay_poll *p, int wait_ms)
{
        static relay_log_limit_t lim;
        for (int i = 0; i < 1000; i++) {
                rd_kafka_message_t *m =
                    rd_kafka_consumer_poll(p->consumer, i ? 0 : wait_ms);
                if (!m)
                        break;
                if (!m->err)
                        ckpt_read(p, m);
                else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        relay_log_limited(&lim, 10000, LOG_WARNING, "poll",
                                          "checkpoints: %s",
                                          rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
        }
        /* Partitions newly assigned: how far to read them. */
        for (int32_t k = 0; k < p->nparts; k++) {
                struct part *pt = &p->parts[k];
                int64_t lo, hi;
                if (!pt->assigned || !pt->need_end)
                        continue;
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
                    p->consumer, p->ckpt_topic, k, &lo, &hi, 5000);
                if (err) {
                        relay_log_limited(&lim, 10000, LOG_WARNING, "poll",
                                          "checkpoints [%d]: end offset: %s",
                                          (int)k, rd_kafka_err2str(err));
                        continue;
                }
                pt->need_end = 0;
                pt->end = hi;
                if (pt->next >= hi || lo >= hi)
                        part_loaded(p, k);
        }
}

/* ---- the loop ---------------------------------------------------------- */

static int abort_request(void *arg)
{
        struct relay_poll *p = arg;
        (void)p;
        return !relay_run;
}

int relay_poll_run(relay_poll_t *p)
{
        size_t done[64];
        while (relay_run && !p->fatal) {
                relay_heartbeat();
                int busy = relay_http_multi_running(p->http) > 0;
                consumer_serve(p, busy ? 0 : 50);
                size_t nd;
                do {
                        nd = relay_http_multi_run(p->http, busy ? 50 : 0, done,
                                                  64);
                        for (size_t i = 0; i < nd; i++)
                                request_done(p, &p->src[done[i]]);
                        busy = 0;
                } while (nd == 64);
                rd_kafka_poll(p->producer, 0);
                int64_t now = relay_now_ms();
                for (size_t i = 0; i < p->n; i++) {
                        struct src *s = &p->src[i];
                        step(p, s);
                        if (s->owned && s->loaded && s->ckpt >= 0)
                                relay_metric_set(s->m_lag,
                                                 (double)(now - s->ckpt) /
                                                     1000.0);
                }
        }
        if (p->fatal)
                relay_log(LOG_CRIT, "poll", "the producer failed for good; "
                          "stopping (a restart recovers)");
        /* Stopping: finish what is read, within the grace. */
        relay_ready_set(RELAY_READY_DRAINING, "stopping");
        int64_t deadline = relay_mono_ms() +
                           relay_conf_int(p->conf, "worker.shutdown_grace_ms");
        for (size_t i = 0; i < p->n; i++)
                if (p->src[i].owned)
                        settle(p, &p->src[i], deadline);
        return p->fatal ? -1 : 0;
}

/* ---- setup ------------------------------------------------------------ */

/* Where s's token comes from (source.auth.env, or RELAY_POLL_<NAME>_TOKEN),
 * and the token: checked before anything connects anywhere. */
static int src_token(struct src *s, relay_poll_source_t *c, char *errstr,
                     size_t errstr_size)
{
        s->cfg = c;
        relay_buf_init(&s->token);
        relay_buf_init(&s->auth);
        if (c->auth_env) {
                snprintf(s->env, sizeof(s->env), "%s", c->auth_env);
        } else {
                int o = snprintf(s->env, sizeof(s->env), "RELAY_POLL_");
                for (const char *q = c->name; *q && o + 7 < (int)sizeof(s->env);
                     q++)
                        s->env[o++] = isalnum((unsigned char)*q)
                                          ? (char)toupper((unsigned char)*q)
                                          : '_';
                snprintf(s->env + o, sizeof(s->env) - (size_t)o, "_TOKEN");
        }
        if (token_load(s, errstr, errstr_size))
                return -1;
        return 0;
}

/* The series of source c in the family name (made on first use). */
static relay_series_t *source_metric(const relay_poll_source_t *c,
                                     enum relay_metric_type type,
                                     const char *name, const char *help)
{
        return relay_series(relay_metric(type, name, help, "source", NULL, 0),
                            c->name);
}

static int src_init(struct relay_poll *p, struct src *s, size_t i,
                    char *errstr, size_t errstr_size)
{
        relay_poll_source_t *c = p->cfgs[i];
        s->slot = i;
        s->ckpt = -1;
        s->tail = &s->head;
        relay_buf_init(&s->url);
        relay_buf_init(&s->ua);
        relay_http_response_init(&s->resp);
        s->partition = relay_kafka_key_partition(c->name, strlen(c->name),
                                                 p->nparts);
        relay_buf_printf(&s->ua, "User-Agent: relay-poll/1 (%s)",
                         p->ua_instance);
        const char *topic = relay_json_map_topic(c->map);
        s->rkt = rd_kafka_topic_new(p->producer, topic, NULL);
        relay_kafka_topic_warm(p->producer, topic, 2000);
        s->m_requests = relay_metric(
            RELAY_METRIC_COUNTER, "relay_poll_requests_total",
            "requests to polled sources, by outcome (ok, failed, throttled, "
            "refused, bad_answer)",
            "source,outcome", NULL, 0);
        s->m_polled = source_metric(c, RELAY_METRIC_COUNTER,
                                    "relay_poll_records_polled_total",
                                    "records read from the source's answers");
        s->m_produced = source_metric(c, 
            RELAY_METRIC_COUNTER, "relay_poll_records_produced_total",
            "records produced and acknowledged by Kafka (counted as each "
            "window is done)");
        s->m_dead = source_metric(c, RELAY_METRIC_COUNTER,
                                  "relay_poll_records_dead_lettered_total",
                                  "records that could not be mapped");
        s->m_windows = source_metric(c, RELAY_METRIC_COUNTER,
                                     "relay_poll_windows_total",
                                     "windows done and checkpointed");
        s->m_failed = source_metric(c, 
            RELAY_METRIC_COUNTER, "relay_poll_windows_failed_total",
            "windows that failed poll.max_attempts times in a row (each is "
            "retried until it is done)");
        s->m_failing = source_metric(c, 
            RELAY_METRIC_GAUGE, "relay_poll_source_failing",
            "1 while the source's window in hand is reported failed");
        s->m_lag = source_metric(c, 
            RELAY_METRIC_GAUGE, "relay_poll_checkpoint_lag_seconds",
            "now less the last window end, for the sources this replica "
            "polls");
        relay_metric_set(s->m_failing, 0);
        relay_metric_hide(s->m_lag);
        return 0;
}

relay_poll_t *relay_poll_new(const relay_conf_t *conf, char *errstr,
                             size_t errstr_size)
{
        struct relay_poll *p = relay_calloc(1, sizeof(*p));
        static const char *const compact[] = {"cleanup.policy", "compact",
                                              NULL};
        p->conf = conf;
        relay_conf_bind(conf, relay_poll_props, p);
        p->retry = (relay_retry_policy_t){(int)p->max_attempts,
                                          (long)p->backoff_base_ms,
                                          (long)p->backoff_max_ms};
        if (p->instance) {
                snprintf(p->ua_instance, sizeof(p->ua_instance), "%s",
                         p->instance);
        } else {
                char host[256] = "localhost";
                gethostname(host, sizeof(host) - 1);
                snprintf(p->ua_instance, sizeof(p->ua_instance), "%s:%d", host,
                         (int)getpid());
        }
        /* The schemas first: a source's mapping is checked against its
         * topic's. */
        if (!(p->schemas = relay_worker_schemas(conf, -1, errstr,
                                                errstr_size)) ||
            relay_poll_sources_load(p->sources, p->schemas, &p->cfgs, &p->n,
                                    errstr, errstr_size))
                goto fail;
        p->src = relay_calloc(p->n, sizeof(*p->src));
        for (size_t i = 0; i < p->n; i++)
                if (src_token(&p->src[i], p->cfgs[i], errstr, errstr_size))
                        goto fail;
        if (!(p->producer = relay_kafka_producer_new(conf, errstr,
                                                     errstr_size)))
                goto fail;
        /* Kafka away at start (a broker restarting, the cluster not up
         * yet) is waited out, not a crash loop: say why, not ready, and
         * ask again with backoff until it answers or the worker stops. */
        for (long wait_ms = 1000;
             (p->nparts = relay_kafka_topic_ensure(
                  p->producer, p->ckpt_topic, (int)p->ckpt_partitions,
                  compact, errstr, errstr_size)) < 0;
             wait_ms = wait_ms < 16000 ? wait_ms * 2 : 30000) {
                relay_ready_set(RELAY_READY_KAFKA,
                                "checkpoint topic %s: %s", p->ckpt_topic,
                                errstr);
                relay_log(LOG_WARNING, "poll",
                          "checkpoint topic %s: %s; asking again in %ld ms",
                          p->ckpt_topic, errstr, wait_ms);
                if (relay_sleep_ms(wait_ms, &relay_run))
                        goto fail;
        }
        relay_ready_set(RELAY_READY_KAFKA, NULL);
        p->parts = relay_calloc((size_t)p->nparts, sizeof(*p->parts));
        if (!(p->http = relay_http_multi_new(p->n, (long)p->http_timeout_ms,
                                             (long)p->connect_timeout_ms))) {
                relay_seterr(errstr, errstr_size, "libcurl: cannot set up");
                goto fail;
        }
        relay_http_multi_set_abort(p->http, abort_request, p);
        p->m_owned = relay_metric_series(
            relay_metric(RELAY_METRIC_GAUGE, "relay_poll_sources_owned",
                         "sources this replica polls", NULL, NULL, 0));
        for (size_t i = 0; i < p->n; i++)
                if (src_init(p, &p->src[i], i, errstr, errstr_size))
                        goto fail;
        p->rebalance.assigned = on_assigned;
        p->rebalance.revoke = on_revoke;
        p->rebalance.from_beginning = 1;
        relay_ready_set(RELAY_READY_ASSIGNED,
                        "no partitions of %s assigned yet", p->ckpt_topic);
        if (!(p->consumer = relay_kafka_consumer_new(
                  conf, p->group_id, &p->rebalance, p, errstr, errstr_size)) ||
            relay_kafka_subscribe(p->consumer, p->ckpt_topic, errstr,
                                  errstr_size))
                goto fail;
        relay_log(LOG_INFO, "poll",
                  "%zu source(s), checkpoints in %s (%d partitions), group "
                  "%s, as %s",
                  p->n, p->ckpt_topic, (int)p->nparts, p->group_id,
                  p->ua_instance);
        return p;
fail:
        relay_poll_destroy(p);
        return NULL;
}

void relay_poll_destroy(relay_poll_t *p)
{
        if (!p)
                return;
        /* Leaving the group settles the sources still held (on_revoke). */
        relay_kafka_consumer_close(p->consumer);
        relay_http_multi_destroy(p->http);
        for (size_t i = 0; p->src && i < p->n; i++)
                if (p->src[i].rkt)
                        rd_kafka_topic_destroy(p->src[i].rkt);
        relay_kafka_producer_close(p->producer, 10000);
        for (size_t i = 0; p->src && i < p->n; i++) {
                struct src *s = &p->src[i];
                pages_free(s->head);
                free(s->cursor);
                relay_buf_free(&s->token);
                relay_buf_free(&s->url);
                relay_buf_free(&s->auth);
                relay_buf_free(&s->ua);
                relay_http_response_reset(&s->resp);
        }
        pages_free(p->grave);
        free(p->src);
        free(p->parts);
        relay_schemas_destroy(p->schemas);
        relay_poll_sources_free(p->cfgs, p->n);
        free(p);
}
