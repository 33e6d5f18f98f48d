/*
 * relayctl top: the view an operator opens first during an incident.
 *
 *   relayctl top [-i SECONDS] [-n COUNT] [-m METRICS_URL ...]
 *                GROUP:TOPIC[:DLQ] ...
 *
 * Every interval (-i, default 1 s), per group: the lag per partition in
 * records and seconds (lag.c), records/s in (growth of the topic's end
 * offsets), records/s out (growth of the group's committed offsets) and,
 * with a third field, dead letters/s (growth of the DLQ topic's end
 * offsets). Per worker given with -m (its /metrics URL): its platform and
 * breaker state, whether it is paused or ready, and its records in/out
 * counters with their rates, read from the exposition (only the lines
 * needed); a worker that does not answer with a 200 is "down", with why.
 *
 * Every rate is over the interval before the block, so each block has
 * them: the first block comes one interval after start (a first sample,
 * then the wait), and -n 1, the one-shot form, takes one interval too.
 */
#include "relayctl.h"

#include "relay/common.h"
#include "relay/http.h"
#include "relay/promtext.h"
#include "relay/worker.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOP_MAX_GROUPS    32
#define TOP_MAX_WORKERS   32
#define TOP_MAX_PLATFORMS 8

/* A counter sampled again and again, and its rate over the last
 * interval: NaN until two samples are in hand, or when the counter went
 * back (a worker restarted, a topic recreated). */
struct rate {
        double last;
        int64_t at_ms;
        int have;
        double per_s;
};

static void rate_update(struct rate *r, double value, int64_t at_ms, int valid)
{
        r->per_s = NAN;
        if (valid && r->have && at_ms > r->at_ms && value >= r->last)
                r->per_s =
                    (value - r->last) * 1000.0 / (double)(at_ms - r->at_ms);
        r->have = valid;
        r->last = value;
        r->at_ms = at_ms;
}

static const char *per_s(char *buf, size_t size, const struct rate *r)
{
        if (isnan(r->per_s))
                return "-";
        snprintf(buf, size, "%.1f/s", r->per_s);
        return buf;
}

struct top_group {
        const char *group, *topic, *dlq; /* into the argument, or NULL */
        struct ctl_lag lag;
        int ok;
        struct rate in, out, dead;
        int64_t dlq_end;
        char dlq_error[256];
};

struct top_platform {
        char name[RELAY_PROMTEXT_VALUE_MAX];
        double state, breaker; /* NaN when not exposed */
};

struct top_worker {
        const char *url;
        relay_http_t *http;
        int up;
        char why[300];
        char name[RELAY_PROMTEXT_VALUE_MAX];
        double paused, ready; /* NaN when not exposed */
        double in, out;       /* sums over topics */
        int has_in, has_out;
        struct top_platform platforms[TOP_MAX_PLATFORMS];
        size_t nplatforms;
        struct rate in_rate, out_rate;
};

struct top {
        long interval_ms;
        long long count;
        struct top_group groups[TOP_MAX_GROUPS];
        size_t ngroups;
        struct top_worker workers[TOP_MAX_WORKERS];
        size_t nworkers;
        int samples;
};

/* The metrics a worker's block needs; every other line is passed over. */
static const char *const wanted[] = {"relay_build_info",
                                     "relay_platform_state",
                                     "relay_breaker_open",
                                     "relay_paused",
                                     "relay_ready",
                                     "relay_records_in_total",
                                     "relay_records_out_total",
                                     NULL};

static struct top_platform *platform(struct top_worker *w, const char *name)
{
        for (size_t i = 0; i < w->nplatforms; i++)
                if (!strcmp(w->platforms[i].name, name))
                        return &w->platforms[i];
        if (w->nplatforms == TOP_MAX_PLATFORMS)
                return NULL;
        struct top_platform *p = &w->platforms[w->nplatforms++];
        snprintf(p->name, sizeof(p->name), "%s", name);
        p->state = p->breaker = NAN;
        return p;
}

static void on_sample(const relay_promtext_sample_t *s, void *arg)
{
        struct top_worker *w = arg;
        const char *v;
        struct top_platform *p;
        if (!strcmp(s->name, "relay_build_info")) {
                if ((v = relay_promtext_label(s, "worker")))
                        snprintf(w->name, sizeof(w->name), "%s", v);
        } else if (!strcmp(s->name, "relay_paused")) {
                w->paused = s->value;
        } else if (!strcmp(s->name, "relay_ready")) {
                w->ready = s->value;
        } else if (!strcmp(s->name, "relay_records_in_total")) {
                w->in += s->value;
                w->has_in = 1;
        } else if (!strcmp(s->name, "relay_records_out_total")) {
                w->out += s->value;
                w->has_out = 1;
        } else if ((v = relay_promtext_label(s, "platform")) &&
                   (p = platform(w, v))) {
                if (!strcmp(s->name, "relay_platform_state"))
                        p->state = s->value;
                else
                        p->breaker = s->value;
        }
}

static void scrape(struct top_worker *w, int64_t at_ms)
{
        relay_http_request_t req = {.method = "GET", .url = w->url};
        relay_http_response_t resp;
        relay_http_response_init(&resp);
        w->up = 0;
        w->name[0] = '\0';
        w->paused = w->ready = NAN;
        w->in = w->out = 0;
        w->has_in = w->has_out = 0;
        w->nplatforms = 0;
        if (relay_http_perform(w->http, &req, &resp))
                snprintf(w->why, sizeof(w->why), "%s", resp.error);
        else if (resp.status != 200)
                snprintf(w->why, sizeof(w->why), "HTTP %ld", resp.status);
        else
                w->up = 1;
        if (w->up)
                relay_promtext_parse(resp.body.data, resp.body.len, wanted,
                                     on_sample, w);
        relay_http_response_reset(&resp);
        rate_update(&w->in_rate, w->in, at_ms, w->up && w->has_in);
        rate_update(&w->out_rate, w->out, at_ms, w->up && w->has_out);
}

static int top_sample(void *arg)
{
        struct top *t = arg;
        int rc = 0, ages = t->samples++ > 0; /* the first only sets rates */
        for (size_t i = 0; i < t->ngroups; i++) {
                struct top_group *g = &t->groups[i];
                g->ok = !ctl_lag_sample(&g->lag, ages);
                int64_t at = g->lag.at_ms;
                rate_update(&g->in, (double)g->lag.end_sum, at, g->ok);
                rate_update(&g->out, (double)g->lag.pos_sum, at, g->ok);
                if (!g->ok)
                        rc = 1;
                if (!g->dlq)
                        continue;
                g->dlq_error[0] = '\0';
                int dlq_ok = !ctl_topic_end(g->lag.rk, g->dlq, &g->dlq_end,
                                            g->dlq_error, sizeof(g->dlq_error));
                rate_update(&g->dead, (double)g->dlq_end, relay_mono_ms(),
                            dlq_ok);
        }
        for (size_t i = 0; i < t->nworkers; i++)
                scrape(&t->workers[i], relay_mono_ms());
        return rc;
}

static void print_group(const struct top_group *g)
{
        char in[32], out[32], dead[32];
        printf("\ngroup %s  topic %s  in %s  out %s", g->group, g->topic,
               per_s(in, sizeof(in), &g->in), per_s(out, sizeof(out), &g->out));
        if (g->dlq && *g->dlq_error)
                printf("  dlq %s: %s", g->dlq, g->dlq_error);
        else if (g->dlq)
                printf("  dlq %s %s (%lld in all)", g->dlq,
                       per_s(dead, sizeof(dead), &g->dead),
                       (long long)g->dlq_end);
        putchar('\n');
        if (!g->ok) {
                printf("  relayctl: %s\n", g->lag.error);
                return;
        }
        ctl_lag_print(&g->lag, "  ");
}

/* A gauge as the words an operator reads. */
static const char *yes_no(double v)
{
        return isnan(v) ? "-" : v != 0 ? "yes" : "no";
}

static const char *platform_state(char *buf, size_t size, double v)
{
        if (isnan(v))
                return "-";
        if (v == 0)
                return "ok";
        if (v == 1)
                return "down (circuit open)";
        if (v == 2)
                return "auth (credentials refused)";
        snprintf(buf, size, "%g", v);
        return buf;
}

static void print_worker(const struct top_worker *w)
{
        char in[32], out[32], b[32];
        if (!w->up) {
                printf("  %s  down (%s)\n", w->url, w->why);
                return;
        }
        printf("  %s  %s  up  paused %s  ready %s", w->url,
               *w->name ? w->name : "-", yes_no(w->paused), yes_no(w->ready));
        if (w->has_in)
                printf("  in %.0f (%s)", w->in,
                       per_s(in, sizeof(in), &w->in_rate));
        if (w->has_out)
                printf("  out %.0f (%s)", w->out,
                       per_s(out, sizeof(out), &w->out_rate));
        putchar('\n');
        for (size_t i = 0; i < w->nplatforms; i++) {
                const struct top_platform *p = &w->platforms[i];
                printf("    platform %s: %s, breaker %s\n", p->name,
                       platform_state(b, sizeof(b), p->state),
                       isnan(p->breaker) ? "-"
                       : p->breaker != 0 ? "open"
                                         : "closed");
        }
}

static void top_print(void *arg)
{
        const struct top *t = arg;
        for (size_t i = 0; i < t->ngroups; i++)
                print_group(&t->groups[i]);
        if (t->nworkers)
                printf("\nworkers\n");
        for (size_t i = 0; i < t->nworkers; i++)
                print_worker(&t->workers[i]);
}

static int top_opt(int opt, const char *arg, void *ctx)
{
        struct top *t = ctx;
        if (opt == 'i')
                return parse_seconds("-i", arg, &t->interval_ms);
        if (opt == 'n')
                return ctl_watch_count(arg, &t->count);
        if (t->nworkers == TOP_MAX_WORKERS) {
                fprintf(stderr, "relayctl: top: at most %d -m URLs\n",
                        TOP_MAX_WORKERS);
                return -1;
        }
        t->workers[t->nworkers++].url = arg;
        return 0;
}

/* GROUP:TOPIC[:DLQ] into g, cut in place; 0, or -1 (printed). Kafka
 * names have no ':'. */
static int parse_spec(char *spec, struct top_group *g)
{
        char *topic = strchr(spec, ':');
        char *dlq = topic ? strchr(topic + 1, ':') : NULL;
        if (topic)
                *topic++ = '\0';
        if (dlq)
                *dlq++ = '\0';
        if (!topic || !*spec || !*topic ||
            (dlq && (!*dlq || strchr(dlq, ':')))) {
                fprintf(stderr, "relayctl: top: expected GROUP:TOPIC or "
                                "GROUP:TOPIC:DLQ\n");
                return -1;
        }
        g->group = spec;
        g->topic = topic;
        g->dlq = dlq;
        return 0;
}

int cmd_top(const struct ctl *c, int argc, char **argv)
{
        static struct top t; /* large; one per process */
        char *pos[TOP_MAX_GROUPS];
        int rc = 1;
        t.interval_ms = 1000;
        int npos = command_args(argc, argv, "i:n:m:", top_opt, &t, pos,
                                TOP_MAX_GROUPS);
        if (npos < 0)
                return 2;
        if (npos == 0)
                return usage();
        for (int i = 0; i < npos; i++)
                if (parse_spec(pos[i], &t.groups[i]))
                        return 2;
        if (relay_http_global_init())
                return 1;
        /* A worker that hangs holds a refresh back by this much at most. */
        long timeout = t.interval_ms < 2000 ? t.interval_ms : 2000;
        for (size_t i = 0; i < t.nworkers; i++)
                if (!(t.workers[i].http =
                          relay_http_new(timeout < 500 ? 500 : timeout, 500)))
                        goto done;
        for (int i = 0; i < npos; i++, t.ngroups++) {
                struct top_group *g = &t.groups[i];
                if (ctl_lag_open(&g->lag, c, g->group, g->topic))
                        goto done;
        }
        int tty = isatty(STDOUT_FILENO);
        struct ctl_watch w = {t.interval_ms, t.count, tty, "relayctl top"};
        relay_worker_signals();
        if (tty)
                printf("\033[H\033[2Jrelayctl top: sampling for %g s ...\n",
                       t.interval_ms / 1000.0);
        fflush(stdout);
        top_sample(&t);
        rc = 0;
        if (!relay_sleep_ms(t.interval_ms, &relay_run))
                rc = ctl_watch_run(&w, top_sample, top_print, &t);
done:
        for (size_t i = 0; i < t.ngroups; i++)
                ctl_lag_close(&t.groups[i].lag);
        for (size_t i = 0; i < t.nworkers; i++)
                relay_http_destroy(t.workers[i].http);
        relay_http_global_cleanup();
        return rc;
}
