/*
 * relay-transform: one process per input topic (loyalty.events here, the
 * other inbound topics alike), scaled by partitions in one consumer group.
 * The work is the transform processor (common/transform/) on the pipeline
 * engine (common/pipeline/); this is only its shell: arguments, config,
 * signals, run, destroy.
 */
#include "relay/log.h"
#include "relay/transform.h"
#include "relay/worker.h"

#include <stdio.h>

int main(int argc, char **argv)
{
        char errstr[1024];
        const relay_conf_prop_t *tables[] = {relay_transform_props};
        relay_conf_t *conf =
            relay_worker_conf(argc, argv, "transform", tables, 1);
        relay_worker_signals();
        relay_worker_admin(conf, "transform");

        relay_transform_t *t =
            relay_transform_new(conf, errstr, sizeof(errstr));
        int rc = 1;
        if (!t) {
                fprintf(stderr, "relay-transform: %s\n", errstr);
                relay_log(LOG_ERR, "transform", "%s", errstr);
        } else {
                rc = relay_transform_run(t) ? 1 : 0;
        }
        relay_transform_destroy(t);
        relay_worker_end();
        relay_conf_destroy(conf);
        return rc;
}
