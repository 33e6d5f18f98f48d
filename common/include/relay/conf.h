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
 * - Properties flagged RELAY_CONF_SECRET never come from the file or the
 *   command line: they are read from the environment variable RELAY_<NAME>
 *   (upper case, `.` → `_`) or from the file named by RELAY_<NAME>_FILE.
 *   librdkafka's secrets (sasl.password, ssl.key.password, ...: see
 *   relay_conf_kafka_secret()) follow the same rule as RELAY_KAFKA_<NAME>
 *   and RELAY_KAFKA_<NAME>_FILE. Setting both forms of one secret is an
 *   error, so that a rotated file is never shadowed by a stale variable.
 * - relay_conf_set() applies `-X name=value` overrides from the command line.
 * - A row flagged RELAY_CONF_BIND names, by offsetof, the field of a
 *   module's state struct that relay_conf_bind() fills in, so the module
 *   reads its settings as fields rather than looking keys up by string.
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
/* offset is valid: relay_conf_bind() writes the value there. A flag rather
 * than a sentinel offset, because 0 is the offset of a struct's first
 * field. */
#define RELAY_CONF_BIND 0x4
/* Must have a value when the table's module is in use, checked by
 * relay_conf_require_table(): for one platform's keys in a deliver worker
 * that declares every platform's tables but runs one of them. */
#define RELAY_CONF_REQUIRED_IF_USED 0x8
/* Any value (a list of groups, say) that another module parses from the
 * file itself, as relay-poll's sources leave their field rules to the JSON
 * mapping (relay/json_map.h): the conf only declares and documents the
 * key, so it is no unknown key, and keeps where it was set
 * (relay_conf_origin); it holds no value (bound as unset), and -X cannot
 * set it. Declare it as RELAY_CONF_STRING. */
#define RELAY_CONF_OPAQUE 0x10

/* One declared key. Tables are written positionally, so members are only
 * ever added at the end (older rows then warn under -Wextra instead of
 * shifting meaning). */
typedef struct relay_conf_prop {
        const char *name; /* dotted path, e.g. "deliver.max_attempts" */
        relay_conf_type_t type;
        const char *defval; /* default as text, NULL for none */
        long long min, max; /* INT range, inclusive; unchecked if min>max */
        int flags;          /* RELAY_CONF_* */
        const char *doc;    /* one line */
        /* With RELAY_CONF_BIND: offsetof(<state struct>, <field>), where the
         * field has the C type of the row's type: STRING const char *,
         * INT long long, BOOL int, DOUBLE double. 0 otherwise. */
        size_t offset;
} relay_conf_prop_t;

typedef struct relay_conf relay_conf_t;

/* A conf over ntables property tables (any number, 0 included), each ended
 * by an entry whose name is NULL. The tables are borrowed and must outlive
 * the conf (they are normally static const). A key declared twice or a bad
 * default is a programming error: logged and aborted. */
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

/* Read secrets from the environment (RELAY_CONF_SECRET properties and
 * librdkafka's secrets), apply defaults and check that every REQUIRED
 * property has a value. Call once after loading. 0 or -1 with errstr. */
int relay_conf_finish(relay_conf_t *conf, char *errstr, size_t errstr_size);

/* Re-read every RELAY_CONF_SECRET property from its variable or *_FILE, so
 * that a rotated key is picked up without a restart (deliver calls it
 * before each probe of a paused platform). Returns 1 when any value
 * changed, 0 when none did, -1 with errstr when one cannot be read (that
 * one keeps its old value; the others are still re-read). A secret that is
 * no longer set keeps its old value too. Strings handed out earlier (by
 * relay_conf_str() or relay_conf_bind()) stay valid, holding the old
 * value, until relay_conf_destroy(): bind again to see the new ones.
 * librdkafka's secrets are read once, by relay_conf_finish(), since a
 * client takes its config only when it is created. */
int relay_conf_reload_secrets(relay_conf_t *conf, char *errstr,
                              size_t errstr_size);

/* For keys required only in some uses (e.g. one platform's secrets in a
 * worker that declares every platform's keys): 0 when name has a value,
 * else -1 with the same error relay_conf_finish() gives a missing REQUIRED
 * key. The name must be declared. */
int relay_conf_require(const relay_conf_t *conf, const char *name, char *errstr,
                       size_t errstr_size);

/* The same for every row of table flagged RELAY_CONF_REQUIRED_IF_USED, in
 * table order: 0, or -1 with the error of the first one without a value.
 * The table must be one the conf was made with. */
int relay_conf_require_table(const relay_conf_t *conf,
                             const relay_conf_prop_t *table, char *errstr,
                             size_t errstr_size);

/* Write the value of every RELAY_CONF_BIND row of table into state at the
 * row's offset (types as in relay_conf_prop_t; an unset key writes NULL,
 * 0 or 0.0). Strings are owned by the conf and valid until it is
 * destroyed. The table must be one the conf was made with (a programming
 * error otherwise: logged and aborted). Call after relay_conf_finish(). */
void relay_conf_bind(const relay_conf_t *conf, const relay_conf_prop_t *table,
                     void *state);

/* Where name's value came from: "file:line", "-X", "default",
 * "environment RELAY_..." or "unset", for errors found after loading
 * (a value of the right type that does not fit another). Owned by the
 * conf. The name must be declared. */
const char *relay_conf_origin(const relay_conf_t *conf, const char *name);

/* A secret that a setting names rather than declares (one per polled
 * source, say): the variable env, or the file named by env_FILE, read as
 * relay_conf_finish() reads RELAY_CONF_SECRET keys (an empty variable is
 * unset, an empty file an error, both set an error, a file's final newline
 * dropped). 1 with the text in out (reset first), 0 when neither is set,
 * -1 with errstr. */
struct relay_buf;
int relay_conf_secret_read(const char *env, struct relay_buf *out,
                           char *errstr, size_t errstr_size);

/* Typed getters. The name must be declared (a programming error otherwise:
 * logged and aborted). Strings are owned by the conf; NULL when unset. */
const char *relay_conf_str(const relay_conf_t *conf, const char *name);
long long relay_conf_int(const relay_conf_t *conf, const char *name);
int relay_conf_bool(const relay_conf_t *conf, const char *name);
double relay_conf_double(const relay_conf_t *conf, const char *name);

/* librdkafka pass-through: count, then name/value/origin of entry i. The
 * origin is "file:line", "-X" or "environment RELAY_KAFKA_<NAME>[_FILE]"
 * and is meant for error messages; a value for which
 * relay_conf_kafka_secret() is true must never be printed or logged. */
size_t relay_conf_kafka_count(const relay_conf_t *conf);
const char *relay_conf_kafka_name(const relay_conf_t *conf, size_t i);
const char *relay_conf_kafka_value(const relay_conf_t *conf, size_t i);
const char *relay_conf_kafka_origin(const relay_conf_t *conf, size_t i);

/* Whether name is one of librdkafka's secret properties (sasl.username,
 * sasl.password, sasl.oauthbearer.client.secret, sasl.oauthbearer.config,
 * ssl.key.password, ssl.key.pem, ssl.keystore.password): those come only
 * from RELAY_KAFKA_<NAME> or RELAY_KAFKA_<NAME>_FILE. */
int relay_conf_kafka_secret(const char *name);

/* Print every declared property with type, default and doc (for --help). */
void relay_conf_describe(const relay_conf_t *conf, FILE *fp);

/* The files a "directory or one file" setting names (connections, ingest
 * and poll sources): a directory's *.cfg files (not hidden ones) as
 * paths, sorted by name, or the one file. 0 with *files (owned: free with
 * relay_cfg_files_free) and *n (0 for a directory without any), or -1
 * with errstr when the path cannot be read. */
int relay_cfg_files(const char *path, char ***files, size_t *n, char *errstr,
                    size_t errstr_size);
void relay_cfg_files_free(char **files, size_t n);

#endif
