/*
 * Avro records in the Confluent wire format: magic byte 0, a 4-byte
 * big-endian schema id, then Avro binary. Three parts:
 *
 * - the schema catalogue (relay_schemas_t): which id is which schema and
 *   which subjects (`<topic>-value`) it belongs to. The embedded default is
 *   schemas/manifest.cfg with fixed ids. With a schema registry, the
 *   manifest's newest schema per subject is what this process reads and
 *   writes, its wire id is the registry's (looked up, or registered), and
 *   other ids are fetched from the registry as records name them and kept
 *   in a bounded cache that keeps working while the registry is down (ids
 *   the registry does not know are remembered for a while too, so a
 *   stream of bad ids does not become a stream of requests);
 * - readers, one per subject: decode any writer version of the subject into
 *   the reader's schema (avro-c's resolved writer), rejecting bad framing,
 *   unknown ids and ids of another subject with a reason a person can read;
 * - writers, one per subject: fill a value, get framed bytes.
 *
 * Plus conversions used by tools and mapping: natural JSON → Avro value,
 * and path lookup / text rendering of values.
 */
#ifndef RELAY_AVRO_H
#define RELAY_AVRO_H

#include "relay/codec.h"
#include "relay/common.h"
#include "relay/registry.h"

#include <avro.h>
#include <signal.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RELAY_AVRO_MAGIC      0
#define RELAY_AVRO_HEADER_LEN 5

typedef struct relay_schemas relay_schemas_t;

/* Load the catalogue from a manifest (schemas/manifest.cfg): a libconfig
 * list of { id; subject (string or list); version; file } entries, files
 * relative to the manifest. Returns NULL with errstr ("file:line: ...") on
 * any bad entry or schema. */
relay_schemas_t *relay_schemas_load(const char *manifest_path, char *errstr,
                                    size_t errstr_size);
void relay_schemas_destroy(relay_schemas_t *s);

typedef struct relay_schemas_registry_conf {
        int auto_register;    /* register a local schema the registry lacks */
        size_t cache_max;     /* registry ids kept in memory (>= 1), and as
                               * many ids the registry does not know */
        long negative_ttl_ms; /* an id the registry answered 404 for is
                               * refused without asking again for this
                               * long (<= 0: asked every time) */
        long bind_wait_ms;    /* how long relay_schemas_bind waits out an
                               * unreachable registry: < 0 until stopped, 0 one
                               * try (a reload) */
        volatile sig_atomic_t *running; /* bind's waits end when *running
                                         * is 0 (may be NULL) */
} relay_schemas_registry_conf_t;

/* From now on take wire ids from the registry (owned by s from now on). */
void relay_schemas_use_registry(relay_schemas_t *s, relay_registry_t *reg,
                                const relay_schemas_registry_conf_t *conf);

/* The wire id of subject's local (newest manifest) schema: the manifest's
 * id, or the registry's, looked up or registered (auto_register). Waits
 * out an unreachable registry with backoff for bind_wait_ms (0: one try)
 * or until running is cleared, then RELAY_RETRY with the last reason.
 * RELAY_FATAL: no local schema, not registered, or rejected by the
 * registry (errstr says which). */
enum relay_result relay_schemas_bind(relay_schemas_t *s, const char *subject,
                                     int32_t *id, char *errstr,
                                     size_t errstr_size);

/* The schema of a wire id and its first subject (NULL when unknown; valid
 * until the next call on s), fetching ids the catalogue does not have from
 * the registry. Never waits: see relay_avro_reader_decode for what a new
 * id costs and for RELAY_FATAL / RELAY_RETRY. */
enum relay_result relay_schemas_resolve(relay_schemas_t *s, int32_t id,
                                        avro_schema_t *schema,
                                        const char **subject, char *errstr,
                                        size_t errstr_size);

/* The local (newest manifest) schema of subject and its text, or NULL. */
avro_schema_t relay_schemas_local(const relay_schemas_t *s,
                                  const char *subject);
const char *relay_schemas_local_text(const relay_schemas_t *s,
                                     const char *subject);
/* Every subject in the manifest, each once, in manifest order; returns
 * how many (at most max are stored). Borrowed. */
size_t relay_schemas_local_subjects(const relay_schemas_t *s, const char **out,
                                    size_t max);

/* Lookups without any registry call, in the wire ids known so far (the
 * manifest's without a registry): the schema with this id, or NULL;
 * its first subject, or NULL; whether it belongs to subject. Borrowed. */
avro_schema_t relay_schemas_get(const relay_schemas_t *s, int32_t id);
const char *relay_schemas_subject(const relay_schemas_t *s, int32_t id);
int relay_schemas_in_subject(const relay_schemas_t *s, int32_t id,
                             const char *subject);
/* The manifest id of a subject's newest version, or -1 when unknown. */
int32_t relay_schemas_latest(const relay_schemas_t *s, const char *subject);

/* Parse the Confluent header: 0 and *id on success, -1 with a reason. */
int relay_avro_frame_parse(const void *buf, size_t len, int32_t *id,
                           char *errstr, size_t errstr_size);

typedef struct relay_avro_reader relay_avro_reader_t;

/* A reader for subject, reading into the subject's local schema (the
 * catalogue must outlive the reader; see relay_schemas_bind for the wire
 * id). NULL + errstr if the subject is unknown. max_bytes > 0 rejects
 * larger records. */
relay_avro_reader_t *relay_avro_reader_new(relay_schemas_t *s,
                                           const char *subject,
                                           size_t max_bytes, char *errstr,
                                           size_t errstr_size);
void relay_avro_reader_destroy(relay_avro_reader_t *r);

/* Decode one framed record. On success returns RELAY_OK and *out points to
 * the reader's value (owned by the reader, valid until the next decode);
 * *writer_id is the id in the frame. On bad input returns RELAY_FATAL with
 * the reason in errstr (wrong magic, truncated, unknown id, id of another
 * subject, too large, bad Avro data); an id the registry does not know is
 * remembered for negative_ttl_ms and refused again without a request.
 *
 * Never waits or sleeps. A new id costs one registry request while the
 * registry is unreachable (each bounded by its timeout_ms; two, the schema
 * and its subjects, when it answers). RELAY_RETRY, with "schema registry
 * unavailable: ..." in errstr, when no usable answer came (refused, timed
 * out, 5xx, 429) or the registry refused the request itself (401, 403 and
 * other refusals that are about the setup, not the record): the record is
 * not at fault; the caller keeps it, backs off while serving its consumer,
 * and decodes it again. */
enum relay_result relay_avro_reader_decode(relay_avro_reader_t *r,
                                           const void *buf, size_t len,
                                           avro_value_t **out,
                                           int32_t *writer_id, char *errstr,
                                           size_t errstr_size);

/* The compiled path (relay/codec.h): the same checks and results as
 * relay_avro_reader_decode, the record decoded into the reader's slots
 * (owned by the reader, valid until the next decode and while buf is),
 * through a plan compiled once per writer id. relay_avro_reader_want
 * (before the first decode) names the top-level fields to read, NULL-
 * terminated (borrowed; NULL: all); the others stay unset. */
const relay_shape_t *relay_avro_reader_shape(const relay_avro_reader_t *r);
void relay_avro_reader_want(relay_avro_reader_t *r, const char *const *fields);
enum relay_result relay_avro_reader_decode_slots(relay_avro_reader_t *r,
                                                 const void *buf, size_t len,
                                                 const relay_slots_t **out,
                                                 int32_t *writer_id,
                                                 char *errstr,
                                                 size_t errstr_size);

/* Decode one framed record with the schema it was written with (no
 * resolution: every field the writer wrote), as natural JSON in *out
 * (a new reference). For tools. Same checks and results as
 * relay_avro_reader_decode. */
enum relay_result relay_avro_decode_written(relay_schemas_t *s, const void *buf,
                                            size_t len, json_t **out,
                                            char *errstr, size_t errstr_size);

typedef struct relay_avro_writer relay_avro_writer_t;

/* A writer producing subject's local schema under its wire id. */
relay_avro_writer_t *relay_avro_writer_new(relay_schemas_t *s,
                                           const char *subject, char *errstr,
                                           size_t errstr_size);
void relay_avro_writer_destroy(relay_avro_writer_t *w);

/* The value to fill for the next record, reset to empty. Owned by w. */
avro_value_t *relay_avro_writer_value(relay_avro_writer_t *w);

/* Encode the filled value with framing. *buf is owned by w and valid until
 * the next encode. RELAY_OK, or RELAY_FATAL with errstr (e.g. a union with
 * no branch set). */
enum relay_result relay_avro_writer_encode(relay_avro_writer_t *w,
                                           const void **buf, size_t *len,
                                           char *errstr, size_t errstr_size);

/* The compiled path: the output shape, its slots reset for the next
 * record (owned by w), and their encoding, framed (same buffer and
 * results as relay_avro_writer_encode; an unset field is RELAY_FATAL). */
const relay_shape_t *relay_avro_writer_shape(const relay_avro_writer_t *w);
relay_slots_t *relay_avro_writer_slots(relay_avro_writer_t *w);
enum relay_result relay_avro_writer_encode_slots(relay_avro_writer_t *w,
                                                 const void **buf, size_t *len,
                                                 char *errstr,
                                                 size_t errstr_size);

/* Fill an Avro value from natural JSON (not Avro's JSON encoding): a union
 * takes the branch matching the JSON type; a missing record field becomes
 * null when its union allows it. 0, or -1 with the path that failed. */
int relay_avro_from_json(avro_value_t *v, json_t *j, char *errstr,
                         size_t errstr_size);

/* A JSON string of n bytes of text that should be UTF-8: bytes that are
 * not become U+FFFD, so nothing is lost from the JSON. New reference. */
json_t *relay_json_text(const char *p, size_t n);

/* Render a value as natural JSON (unions unwrapped, strings through
 * relay_json_text, bytes in Avro's JSON encoding: one code point
 * U+0000..U+00FF per byte). Returns a new reference. */
json_t *relay_avro_to_json(const avro_value_t *v);

/* Find a dotted path ("data.coupon_code", "identities.email") through
 * records, maps and unions. Returns 0 with *out set, or -1 when a step is
 * missing or a union holds null. *out borrows from root. */
int relay_avro_path(const avro_value_t *root, const char *path,
                    avro_value_t *out);

/* Append the text form of a scalar (string, enum, number, boolean) to b.
 * Returns 0, or -1 for null, records, maps, arrays and bytes. */
int relay_avro_to_text(const avro_value_t *v, relay_buf_t *b);

#endif
