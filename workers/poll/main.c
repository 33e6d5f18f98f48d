/*
 * relay-poll: reads HTTP sources on an interval, one time window at a
 * time, into their topics (loyalty.events), with each source's checkpoint
 * in a compacted topic and one replica at a time polling each source. The
 * work is the poll worker (common/poll/); this is only its shell:
 * arguments, config, signals, run, destroy.
 */
#include "relay/http.h"
#include "relay/log.h"
#include "relay/poll.h"
#include "relay/worker.h"

#include <stdio.h>

int main(int argc, char **argv)
{
        char errstr[1024];
        const relay_conf_prop_t *tables[] = {relay_poll_props};
        relay_conf_t *conf = relay_worker_conf(argc, argv, "poll", tables, 1);
        relay_worker_signals();
        relay_http_global_init();
        relay_worker_admin(conf, "poll");

        relay_poll_t *p = relay_poll_new(conf, errstr, sizeof(errstr));
        int rc = 1;
        if (!p) {
                fprintf(stderr, "relay-poll: %s\n", errstr);
                relay_log(LOG_ERR, "poll", "%s", errstr);
        } else {
                rc = relay_poll_run(p) ? 1 : 0;
        }
        relay_poll_destroy(p);
        relay_worker_end();
        relay_conf_destroy(conf);
        relay_http_global_cleanup();
        return rc;
}
