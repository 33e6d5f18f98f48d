/*
 * post_ceiling: the ceiling of relay-deliver in tests/bench/hotpath.sh.
 * What a consumer of the same librdkafka and a libcurl client can do when
 * they do nothing to the records: consume a topic as a group member
 * (auto.offset.reset=earliest, or from the group's committed offsets),
 * POST the raw value bytes of every --per-request records (100, the
 * records relay-deliver puts in one mParticle request), concatenated, to
 * --url, --in-flight K requests under way at once (default 1: one at a
 * time) on kept-alive connections of one libcurl multi handle (at most K
 * connections to the host, no pipelining, no waiting for a connection to
 * multiplex on), and commit once N records were posted and answered 2xx.
 * K is relay-deliver's deliver.max_in_flight in tests/bench/deliver.sh.
 *
 *   post_ceiling --bootstrap B --topic T --group G --records N --url URL
 *                [--userpwd USER:PASSWORD] [--per-request R]
 *                [--in-flight K] [--timeout S] [-X name=value ...]
 *
 * The requests carry what relay's do (Content-Type: application/json,
 * Basic auth, no "Expect: 100-continue"); the sink (nginx `return 202;`)
 * reads and discards the body either way.
 *
 * Prints one JSON line (ceiling_report, with the requests and bytes
 * posted, and in_flight). Exits 0 when all N were posted, answered 2xx
 * and committed; 1 otherwise (naming why, e.g. the first non-2xx status);
 * 2 on bad arguments.
 */
#include "ceiling.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct body {
        char *buf;
        size_t len, cap;
        long records;
};

static int body_add(struct body *b, const void *p, size_t n)
{
        if (b->len + n > b->cap) {
                size_t cap = b->cap ? b->cap : 65536;
                while (cap < b->len + n)
                        cap *= 2;
                char *buf = realloc(b->buf, cap);
                if (!buf)
                        return -1;
                b->buf = buf;
                b->cap = cap;
        }
        memcpy(b->buf + b->len, p, n);
        b->len += n;
        b->records++;
        return 0;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        (void)ptr;
        (void)userdata;
        return size * nmemb;
}

/* One request's slot: its easy handle and the body it posts. A slot is
 * busy from curl_multi_add_handle until its answer is read. */
struct slot {
        CURL *h;
        struct body b;
        int busy;
};

static CURL *client_new(const struct ceiling_args *a,
                        struct curl_slist *headers, struct slot *s)
{
        CURL *h = curl_easy_init();
        if (!h)
                return NULL;
        curl_easy_setopt(h, CURLOPT_URL, a->url);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        /* A new request takes a free connection or opens one; it never
         * queues behind a busy one waiting to multiplex. */
        curl_easy_setopt(h, CURLOPT_PIPEWAIT, 0L);
        curl_easy_setopt(h, CURLOPT_PRIVATE, s);
        if (a->userpwd) {
                curl_easy_setopt(h, CURLOPT_USERPWD, a->userpwd);
                curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        }
        return h;
}

/* Starts the slot's body on its way. 0, or -1 with errstr. */
static int post_start(CURLM *m, struct slot *s, char *errstr,
                      size_t errstr_size)
{
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)s->b.len);
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->b.buf);
        CURLMcode mc = curl_multi_add_handle(m, s->h);
        if (mc != CURLM_OK) {
                snprintf(errstr, errstr_size, "curl_multi_add_handle: %s",
                         curl_multi_strerror(mc));
                return -1;
        }
        s->busy = 1;
        return 0;
}

/* Drives the transfers and reads every finished one: its slot is freed
 * and its records added to *answered. 0, or -1 with errstr on a transport
 * error or an answer other than 2xx. */
static int post_reap(CURLM *m, long *answered, int *in_flight, char *errstr,
                     size_t errstr_size)
{
        int running, left;
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
                snprintf(errstr, errstr_size, "curl_multi_perform: %s",
                         curl_multi_strerror(mc));
                return -1;
        }
        CURLMsg *msg;
        while ((msg = curl_multi_info_read(m, &left))) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                struct slot *s = NULL;
                long status = 0;
                CURLcode cc = msg->data.result;
                CURL *h = msg->easy_handle;
                curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&s);
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
                curl_multi_remove_handle(m, h);
                if (cc != CURLE_OK) {
                        snprintf(errstr, errstr_size, "POST: %s",
                                 curl_easy_strerror(cc));
                        return -1;
                }
                if (status < 200 || status > 299) {
                        snprintf(errstr, errstr_size, "POST answered %ld",
                                 status);
                        return -1;
                }
                *answered += s->b.records;
                s->b.len = 0;
                s->b.records = 0;
                s->busy = 0;
                (*in_flight)--;
        }
        return 0;
}

/* Takes --in-flight K out of argv (ceiling_parse_args knows the options
 * both ceilings share); returns K, 0 when absent, -1 when bad. */
static long take_in_flight(int *argc, char **argv)
{
        long k = 0;
        int out = 1;
        for (int i = 1; i < *argc; i++) {
                const char *v = NULL;
                if (!strcmp(argv[i], "--in-flight") && i + 1 < *argc)
                        v = argv[++i];
                else if (!strncmp(argv[i], "--in-flight=", 12))
                        v = argv[i] + 12;
                else if (!strcmp(argv[i], "--in-flight"))
                        return -1;
                if (!v) {
                        argv[out++] = argv[i];
                        continue;
                }
                char *end;
                errno = 0;
                k = strtol(v, &end, 10);
                if (*v == '\0' || *end != '\0' || errno || k < 1 || k > 1024)
                        return -1;
        }
        *argc = out;
        argv[out] = NULL;
        return k;
}

int main(int argc, char **argv)
{
        long long t0 = ceiling_now_ms();
        struct ceiling_args a;
        struct slot *slots = NULL;
        char errstr[512] = "", extra[160];
        rd_kafka_t *c = NULL;
        CURLM *multi = NULL;
        struct curl_slist *headers = NULL;
        rd_kafka_topic_partition_list_t *offsets = NULL;
        long long first_ms = 0, done_ms = 0;
        long consumed = 0, answered = 0, requests = 0;
        long long bytes = 0;
        int in_flight = 0, rc = 1;

        long k = take_in_flight(&argc, argv);
        if (k < 0) {
                fprintf(stderr, "post_ceiling: --in-flight takes 1 to 1024\n");
                return 2;
        }
        if (k == 0)
                k = 1;
        int arc = ceiling_parse_args(&a, argc, argv, "post_ceiling",
                                     "--url URL [--userpwd U:P] "
                                     "[--per-request R] [--in-flight K]");
        if (arc || !a.url)
                return arc == 1 ? 0 : 2;
        long long deadline = t0 + (long long)a.timeout_s * 1000;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        offsets = rd_kafka_topic_partition_list_new(8);
        headers = curl_slist_append(NULL, "Content-Type: application/json");
        struct curl_slist *more =
            headers ? curl_slist_append(headers, "Expect:") : NULL;
        slots = calloc((size_t)k, sizeof(*slots));
        multi = curl_multi_init();
        if (!more || !slots || !multi) {
                snprintf(errstr, sizeof(errstr), "curl set-up failed");
                goto done;
        }
        /* K connections at most, each kept alive and used by one request
         * at a time, as relay-deliver's lanes use theirs. */
        curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, k);
        curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, k);
        curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
        for (long i = 0; i < k; i++) {
                if (!(slots[i].h = client_new(&a, headers, &slots[i]))) {
                        snprintf(errstr, sizeof(errstr), "curl set-up failed");
                        goto done;
                }
        }
        if (!(c = ceiling_consumer_new(&a, errstr, sizeof(errstr))))
                goto done;

        struct slot *fill = &slots[0]; /* the body being filled, or NULL */
        while (answered < a.records) {
                if (ceiling_now_ms() >= deadline) {
                        snprintf(errstr, sizeof(errstr),
                                 "consumed %ld, answered %ld of %ld records "
                                 "in %d s",
                                 consumed, answered, a.records, a.timeout_s);
                        goto done;
                }
                if (!fill || consumed == a.records) {
                        /* Every slot busy (or nothing left to read): wait
                         * for an answer. */
                        curl_multi_poll(multi, NULL, 0, 100, NULL);
                } else {
                        rd_kafka_message_t *m =
                            rd_kafka_consumer_poll(c, in_flight ? 0 : 100);
                        if (!m) {
                                if (in_flight)
                                        curl_multi_poll(multi, NULL, 0, 1,
                                                        NULL);
                        } else if (m->err) {
                                int fatal = m->err !=
                                            RD_KAFKA_RESP_ERR__PARTITION_EOF;
                                if (fatal)
                                        snprintf(errstr, sizeof(errstr),
                                                 "consume: %s",
                                                 rd_kafka_message_errstr(m));
                                rd_kafka_message_destroy(m);
                                if (fatal)
                                        goto done;
                        } else {
                                if (!first_ms)
                                        first_ms = ceiling_now_ms();
                                int bad = body_add(&fill->b, m->payload, m->len);
                                if (!bad) {
                                        ceiling_consumed(offsets, m);
                                        consumed++;
                                }
                                rd_kafka_message_destroy(m);
                                if (bad) {
                                        snprintf(errstr, sizeof(errstr),
                                                 "out of memory");
                                        goto done;
                                }
                                /* A full request, or the last records. */
                                if (fill->b.records == a.per_request ||
                                    consumed == a.records) {
                                        bytes += (long long)fill->b.len;
                                        if (post_start(multi, fill, errstr,
                                                       sizeof(errstr)))
                                                goto done;
                                        requests++;
                                        in_flight++;
                                        fill = NULL;
                                }
                        }
                }
                if (in_flight && post_reap(multi, &answered, &in_flight,
                                           errstr, sizeof(errstr)))
                        goto done;
                for (long i = 0; !fill && i < k; i++)
                        if (!slots[i].busy)
                                fill = &slots[i];
        }
        if (ceiling_commit(c, offsets, errstr, sizeof(errstr)))
                goto done;
        done_ms = ceiling_now_ms();
        rc = 0;
done:
        if (c) {
                rd_kafka_consumer_close(c);
                rd_kafka_destroy(c);
        }
        for (long i = 0; slots && i < k; i++) {
                if (slots[i].h) {
                        if (slots[i].busy && multi)
                                curl_multi_remove_handle(multi, slots[i].h);
                        curl_easy_cleanup(slots[i].h);
                }
                free(slots[i].b.buf);
        }
        free(slots);
        if (multi)
                curl_multi_cleanup(multi);
        curl_slist_free_all(headers);
        rd_kafka_topic_partition_list_destroy(offsets);
        curl_global_cleanup();
        if (rc) {
                fprintf(stderr, "post_ceiling: %s\n", errstr);
                return 1;
        }
        snprintf(extra, sizeof(extra),
                 ", \"requests\": %ld, \"bytes\": %lld, \"in_flight\": %ld",
                 requests, bytes, k);
        ceiling_report("post_ceiling", a.records, t0, first_ms, done_ms, extra);
        return 0;
}
