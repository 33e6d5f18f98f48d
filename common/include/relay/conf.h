/*
 * Configuration: one libconfig file per worker, checked against a declared
 * property table (name, type, default, range, doc) in the spirit of Redis's
 * createIntConfig and Fluent Bit's config_map.
 *
 * - Every key in the file must be declared; an unknown key or a bad value is
 *   an error naming the file, the line and the key.
 * - Keys under the group `kafka` are librdkafka properties, passed through
 *   unchanged except that `_` in a name stands for `.` (libconfig names
 *   cannot hold dots): kafka = { bootstrap_servers = "127.0.0.1:9092"; }.
 * - Properties flagged RELAY_CONF_SECRET never come from the file: they are
 *   read from the environment variable RELAY_<NAME> (upper case, `.` → `_`)
 *   or from the file named by RELAY_<NAME>_FILE.
 * - relay_conf_set() applies `-X name=value` overrides from the command line.
 */
#ifndef RELAY_CONF_H
#define RELAY_CONF_H

#include <stddef.h>
#include <stdio.h>

typedef enum relay_conf_type {
        RELAY_CONF_STRING,
        RELAY_CONF_INT,
        RELAY_CONF_BOOL,
        RELAY_CONF_DOUBLE
} relay_conf_type_t;

#define RELAY_CONF_REQUIRED 0x1 /* must have a value after loading */
#define RELAY_CONF_SECRET   0x2 /* only from the environment, never a file */

typedef struct relay_conf_prop {
        const char *name; /* dotted path, e.g. "deliver.max_attempts" */
        relay_conf_type_t type;
        const char *defval; /* default as text, NULL for none */
        long long min, max; /* INT range, inclusive; unchecked if min>max */
        int flags;          /* RELAY_CONF_* */
        const char *doc;    /* one line */
} relay_conf_prop_t;

typedef struct relay_conf relay_conf_t;

/* A conf over one or more property tables, each ended by an entry whose
 * name is NULL. The tables are borrowed and must outlive the conf (they are
 * normally static const). Up to 8 tables. */
relay_conf_t *relay_conf_new(const relay_conf_prop_t *const *tables,
                             size_t ntables);
void relay_conf_destroy(relay_conf_t *conf);

/* Load a libconfig file. Returns 0, or -1 with "file:line: ..." in errstr. */
int relay_conf_load_file(relay_conf_t *conf, const char *path, char *errstr,
                         size_t errstr_size);

/* Set one value from text ("-X name=value"). Names starting with "kafka."
 * go to the librdkafka pass-through list. Returns 0 or -1 with errstr. */
int relay_conf_set(relay_conf_t *conf, const char *name, const char *value,
                   char *errstr, size_t errstr_size);

/* Read secrets from the environment, apply defaults and check that every
 * REQUIRED property has a value. Call once after loading. 0 or -1. */
int relay_conf_finish(relay_conf_t *conf, char *errstr, size_t errstr_size);

/* For keys required only in some uses (e.g. one platform's secrets in a
 * worker that declares every platform's keys): 0 when name has a value,
 * else -1 with the same error relay_conf_finish() gives a missing REQUIRED
 * key. The name must be declared. */
int relay_conf_require(const relay_conf_t *conf, const char *name, char *errstr,
                       size_t errstr_size);

/* Typed getters. The name must be declared (a programming error otherwise:
 * logged and aborted). Strings are owned by the conf; NULL when unset. */
const char *relay_conf_str(const relay_conf_t *conf, const char *name);
long long relay_conf_int(const relay_conf_t *conf, const char *name);
int relay_conf_bool(const relay_conf_t *conf, const char *name);
double relay_conf_double(const relay_conf_t *conf, const char *name);

/* librdkafka pass-through: count, then name/value/origin of entry i. The
 * origin is "file:line" or "-X" and is meant for error messages. */
size_t relay_conf_kafka_count(const relay_conf_t *conf);
const char *relay_conf_kafka_name(const relay_conf_t *conf, size_t i);
const char *relay_conf_kafka_value(const relay_conf_t *conf, size_t i);
const char *relay_conf_kafka_origin(const relay_conf_t *conf, size_t i);

/* Print every declared property with type, default and doc (for --help). */
void relay_conf_describe(const relay_conf_t *conf, FILE *fp);

#endif
