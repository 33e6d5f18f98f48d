/*
 * post_ceiling: the ceiling of relay-deliver in tests/bench/hotpath.sh.
 * What a consumer of the same librdkafka and a libcurl client can do when
 * they do nothing to the records: consume a topic as a group member
 * (auto.offset.reset=earliest, or from the group's committed offsets),
 * POST the raw value bytes of every --per-request records (100, the
 * records relay-deliver puts in one mParticle request), concatenated, to
 * --url, one request at a time on one kept-alive connection as
 * relay-deliver sends them, and commit once N records were posted and
 * answered 2xx.
 *
 *   post_ceiling --bootstrap B --topic T --group G --records N --url URL
 *                [--userpwd USER:PASSWORD] [--per-request K]
 *                [--timeout S] [-X name=value ...]
 *
 * The requests carry what relay's do (Content-Type: application/json,
 * Basic auth, no "Expect: 100-continue"); the sink (nginx `return 202;`)
 * reads and discards the body either way.
 *
 * Prints one JSON line (ceiling_report, with the requests and bytes
 * posted). Exits 0 when all N were posted, answered 2xx and committed; 1
 * otherwise (naming why, e.g. the first non-2xx status); 2 on bad
 * arguments.
 */
#include "ceiling.h"

#include <curl/curl.h>
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
        return size * nmemb;
}

/* POSTs the body and empties it. 0 when answered 2xx, else -1 with
 * errstr. */
static int post(CURL *h, struct body *b, char *errstr, size_t errstr_size)
{
        long status = 0;
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, b->buf);
        CURLcode cc = curl_easy_perform(h);
        if (cc != CURLE_OK) {
                snprintf(errstr, errstr_size, "POST: %s",
                         curl_easy_strerror(cc));
                return -1;
        }
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299) {
                snprintf(errstr, errstr_size, "POST answered %ld", status);
                return -1;
        }
        b->len = 0;
        b->records = 0;
        return 0;
}

static CURL *client_new(const struct ceiling_args *a,
                        struct curl_slist *headers)
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
        if (a->userpwd) {
                curl_easy_setopt(h, CURLOPT_USERPWD, a->userpwd);
                curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        }
        return h;
}

int main(int argc, char **argv)
{
        long long t0 = ceiling_now_ms();
        struct ceiling_args a;
        struct body b = {NULL, 0, 0, 0};
        char errstr[512] = "", extra[128];
        rd_kafka_t *c = NULL;
        CURL *h = NULL;
        struct curl_slist *headers = NULL;
        rd_kafka_topic_partition_list_t *offsets = NULL;
        long long first_ms = 0, done_ms = 0;
        long consumed = 0, requests = 0;
        long long bytes = 0;
        int rc = 1;

        int arc = ceiling_parse_args(&a, argc, argv, "post_ceiling",
                                     "--url URL [--userpwd U:P] "
                                     "[--per-request K]");
        if (arc || !a.url)
                return arc == 1 ? 0 : 2;
        long long deadline = t0 + (long long)a.timeout_s * 1000;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        offsets = rd_kafka_topic_partition_list_new(8);
        headers = curl_slist_append(NULL, "Content-Type: application/json");
        struct curl_slist *more =
            headers ? curl_slist_append(headers, "Expect:") : NULL;
        if (!more || !(h = client_new(&a, headers))) {
                snprintf(errstr, sizeof(errstr), "curl set-up failed");
                goto done;
        }
        if (!(c = ceiling_consumer_new(&a, errstr, sizeof(errstr))))
                goto done;

        while (consumed < a.records) {
                if (ceiling_now_ms() >= deadline) {
                        snprintf(errstr, sizeof(errstr),
                                 "consumed %ld of %ld records in %d s",
                                 consumed, a.records, a.timeout_s);
                        goto done;
                }
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
                if (!m)
                        continue;
                if (m->err) {
                        int fatal = m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF;
                        if (fatal)
                                snprintf(errstr, sizeof(errstr), "consume: %s",
                                         rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        if (fatal)
                                goto done;
                        continue;
                }
                if (!first_ms)
                        first_ms = ceiling_now_ms();
                int bad = body_add(&b, m->payload, m->len);
                if (!bad) {
                        ceiling_consumed(offsets, m);
                        consumed++;
                }
                rd_kafka_message_destroy(m);
                if (bad) {
                        snprintf(errstr, sizeof(errstr), "out of memory");
                        goto done;
                }
                /* A full request, or the last records: post them. */
                if (b.records == a.per_request || consumed == a.records) {
                        bytes += (long long)b.len;
                        if (post(h, &b, errstr, sizeof(errstr)))
                                goto done;
                        requests++;
                }
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
        if (h)
                curl_easy_cleanup(h);
        curl_slist_free_all(headers);
        rd_kafka_topic_partition_list_destroy(offsets);
        free(b.buf);
        curl_global_cleanup();
        if (rc) {
                fprintf(stderr, "post_ceiling: %s\n", errstr);
                return 1;
        }
        snprintf(extra, sizeof(extra), ", \"requests\": %ld, \"bytes\": %lld",
                 requests, bytes);
        ceiling_report("post_ceiling", a.records, t0, first_ms, done_ms, extra);
        return 0;
}
