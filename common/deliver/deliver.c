/*
 * The delivery processor (see relay/deliver.h): one process per platform.
 *
 * Records are decoded (relay.out.Outbound) and encoded by the platform's
 * adapter as they are consumed. flush spreads a batch over lanes by key
 * (a person's records all in one lane, in order; a new person joins the
 * lane being filled until it holds a request's worth) and sends the head
 * request of every lane at once on libcurl multi, up to
 * deliver.max_in_flight requests (or an AIMD window with "adaptive"). A
 * lane sends one request at a time, so a later record of a person waits
 * until the earlier one was delivered or dead-lettered, while other
 * people's records go ahead; a retry's backoff holds only its own lane.
 * Between steps the engine serves the consumer, and every wait (backoff,
 * throttling, a paused platform) is a wake time handed to the engine or a
 * bounded wait for an answer, never a sleep here.
 *
 * A dead letter is for a record that is wrong, not for a platform that is
 * down, slow, throttling or misconfigured. So an answer is read as one of:
 * - delivered (2xx);
 * - the record's fault (400, 413, 422 and other 4xx that are not about the
 *   connection): a request of several records is split in halves until
 *   the refused record stands alone, which is then dead-lettered;
 * - throttling (429, or any retryable answer with Retry-After): every
 *   lane waits what the platform asks (up to deliver.retry_after_max_ms),
 *   using no attempt; the requests already under way are answered;
 * - the connection is misconfigured (401, 403, 404, 405, 407): pause, say
 *   why once, probe with one record on a growing interval, re-reading the
 *   secrets (*_FILE) before each probe so a rotated key heals by itself;
 *   unless the adapter says the answer is about the record (a 404 naming
 *   a wallet that does not exist), which makes it the record's fault;
 * - a failure (5xx, timeout, refused or reset connection): retried with
 *   exponential backoff and jitter up to deliver.max_attempts. When
 *   deliver.breaker_failures requests in a row fail so, the circuit opens:
 *   pause, probe with one record on a growing interval (once nothing
 *   else is under way), close on success; attempts are not used while it
 *   is open, and the answers of requests sent before it opened use none. A
 * request of several records that used its attempts is split (each half gets
 * one more try); a lone record that used them is dead-lettered only when the
 * platform accepted other records between its last two failures and it failed
 * more often than the platform's recent failure rate makes likely (odds below
 *   1e-6; else the circuit opens).
 *   Probes are taken from the records that used the fewest attempts and
 *   never overtake an earlier record of the same person, so a record at
 *   fault cannot keep the platform looking down.
 * deliver.max_outage_ms (default none) dead-letters what is in hand when
 * the platform stays unavailable longer, for those who want Kafka
 * Connect's give-up behaviour.
 */
#include "relay/deliver.h"
#include "relay/adapter.h"
#include "relay/avro.h"
#include "relay/bucket.h"
#include "relay/dlq.h"
#include "relay/http.h"
#include "relay/log.h"
#include "relay/metrics.h"
#include "relay/admin.h"
#include "relay/pipeline.h"
#include "relay/retry.h"
#include "relay/worker.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const relay_conf_prop_t relay_deliver_props[] = {
    {"deliver.platform", RELAY_CONF_STRING, NULL, 0, -1, RELAY_CONF_REQUIRED,
     "destination platform: the adapter, out.<platform> and dlq.<platform>", 0},
    {"deliver.topic", RELAY_CONF_STRING, NULL, 0, -1, 0,
     "input topic (default out.<platform>); its records are read with the "
     "schema of subject out.<platform>-value, the platform's contract", 0},
    {"deliver.dlq_topic", RELAY_CONF_STRING, NULL, 0, -1, 0,
     "dead-letter topic (default dlq.<platform>)", 0},
    {"deliver.group_id", RELAY_CONF_STRING, NULL, 0, -1, 0,
     "consumer group (default relay-deliver-<platform>)", 0},
    {"deliver.max_attempts", RELAY_CONF_INT, "5", 1, 100, 0,
     "attempts a record gets for failures (5xx, timeouts) while the "
     "platform accepts other records",
     0},
    {"deliver.backoff_base_ms", RELAY_CONF_INT, "500", 1, 3600000, 0,
     "backoff before the second attempt; doubles each time, with jitter", 0},
    {"deliver.backoff_max_ms", RELAY_CONF_INT, "30000", 1, 3600000, 0,
     "longest backoff between attempts", 0},
    {"deliver.retry_after_max_ms", RELAY_CONF_INT, "3600000", 0, 86400000, 0,
     "longest Retry-After honoured (a 429 or a 503 with it uses no attempt)",
     0},
    {"deliver.breaker_failures", RELAY_CONF_INT, "3", 1, 1000, 0,
     "failed requests in a row (5xx, timeouts, refused) that open the "
     "circuit: pause and probe",
     0},
    {"deliver.probe_base_ms", RELAY_CONF_INT, "1000", 10, 3600000, 0,
     "first probe of a paused platform; the interval doubles", 0},
    {"deliver.probe_max_ms", RELAY_CONF_INT, "60000", 10, 3600000, 0,
     "longest interval between probes", 0},
    {"deliver.max_outage_ms", RELAY_CONF_INT, "0", 0, 31536000000LL, 0,
     "dead-letter what is in hand once the platform was unavailable this "
     "long (0: never; the work waits)",
     0},
    {"deliver.http_timeout_ms", RELAY_CONF_INT, "10000", 100, 600000, 0,
     "total time allowed for one request (below half of "
     "kafka.max.poll.interval.ms)",
     0},
    {"deliver.connect_timeout_ms", RELAY_CONF_INT, "5000", 100, 600000, 0,
     "time allowed to connect", 0},
    {"deliver.max_in_flight", RELAY_CONF_STRING, "4", 0, -1, 0,
     "requests under way at once (1 to 256), or \"adaptive\": from 1 up "
     "to deliver.adaptive_max_in_flight, growing while answers come in "
     "time, halved on throttling, 503s, timeouts or rising latency",
     0},
    {"deliver.adaptive_max_in_flight", RELAY_CONF_INT, "64", 1, 256, 0,
     "the most requests under way at once when deliver.max_in_flight is "
     "adaptive",
     0},
    {"deliver.batch_size", RELAY_CONF_INT, "0", 0, 100000, 0,
     "records consumed per batch (0: a request's worth for each request "
     "that may be under way, less an eighth when that is more than one, "
     "so that people packed whole into requests fill one round trip; a "
     "multiple of that sends faster to a fast platform, and a crash or "
     "rebalance sends more records twice)",
     0},
    {"deliver.batch_wait_ms", RELAY_CONF_INT, "200", 0, 60000, 0,
     "longest a partial batch waits for more records before it is sent, "
     "and only while worker.batches_in_flight batches are held (otherwise "
     "it goes as soon as nothing more is ready)",
     0},
    {"deliver.max_requests_per_s", RELAY_CONF_INT, "0", 0, 1000000, 0,
     "requests a second to the platform at most, over every lane (0: no "
     "limit of ours); the platform's rate-limit headers lower it while "
     "they say",
     0},
    {"deliver.max_events_per_s", RELAY_CONF_INT, "0", 0, 100000000, 0,
     "records a second to the platform at most, over every lane (0: no "
     "limit)",
     0},
    {"deliver.max_record_bytes", RELAY_CONF_INT, "0", 0, 104857600, 0,
     "larger input records are dead-lettered (0: kafka message.max.bytes "
     "less the room kept for dead-letter headers)",
     0},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

/* The platform as the last answers showed it. */
enum platform_state {
        PLATFORM_OK,
        PLATFORM_DOWN, /* circuit open: probing */
        PLATFORM_AUTH  /* credentials or endpoint refused: probing */
};

/* One record of the batch in hand. */
struct drec {
        relay_buf_t item; /* the adapter's encoding */
        int encoded;
        int lane;
};

/* Consecutive records of the send order that go in one request. The send
 * order is lane by lane, so a range is always records of one lane. */
struct range {
        size_t start, n;
        int attempts;                  /* failures that used an attempt */
        int fails;                     /* failed requests its records were in */
        int64_t first_fail, last_fail; /* relay_mono_ms, 0 when none */
        int64_t not_before;            /* a retry's backoff */
        int lane;
        int next; /* the next range of its lane, -1 */
        int slot; /* sending it, -1 */
};

/* A request under way. */
struct slot {
        relay_http_response_t resp;
        relay_buf_t body; /* built once per request */
        relay_buf_t *items;
        size_t *sent; /* its records */
        size_t n;
        int range; /* -1: free */
        int probe;
        int failed_start; /* could not start: answered at the next collect */
        double window;    /* the concurrency when it started */
};

/* The platform's recent answers (failed or not; throttling and refused
 * credentials are not counted), each with the send-order span of its
 * request, to tell a record's failures from the platform's failure rate.
 */
#define ANSWERS 256
struct answer {
        unsigned gen; /* the batch (build) it belongs to */
        unsigned failed;
        size_t start, n;
};

struct relay_deliver {
        relay_conf_t *conf;
        const struct relay_adapter *adapter;
        void *ad;
        char worker[128], platform[64];
        relay_schemas_t *schemas;
        relay_avro_reader_t *reader;
        relay_pipeline_t *p;
        relay_http_multi_t *http;
        relay_retry_policy_t retry;
        size_t max_items, max_bytes, batch_size;
        long retry_after_max, probe_base, probe_max;
        long long max_outage;
        int breaker_failures;

        struct drec *recs; /* batch_size of them */
        size_t *order;     /* records to send, lane by lane */
        size_t norder;
        /* lanes: a person's records (by key) are all in one lane, in
         * order, and a lane sends one range at a time, so a later record
         * of a person never overtakes an earlier one */
        int *lanes; /* each lane's first range, -1 when none */
        size_t nlanes, lane_turn;
        struct range *rpool; /* batch_size + 1 */
        int *rfree;
        size_t nfree;
        int *keytab; /* the batch's keys → a record of theirs, -1 empty */
        size_t keycap;
        size_t *gcount, *gbytes; /* a person's records and bytes, by their
                                    first record */
        int built;
        struct slot *slots;
        size_t nslots, inflight;
        size_t *done; /* scratch for relay_http_multi_run */

        /* rate limits, shared by every lane: requests and records a
         * second (deliver.max_*_per_s), the requests' rate lowered while
         * the platform's rate-limit headers say (until limit_until) */
        relay_bucket_t req_bucket, ev_bucket;
        double max_req_rate;
        int64_t limit_until;
        relay_item_result_t *item_res; /* max_items: a partial answer */

        /* concurrency: fixed (adaptive 0) or AIMD between 1 and nslots */
        int adaptive;
        double window, rtt_base;
        int64_t last_cut;

        enum platform_state state;
        int failures_in_row, probes, throttles;
        size_t probe_turn; /* which candidate the next probe takes */
        long last_status;
        int64_t last_ok, down_since, wait_until;
        struct answer answers[ANSWERS];
        size_t nanswers, answer_at;
        unsigned gen;
        int waiting_registry;
        unsigned long delivered, dead, requests, retries, throttled;

        /* metrics (relay/metrics.h), labelled with the platform */
        relay_metric_t *m_requests, *m_retries;
        relay_series_t *m_delivered, *m_duration, *m_in_flight, *m_state,
            *m_breaker, *m_throttled, *m_window, *m_req_rate, *m_ev_rate;
};

static const char *const outcome_names[] = {"ok", "refused", "throttled",
                                            "auth", "failed"};

/* ---- records ------------------------------------------------------------ */

static void dead_letter(struct relay_deliver *d, size_t i, const char *stage,
                        const char *why, long status, int attempts)
{
        relay_dlq_info_t info = {d->worker, stage, why, status,
                                 attempts,  NULL,  0};
        relay_pipeline_dead_letter(d->p, i, &info);
        d->dead++;
}

static enum relay_result dl_record(void *opaque, relay_pipeline_t *p, size_t i)
{
        struct relay_deliver *d = opaque;
        const rd_kafka_message_t *m = relay_pipeline_msg(p, i);
        struct drec *r = &d->recs[i];
        char why[600];
        const relay_slots_t *v;
        enum relay_result res = relay_avro_reader_decode_slots(
            d->reader, m->payload, m->len, &v, NULL, why, sizeof(why));
        if (res == RELAY_RETRY) {
                d->waiting_registry = 1;
                relay_pipeline_paused(p, "%s", why);
                return RELAY_RETRY;
        }
        if (d->waiting_registry) {
                d->waiting_registry = 0;
                relay_pipeline_resumed(p);
        }
        if (res != RELAY_OK) {
                dead_letter(d, i, "decode", why, 0, 0);
                return RELAY_OK;
        }
        relay_buf_reset(&r->item);
        if (relay_adapter_encode(d->adapter, d->ad, v, &r->item, why,
                                 sizeof(why)) != RELAY_OK) {
                dead_letter(d, i, "encode", why, 0, 0);
                return RELAY_OK;
        }
        r->encoded = 1;
        return RELAY_OK;
}

/* ---- lanes and ranges -----------------------------------------------------
 */

static int live(struct relay_deliver *d, size_t k)
{
        size_t i = d->order[k];
        return !relay_pipeline_dropped(d->p, i) &&
               !relay_pipeline_is_done(d->p, i);
}

static size_t range_live(struct relay_deliver *d, const struct range *rg)
{
        size_t n = 0;
        for (size_t k = rg->start; k < rg->start + rg->n; k++)
                n += (size_t)live(d, k);
        return n;
}

static int range_new(struct relay_deliver *d)
{
        int r = d->rfree[--d->nfree];
        struct range *rg = &d->rpool[r];
        memset(rg, 0, sizeof(*rg));
        rg->next = rg->slot = -1;
        return r;
}

/* Split range r after its first `first` slots of the send order: the rest
 * becomes the next range of its lane, keeping r's attempts. Returns it. */
static int range_split_at(struct relay_deliver *d, int r, size_t first)
{
        int q = range_new(d);
        struct range *rg = &d->rpool[r], *rq = &d->rpool[q];
        *rq = *rg;
        rq->start = rg->start + first;
        rq->n = rg->n - first;
        rq->slot = -1;
        rg->n = first;
        rg->next = q;
        return q;
}

/* Split range r in halves by its live records. */
static void range_halve(struct relay_deliver *d, int r)
{
        struct range *rg = &d->rpool[r];
        size_t half = range_live(d, rg) / 2, seen = 0, k = rg->start;
        for (; k < rg->start + rg->n && seen < half; k++)
                seen += (size_t)live(d, k);
        range_split_at(d, r, k - rg->start);
}

/* Drop the finished ranges at the head of a lane; its head, or -1. */
static int lane_head(struct relay_deliver *d, size_t l)
{
        int r;
        while ((r = d->lanes[l]) >= 0 && d->rpool[r].slot < 0 &&
               !range_live(d, &d->rpool[r])) {
                d->lanes[l] = d->rpool[r].next;
                d->rfree[d->nfree++] = r;
        }
        return r;
}

/* Whether a live record before position k of range r (in send order)
 * has the same key (the same person) as the record at k: only its lane
 * can hold one. */
static int key_earlier(struct relay_deliver *d, int r, size_t k)
{
        const rd_kafka_message_t *m = relay_pipeline_msg(d->p, d->order[k]);
        if (!m->key_len)
                return 0; /* no key, no person: no order to keep */
        for (int q = d->lanes[d->rpool[r].lane]; q >= 0; q = d->rpool[q].next) {
                const struct range *rg = &d->rpool[q];
                size_t end = q == r ? k : rg->start + rg->n;
                for (size_t j = rg->start; j < end; j++) {
                        if (!live(d, j))
                                continue;
                        const rd_kafka_message_t *o =
                            relay_pipeline_msg(d->p, d->order[j]);
                        if (o->key_len == m->key_len &&
                            (!m->key_len ||
                             !memcmp(o->key, m->key, m->key_len)))
                                return 1;
                }
                if (q == r)
                        break;
        }
        return 0;
}

/* The probe of a paused platform: one live record as a range of its own
 * at the head of its lane, taken from the ranges that used the fewest
 * attempts and never one that would overtake an earlier record of the
 * same person. Successive probes take turns among those candidates, so
 * that a record at fault (which keeps failing) cannot make the platform
 * look down for ever. -1 when nothing is left. */
static int range_probe(struct relay_deliver *d)
{
        int best = INT_MAX;
        size_t n = 0;
        for (int pass = 0; pass < 2; pass++) {
                size_t want = n ? d->probe_turn % n : 0, seen = 0;
                for (size_t l = 0; l < d->nlanes; l++) {
                        int prev = -1;
                        for (int r = lane_head(d, l); r >= 0;
                             prev = r, r = d->rpool[r].next) {
                                struct range *rg = &d->rpool[r];
                                if (pass ? rg->attempts != best
                                         : rg->attempts > best)
                                        continue;
                                for (size_t k = rg->start;
                                     k < rg->start + rg->n; k++) {
                                        if (!live(d, k) || key_earlier(d, r, k))
                                                continue;
                                        if (!pass) {
                                                if (rg->attempts < best)
                                                        best = rg->attempts,
                                                        n = 0;
                                                n++;
                                                continue;
                                        }
                                        if (seen++ < want)
                                                continue;
                                        d->probe_turn++;
                                        int pr = r;
                                        if (k > rg->start) {
                                                prev = r;
                                                pr = range_split_at(
                                                    d, r, k - rg->start);
                                        }
                                        if (d->rpool[pr].n > 1)
                                                range_split_at(d, pr, 1);
                                        /* To the head of its lane. */
                                        if (prev >= 0) {
                                                d->rpool[prev].next =
                                                    d->rpool[pr].next;
                                                d->rpool[pr].next = d->lanes[l];
                                                d->lanes[l] = pr;
                                        }
                                        return pr;
                                }
                        }
                }
                if (!n)
                        break;
        }
        /* Every live record waits behind an earlier one of its person:
         * the first lane's head will do. */
        for (size_t l = 0; l < d->nlanes; l++)
                if (lane_head(d, l) >= 0)
                        return d->lanes[l];
        return -1;
}

/* Whether any range but r has a live record. */
static int others_live(struct relay_deliver *d, int r)
{
        for (size_t l = 0; l < d->nlanes; l++)
                for (int q = d->lanes[l]; q >= 0; q = d->rpool[q].next)
                        if (q != r && range_live(d, &d->rpool[q]))
                                return 1;
        return 0;
}

/* FNV-1a of a key. */
static uint64_t key_hash(const void *key, size_t len)
{
        const unsigned char *p = key;
        uint64_t h = 14695981039346656037ULL;
        for (size_t i = 0; i < len; i++)
                h = (h ^ p[i]) * 1099511628211ULL;
        return h;
}

/* The first live record of the batch with record i's key (its person),
 * or i itself when it is the first (the table then remembers i) or has
 * no key: a record without a key has no person, so no order to keep with
 * any other. */
static size_t person_of(struct relay_deliver *d, size_t i)
{
        const rd_kafka_message_t *m = relay_pipeline_msg(d->p, i);
        if (!m->key_len)
                return i;
        size_t mask = d->keycap - 1;
        for (size_t h = key_hash(m->key, m->key_len) & mask;;
             h = (h + 1) & mask) {
                int j = d->keytab[h];
                if (j < 0) {
                        d->keytab[h] = (int)i;
                        return i;
                }
                const rd_kafka_message_t *o =
                    relay_pipeline_msg(d->p, (size_t)j);
                if (o->key_len == m->key_len &&
                    !memcmp(o->key, m->key, m->key_len))
                        return (size_t)j;
        }
}

static size_t window_of(const struct relay_deliver *d);

/* The send order and the first ranges. A person's records all go in one
 * lane, in order; people are packed into lanes whole, a lane taking the
 * next person while it holds less than its share of the batch (the
 * batch over the requests that may be under way, but at least half a
 * request's worth, so that a small batch goes as one request) and the
 * person still fits in a request. So every lane is one request, unless
 * one person has more than a request's worth, and a batch of at most
 * window x a request's worth less the packing's slack (the default
 * deliver.batch_size) goes out in one round trip: a lane that overflowed
 * into a second request would leave the other slots idle while its tail
 * went alone a round trip later (tests/bench/concurrency.sh found the
 * batch taking two). */
static void build(struct relay_deliver *d)
{
        size_t n = relay_pipeline_count(d->p), live_n = 0, live_bytes = 0;
        d->norder = d->nlanes = 0;
        d->gen++;
        for (size_t h = 0; h < d->keycap; h++)
                d->keytab[h] = -1;
        /* Each person's records and bytes, under their first record; a
         * record's lane holds its person's first record meanwhile. */
        for (size_t i = 0; i < n; i++) {
                struct drec *r = &d->recs[i];
                if (!r->encoded || relay_pipeline_is_done(d->p, i) ||
                    relay_pipeline_dropped(d->p, i)) {
                        r->lane = -1;
                        continue;
                }
                size_t h = person_of(d, i), len = r->item.len + 1;
                if (h == i)
                        d->gcount[i] = d->gbytes[i] = 0;
                d->gcount[h]++;
                d->gbytes[h] += len;
                r->lane = (int)h;
                live_n++;
                live_bytes += len;
        }
        size_t k = window_of(d);
        size_t share = (live_n + k - 1) / k;
        size_t share_bytes = (live_bytes + k - 1) / k;
        if (share < (d->max_items + 1) / 2)
                share = (d->max_items + 1) / 2;
        if (share_bytes < d->max_bytes / 2)
                share_bytes = d->max_bytes / 2;
        size_t *count = d->done; /* records per lane, then where each goes */
        size_t fill = 0, bytes = 0;
        for (size_t i = 0; i < n; i++) {
                struct drec *r = &d->recs[i];
                if (r->lane < 0)
                        continue;
                if ((size_t)r->lane == i) {
                        if (!d->nlanes ||
                            (fill && (fill >= share || bytes >= share_bytes ||
                                      fill + d->gcount[i] > d->max_items ||
                                      bytes + d->gbytes[i] > d->max_bytes))) {
                                count[d->nlanes++] = 0;
                                fill = bytes = 0;
                        }
                        fill += d->gcount[i];
                        bytes += d->gbytes[i];
                        r->lane = (int)d->nlanes - 1;
                } else {
                        r->lane = d->recs[r->lane].lane;
                }
                count[r->lane]++;
                d->norder++;
        }
        /* Lane by lane into the send order, each lane in record order. */
        size_t at = 0;
        for (size_t l = 0; l < d->nlanes; l++) {
                size_t c = count[l];
                count[l] = at;
                at += c;
        }
        for (size_t i = 0; i < n; i++)
                if (d->recs[i].lane >= 0)
                        d->order[count[d->recs[i].lane]++] = i;
        /* Each lane's ranges, within the platform's limits. */
        at = 0;
        for (size_t l = 0; l < d->nlanes; l++) {
                int last = -1;
                d->lanes[l] = -1;
                bytes = 0;
                for (; at < count[l]; at++) {
                        size_t len = d->recs[d->order[at]].item.len + 1;
                        struct range *rg = last >= 0 ? &d->rpool[last] : NULL;
                        if (!rg || rg->n == d->max_items ||
                            (rg->n && bytes + len > d->max_bytes)) {
                                int r = range_new(d);
                                d->rpool[r].start = at;
                                d->rpool[r].lane = (int)l;
                                if (last >= 0)
                                        d->rpool[last].next = r;
                                else
                                        d->lanes[l] = r;
                                last = r;
                                rg = &d->rpool[r];
                                bytes = 0;
                        }
                        rg->n++;
                        bytes += len;
                }
        }
        d->built = 1;
}

/* Every range back to the pool. */
static void ranges_clear(struct relay_deliver *d)
{
        for (size_t l = 0; l < d->nlanes; l++)
                for (int r = d->lanes[l]; r >= 0;) {
                        int next = d->rpool[r].next;
                        d->rfree[d->nfree++] = r;
                        r = next;
                }
        d->nlanes = d->norder = 0;
}

/* ---- the platform's answers ---------------------------------------------- */

enum outcome {
        OUT_OK,
        OUT_RECORD,   /* the record's fault: split, then dead-letter */
        OUT_THROTTLE, /* wait as asked, no attempt used */
        OUT_AUTH,     /* the connection is misconfigured */
        OUT_FAIL      /* 5xx, timeout, transport: attempts, breaker */
};

static enum outcome outcome_of(const struct relay_deliver *d,
                               enum relay_result r,
                               const relay_http_response_t *resp)
{
        long s = resp->status;
        if (r == RELAY_OK)
                return OUT_OK;
        if (!resp->transport_error &&
            (s == 401 || s == 403 || s == 404 || s == 405 || s == 407))
                return relay_adapter_record_refused(d->adapter, d->ad, resp)
                           ? OUT_RECORD
                           : OUT_AUTH;
        if (s == 429 || (r == RELAY_RETRY && resp->retry_after_ms >= 0))
                return OUT_THROTTLE;
        return r == RELAY_RETRY ? OUT_FAIL : OUT_RECORD;
}

static void answered(struct relay_deliver *d, const struct range *rg,
                     int failed)
{
        struct answer *a = &d->answers[d->answer_at];
        a->gen = d->gen;
        a->failed = (unsigned)failed;
        a->start = rg->start;
        a->n = rg->n;
        d->answer_at = (d->answer_at + 1) % ANSWERS;
        if (d->nanswers < ANSWERS)
                d->nanswers++;
}

/* Odds below which a lone record's failures are not chance: the chance
 * that requests fail that many times at the platform's failure rate. */
#define BLAME_ODDS 1e-6

/* Whether range rg (one record) failed too often to be the platform's
 * chance: the failed requests it was in against the failure rate of the
 * platform's recent requests without it, taken as (failed + 1) /
 * (answered + 10) so that a few answers cannot make a platform look
 * healthier than it is. A platform that fails 30 % of requests at random
 * needs 12 failures of the record; a healthy one 6 or 7, which a record
 * that used its attempts in a request of several and then alone has.
 * *total and *failed get the answers counted. */
static int to_blame(struct relay_deliver *d, const struct range *rg,
                    unsigned *total, unsigned *failed)
{
        *total = *failed = 0;
        for (size_t h = 0; h < d->nanswers; h++) {
                const struct answer *a = &d->answers[h];
                if (a->gen == d->gen && rg->start >= a->start &&
                    rg->start < a->start + a->n)
                        continue; /* the record was in it */
                (*total)++;
                *failed += a->failed;
        }
        double rate = (*failed + 1.0) / (*total + 10.0), odds = 1.0;
        for (int k = 0; k < rg->fails && odds >= BLAME_ODDS; k++)
                odds *= rate;
        return odds < BLAME_ODDS;
}

/* The growing interval between probes of a paused platform. */
static long probe_delay(struct relay_deliver *d)
{
        long wait = d->probe_base;
        for (int k = 0; k < d->probes && wait < d->probe_max; k++)
                wait *= 2;
        d->probes++;
        return wait < d->probe_max ? wait : d->probe_max;
}

static void platform_down(struct relay_deliver *d, enum platform_state st,
                          const char *why)
{
        int64_t now = relay_mono_ms();
        if (d->state == PLATFORM_OK) {
                d->down_since = now;
                d->probes = 0;
        }
        d->state = st;
        relay_metric_set(d->m_state, st == PLATFORM_AUTH ? 2 : 1);
        relay_metric_set(d->m_breaker, st == PLATFORM_DOWN);
        long wait = probe_delay(d);
        d->wait_until = now + wait;
        if (st == PLATFORM_AUTH) {
                relay_pipeline_paused(
                    d->p,
                    "%s refused the connection's credentials or endpoint "
                    "(%s); probing with one record every %g s at most, "
                    "re-reading the secrets before each probe",
                    d->platform, why, (double)d->probe_max / 1000.0);
                relay_ready_set(RELAY_READY_PLATFORM,
                                "%s refused the credentials or endpoint: %s",
                                d->platform, why);
                return;
        }
        relay_ready_set(RELAY_READY_PLATFORM,
                        "%s unavailable, circuit open: %s", d->platform, why);
        relay_pipeline_paused(
            d->p,
            "%s unavailable (%s): circuit open after %d failed "
            "request(s) in a row; probing with one record every %g "
            "s at most",
            d->platform, why, d->breaker_failures,
            (double)d->probe_max / 1000.0);
}

static void platform_up(struct relay_deliver *d)
{
        d->failures_in_row = 0;
        d->throttles = 0;
        d->last_ok = relay_mono_ms();
        if (d->state != PLATFORM_OK) {
                d->state = PLATFORM_OK;
                d->probes = 0;
        }
        relay_metric_set(d->m_state, 0);
        relay_metric_set(d->m_breaker, 0);
        relay_ready_set(RELAY_READY_PLATFORM, NULL);
        relay_pipeline_resumed(d->p);
}

/* Before a probe of a platform that refused the credentials: read the
 * secrets again and rebuild the adapter when they changed. */
static void refresh_secrets(struct relay_deliver *d)
{
        char errstr[512];
        int changed =
            relay_conf_reload_secrets(d->conf, errstr, sizeof(errstr));
        if (changed < 0) {
                relay_log(LOG_WARNING, d->worker, "re-reading the secrets: %s",
                          errstr);
                return;
        }
        if (!changed)
                return;
        void *fresh = NULL;
        if (relay_adapter_init(d->adapter, &fresh, d->conf, errstr,
                               sizeof(errstr))) {
                relay_log(LOG_WARNING, d->worker,
                          "the new secrets do not configure %s: %s",
                          d->platform, errstr);
                return;
        }
        relay_adapter_term(d->adapter, d->ad);
        d->ad = fresh;
        relay_log(LOG_INFO, d->worker,
                  "secrets changed; probing %s with the new ones", d->platform);
}

/* ---- concurrency ----------------------------------------------------------
 */

/* Requests that may be under way at once now. */
static size_t window_of(const struct relay_deliver *d)
{
        size_t w = (size_t)d->window;
        return w < 1 ? 1 : w > d->nslots ? d->nslots : w;
}

static void window_set(struct relay_deliver *d, double w)
{
        d->window = w < 1 ? 1 : w > (double)d->nslots ? (double)d->nslots : w;
        relay_metric_set(d->m_window, (double)window_of(d));
}

/* Adaptive concurrency (AIMD, as Vector's ARC): an answer in time grows
 * the window by one per window of answers, while the requests fill it; a
 * throttling or failing answer, or one much slower than the usual, halves
 * it, at most once per usual round trip (the answers of requests sent
 * before the cut would cut it again for the same cause). */
static void window_answer(struct relay_deliver *d, const struct slot *sl,
                          int backpressure)
{
        if (!d->adaptive)
                return;
        double rtt = sl->resp.seconds;
        int64_t now = relay_mono_ms();
        if (!backpressure && d->rtt_base > 0 && rtt > 2 * d->rtt_base &&
            rtt > 0.005)
                backpressure = 1; /* latency rising: the platform queues */
        if (backpressure) {
                if (now - d->last_cut >= (int64_t)(d->rtt_base * 1000) + 1) {
                        window_set(d, d->window / 2);
                        d->last_cut = now;
                }
                return;
        }
        if (sl->window + 1 >= d->window && sl->window >= (double)window_of(d))
                window_set(d, d->window + 1 / d->window);
        d->rtt_base = d->rtt_base > 0 ? 0.95 * d->rtt_base + 0.05 * rtt : rtt;
}

/* ---- rate limits ----------------------------------------------------------
 */

static void rate_show(struct relay_deliver *d)
{
        relay_metric_set(d->m_req_rate, d->req_bucket.rate);
        relay_metric_set(d->m_ev_rate, d->ev_bucket.rate);
}

/* When range rg may be sent, by the rate limits: now, or later. Past the
 * time the platform's headers spoke for, our own request rate again. */
static int64_t rate_when(struct relay_deliver *d, const struct range *rg,
                         int64_t now)
{
        if (d->limit_until && now >= d->limit_until) {
                relay_bucket_set_rate(&d->req_bucket, d->max_req_rate, now);
                d->limit_until = 0;
                rate_show(d);
        }
        int64_t a = relay_bucket_when(&d->req_bucket, 1, now),
                b = relay_bucket_when(&d->ev_bucket,
                                      (double)range_live(d, rg), now);
        return a > b ? a : b;
}

static void rate_take(struct relay_deliver *d, size_t records, int64_t now)
{
        relay_bucket_take(&d->req_bucket, 1, now);
        relay_bucket_take(&d->ev_bucket, (double)records, now);
}

/* The platform's rate-limit headers on an answer: `left` requests in a
 * window that resets in `reset` ms. The requests' rate comes down to
 * what is left (less the requests under way, which will use some) over
 * what is left of the window, until it resets; with nothing left every
 * lane waits for the reset, using no attempt. A platform that allows
 * more than deliver.max_requests_per_s changes nothing. */
static void rate_answer(struct relay_deliver *d,
                        const relay_http_response_t *resp, int64_t now)
{
        long left = resp->ratelimit_remaining, reset = resp->ratelimit_reset_ms;
        if (left < 0 || reset <= 0)
                return;
        long usable = left - (long)d->inflight;
        if (usable <= 0) {
                if (now + reset > d->wait_until)
                        d->wait_until = now + reset;
                relay_pipeline_paused(
                    d->p,
                    "%s's rate limit is used up (%ld request(s) left in its "
                    "window, %zu under way); waiting %.1f s for the window "
                    "to reset",
                    d->platform, left, d->inflight, (double)reset / 1000.0);
                return;
        }
        double rate = (double)usable * 1000.0 / (double)reset;
        if (d->max_req_rate > 0 && rate >= d->max_req_rate) {
                if (d->limit_until)
                        d->limit_until = now; /* back to ours at once */
                return;
        }
        relay_bucket_set_rate(&d->req_bucket, rate, now);
        d->limit_until = now + reset;
        rate_show(d);
}

/* ---- requests -------------------------------------------------------------
 */

/* Send range r's live records in one request on a free slot. */
static void send_range(struct relay_deliver *d, int r, int probe)
{
        size_t s = 0;
        while (d->slots[s].range >= 0)
                s++;
        struct slot *sl = &d->slots[s];
        struct range *rg = &d->rpool[r];
        sl->n = 0;
        for (size_t k = rg->start; k < rg->start + rg->n; k++)
                if (live(d, k)) {
                        sl->sent[sl->n] = d->order[k];
                        sl->items[sl->n++] = d->recs[d->order[k]].item;
                }
        rate_take(d, sl->n, relay_mono_ms());
        relay_http_request_t req;
        relay_adapter_request(d->adapter, d->ad, sl->items, sl->n, &sl->body,
                              &req);
        sl->range = r;
        sl->probe = probe;
        sl->window = (double)d->inflight + 1;
        rg->slot = (int)s;
        d->inflight++;
        sl->failed_start =
            relay_http_multi_start(d->http, s, &req, &sl->resp) != 0;
        relay_metric_set(d->m_in_flight, (double)d->inflight);
}

/* A 2xx that took slot sl's request (range r) in part, item by item in
 * d->item_res: the items taken are delivered, those refused
 * dead-lettered, and those to send again stay in the range, which waits
 * a backoff and uses an attempt (the platform is up: it answered), until
 * the last one dead-letters them. */
static void taken_in_part(struct relay_deliver *d, struct slot *sl, int r,
                          int64_t now)
{
        struct range *rg = &d->rpool[r];
        size_t ok = 0, again = 0;
        const char *why_again = "";
        for (size_t k = 0; k < sl->n; k++) {
                const relay_item_result_t *ir = &d->item_res[k];
                switch (ir->result) {
                case RELAY_OK:
                        relay_pipeline_done(d->p, sl->sent[k]);
                        ok++;
                        break;
                case RELAY_FATAL:
                        dead_letter(d, sl->sent[k], "deliver",
                                    ir->why[0] ? ir->why
                                               : "refused by the platform",
                                    sl->resp.status, rg->attempts + 1);
                        break;
                case RELAY_RETRY:
                        again++;
                        why_again = ir->why;
                        break;
                }
        }
        d->delivered += ok;
        relay_metric_add(d->m_delivered, (double)ok);
        if (!again)
                return;
        if (++rg->attempts >= d->retry.max_attempts) {
                char reason[400];
                snprintf(reason, sizeof(reason),
                         "gave up after %d attempts the platform answered "
                         "for the others of its request: %.300s",
                         rg->attempts, why_again);
                for (size_t k = 0; k < sl->n; k++)
                        if (d->item_res[k].result == RELAY_RETRY)
                                dead_letter(d, sl->sent[k], "deliver", reason,
                                            sl->resp.status, rg->attempts);
                return;
        }
        long wait = relay_retry_delay_ms(&d->retry, rg->attempts, -1,
                                         relay_retry_random());
        d->retries++;
        rg->not_before = now + wait;
        relay_log(LOG_WARNING, d->worker,
                  "%s took %zu of %zu record(s); %zu to send again in %ld ms "
                  "(attempt %d of %d: %s)",
                  d->platform, ok, sl->n, again, wait, rg->attempts,
                  d->retry.max_attempts, why_again);
}

/* Act on the answer of slot s's request. */
static void answer(struct relay_deliver *d, size_t s)
{
        struct slot *sl = &d->slots[s];
        int r = sl->range;
        struct range *rg = &d->rpool[r];
        relay_http_response_t *resp = &sl->resp;
        size_t n = sl->n;
        char why[600];
        rg->slot = -1;
        sl->range = -1;
        d->inflight--;
        relay_metric_set(d->m_in_flight, (double)d->inflight);
        if (resp->aborted)
                return; /* stopping: dl_end says so */
        d->requests++;
        d->last_status = resp->status;
        relay_metric_observe(d->m_duration, resp->seconds);
        why[0] = '\0';
        enum relay_result res =
            relay_adapter_classify(d->adapter, d->ad, resp, why, sizeof(why));
        enum outcome oc = outcome_of(d, res, resp);
        int64_t now = relay_mono_ms();
        relay_metric_add(
            relay_series(d->m_requests, d->platform, outcome_names[oc]), 1);
        if (oc == OUT_THROTTLE || oc == OUT_FAIL) {
                char status[16];
                if (resp->timed_out)
                        snprintf(status, sizeof(status), "timeout");
                else if (resp->transport_error || !resp->status)
                        snprintf(status, sizeof(status), "transport");
                else
                        snprintf(status, sizeof(status), "%ld", resp->status);
                relay_metric_add(
                    relay_series(d->m_retries, d->platform, status), 1);
        }
        relay_log(LOG_DEBUG, d->worker,
                  "request of %zu record(s): HTTP %ld (%s) %s", n, resp->status,
                  relay_result_name(res), why);
        window_answer(
            d, sl,
            oc == OUT_THROTTLE ||
                (oc == OUT_FAIL && (resp->timed_out || resp->status == 503)));

        if (oc == OUT_OK || oc == OUT_RECORD || oc == OUT_FAIL)
                answered(d, rg, oc == OUT_FAIL);
        if (oc != OUT_OK)
                rate_answer(d, resp, now);
        switch (oc) {
        case OUT_OK:
                platform_up(d);
                rate_answer(d, resp, now);
                if (relay_adapter_partial(d->adapter, d->ad, resp, sl->items,
                                          n, d->item_res)) {
                        taken_in_part(d, sl, r, now);
                        return;
                }
                for (size_t k = 0; k < n; k++)
                        relay_pipeline_done(d->p, sl->sent[k]);
                d->delivered += n;
                relay_metric_add(d->m_delivered, (double)n);
                return;
        case OUT_RECORD:
                /* The platform is up: it read the request and refused it. */
                d->failures_in_row = 0;
                d->last_ok = now;
                if (d->state != PLATFORM_OK)
                        platform_up(d);
                if (n > 1) {
                        relay_log(LOG_INFO, d->worker,
                                  "HTTP %ld for %zu records: splitting to "
                                  "find the refused ones",
                                  resp->status, n);
                        range_halve(d, r);
                        return;
                }
                dead_letter(d, sl->sent[0], "deliver", why, resp->status,
                            rg->attempts + 1);
                return;
        case OUT_THROTTLE: {
                long wait = resp->retry_after_ms;
                if (wait < 0)
                        wait = relay_retry_delay_ms(&d->retry, ++d->throttles,
                                                    -1, relay_retry_random());
                if (wait > d->retry_after_max)
                        wait = d->retry_after_max;
                d->throttled++;
                relay_metric_add(d->m_throttled, 1);
                /* The whole platform waits: every lane. */
                if (now + wait > d->wait_until)
                        d->wait_until = now + wait;
                relay_pipeline_paused(d->p,
                                      "%s is throttling (%s); waiting %.1f s "
                                      "as asked, using no attempt",
                                      d->platform, why, (double)wait / 1000.0);
                return;
        }
        case OUT_AUTH:
                /* Requests sent before the pause say what it says. */
                if (d->state == PLATFORM_OK || sl->probe)
                        platform_down(d, PLATFORM_AUTH, why);
                return;
        case OUT_FAIL:
                break;
        }

        if (d->state != PLATFORM_OK) {
                /* A probe failed: the platform is still away. A request
                 * sent before the circuit opened uses nothing. */
                if (sl->probe)
                        platform_down(d, PLATFORM_DOWN, why);
                return;
        }
        d->failures_in_row++;
        /* A record is at fault only when the platform accepted other
         * records between its failures (a success before its latest
         * failure streak says nothing: the platform may have gone down
         * right after it), and, alone, when it failed more often than
         * the platform's failure rate makes likely. */
        int64_t prev = rg->last_fail;
        int at_fault = prev && d->last_ok > prev;
        /* The last record left of its batch gets no more neighbours to
         * compare with: what the platform accepted since its first
         * failure is the evidence, weighed as ever by to_blame. */
        if (!at_fault && n == 1 && rg->first_fail &&
            d->last_ok > rg->first_fail && !others_live(d, r))
                at_fault = 1;
        /* Failures past the last attempt without that evidence are the
         * platform's: they use nothing. */
        if (rg->attempts < d->retry.max_attempts)
                rg->attempts++;
        rg->fails++;
        if (!rg->first_fail)
                rg->first_fail = now;
        rg->last_fail = now;
        unsigned total = 0, failed = 0;
        if (rg->attempts >= d->retry.max_attempts && at_fault &&
            (n > 1 || to_blame(d, rg, &total, &failed))) {
                if (n > 1) {
                        /* Find the record at fault: each half gets one
                         * more try. */
                        rg->attempts = d->retry.max_attempts - 1;
                        range_halve(d, r);
                        return;
                }
                char reason[800];
                snprintf(reason, sizeof(reason),
                         "gave up after %d attempts while %s accepted other "
                         "records: %.500s (it was in %d failed requests; %u "
                         "of the platform's last %u other requests failed)",
                         rg->attempts, d->platform, why, rg->fails, failed,
                         total);
                dead_letter(d, sl->sent[0], "deliver", reason, resp->status,
                            rg->attempts);
                return;
        }
        if (d->failures_in_row >= d->breaker_failures) {
                platform_down(d, PLATFORM_DOWN, why);
                return;
        }
        if (rg->attempts >= d->retry.max_attempts) {
                if (n > 1) {
                        rg->attempts = d->retry.max_attempts - 1;
                        range_halve(d, r);
                        return;
                }
                /* Alone, and nothing else was accepted in between, or
                 * not often enough to tell it from chance: it looks like
                 * the platform, not the record. */
                platform_down(d, PLATFORM_DOWN, why);
                return;
        }
        long wait = relay_retry_delay_ms(&d->retry, rg->attempts, -1,
                                         relay_retry_random());
        d->retries++;
        /* Only this range waits: the other lanes go on. */
        rg->not_before = now + wait;
        relay_log(LOG_WARNING, d->worker,
                  "attempt %d of %d for %zu record(s) failed (%s); retrying "
                  "in %ld ms",
                  rg->attempts, d->retry.max_attempts, n, why, wait);
}

/* Move the requests on, waiting at most wait_ms for one to end, and act
 * on every answer. */
static void collect(struct relay_deliver *d, long wait_ms)
{
        for (size_t s = 0; s < d->nslots; s++)
                if (d->slots[s].range >= 0 && d->slots[s].failed_start) {
                        d->slots[s].failed_start = 0;
                        answer(d, s);
                        wait_ms = 0;
                }
        if (!relay_http_multi_running(d->http))
                return;
        size_t n = relay_http_multi_run(d->http, wait_ms, d->done, d->nslots);
        for (size_t k = 0; k < n; k++)
                answer(d, d->done[k]);
        /* A batch takes a round trip or more (many while the platform
         * fails, or with a deliver.batch_size of several rounds): what is
         * delivered is committed as it goes, so that a crash sends again
         * only what was under way or behind it in its partition. */
        if (n)
                relay_pipeline_store_progress(d->p);
}

/* Everything in hand gives up: the platform was away too long. */
static void give_up(struct relay_deliver *d)
{
        char reason[300];
        snprintf(reason, sizeof(reason), "platform unavailable for %lld s",
                 (long long)(relay_mono_ms() - d->down_since) / 1000);
        for (size_t l = 0; l < d->nlanes; l++)
                for (int r = d->lanes[l]; r >= 0; r = d->rpool[r].next) {
                        const struct range *rg = &d->rpool[r];
                        for (size_t k = rg->start; k < rg->start + rg->n; k++)
                                if (live(d, k))
                                        dead_letter(d, d->order[k], "deliver",
                                                    reason, d->last_status,
                                                    rg->attempts);
                }
        ranges_clear(d);
        /* The next records start afresh, tried like any others and given
         * their own max_outage_ms, rather than dead-lettered without a
         * request because the platform was away before they came. The
         * pause stays visible until a request succeeds. */
        d->state = PLATFORM_OK;
        d->failures_in_row = 0;
        d->wait_until = 0;
}

/* Start what may go now: while the platform is fine, the head range of
 * every lane that is not sending and not waiting out a backoff, taking
 * the lanes in turns, within the window; while it is paused, one probe
 * once nothing is under way. *next gets the earliest time something
 * waits for. 1 while records are left. */
static int start_ready(struct relay_deliver *d, int64_t now, int64_t *next)
{
        int left = 0, blocked = now < d->wait_until;
        if (blocked)
                *next = d->wait_until;
        /* From where the last pass stopped, every lane once (lane_turn
         * moves as lanes start: taking it afresh each turn skipped lanes,
         * which then waited a round trip for nothing). */
        size_t turn = d->lane_turn;
        for (size_t t = 0; t < d->nlanes; t++) {
                size_t l = (turn + t) % d->nlanes;
                int r = lane_head(d, l);
                if (r < 0)
                        continue;
                left = 1;
                struct range *rg = &d->rpool[r];
                if (rg->slot >= 0 || blocked || d->state != PLATFORM_OK)
                        continue;
                if (rg->not_before > now) {
                        if (rg->not_before < *next)
                                *next = rg->not_before;
                        continue;
                }
                if (d->inflight >= window_of(d))
                        continue;
                int64_t when = rate_when(d, rg, now);
                if (when > now) {
                        /* The whole platform's rate: the next lanes wait
                         * their turn behind this one. */
                        if (when < *next)
                                *next = when;
                        break;
                }
                send_range(d, r, 0);
                d->lane_turn = l + 1;
        }
        if (left && d->state != PLATFORM_OK && !blocked && !d->inflight) {
                int r = range_probe(d);
                if (r >= 0) {
                        if (d->state == PLATFORM_AUTH)
                                refresh_secrets(d);
                        send_range(d, r, 1);
                }
        }
        return left;
}

static enum relay_result dl_flush(void *opaque, relay_pipeline_t *p)
{
        struct relay_deliver *d = opaque;
        if (!d->built)
                build(d);
        collect(d, 0);
        int64_t now = relay_mono_ms(), next = INT64_MAX;
        if (!d->inflight && d->state != PLATFORM_OK && d->max_outage > 0 &&
            now - d->down_since >= d->max_outage) {
                give_up(d);
                return RELAY_OK;
        }
        int left = start_ready(d, now, &next);
        if (!left && !d->inflight)
                return RELAY_OK;
        if (!d->inflight) {
                relay_pipeline_wake_at(p, next);
                return RELAY_RETRY;
        }
        /* Wait for an answer here, at most until a backoff ends and 100
         * ms at a time, so that the engine serves the consumer between. */
        long wait = 100;
        if (next != INT64_MAX && next - now < wait)
                wait = next > now ? (long)(next - now) : 0;
        collect(d, wait);
        return RELAY_RETRY;
}

static void dl_end(void *opaque, relay_pipeline_t *p)
{
        struct relay_deliver *d = opaque;
        size_t n = relay_pipeline_count(p), aborted = 0;
        for (size_t s = 0; s < d->nslots; s++) {
                struct slot *sl = &d->slots[s];
                if (sl->range < 0)
                        continue;
                /* Stopping, and the grace ran out: the records stay
                 * unfinished, for the next owner (the platform may have
                 * taken them: the only duplicates of a shutdown). */
                relay_http_multi_abort(d->http, s);
                aborted += sl->n;
                d->rpool[sl->range].slot = -1;
                sl->range = -1;
        }
        if (aborted)
                relay_log(LOG_WARNING, d->worker,
                          "stopping: aborted %zu request(s) of %zu record(s) "
                          "when the shutdown grace ran out",
                          d->inflight, aborted);
        d->inflight = 0;
        relay_metric_set(d->m_in_flight, 0);
        for (size_t i = 0; i < n; i++)
                d->recs[i].encoded = 0;
        ranges_clear(d);
        d->built = 0;
}

static const relay_processor_t deliver_processor = {
    .record = dl_record,
    .flush = dl_flush,
    .end = dl_end,
};

/* ---- life cycle ------------------------------------------------------------
 */

static void metrics_new(struct relay_deliver *d)
{
        const enum relay_metric_type C = RELAY_METRIC_COUNTER,
                                     G = RELAY_METRIC_GAUGE;
        const char *pl = d->platform;
        d->m_requests = relay_metric(C, "relay_http_requests_total",
                                     "requests to the platform by outcome (ok, "
                                     "refused, throttled, auth, failed)",
                                     "platform,outcome", NULL, 0);
        d->m_retries = relay_metric(C, "relay_delivery_retries_total",
                                    "answers that make a request be tried "
                                    "again, by HTTP status (or timeout, "
                                    "transport)",
                                    "platform,status", NULL, 0);
        d->m_delivered = relay_series(
            relay_metric(C, "relay_delivered_total",
                         "records the platform accepted", "platform", NULL, 0),
            pl);
        d->m_throttled = relay_series(
            relay_metric(C, "relay_throttled_total",
                         "throttled answers (429, Retry-After) waited out",
                         "platform", NULL, 0),
            pl);
        d->m_duration = relay_series(
            relay_metric(
                RELAY_METRIC_HISTOGRAM, "relay_http_request_duration_seconds",
                "time of a request to the platform, in seconds", "platform",
                relay_duration_buckets, relay_duration_nbuckets),
            pl);
        d->m_in_flight =
            relay_series(relay_metric(G, "relay_http_requests_in_flight",
                                      "requests to the platform under way",
                                      "platform", NULL, 0),
                         pl);
        d->m_state = relay_series(
            relay_metric(G, "relay_platform_state",
                         "0 ok, 1 circuit open (unavailable), 2 credentials "
                         "or endpoint refused",
                         "platform", NULL, 0),
            pl);
        d->m_breaker = relay_series(
            relay_metric(G, "relay_breaker_open",
                         "1 while the circuit to the platform is open",
                         "platform", NULL, 0),
            pl);
        d->m_window = relay_series(
            relay_metric(G, "relay_http_concurrency",
                         "requests to the platform that may be under way at "
                         "once (deliver.max_in_flight; adaptive: the window "
                         "now)",
                         "platform", NULL, 0),
            pl);
        relay_metric_t *rate = relay_metric(
            G, "relay_rate_limit_per_second",
            "the rate limit in force, by kind (requests, records): "
            "deliver.max_requests_per_s and max_events_per_s, or lower while "
            "the platform's rate-limit headers say; 0: none",
            "platform,kind", NULL, 0);
        d->m_req_rate = relay_series(rate, pl, "requests");
        d->m_ev_rate = relay_series(rate, pl, "records");
        relay_metric_set(d->m_in_flight, 0);
        relay_metric_set(d->m_state, 0);
        relay_metric_set(d->m_breaker, 0);
        relay_metric_add(d->m_delivered, 0);
        relay_metric_add(d->m_throttled, 0);
}

relay_deliver_t *relay_deliver_new(relay_conf_t *conf, char *errstr,
                                   size_t errstr_size)
{
        struct relay_deliver *d = relay_calloc(1, sizeof(*d));
        char topic[256], dlq[256], group[256], subject[300];
        d->conf = conf;
        const char *platform = relay_conf_str(conf, "deliver.platform");
        snprintf(d->platform, sizeof(d->platform), "%s", platform);
        if (!(d->adapter = relay_adapter_find(platform))) {
                relay_seterr(errstr, errstr_size,
                             "deliver.platform: no adapter for platform '%s'",
                             platform);
                goto fail;
        }
        snprintf(d->worker, sizeof(d->worker), "deliver-%s", platform);
        snprintf(topic, sizeof(topic), "out.%s", platform);
        snprintf(dlq, sizeof(dlq), "dlq.%s", platform);
        snprintf(group, sizeof(group), "relay-deliver-%s", platform);
        const char *in_topic = relay_conf_str(conf, "deliver.topic");
        const char *dlq_topic = relay_conf_str(conf, "deliver.dlq_topic");
        const char *group_id = relay_conf_str(conf, "deliver.group_id");
        if (!in_topic)
                in_topic = topic;

        if (relay_adapter_init(d->adapter, &d->ad, conf, errstr, errstr_size))
                goto fail;
        relay_adapter_limits(d->adapter, d->ad, &d->max_items, &d->max_bytes);
        const char *mif = relay_conf_str(conf, "deliver.max_in_flight");
        char *end = NULL;
        long fixed = strtol(mif, &end, 10);
        if (!strcmp(mif, "adaptive")) {
                d->adaptive = 1;
                d->nslots = (size_t)relay_conf_int(
                    conf, "deliver.adaptive_max_in_flight");
                d->window = 1;
        } else if (end != mif && !*end && fixed >= 1 && fixed <= 256) {
                d->nslots = (size_t)fixed;
                d->window = (double)fixed;
        } else {
                relay_seterr(errstr, errstr_size,
                             "deliver.max_in_flight: '%s' is neither a number "
                             "of requests from 1 to 256 nor \"adaptive\"",
                             mif);
                goto fail;
        }
        int64_t t0 = relay_mono_ms();
        d->max_req_rate =
            (double)relay_conf_int(conf, "deliver.max_requests_per_s");
        relay_bucket_init(&d->req_bucket, d->max_req_rate,
                          d->max_req_rate > (double)d->nslots
                              ? d->max_req_rate
                              : (double)d->nslots,
                          t0);
        double ev_rate =
            (double)relay_conf_int(conf, "deliver.max_events_per_s");
        relay_bucket_init(&d->ev_bucket, ev_rate,
                          ev_rate > (double)d->max_items ? ev_rate
                                                         : (double)d->max_items,
                          t0);
        d->item_res = relay_calloc(d->max_items, sizeof(*d->item_res));
        d->batch_size = (size_t)relay_conf_int(conf, "deliver.batch_size");
        if (!d->batch_size) {
                /* People go into requests whole (build), so requests come
                 * out a little short of max_items: an eighth of room
                 * keeps a batch to one request per slot, one round trip,
                 * while a person has less than an eighth of a request's
                 * worth in the batch.
                 *
                 * One round trip a batch. The batch ends when its last
                 * request is answered, and meanwhile the slots its other
                 * lanes freed wait for the next batch: more rounds make
                 * that tail a smaller share (to nginx answering at once,
                 * 200,000 records: one round 0.46 of the ceiling at 1
                 * partition and 0.43 at 4, four rounds 0.62 and 0.48),
                 * but a rebalance leaves the unfinished part of the batch
                 * in hand to the next owner, which sends again what this
                 * one had sent: tests/fault/0101-chaos.sh had 3,700-5,100
                 * duplicates with one round, 11,000 with two and
                 * 17,000-22,000 with four (its bound 12,000). An operator
                 * chooses with deliver.batch_size. */
                d->batch_size = d->max_items * d->nslots;
                if (d->nslots > 1)
                        d->batch_size -= d->batch_size / 8;
        }
        d->retry.max_attempts =
            (int)relay_conf_int(conf, "deliver.max_attempts");
        d->retry.base_ms =
            (long)relay_conf_int(conf, "deliver.backoff_base_ms");
        d->retry.max_ms = (long)relay_conf_int(conf, "deliver.backoff_max_ms");
        d->retry_after_max =
            (long)relay_conf_int(conf, "deliver.retry_after_max_ms");
        d->breaker_failures =
            (int)relay_conf_int(conf, "deliver.breaker_failures");
        d->probe_base = (long)relay_conf_int(conf, "deliver.probe_base_ms");
        d->probe_max = (long)relay_conf_int(conf, "deliver.probe_max_ms");
        d->max_outage = relay_conf_int(conf, "deliver.max_outage_ms");
        long http_timeout =
            (long)relay_conf_int(conf, "deliver.http_timeout_ms");

        relay_pipeline_conf_t pc = {
            .worker = d->worker,
            .topics = in_topic,
            .group_id = group_id ? group_id : group,
            .dlq_topic = dlq_topic ? dlq_topic : dlq,
            .batch_size = d->batch_size,
            .batch_wait_ms =
                (long)relay_conf_int(conf, "deliver.batch_wait_ms"),
            .max_record_bytes =
                (size_t)relay_conf_int(conf, "deliver.max_record_bytes"),
            .max_record_key = "deliver.max_record_bytes",
            .running = &relay_run,
            .shutdown_grace_ms =
                (long)relay_conf_int(conf, "worker.shutdown_grace_ms"),
            .commits_in_flight =
                (int)relay_conf_int(conf, "worker.commits_in_flight"),
            .batches_in_flight =
                (int)relay_conf_int(conf, "worker.batches_in_flight"),
        };
        size_t max_record_bytes = 0;
        if (!(d->p =
                  relay_pipeline_new(conf, &pc, &deliver_processor, d,
                                     &max_record_bytes, errstr, errstr_size)))
                goto fail;
        /* The reader schema is the platform's contract, whatever the
         * input topic is called (deliver.topic may rename it). */
        snprintf(subject, sizeof(subject), "%s-value", topic);
        if (!(d->schemas =
                  relay_worker_schemas(conf, -1, errstr, errstr_size)) ||
            !(d->reader = relay_avro_reader_new(
                  d->schemas, subject, max_record_bytes, errstr, errstr_size)))
                goto fail;
        if (!(d->http = relay_http_multi_new(
                  d->nslots, http_timeout,
                  (long)relay_conf_int(conf, "deliver.connect_timeout_ms")))) {
                relay_seterr(errstr, errstr_size, "cannot set up libcurl");
                goto fail;
        }
        d->recs = relay_calloc(d->batch_size, sizeof(*d->recs));
        for (size_t i = 0; i < d->batch_size; i++)
                relay_buf_init(&d->recs[i].item);
        d->order = relay_calloc(d->batch_size, sizeof(*d->order));
        d->lanes = relay_calloc(d->batch_size, sizeof(*d->lanes));
        /* Every range holds a record at least. */
        d->rpool = relay_calloc(d->batch_size + 1, sizeof(*d->rpool));
        d->rfree = relay_calloc(d->batch_size + 1, sizeof(*d->rfree));
        for (d->nfree = 0; d->nfree <= d->batch_size; d->nfree++)
                d->rfree[d->nfree] = (int)(d->batch_size - d->nfree);
        for (d->keycap = 16; d->keycap < 2 * d->batch_size; d->keycap *= 2)
                ;
        d->keytab = relay_calloc(d->keycap, sizeof(*d->keytab));
        d->gcount = relay_calloc(d->batch_size, sizeof(*d->gcount));
        d->gbytes = relay_calloc(d->batch_size, sizeof(*d->gbytes));
        d->done =
            relay_calloc(d->batch_size > d->nslots ? d->batch_size : d->nslots,
                         sizeof(*d->done));
        d->slots = relay_calloc(d->nslots, sizeof(*d->slots));
        for (size_t s = 0; s < d->nslots; s++) {
                struct slot *sl = &d->slots[s];
                relay_http_response_init(&sl->resp);
                relay_buf_init(&sl->body);
                sl->items = relay_calloc(d->max_items, sizeof(*sl->items));
                sl->sent = relay_calloc(d->max_items, sizeof(*sl->sent));
                sl->range = -1;
        }
        metrics_new(d);
        window_set(d, d->window);
        rate_show(d);
        char conc[64];
        if (d->adaptive)
                snprintf(conc, sizeof(conc), "adaptive, 1 to %zu", d->nslots);
        else
                snprintf(conc, sizeof(conc), "%zu", d->nslots);
        relay_log(LOG_INFO, d->worker,
                  "consuming %s as %s; delivering to %s (up to %zu records, "
                  "%zu bytes a request, requests at once: %s); dead letters "
                  "to %s",
                  in_topic, pc.group_id, platform, d->max_items, d->max_bytes,
                  conc, pc.dlq_topic);
        return d;
fail:
        relay_deliver_destroy(d);
        return NULL;
}

int relay_deliver_run(relay_deliver_t *d)
{
        int rc = relay_pipeline_run(d->p);
        relay_log(LOG_INFO, d->worker,
                  "stopping: %lu delivered, %lu dead-lettered, %lu requests, "
                  "%lu retries, %lu throttled waits",
                  d->delivered, d->dead, d->requests, d->retries, d->throttled);
        return rc;
}

void relay_deliver_destroy(relay_deliver_t *d)
{
        if (!d)
                return;
        relay_pipeline_destroy(d->p);
        relay_http_multi_destroy(d->http);
        for (size_t s = 0; d->slots && s < d->nslots; s++) {
                relay_http_response_reset(&d->slots[s].resp);
                relay_buf_free(&d->slots[s].body);
                free(d->slots[s].items);
                free(d->slots[s].sent);
        }
        free(d->slots);
        free(d->item_res);
        free(d->lanes);
        free(d->rpool);
        free(d->rfree);
        free(d->keytab);
        free(d->gcount);
        free(d->gbytes);
        free(d->done);
        for (size_t i = 0; d->recs && i < d->batch_size; i++)
                relay_buf_free(&d->recs[i].item);
        free(d->recs);
        free(d->order);
        relay_avro_reader_destroy(d->reader);
        relay_schemas_destroy(d->schemas);
        if (d->adapter && d->ad)
                relay_adapter_term(d->adapter, d->ad);
        free(d);
}
