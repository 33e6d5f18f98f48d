/*
 * The transform processor: decodes each input record by its schema id,
 * applies every connection (mapping table) of the topic and produces the
 * results to out.<destination>, keyed by the person; runs on the pipeline
 * engine (relay/pipeline.h), which owns batching, acks, offsets and the
 * dead-letter queue. relay-transform's main() is a thin shell around it.
 */
#ifndef RELAY_TRANSFORM_H
#define RELAY_TRANSFORM_H

#include "relay/conf.h"

/* The transform.* keys, for relay_worker_conf. */
extern const relay_conf_prop_t relay_transform_props[];

typedef struct relay_transform relay_transform_t;

/* Load the schemas and connections of conf and set up the engine. NULL
 * with errstr. conf is borrowed and must outlive the transform. */
relay_transform_t *relay_transform_new(const relay_conf_t *conf, char *errstr,
                                       size_t errstr_size);
/* Run until relay_run is cleared; 0, or -1 on a fatal producer error. */
int relay_transform_run(relay_transform_t *t);
void relay_transform_destroy(relay_transform_t *t);

#endif
