/*
 * The refresh loop of relayctl's watching commands (lag --watch, top): a
 * block of figures every interval, redrawn in place on a terminal (ANSI
 * home + clear, like watch(1)) and appended as plain blocks elsewhere, so
 * a pipe or a log file gets one timestamped block per refresh. Every loop
 * is bounded by -n COUNT or ends on SIGINT/SIGTERM, which is a normal
 * end (exit 0): that is how an operator leaves the view.
 */
#include "relayctl.h"

#include "relay/common.h"
#include "relay/worker.h"

#include <stdio.h>
#include <time.h>

#define ANSI_HOME_CLEAR "\033[H\033[2J"

static void block_begin(const struct ctl_watch *w, long long n)
{
        char when[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (w->tty)
                fputs(ANSI_HOME_CLEAR, stdout);
        else if (n > 0)
                putchar('\n');
        printf("%s  %s  every %g s\n", w->title, when, w->interval_ms / 1000.0);
}

int ctl_watch_count(const char *text, long long *count)
{
        if (parse_count('n', text, INT32_MAX, count))
                return -1;
        if (*count > 0)
                return 0;
        fprintf(stderr, "relayctl: -n: at least 1 refresh\n");
        return -1;
}

int ctl_watch_run(const struct ctl_watch *w, int (*sample)(void *arg),
                  void (*print)(void *arg), void *arg)
{
        int rc = 0;
        relay_worker_signals();
        int64_t tick = relay_mono_ms();
        for (long long n = 0; relay_run && (!w->count || n < w->count); n++) {
                if (n > 0) {
                        int64_t wait = tick + w->interval_ms - relay_mono_ms();
                        if (wait > 0 && relay_sleep_ms((long)wait, &relay_run))
                                break;
                        tick = relay_mono_ms();
                }
                rc = sample(arg);
                if (!relay_run)
                        break;
                block_begin(w, n);
                print(arg);
                fflush(stdout);
        }
        return relay_run ? rc : 0;
}
