/*
 * relay-deliver: one process per platform, scaled by partitions in one
 * consumer group. The work is the delivery processor (common/deliver/) on
 * the pipeline engine (common/pipeline/); this is only its shell:
 * arguments, config, signals, run, destroy.
 */
#include "relay/adapter.h"
#include "relay/deliver.h"
#include "relay/http.h"
#include "relay/log.h"
#include "relay/worker.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
        char errstr[1024];
        /* Every adapter's keys are declared, so that a config for any
         * platform loads; the other platforms' keys stay unset. */
        size_t nadapters = 0;
        while (relay_adapters[nadapters])
                nadapters++;
        const relay_conf_prop_t **tables =
            relay_calloc(nadapters + 1, sizeof(*tables));
        tables[0] = relay_deliver_props;
        for (size_t i = 0; i < nadapters; i++)
                tables[i + 1] = relay_adapters[i]->props;
        relay_conf_t *conf =
            relay_worker_conf(argc, argv, "deliver", tables, nadapters + 1);
        relay_worker_signals();
        relay_http_global_init();
        char name[128];
        snprintf(name, sizeof(name), "deliver-%s",
                 relay_conf_str(conf, "deliver.platform"));
        relay_worker_admin(conf, name);

        relay_deliver_t *d = relay_deliver_new(conf, errstr, sizeof(errstr));
        int rc = 1;
        if (!d) {
                fprintf(stderr, "relay-deliver: %s\n", errstr);
                relay_log(LOG_ERR, "deliver", "%s", errstr);
        } else {
                rc = relay_deliver_run(d) ? 1 : 0;
        }
        relay_deliver_destroy(d);
        relay_worker_end();
        relay_conf_destroy(conf);
        free(tables);
        relay_http_global_cleanup();
        return rc;
}
