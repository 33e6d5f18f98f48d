/*
 * The progress bar of relayctl's long commands (dlq replay and purge,
 * onboard): one line on stderr, redrawn in place, and only when stderr is
 * a terminal, so that logs and pipes never see it.
 */
#include "relay/common.h"

#include "relayctl.h"

#include <stdio.h>

void ctl_progress_draw(struct ctl_progress *pg, int force)
{
        if (!pg->tty)
                return;
        int64_t now = relay_mono_ms();
        if (!force && now - pg->drawn_ms < 100)
                return;
        pg->drawn_ms = now;
        int64_t total = pg->total > pg->done ? pg->total : pg->done;
        int width = 30, fill = total ? (int)(pg->done * width / total) : width;
        fprintf(stderr, "\r\033[K%s [%.*s%*s] %lld/%lld%s", pg->what, fill,
                "##############################", width - fill, "",
                (long long)pg->done, (long long)total, pg->note);
        fflush(stderr);
}

void ctl_progress_tick(struct ctl_progress *pg)
{
        pg->done++;
        ctl_progress_draw(pg, 0);
}

void ctl_progress_clear(struct ctl_progress *pg)
{
        if (pg->tty && pg->drawn_ms) {
                fputs("\r\033[K", stderr);
                fflush(stderr);
                pg->drawn_ms = 0;
        }
}
