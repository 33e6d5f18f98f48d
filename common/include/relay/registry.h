/*
 * A client of the Confluent Schema Registry REST API (v1, content type
 * application/vnd.schemaregistry.v1+json), on libcurl and jansson. It
 * speaks to Confluent's registry and to registries with a compatible API
 * (Karapace; Apicurio Registry under /apis/ccompat/v7): the base URL is
 * whatever prefix the paths below hang from.
 *
 * The client keeps no cache: the schema catalogue (relay/avro.h) caches
 * what it fetched, bounded, so that known ids keep working while the
 * registry is down.
 *
 * Every call returns
 *   RELAY_OK     the answer came and is in the out parameters;
 *   RELAY_FATAL  the registry answered that this cannot succeed (not found,
 *                invalid schema, incompatible, unauthorised): errstr
 *                carries the registry's error_code and message, and
 *                *not_found (where the call has one) is 1 for a 404;
 *   RELAY_RETRY  no usable answer (refused, timeout, 5xx, 408, 429, a
 *                redirect, a body that is not the JSON the API promises,
 *                an id outside 0..INT32_MAX): errstr says which.
 * errstr reads "registry <METHOD> <path>: <reason>", on one printable
 * line; text the registry sent is quoted bounded. Arguments that cannot
 * make a valid request (an empty subject, a schema that is not UTF-8, a
 * negative id, an unknown level) are RELAY_FATAL before anything is sent.
 *
 * Out strings and string arrays are malloc'd and owned by the caller; an
 * out string or array is set to NULL on entry, so it can be freed
 * whatever the result. Out numbers are written only on RELAY_OK; id,
 * version, compatible and not_found outs may be NULL when not wanted. A
 * client is used from one thread at a time; relay_http_global_init() must
 * have run.
 */
#ifndef RELAY_REGISTRY_H
#define RELAY_REGISTRY_H

#include "relay/common.h"

#include <stddef.h>
#include <stdint.h>

typedef struct relay_registry relay_registry_t;

typedef struct relay_registry_conf {
        const char *url;     /* http[s]://host[:port][/prefix], trailing
                                slashes ignored, no query string */
        const char *userpwd; /* "user:password" for Basic auth, or NULL */
        long timeout_ms;     /* total time per request; <= 0: 10000 */
} relay_registry_conf_t;

/* A client for conf->url (the strings are copied), or NULL with the reason
 * in errstr when the URL is not http(s) with a host. */
relay_registry_t *relay_registry_new(const relay_registry_conf_t *conf,
                                     char *errstr, size_t errstr_size);
/* Accepts NULL. */
void relay_registry_destroy(relay_registry_t *r);

/* GET /schemas/ids/{id}: the schema's text. */
enum relay_result relay_registry_schema_by_id(relay_registry_t *r, int32_t id,
                                              char **schema, int *not_found,
                                              char *errstr, size_t errstr_size);

/* GET /schemas/ids/{id}/versions: the subjects the id is registered
 * under, as a malloc'd, NULL-terminated array of *n malloc'd strings
 * (free with relay_registry_strv_free). */
enum relay_result relay_registry_subjects_of(relay_registry_t *r, int32_t id,
                                             char ***subjects, size_t *n,
                                             int *not_found, char *errstr,
                                             size_t errstr_size);

/* POST /subjects/{subject}: the id and version this exact schema has in
 * subject; *not_found = 1 when it is not registered there (or the subject
 * does not exist). */
enum relay_result relay_registry_lookup(relay_registry_t *r,
                                        const char *subject, const char *schema,
                                        int32_t *id, int *version,
                                        int *not_found, char *errstr,
                                        size_t errstr_size);

/* POST /subjects/{subject}/versions: register the schema (a no-op answer
 * with the existing id when it is already there); *id. */
enum relay_result relay_registry_register(relay_registry_t *r,
                                          const char *subject,
                                          const char *schema, int32_t *id,
                                          char *errstr, size_t errstr_size);

/* GET /subjects/{subject}/versions/{version}, version a number or
 * "latest": the id, version number and schema text (schema may be NULL
 * when not wanted; when wanted, an answer without one is RELAY_RETRY). */
enum relay_result relay_registry_get(relay_registry_t *r, const char *subject,
                                     const char *version, int32_t *id,
                                     int *version_out, char **schema,
                                     int *not_found, char *errstr,
                                     size_t errstr_size);

/* POST /compatibility/subjects/{subject}/versions/latest?verbose=true:
 * *compatible is 1 or 0; why (may be NULL) gets the registry's messages
 * joined with "; ", cut to why_size (empty when it gave none). *not_found
 * = 1 when the subject has no versions yet. */
enum relay_result relay_registry_check(relay_registry_t *r, const char *subject,
                                       const char *schema, int *compatible,
                                       char *why, size_t why_size,
                                       int *not_found, char *errstr,
                                       size_t errstr_size);

/* GET /config/{subject}?defaultToGlobal=true, or GET /config when subject
 * is NULL: the compatibility level ("BACKWARD", ...; key
 * "compatibilityLevel" or "compatibility"). A subject without its own
 * level that the registry answers 404 for falls back to the global level;
 * a global 404 is RELAY_FATAL. A level that does not fit in level_size
 * (20 bytes hold them all) is RELAY_FATAL. */
enum relay_result relay_registry_get_compat(relay_registry_t *r,
                                            const char *subject, char *level,
                                            size_t level_size, char *errstr,
                                            size_t errstr_size);

/* PUT /config/{subject}, or PUT /config when subject is NULL, with
 * {"compatibility": level}; level is upper-case letters and '_'. */
enum relay_result relay_registry_set_compat(relay_registry_t *r,
                                            const char *subject,
                                            const char *level, char *errstr,
                                            size_t errstr_size);

/* GET /subjects: a NULL-terminated array as for _subjects_of. */
enum relay_result relay_registry_subjects(relay_registry_t *r, char ***subjects,
                                          size_t *n, char *errstr,
                                          size_t errstr_size);

/* Frees the n strings of v and v; accepts NULL. */
void relay_registry_strv_free(char **v, size_t n);

#endif
