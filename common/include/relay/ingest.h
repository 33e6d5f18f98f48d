/*
 * Ingest sources: how the ingest gateway (workers/ingest) turns a JSON
 * body posted by a platform into an Avro record of an input topic. One
 * libconfig file per source (deploy/config/ingest/, one .cfg each), loaded and
 * checked against the topic's schema by the mapping module, with errors
 * naming file, line and entry:
 *
 *   source = {
 *     name = "antavo";               # POST /v1/events/antavo/{event_type}
 *     topic = "loyalty.events";      # writes <topic>-value's newest schema
 *     route = "v1";                  # or "tenant": POST /{tenant}/{event_type}
 *     tenant = "acme";               # literal or template ("{path.tenant}")
 *     tokens_env = "RELAY_INGEST_TOKENS_ANTAVO";  # "tok1,tok2" (rotation)
 *     token_header = "X-Api-Key";    # where the token may come: a header,
 *     token_query = "token";         # a query parameter, or both
 *     event_types = [ "*" ];         # the {event_type}s served (else 404)
 *     event_id = "id";               # the body's own event id, if any
 *     items = "events";              # a batch: the array of records in it
 *     key = "identities.customer_id";  # the Kafka key: a field of the output
 *     fields = (
 *       { to = "identities.customer_id"; from = "customer"; required = true; },
 *       { to = "occurred_at"; from = "created_at"; type = "timestamp"; },
 *       { to = "data"; from = "properties"; },
 *       { to = "data.label"; value = "Coupon {coupon.code}"; } );
 *   };
 *
 * topic, tenant, event_id, key and fields are the JSON mapping's
 * (relay/json_map.h), which relay-poll's sources use too: `path.tenant`
 * and `path.event_type` are the URL's segments, `batch.x` a field of the
 * whole body when `items` splits it. Fields the rules leave unset get:
 * event_id (the body's `event_id` field when it is a UUID, the UUID v5 of
 * source NUL tenant NUL that id in ingest's own namespace when it is not,
 * a random one when there is none), occurred_at (now), tenant, source (the
 * source's name) and event_type (the URL's).
 *
 * Tokens are secrets, so never in the file: `tokens_env` names the
 * environment variable holding them, or `<that name>_FILE` a file that
 * does (its first line). Both set is an error.
 */
#ifndef RELAY_INGEST_H
#define RELAY_INGEST_H

#include "relay/avro.h"
#include "relay/common.h"

#include <jansson.h>

typedef struct relay_ingest relay_ingest_t;
typedef struct relay_ingest_source relay_ingest_source_t;

/* Load every *.cfg in a directory (name order), or one file, checking each
 * source against its topic's schema in schemas (borrowed; it must outlive
 * the result, whose writers encode with it). NULL + errstr. */
relay_ingest_t *relay_ingest_load(const char *path, relay_schemas_t *schemas,
                                  char *errstr, size_t errstr_size);
void relay_ingest_destroy(relay_ingest_t *in);

size_t relay_ingest_count(const relay_ingest_t *in);
const relay_ingest_source_t *relay_ingest_get(const relay_ingest_t *in,
                                              size_t i);
/* The source of /v1/events/{name}/..., or NULL. */
const relay_ingest_source_t *relay_ingest_find(const relay_ingest_t *in,
                                               const char *name, size_t n);
/* The source served at /{tenant}/{event_type} (route = "tenant"), or NULL. */
const relay_ingest_source_t *relay_ingest_tenant_route(const relay_ingest_t *in);

const char *relay_ingest_name(const relay_ingest_source_t *s);
const char *relay_ingest_topic(const relay_ingest_source_t *s);
const char *relay_ingest_token_header(const relay_ingest_source_t *s);
const char *relay_ingest_token_query(const relay_ingest_source_t *s);

/* 1 when token (NUL-terminated; NULL: none given) is one of the source's,
 * compared in constant time against every one of them. */
int relay_ingest_token_ok(const relay_ingest_source_t *s, const char *token);
/* 1 when the source serves this event type. */
int relay_ingest_event_type_ok(const relay_ingest_source_t *s, const char *t,
                               size_t n);

/* The records of a parsed body: with `items`, that array of the body
 * (a body without it is refused); without, the body when it is an object
 * (*single set), or the array it is. Borrowed from body; NULL + errstr
 * when the body has no records where the source expects them. */
json_t *relay_ingest_records(const relay_ingest_source_t *s, json_t *body,
                             int *single, char *errstr, size_t errstr_size);

/* What the URL said. */
typedef struct relay_ingest_req {
        const char *tenant; /* route "tenant": the first segment; else NULL */
        const char *event_type;
        json_t *batch; /* the whole body */
} relay_ingest_req_t;

/* Map one record into the source's topic (relay_json_map_apply with the
 * request): key and value (the framed Avro
 * record, owned by the source's writer until the next call) and the
 * record's event_id (RELAY_UUID_SIZE). 0, or -1 with errstr naming the
 * field that is missing or does not convert (the record's fault: a 400).
 * One thread at a time per source. */
int relay_ingest_map(const relay_ingest_source_t *s,
                     const relay_ingest_req_t *req, json_t *item,
                     relay_buf_t *key, const void **value, size_t *value_len,
                     char event_id[RELAY_UUID_SIZE], char *errstr,
                     size_t errstr_size);

#endif
