/*
 * JSON record → topic record: the one mapping every worker that takes
 * JSON from outside uses (relay-ingest's webhooks, relay-poll's answers).
 * Its rules are a libconfig group's keys, checked at load against the
 * topic's Avro schema with errors naming file and line:
 *
 *   topic = "loyalty.events";      # writes <topic>-value's newest schema
 *   tenant = "acme";               # literal or template ("{path.tenant}")
 *   event_id = "id";               # the record's own event id, if any
 *   key = "identities.customer_id";  # the Kafka key (see below)
 *   fields = (
 *     { to = "identities.customer_id"; from = "customer"; required = true; },
 *     { to = "occurred_at"; from = "created_at"; type = "timestamp"; },
 *     { to = "data"; from = "properties"; type = "flatten"; },
 *     { to = "data.label"; value = "Coupon {coupon.code}"; } );
 *
 * `from` and template fields are dotted paths into the JSON record (""
 * is the record itself; arrays by index); `path.tenant` and
 * `path.event_type` are what the request said (relay_json_map_req_t),
 * `batch.x` a field of the whole body or answer the record came in. `to`
 * is a dotted path of the topic's record (a map's key below a map field).
 * A field's `type` converts what `from` or the template gives: keep (as it
 * is), string, number, bool, timestamp (ISO 8601, or epoch seconds or
 * milliseconds told apart by size), iso8601, epoch_s and epoch_ms (that
 * form only; epochs as numbers or digit strings), flatten (an object's
 * or array's leaves into the map `to` names, keys joined with dots:
 * {"order":{"total":3}} is order.total). `required` refuses a record
 * without it; `default` is the text used when it is absent.
 *
 * Fields the rules leave unset get: event_id (below), occurred_at (now),
 * tenant (the `tenant` template, else the request's), source (the
 * caller's: the ingest source's name, the polled source's platform) and
 * event_type (the request's); a map field of the record, an empty map.
 *
 * event_id: the output's event_id when a rule set it, else the record's
 * `event_id` field. A UUID is kept (lower case); another id becomes the
 * name-based UUID (version 5) of prefix ‖ tenant ‖ infix ‖ id in the
 * caller's namespace (relay_json_map_opts_t), so the same event sent or
 * polled twice has the same id; a record without one gets a random UUID,
 * or, where the caller asks (poll), the UUID of its content (its canonical
 * JSON text in place of the id).
 *
 * key: a dotted path of the output ("identities.customer_id"), or a
 * template over the output's fields ("{tenant}/{identities.customer_id}"),
 * or a list of those: the first whose fields are all present and not
 * empty. Without one, the record is keyed by its event id.
 */
#ifndef RELAY_JSON_MAP_H
#define RELAY_JSON_MAP_H

#include "relay/avro.h"
#include "relay/common.h"

#include <jansson.h>

/* The group keys the mapping reads: a caller that checks a group's keys
 * itself (an ingest source) allows these among its own. */
#define RELAY_JSON_MAP_KEYS "topic", "tenant", "event_id", "key", "fields"

typedef struct relay_json_map relay_json_map_t;

/* What the caller fixes about a mapping (the strings are copied). */
typedef struct relay_json_map_opts {
        const char *source;        /* the `source` field's default */
        const char *default_topic; /* without `topic`; NULL: required */
        /* Derived event ids: UUID v5 in namespace id_ns of
         * id_prefix ‖ tenant ‖ id_infix ‖ id (lengths given: they may
         * hold NUL bytes). */
        const unsigned char *id_ns;
        const char *id_prefix, *id_infix;
        size_t id_prefix_len, id_infix_len;
        /* A record without an id: 1, named by its content; 0, random. */
        int id_from_content;
} relay_json_map_opts_t;

/* What the request said, for path.tenant, path.event_type and batch.x,
 * and the tenant and event_type defaults. Any may be NULL. */
typedef struct relay_json_map_req {
        const char *tenant;
        const char *event_type;
        json_t *batch; /* the whole body or answer */
} relay_json_map_req_t;

struct config_setting_t;

/* Parse the mapping keys of group g of file (its other keys are the
 * caller's: they are not checked here) and check them against the
 * topic's newest schema in schemas (borrowed; it must outlive the map,
 * whose writer encodes with it). NULL with "file:line: ..." in errstr. */
relay_json_map_t *relay_json_map_load(const char *file,
                                      const struct config_setting_t *g,
                                      relay_schemas_t *schemas,
                                      const relay_json_map_opts_t *o,
                                      char *errstr, size_t errstr_size);
void relay_json_map_destroy(relay_json_map_t *m);

const char *relay_json_map_topic(const relay_json_map_t *m);

/* Map one record (a JSON object) into *out, the topic's record as JSON (a
 * new reference), its event_id and its key (reset first). 0, or -1 with
 * errstr naming the field that is missing or does not convert: the
 * record's fault. One thread at a time per map. */
int relay_json_map_record(const relay_json_map_t *m,
                          const relay_json_map_req_t *req, json_t *item,
                          json_t **out, relay_buf_t *key,
                          char event_id[RELAY_UUID_SIZE], char *errstr,
                          size_t errstr_size);

/* Encode a mapped record with the topic's writer: *value (the framed Avro
 * record) is owned by the map until its next encode. 0, or -1 with
 * errstr naming what does not fit the schema. */
int relay_json_map_encode(const relay_json_map_t *m, json_t *rec,
                          const void **value, size_t *value_len, char *errstr,
                          size_t errstr_size);

/* relay_json_map_record, then relay_json_map_encode. */
int relay_json_map_apply(const relay_json_map_t *m,
                         const relay_json_map_req_t *req, json_t *item,
                         relay_buf_t *key, const void **value,
                         size_t *value_len, char event_id[RELAY_UUID_SIZE],
                         char *errstr, size_t errstr_size);

/* The value at a dotted path of j (n bytes; "" is j): through objects,
 * and arrays by index. Borrowed; NULL when absent or JSON null. */
json_t *relay_json_map_path(json_t *j, const char *path, size_t n);

#endif
