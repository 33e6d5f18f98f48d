/*
 * ratepost: an open-loop load generator for tests/bench/ingest.sh. POSTs
 * one body to a URL at a fixed rate (request i is due at start + i/rate),
 * on at most --connections kept-alive connections of one libcurl multi
 * handle, for --seconds, and prints the latency of each answer measured
 * from when its request was due, not from when it went out (so a server
 * that falls behind is charged the time requests waited for it: no
 * coordinated omission, as wrk2 measures). wrk measures closed-loop
 * throughput and cannot hold a rate; this holds one.
 *
 *   ratepost --url URL --body FILE --rate R --seconds S
 *            [--connections C] [--header "Name: value" ...]
 *
 * Prints one JSON line: due, sent, answered, by status class, achieved
 * rate, and p50/p99/p999/max latency in ms. Exits 0 when every request was
 * answered; 1 otherwise; 2 on bad arguments.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
        (void)p;
        (void)ud;
        return size * n;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

struct slot {
        CURL *h;
        double due;
        int busy;
};

int main(int argc, char **argv)
{
        const char *url = NULL, *body_file = NULL;
        double rate = 0, seconds = 0;
        long conns = 64;
        struct curl_slist *hdrs = NULL;
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        hdrs = curl_slist_append(hdrs, "Expect:");
        for (int i = 1; i + 1 < argc; i += 2) {
                if (!strcmp(argv[i], "--url"))
                        url = argv[i + 1];
                else if (!strcmp(argv[i], "--body"))
                        body_file = argv[i + 1];
                else if (!strcmp(argv[i], "--rate"))
                        rate = atof(argv[i + 1]);
                else if (!strcmp(argv[i], "--seconds"))
                        seconds = atof(argv[i + 1]);
                else if (!strcmp(argv[i], "--connections"))
                        conns = atol(argv[i + 1]);
                else if (!strcmp(argv[i], "--header"))
                        hdrs = curl_slist_append(hdrs, argv[i + 1]);
                else
                        break;
        }
        if (!url || !body_file || rate <= 0 || seconds <= 0 || conns < 1 ||
            argc % 2 == 0) {
                fprintf(stderr, "usage: ratepost --url URL --body FILE --rate "
                                "R --seconds S [--connections C] [--header "
                                "H ...]\n");
                return 2;
        }
        FILE *fp = fopen(body_file, "rb");
        if (!fp) {
                perror(body_file);
                return 2;
        }
        static char body[1 << 20];
        size_t blen = fread(body, 1, sizeof(body), fp);
        fclose(fp);

        curl_global_init(CURL_GLOBAL_DEFAULT);
        CURLM *m = curl_multi_init();
        curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
        struct slot *slots = calloc((size_t)conns, sizeof(*slots));
        for (long i = 0; i < conns; i++) {
                CURL *h = curl_easy_init();
                curl_easy_setopt(h, CURLOPT_URL, url);
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)blen);
                curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
                curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
                curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
                curl_easy_setopt(h, CURLOPT_PRIVATE, &slots[i]);
                slots[i].h = h;
        }
        size_t due_total = (size_t)(rate * seconds);
        double *lat = malloc(due_total * sizeof(double));
        size_t next = 0, answered = 0, failed = 0, cls[6] = {0};
        double start = now_s(), end_by = start + seconds + 30;
        while ((next < due_total || answered + failed < next) &&
               now_s() < end_by) {
                double t = now_s();
                /* Start every request that is due and has a connection;
                 * one that is due but has none waits, and its latency
                 * still counts from when it was due. */
                while (next < due_total && start + (double)next / rate <= t) {
                        long i = 0;
                        while (i < conns && slots[i].busy)
                                i++;
                        if (i == conns)
                                break;
                        slots[i].busy = 1;
                        slots[i].due = start + (double)next / rate;
                        curl_multi_add_handle(m, slots[i].h);
                        next++;
                }
                int running;
                curl_multi_perform(m, &running);
                CURLMsg *msg;
                int left;
                while ((msg = curl_multi_info_read(m, &left))) {
                        if (msg->msg != CURLMSG_DONE)
                                continue;
                        struct slot *s;
                        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
                                          (char **)&s);
                        long status = 0;
                        curl_easy_getinfo(msg->easy_handle,
                                          CURLINFO_RESPONSE_CODE, &status);
                        if (msg->data.result != CURLE_OK) {
                                failed++;
                        } else {
                                lat[answered++] = (now_s() - s->due) * 1000;
                                cls[status >= 100 && status < 600
                                        ? status / 100
                                        : 0]++;
                        }
                        curl_multi_remove_handle(m, msg->easy_handle);
                        s->busy = 0;
                }
                double wait = next < due_total
                                  ? start + (double)next / rate - now_s()
                                  : 0.01;
                int ms = wait > 0 ? (int)(wait * 1000) : 0;
                curl_multi_poll(m, NULL, 0, ms > 10 ? 10 : ms, NULL);
        }
        double took = now_s() - start;
        qsort(lat, answered, sizeof(double), cmp_double);
#define PCT(p) (answered ? lat[(size_t)((double)(answered - 1) * (p))] : -1)
        printf("{\"ratepost\":{\"due\":%zu,\"sent\":%zu,\"answered\":%zu,"
               "\"failed\":%zu,\"2xx\":%zu,\"4xx\":%zu,\"5xx\":%zu,"
               "\"rate\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
               "\"p999_ms\":%.2f,\"max_ms\":%.2f}}\n",
               due_total, next, answered, failed, cls[2], cls[4], cls[5],
               (double)answered / took, PCT(0.5), PCT(0.99), PCT(0.999),
               answered ? lat[answered - 1] : -1);
        for (long i = 0; i < conns; i++)
                curl_easy_cleanup(slots[i].h);
        curl_multi_cleanup(m);
        curl_slist_free_all(hdrs);
        free(slots);
        free(lat);
        return answered == due_total ? 0 : 1;
}
