/*
 * The delivery processor: drains out.<platform> into the platform's HTTP
 * API through its adapter (relay/adapter.h), on the pipeline engine
 * (relay/pipeline.h), which owns batching, acks, offsets and the
 * dead-letter queue. relay-deliver's main() is a thin shell around it.
 */
#ifndef RELAY_DELIVER_H
#define RELAY_DELIVER_H

#include "relay/conf.h"

/* The deliver.* keys, for relay_worker_conf (each adapter's own keys are
 * in its props table). */
extern const relay_conf_prop_t relay_deliver_props[];

typedef struct relay_deliver relay_deliver_t;

/* Set up the adapter of deliver.platform, the reader and the engine. NULL
 * with errstr. conf is borrowed and must outlive the deliver; its secrets
 * are re-read (relay_conf_reload_secrets) while the platform refuses them. */
relay_deliver_t *relay_deliver_new(relay_conf_t *conf, char *errstr,
                                   size_t errstr_size);
/* Run until relay_run is cleared; 0, or -1 on a fatal producer error. */
int relay_deliver_run(relay_deliver_t *d);
void relay_deliver_destroy(relay_deliver_t *d);

#endif
