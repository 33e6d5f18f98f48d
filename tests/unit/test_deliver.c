/*
 * Unit tests of the delivery processor (common/deliver/deliver.c) on the
 * pipeline engine: the mParticle adapter posts to the scripted HTTP server
 * of httpd.h, whose replies a callback chooses from each request's body
 * (which records it carries) and headers; out.mparticle lives on
 * librdkafka's mock cluster, a fresh one per test. What is checked is what
 * a user checks: which records the platform accepted and how often, what
 * is in dlq.mparticle and why, the committed offset, and what the log says.
 * The worker runs in a thread and stops when relay_run is cleared. Every
 * wait is bounded, and an alarm stops the binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "httpd.h"
#include "kmock.h"
#include "unit.h"

#include "relay/adapter.h"
#include "relay/avro.h"
#include "relay/deliver.h"
#include "relay/dlq.h"
#include "relay/http.h"
#include "relay/worker.h"

#include <jansson.h>

#define MAXREC 64

/* ---- the platform ----------------------------------------------------------
 */

/* What the platform does: the first fail_first requests get fail; a
 * request carrying the poison record gets poison (only its first
 * poison_times ones, when set); with down set, every other request gets
 * fail too, and with flaky_every set every flaky_every-th of them; with
 * auth set, a request without that Authorization gets 401. Everything
 * else is accepted (202). */
struct platform {
        pthread_mutex_t mu;
        int fail_first;
        struct reply fail, poison, ok, unauthorised;
        int script[64]; /* if nscript: request n gets status script[n]
                           (0: accepted), the last one repeating */
        int nscript;
        int poison_rec; /* -1: none */
        int poison_times, poisoned;
        int down;
        int flaky_every, others;
        char auth[128];
        /* seen */
        int nreq;
        int64_t req_at[512];
        int nrec[512]; /* records in the request */
        int status[512];
        int accepted[MAXREC]; /* times each record was accepted */
        int seq[4 * MAXREC];  /* the records accepted, in order */
        int nseq;
};

static const char errors_body[] =
    "{\"errors\":[{\"code\":\"SCRIPTED\",\"message\":\"scripted refusal\"}]}";

static struct reply refusal(int status, const char *headers)
{
        struct reply r = {NULL, status, headers, errors_body, 0, 0};
        return r;
}

/* The records of a request: source_request_id ends in the record number. */
static int records_of(const struct request *rq, int *recs, int max)
{
        json_t *j = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len,
                               0, NULL);
        int n = 0;
        size_t i;
        json_t *b;
        json_array_foreach(j, i, b)
        {
                const char *id =
                    json_string_value(json_object_get(b, "source_request_id"));
                if (id && n < max)
                        recs[n++] = atoi(id + strlen(id) - 6);
        }
        json_decref(j);
        return n;
}

static const struct reply *platform_reply(void *arg, const struct request *rq,
                                          int n)
{
        struct platform *pf = arg;
        int recs[MAXREC], nrec = records_of(rq, recs, MAXREC), poisoned = 0;
        char auth[256] = "";
        find_header(rq->head, "Authorization", auth, sizeof(auth));
        for (int k = 0; k < nrec; k++)
                poisoned |= recs[k] == pf->poison_rec;
        pthread_mutex_lock(&pf->mu);
        const struct reply *r = &pf->ok;
        if (pf->auth[0] && strcmp(auth, pf->auth))
                r = &pf->unauthorised;
        else if (n < pf->fail_first)
                r = &pf->fail;
        else if (pf->nscript &&
                 pf->script[n < pf->nscript ? n : pf->nscript - 1])
                r = &pf->fail;
        else if (poisoned &&
                 (!pf->poison_times || pf->poisoned++ < pf->poison_times))
                r = &pf->poison;
        else if (pf->down)
                r = &pf->fail;
        else if (!poisoned && pf->flaky_every &&
                 ++pf->others % pf->flaky_every == 0)
                r = &pf->fail;
        if (r == &pf->ok)
                for (int k = 0; k < nrec; k++)
                        if (recs[k] >= 0 && recs[k] < MAXREC) {
                                pf->accepted[recs[k]]++;
                                if (pf->nseq < 4 * MAXREC)
                                        pf->seq[pf->nseq++] = recs[k];
                        }
        if (pf->nreq < 512) {
                pf->req_at[pf->nreq] = relay_mono_ms();
                pf->nrec[pf->nreq] = nrec;
                pf->status[pf->nreq] = r->status;
                pf->nreq++;
        }
        pthread_mutex_unlock(&pf->mu);
        return r;
}

static int platform_nreq(struct platform *pf)
{
        pthread_mutex_lock(&pf->mu);
        int n = pf->nreq;
        pthread_mutex_unlock(&pf->mu);
        return n;
}

/* ---- the fixture ------------------------------------------------------------
 */

struct fx {
        struct kmock *km;
        struct server *srv;
        struct platform pf;
        relay_schemas_t *schemas;
        relay_avro_writer_t *writer;
        relay_conf_t *conf;
        relay_deliver_t *d;
        pthread_t thread;
        int rc, running;
        rd_kafka_t *checker;
        int nproduced;
};

static char manifest[1024];

static const relay_conf_prop_t test_props[] = {
    {"schemas.manifest", RELAY_CONF_STRING, NULL, 0, -1, 0, "catalogue", 0},
    {"schema_registry.url", RELAY_CONF_STRING, NULL, 0, -1, 0, "none", 0},
    {"worker.shutdown_grace_ms", RELAY_CONF_INT, "0", 0, 3600000, 0, "grace",
     0},
    {"worker.commits_in_flight", RELAY_CONF_INT, "2", 0, 1000, 0, "commits", 0},
    {"worker.batches_in_flight", RELAY_CONF_INT, "4", 1, 64, 0, "batches", 0},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

static int setup(void **state)
{
        char errstr[512];
        struct fx *f = relay_calloc(1, sizeof(*f));
        if (httpd_setup((void **)&f->srv))
                return -1;
        f->km = kmock_new();
        kmock_log_start(f->km, "deliver");
        pthread_mutex_init(&f->pf.mu, NULL);
        f->pf.poison_rec = -1;
        f->pf.ok = (struct reply){NULL, 202, NULL, NULL, 0, 0};
        f->pf.unauthorised = refusal(401, NULL);
        server_choose(f->srv, platform_reply, &f->pf);
        f->schemas = relay_schemas_load(manifest, errstr, sizeof(errstr));
        if (!f->schemas)
                fail_msg("schemas: %s", errstr);
        f->writer = relay_avro_writer_new(f->schemas, "out.mparticle-value",
                                          errstr, sizeof(errstr));
        assert_non_null(f->writer);
        assert_int_equal(
            rd_kafka_mock_topic_create(f->km->mc, "out.mparticle", 1, 1), 0);
        assert_int_equal(
            rd_kafka_mock_topic_create(f->km->mc, "dlq.mparticle", 1, 1), 0);
        setenv("RELAY_MPARTICLE_API_KEY", "key", 1);
        setenv("RELAY_MPARTICLE_API_SECRET", "secret", 1);
        unsetenv("RELAY_MPARTICLE_API_SECRET_FILE");
        relay_run = 1;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;
        if (f->running) {
                relay_run = 0;
                pthread_join(f->thread, NULL);
        }
        relay_deliver_destroy(f->d);
        if (f->checker)
                rd_kafka_destroy(f->checker);
        relay_conf_destroy(f->conf);
        relay_avro_writer_destroy(f->writer);
        relay_schemas_destroy(f->schemas);
        httpd_teardown((void **)&f->srv);
        kmock_log_stop(f->km);
        kmock_destroy(f->km);
        pthread_mutex_destroy(&f->pf.mu);
        relay_run = 1;
        free(f);
        return 0;
}

/* Produce records number from .. from+n-1 to out.mparticle, one person
 * each (key and identity "cust-<i>"), or, with persons set, record i of
 * person i % persons; with persons -1, without a key. */
static void produce_persons(struct fx *f, int from, int n, int persons)
{
        char errstr[512];
        const void *v[MAXREC];
        size_t l[MAXREC];
        char keys[MAXREC][32];
        const char *k[MAXREC];
        void *copies[MAXREC];
        assert_true(n <= MAXREC);
        for (int i = 0; i < n; i++) {
                char json[1024];
                int rec = from + i;
                snprintf(keys[i], sizeof(keys[i]), "cust-%d",
                         persons > 0 ? rec % persons : rec);
                snprintf(json, sizeof(json),
                         "{\"event_id\":\"6f1c2a10-0002-4000-8000-%012d\","
                         "\"occurred_at\":1764064860000,\"tenant\":\"acme\","
                         "\"source\":\"antavo\",\"connection\":\"c1\","
                         "\"destination\":\"mparticle\","
                         "\"environment\":\"development\","
                         "\"identity_type\":\"customer_id\","
                         "\"identity_value\":\"%s\","
                         "\"event_name\":\"Coupon Issued\","
                         "\"event_category\":\"other\",\"attributes\":{},"
                         "\"user_attributes\":{}}",
                         rec, keys[i]);
                json_t *j = json_loads(json, 0, NULL);
                assert_non_null(j);
                avro_value_t *av = relay_avro_writer_value(f->writer);
                if (relay_avro_from_json(av, j, errstr, sizeof(errstr)))
                        fail_msg("record: %s", errstr);
                json_decref(j);
                const void *buf;
                size_t len;
                assert_int_equal(relay_avro_writer_encode(f->writer, &buf, &len,
                                                          errstr,
                                                          sizeof(errstr)),
                                 RELAY_OK);
                copies[i] = relay_malloc(len);
                memcpy(copies[i], buf, len);
                v[i] = copies[i];
                l[i] = len;
                k[i] = keys[i];
        }
        kmock_produce(f->km, "out.mparticle", v, l, persons < 0 ? NULL : k,
                      (size_t)n);
        for (int i = 0; i < n; i++)
                free(copies[i]);
        f->nproduced += n;
}

static void produce_records(struct fx *f, int from, int n)
{
        produce_persons(f, from, n, 0);
}

static void *run_main(void *arg)
{
        struct fx *f = arg;
        f->rc = relay_deliver_run(f->d);
        return NULL;
}

/* The deliver of mparticle at the scripted server, with fast timings, and
 * name/value pairs (NULL-terminated) on top; then run it. */
static void start(struct fx *f, ...)
{
        char url[128], errstr[1024];
        const relay_conf_prop_t *tables[] = {
            relay_deliver_props, relay_adapter_find("mparticle")->props,
            test_props};
        make_url(url, sizeof(url), f->srv->port, "/v2");
        const char *const extra[] = {"deliver.platform",
                                     "mparticle",
                                     "deliver.batch_size",
                                     "8",
                                     "deliver.batch_wait_ms",
                                     "500",
                                     "deliver.backoff_base_ms",
                                     "50",
                                     "deliver.backoff_max_ms",
                                     "200",
                                     "deliver.probe_base_ms",
                                     "100",
                                     "deliver.probe_max_ms",
                                     "400",
                                     "deliver.http_timeout_ms",
                                     "2000",
                                     "mparticle.url",
                                     url,
                                     "schemas.manifest",
                                     manifest,
                                     NULL};
        va_list ap;
        va_start(ap, f);
        relay_conf_t *conf = kmock_vconf(f->km, tables, 3, extra, ap);
        va_end(ap);
        f->conf = conf;
        f->d = relay_deliver_new(conf, errstr, sizeof(errstr));
        if (!f->d)
                fail_msg("deliver: %s", errstr);
        f->checker =
            kmock_client(f->km, RD_KAFKA_CONSUMER, "relay-deliver-mparticle");
        assert_int_equal(pthread_create(&f->thread, NULL, run_main, f), 0);
        f->running = 1;
}

static void stop(struct fx *f)
{
        relay_run = 0;
        pthread_join(f->thread, NULL);
        f->running = 0;
        assert_int_equal(f->rc, 0);
}

static void wait_committed(struct fx *f, int64_t want, long ms)
{
        int64_t until = relay_mono_ms() + ms, got = -1;
        while (relay_mono_ms() < until) {
                if ((got = kmock_committed(f->checker, "out.mparticle")) ==
                    want)
                        return;
                usleep(100000);
        }
        fail_msg("committed offset is %lld, want %lld", (long long)got,
                 (long long)want);
}

/* Every record but those in `except` (-1 ends it) accepted exactly once,
 * those never. */
static void assert_accepted_once(struct fx *f, const int *except)
{
        pthread_mutex_lock(&f->pf.mu);
        int acc[MAXREC];
        memcpy(acc, f->pf.accepted, sizeof(acc));
        pthread_mutex_unlock(&f->pf.mu);
        for (int i = 0; i < f->nproduced; i++) {
                int skip = 0;
                for (const int *e = except; e && *e >= 0; e++)
                        skip |= *e == i;
                if (acc[i] != (skip ? 0 : 1))
                        fail_msg("record %d accepted %d times, want %d", i,
                                 acc[i], skip ? 0 : 1);
        }
}

/* ---- tests
 * ------------------------------------------------------------------- */

/* 403 three times, then 202: the connection is paused, not the records
 * dead-lettered; it probes with one record at a time; all arrive. */
static void test_auth_pauses_not_dead_letters(void **state)
{
        struct fx *f = *state;
        enum { M = 5 };
        f->pf.fail_first = 3;
        f->pf.fail = refusal(403, NULL);
        produce_records(f, 0, M);
        start(f, NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);

        struct kmock_readback dlq;
        kmock_read(f->km, "dlq.mparticle", &dlq);
        assert_int_equal(dlq.n, 0);
        kmock_readback_free(&dlq);
        assert_accepted_once(f, NULL);
        assert_true(platform_nreq(&f->pf) >= 4);
        /* After the first refusal, the probes carry one record each. */
        assert_int_equal(f->pf.nrec[0], M);
        for (int i = 1; i <= 3; i++)
                assert_int_equal(f->pf.nrec[i], 1);
        assert_true(kmock_log_count(f->km, "paused") >= 1);
        assert_true(kmock_log_count(f->km, "refused the connection's "
                                           "credentials") >= 1);
        assert_int_equal(kmock_log_count(f->km, "dead-lettering"), 0);
}

/* The secret comes from a file; the platform refuses it until the file is
 * rewritten with the right one, which the worker picks up by itself. */
static void test_rotated_secret_heals(void **state)
{
        struct fx *f = *state;
        enum { M = 4 };
        assert_int_equal(unit_tmpdir_make("deliver"), 0);
        const char *path = write_file("secret", "wrong\n");
        unsetenv("RELAY_MPARTICLE_API_SECRET");
        setenv("RELAY_MPARTICLE_API_SECRET_FILE", path, 1);
        snprintf(f->pf.auth, sizeof(f->pf.auth), "Basic a2V5OnJpZ2h0");
        produce_records(f, 0, M);
        start(f, NULL);
        int64_t until = relay_mono_ms() + KMOCK_WAIT_MS;
        while (platform_nreq(&f->pf) < 3 && relay_mono_ms() < until)
                usleep(20000);
        assert_true(platform_nreq(&f->pf) >= 3);
        assert_int_equal(kmock_committed(f->checker, "out.mparticle"), -1);

        FILE *fp = fopen(path, "w");
        fputs("right\n", fp);
        fclose(fp);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        unsetenv("RELAY_MPARTICLE_API_SECRET_FILE");
        unit_tmpdir_remove();

        struct kmock_readback dlq;
        kmock_read(f->km, "dlq.mparticle", &dlq);
        assert_int_equal(dlq.n, 0);
        kmock_readback_free(&dlq);
        assert_accepted_once(f, NULL);
        assert_int_equal(kmock_log_count(f->km, "secrets changed"), 1);
}

/* 503 more times than max_attempts, then 202: the circuit opens (pause and
 * probe, no attempts used), nothing is dead-lettered, all arrive. */
static void test_breaker_opens_no_dead_letters(void **state)
{
        struct fx *f = *state;
        enum { M = 5 };
        f->pf.fail_first = 8;
        f->pf.fail = refusal(503, NULL);
        produce_records(f, 0, M);
        start(f, NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);

        struct kmock_readback dlq;
        kmock_read(f->km, "dlq.mparticle", &dlq);
        assert_int_equal(dlq.n, 0);
        kmock_readback_free(&dlq);
        assert_accepted_once(f, NULL);
        assert_true(kmock_log_count(f->km, "circuit open") >= 1);
        assert_true(platform_nreq(&f->pf) >= 9);
        /* The whole batch failed breaker_failures (3) times, fewer than
         * max_attempts (5); from then on one record probes at a time until
         * the platform accepts one. */
        for (int i = 0; i < 3; i++)
                assert_int_equal(f->pf.nrec[i], M);
        for (int i = 3; i <= 8; i++)
                assert_int_equal(f->pf.nrec[i], 1);
}

/* 429 with Retry-After: 1, three times, with max_attempts 1: each wait is
 * what the platform asked, the request is not split (no attempt used),
 * and it arrives. */
static void test_retry_after_uses_no_attempt(void **state)
{
        struct fx *f = *state;
        enum { M = 4 };
        f->pf.fail_first = 3;
        f->pf.fail = refusal(429, "Retry-After: 1\r\n");
        produce_records(f, 0, M);
        start(f, "deliver.max_attempts", "1", NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);

        struct kmock_readback dlq;
        kmock_read(f->km, "dlq.mparticle", &dlq);
        assert_int_equal(dlq.n, 0);
        kmock_readback_free(&dlq);
        assert_accepted_once(f, NULL);
        assert_int_equal(platform_nreq(&f->pf), 4);
        for (int i = 0; i < 4; i++)
                assert_int_equal(f->pf.nrec[i], M);
        for (int i = 1; i < 4; i++)
                if (f->pf.req_at[i] - f->pf.req_at[i - 1] < 1000)
                        fail_msg(
                            "request %d %lld ms after the 429 asking "
                            "for 1 s",
                            i,
                            (long long)(f->pf.req_at[i] - f->pf.req_at[i - 1]));
}

static void assert_one_dead_letter(struct fx *f, int rec, const char *status,
                                   const char *why, const char *attempts)
{
        char h[512], off[16];
        struct kmock_readback dlq;
        kmock_read(f->km, "dlq.mparticle", &dlq);
        assert_int_equal(dlq.n, 1);
        const rd_kafka_message_t *d = dlq.msgs[0];
        snprintf(off, sizeof(off), "%d", rec);
        assert_string_equal(kmock_header(d, RELAY_DLQ_H_OFFSET, h, sizeof(h)),
                            off);
        assert_string_equal(kmock_header(d, RELAY_DLQ_H_STAGE, h, sizeof(h)),
                            "deliver");
        assert_string_equal(kmock_header(d, RELAY_DLQ_H_STATUS, h, sizeof(h)),
                            status);
        assert_contains(kmock_header(d, RELAY_DLQ_H_ERROR, h, sizeof(h)), why);
        if (attempts)
                assert_string_equal(
                    kmock_header(d, RELAY_DLQ_H_ATTEMPTS, h, sizeof(h)),
                    attempts);
        /* The record itself, whole. */
        assert_true(d->len > 5);
        assert_false(kmock_has_header(d, RELAY_DLQ_H_OMITTED));
        kmock_readback_free(&dlq);
}

/* 400 for a request carrying record 5 of a batch of 8: splitting isolates
 * it; exactly it is dead-lettered, the others arrive once each. */
static void test_refused_record_isolated(void **state)
{
        struct fx *f = *state;
        enum { M = 8 };
        f->pf.poison_rec = 5;
        f->pf.poison = refusal(400, NULL);
        produce_records(f, 0, M);
        start(f, NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        assert_int_equal(f->pf.nrec[0], M); /* one batch of 8 at first */
        assert_one_dead_letter(f, 5, "400", "scripted refusal", NULL);
        int except[] = {5, -1};
        assert_accepted_once(f, except);
}

/* 503 for any request carrying record 3, 202 for the others: the others
 * arrive, and record 3 alone is dead-lettered once its attempts are used
 * while the platform accepted the others. */
static void test_failing_record_gives_up(void **state)
{
        struct fx *f = *state;
        enum { M = 8 };
        f->pf.poison_rec = 3;
        f->pf.poison = refusal(503, NULL);
        produce_records(f, 0, M);
        start(f, NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        assert_int_equal(f->pf.nrec[0], M);
        assert_one_dead_letter(f, 3, "503", "gave up after 5 attempts", "5");
        int except[] = {3, -1};
        assert_accepted_once(f, except);
}

/* A flaky platform fails every second request, and record 19, in a
 * request of its own, happens to meet eight failures in a row while
 * others of its batch are accepted in between, then is accepted itself:
 * that is as often as the platform fails anyone, so it is not the
 * record's fault and nothing is dead-lettered. (Judged by its attempts
 * alone, it would go after 5.) The first two batches show the platform's
 * failure rate. */
static void test_flaky_platform_blames_no_record(void **state)
{
        struct fx *f = *state;
        enum { WARM = 16, M = 8 };
        f->pf.poison_rec = WARM + 3;
        f->pf.poison_times = 8;
        f->pf.poison = refusal(503, NULL);
        f->pf.flaky_every = 2;
        f->pf.fail = refusal(503, NULL);
        produce_records(f, 0, WARM);
        start(f, "mparticle.max_batches_per_request", "1", "deliver.batch_size",
              "8", NULL);
        wait_committed(f, WARM, KMOCK_WAIT_MS);
        produce_records(f, WARM, M);
        wait_committed(f, WARM + M, KMOCK_WAIT_MS);
        stop(f);
        struct kmock_readback dlq;
        kmock_read(f->km, "dlq.mparticle", &dlq);
        assert_int_equal(dlq.n, 0);
        kmock_readback_free(&dlq);
        assert_int_equal(f->pf.poisoned, 9); /* 8 failed, the 9th taken */
        assert_accepted_once(f, NULL);
}

/* An outage with a blip: 503 three times (the circuit opens), one probe
 * accepted, then 503 eight more times, then 202. The platform never kept
 * accepting records while the others failed, so nothing is
 * dead-lettered. */
static void test_outage_with_blip_no_dead_letters(void **state)
{
        struct fx *f = *state;
        enum { M = 6 };
        /* A probe accepted in the middle of an outage is no evidence
         * against the records that fail after it: nothing may be
         * dead-lettered. */
        static const int script[] = {503, 503, 503, 0,   503, 503, 503,
                                     503, 503, 503, 503, 503, 0};
        memcpy(f->pf.script, script, sizeof(script));
        f->pf.nscript = (int)(sizeof(script) / sizeof(script[0]));
        f->pf.fail = refusal(503, NULL);
        produce_records(f, 0, M);
        start(f, NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        struct kmock_readback dlq;
        kmock_read(f->km, "dlq.mparticle", &dlq);
        assert_int_equal(dlq.n, 0);
        kmock_readback_free(&dlq);
        assert_accepted_once(f, NULL);
}

/* deliver.max_outage_ms with a platform down for good: what is in hand is
 * dead-lettered with "platform unavailable for", and the offset moves. */
static void test_max_outage_gives_up(void **state)
{
        struct fx *f = *state;
        enum { M = 4 };
        f->pf.down = 1;
        f->pf.fail = refusal(503, NULL);
        produce_records(f, 0, M);
        start(f, "deliver.max_outage_ms", "1500", NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);

        char h[512];
        struct kmock_readback dlq;
        kmock_read(f->km, "dlq.mparticle", &dlq);
        assert_int_equal(dlq.n, M);
        for (size_t i = 0; i < dlq.n; i++)
                assert_contains(
                    kmock_header(dlq.msgs[i], RELAY_DLQ_H_ERROR, h, sizeof(h)),
                    "platform unavailable for");
        kmock_readback_free(&dlq);
        /* It gave up no earlier than it was told to. */
        assert_true(f->pf.req_at[f->pf.nreq - 1] - f->pf.req_at[0] >= 1000);

        /* The platform is back: the next records are sent, not
         * dead-lettered without a try. */
        pthread_mutex_lock(&f->pf.mu);
        f->pf.down = 0;
        pthread_mutex_unlock(&f->pf.mu);
        produce_records(f, M, 3);
        wait_committed(f, M + 3, KMOCK_WAIT_MS);
        stop(f);
        kmock_read(f->km, "dlq.mparticle", &dlq);
        assert_int_equal(dlq.n, M);
        kmock_readback_free(&dlq);
        int except[] = {0, 1, 2, 3, -1};
        assert_accepted_once(f, except);
}

/* One record a request, 12 people, every answer 150 ms late: the
 * requests of different people are under way at once, as many as
 * deliver.max_in_flight allows and never more. */
static void check_in_flight(struct fx *f, const char *max_in_flight, int want)
{
        enum { M = 12 };
        f->pf.ok.delay_ms = 150;
        produce_records(f, 0, M);
        start(f, "mparticle.max_batches_per_request", "1", "deliver.batch_size",
              "12", "deliver.max_in_flight", max_in_flight, NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        assert_int_equal(server_max_active(f->srv), want);
        assert_accepted_once(f, NULL);
}

static void test_requests_in_flight_bounded(void **state)
{
        check_in_flight(*state, "4", 4);
}

static void test_one_in_flight(void **state)
{
        check_in_flight(*state, "1", 1);
}

/* Records without a key (no person: a producer other than relay-transform)
 * have no order to keep: they spread over the lanes, and as many requests
 * go at once as deliver.max_in_flight allows, not one at a time. */
static void test_unkeyed_records_in_flight(void **state)
{
        struct fx *f = *state;
        enum { M = 12 };
        f->pf.ok.delay_ms = 150;
        produce_persons(f, 0, M, -1);
        start(f, "mparticle.max_batches_per_request", "1", "deliver.batch_size",
              "12", "deliver.max_in_flight", "4", NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        assert_int_equal(server_max_active(f->srv), 4);
        assert_accepted_once(f, NULL);
}

/* People go into requests whole, each request taking its share of the
 * batch: seven records of four people (A B C D A B C), four records a
 * request, two requests at once. Filling one request until it holds
 * four would leave A, B and C's second records in its lane, a second
 * request a round trip later; packed by person, A A B B and C C D go
 * together, the batch in one round trip. */
static int64_t span_ms(struct platform *pf, int first, int last);

static void test_people_packed_one_round(void **state)
{
        struct fx *f = *state;
        enum { M = 7 };
        f->pf.ok.delay_ms = 300;
        produce_persons(f, 0, M, 4);
        start(f, "mparticle.max_batches_per_request", "4", "deliver.batch_size",
              "7", "deliver.max_in_flight", "2", NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        assert_accepted_once(f, NULL);
        assert_int_equal(f->pf.nreq, 2);
        assert_int_equal(f->pf.nrec[0] + f->pf.nrec[1], M);
        if (span_ms(&f->pf, 0, 1) >= 150)
                fail_msg("the second request went %lld ms after the first: "
                         "the batch took two round trips",
                         (long long)span_ms(&f->pf, 0, 1));
}

/* Eight people, one record each, one request at a time of one record,
 * each answered after 300 ms: the batch of eight takes 2.4 s. What is
 * delivered is committed as it goes (relay_pipeline_store_progress): the
 * group's committed offset passes 3 while requests of the batch are still
 * to come. Before, it stayed 0 until the batch ended, and a crash sent the
 * whole batch again. */
static void test_progress_committed_mid_batch(void **state)
{
        struct fx *f = *state;
        enum { M = 8 };
        f->pf.ok.delay_ms = 300;
        produce_persons(f, 0, M, M);
        start(f, "mparticle.max_batches_per_request", "1", "deliver.batch_size",
              "8", "deliver.max_in_flight", "1", NULL);
        int64_t until = relay_mono_ms() + KMOCK_WAIT_MS, got = -1;
        int nreq = 0;
        while (relay_mono_ms() < until) {
                nreq = platform_nreq(&f->pf);
                if ((got = kmock_committed(f->checker, "out.mparticle")) >= 3)
                        break;
                usleep(20000);
        }
        if (got < 3 || nreq >= M)
                fail_msg("committed offset %lld after %d of %d requests: "
                         "nothing committed before the batch ended",
                         (long long)got, nreq, M);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        assert_accepted_once(f, NULL);
}

/* Three people, four records each, one record a request. The first
 * record of person 0 is answered 503 twice: it waits out its backoff in
 * its lane while the other people's records go ahead, and none of person
 * 0's later records overtakes it. */
static void test_person_order_under_retries(void **state)
{
        struct fx *f = *state;
        enum { M = 12, P = 3 };
        f->pf.poison_rec = 0;
        f->pf.poison_times = 2;
        f->pf.poison = refusal(503, NULL);
        produce_persons(f, 0, M, P);
        start(f, "mparticle.max_batches_per_request", "1", "deliver.batch_size",
              "12", "deliver.max_in_flight", "4", "deliver.backoff_base_ms",
              "300", "deliver.backoff_max_ms", "300", NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        assert_accepted_once(f, NULL);
        assert_int_equal(f->pf.poisoned, 3);
        int at[M], others_before = 0;
        for (int k = 0; k < f->pf.nseq; k++)
                at[f->pf.seq[k]] = k;
        for (int i = 0; i < M; i++) {
                if (i >= P && at[i] < at[i - P])
                        fail_msg("record %d of person %d accepted before the "
                                 "person's earlier record %d",
                                 i, i % P, i - P);
                if (i % P)
                        others_before += at[i] < at[0];
        }
        /* The retry of record 0 waited 2 x 300 ms: the other people's
         * eight records (8 requests, no wait) went meanwhile. */
        assert_int_equal(others_before, M - M / P);
}

/* deliver.max_in_flight = adaptive: starting from one request at a
 * time, the window grows while the answers come in time (never past
 * deliver.adaptive_max_in_flight). */
static void test_adaptive_window_grows(void **state)
{
        struct fx *f = *state;
        enum { M = 48 };
        f->pf.ok.delay_ms = 40;
        produce_records(f, 0, M);
        start(f, "mparticle.max_batches_per_request", "1", "deliver.batch_size",
              "48", "deliver.max_in_flight", "adaptive",
              "deliver.adaptive_max_in_flight", "6", NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        int top = server_max_active(f->srv);
        if (top < 4 || top > 6)
                fail_msg("at most %d requests at once, want 4 to 6", top);
        assert_accepted_once(f, NULL);
}

/* Requests of platform pf from first to last: the time between them. */
static int64_t span_ms(struct platform *pf, int first, int last)
{
        pthread_mutex_lock(&pf->mu);
        int64_t t = pf->req_at[last] - pf->req_at[first];
        pthread_mutex_unlock(&pf->mu);
        return t;
}

/* deliver.max_requests_per_s 5 over 4 lanes, 12 records one a request:
 * a burst of 5 (a second's worth), then one every 200 ms, so the 12th
 * goes no sooner than 1.4 s after the first; in no second more than 10
 * (the burst and a second's rate) although the platform answers at once. */
static void test_request_rate_limit(void **state)
{
        struct fx *f = *state;
        enum { M = 12 };
        produce_records(f, 0, M);
        start(f, "mparticle.max_batches_per_request", "1", "deliver.batch_size",
              "12", "deliver.max_in_flight", "4", "deliver.max_requests_per_s",
              "5", NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        assert_accepted_once(f, NULL);
        assert_int_equal(platform_nreq(&f->pf), M);
        int64_t all = span_ms(&f->pf, 0, M - 1);
        if (all < 1350)
                fail_msg("12 requests in %lld ms at 5 a second", (long long)all);
        for (int i = 0; i + 10 < M; i++)
                if (span_ms(&f->pf, i, i + 10) < 1000)
                        fail_msg("11 requests within %lld ms",
                                 (long long)span_ms(&f->pf, i, i + 10));
}

/* deliver.max_events_per_s 10, 5 records a request: two requests at
 * once (the bucket holds a second's worth), then one every 500 ms. */
static void test_event_rate_limit(void **state)
{
        struct fx *f = *state;
        enum { M = 20 };
        produce_records(f, 0, M);
        start(f, "mparticle.max_batches_per_request", "5", "deliver.batch_size",
              "20", "deliver.max_in_flight", "4", "deliver.max_events_per_s",
              "10", NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        assert_accepted_once(f, NULL);
        assert_int_equal(platform_nreq(&f->pf), 4);
        for (int i = 0; i < 4; i++)
                assert_int_equal(f->pf.nrec[i], 5);
        if (span_ms(&f->pf, 0, 3) < 950)
                fail_msg("20 records in %lld ms at 10 a second",
                         (long long)span_ms(&f->pf, 0, 3));
}

/* Every answer says the platform's rate limit is used up until its window
 * resets in 1 s. Four requests go at once (nothing said so yet); their
 * answers hold every lane until the reset, so the last two go no sooner
 * than 1 s later; nothing is dead-lettered, no attempt is used
 * (max_attempts 1), and the pause is in the log. */
static void test_ratelimit_headers_hold(void **state)
{
        struct fx *f = *state;
        enum { M = 6 };
        f->pf.ok.headers = "RateLimit-Remaining: 0\r\nRateLimit-Reset: 1\r\n";
        produce_records(f, 0, M);
        start(f, "mparticle.max_batches_per_request", "1", "deliver.batch_size",
              "6", "deliver.max_in_flight", "4", "deliver.max_attempts", "1",
              NULL);
        wait_committed(f, M, KMOCK_WAIT_MS);
        stop(f);
        assert_accepted_once(f, NULL);
        struct kmock_readback dlq;
        kmock_read(f->km, "dlq.mparticle", &dlq);
        assert_int_equal(dlq.n, 0);
        kmock_readback_free(&dlq);
        assert_int_equal(platform_nreq(&f->pf), M);
        for (int i = 4; i < M; i++)
                if (span_ms(&f->pf, 3, i) < 950)
                        fail_msg("request %d %lld ms after an answer saying "
                                 "no request is left for 1 s",
                                 i, (long long)span_ms(&f->pf, 3, i));
        assert_true(kmock_log_count(f->km, "rate limit is used up") > 0);
}

/* A deliver.max_in_flight that is neither a count nor "adaptive" is
 * refused at start, naming the key. */
static void test_max_in_flight_refused(void **state)
{
        struct fx *f = *state;
        char errstr[512];
        const relay_conf_prop_t *tables[] = {
            relay_deliver_props, relay_adapter_find("mparticle")->props,
            test_props};
        f->conf = kmock_conf(f->km, tables, 3, "deliver.platform", "mparticle",
                             "deliver.max_in_flight", "lots",
                             "schemas.manifest", manifest, NULL);
        assert_null(relay_deliver_new(f->conf, errstr, sizeof(errstr)));
        assert_non_null(strstr(errstr, "deliver.max_in_flight: 'lots'"));
}

int main(int argc, char **argv)
{
        alarm(240);
        /* One test by name (a glob): test_x ARGV[1]. */
        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        const char *src = getenv("RELAY_SOURCE_DIR");
        snprintf(manifest, sizeof(manifest), "%s/schemas/manifest.cfg",
                 src ? src : ".");
        relay_http_global_init();
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_auth_pauses_not_dead_letters,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_rotated_secret_heals, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_breaker_opens_no_dead_letters,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_retry_after_uses_no_attempt,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_refused_record_isolated, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_failing_record_gives_up, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                test_flaky_platform_blames_no_record, setup, teardown),
            cmocka_unit_test_setup_teardown(
                test_outage_with_blip_no_dead_letters, setup, teardown),
            cmocka_unit_test_setup_teardown(test_max_outage_gives_up, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_requests_in_flight_bounded,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_one_in_flight, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_unkeyed_records_in_flight,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_people_packed_one_round,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_person_order_under_retries,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_progress_committed_mid_batch,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_adaptive_window_grows, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_max_in_flight_refused, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_request_rate_limit, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_event_rate_limit, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_ratelimit_headers_hold, setup,
                                            teardown),
        };
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        relay_http_global_cleanup();
        if (rd_kafka_wait_destroyed(5000)) {
                fprintf(stderr, "librdkafka handles still alive at exit\n");
                failed++;
        }
        return failed;
}
