/*
 * Unit tests for the config loader: real files in a temporary directory,
 * checked for the values a worker would read and for error messages that
 * name the file, the line and the key a person has to fix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "unit.h"

#include "relay/common.h"
#include "relay/conf.h"
#include "relay/log.h"
#include "relay/worker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const relay_conf_prop_t worker_props[] = {
    {"name", RELAY_CONF_STRING, "relay", 1, 0, 0, "worker name", 0},
    {"deliver.max_attempts", RELAY_CONF_INT, "5", 1, 100, 0,
     "attempts before dead-lettering", 0},
    {"deliver.backoff_factor", RELAY_CONF_DOUBLE, "2.5", 1, 0, 0,
     "backoff multiplier", 0},
    {"deliver.dry_run", RELAY_CONF_BOOL, "true", 1, 0, 0, "do not send", 0},
    {"deliver.http.url", RELAY_CONF_STRING, NULL, 1, 0, RELAY_CONF_REQUIRED,
     "endpoint URL", 0},
    {"mparticle.api_secret", RELAY_CONF_STRING, NULL, 1, 0,
     RELAY_CONF_REQUIRED | RELAY_CONF_SECRET, "mParticle API secret", 0},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

static const relay_conf_prop_t log_props[] = {
    {"log.level", RELAY_CONF_STRING, "info", 1, 0, 0, "log level", 0},
    {"log.rate", RELAY_CONF_INT, NULL, 1, 0, 0, "lines per second", 0},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

static const relay_conf_prop_t *const tables[] = {worker_props, log_props};

static char err[1024];

static int group_setup(void **state)
{
        return unit_tmpdir_make("conf");
}

static int group_teardown(void **state)
{
        return unit_tmpdir_remove();
}

/* The variables any test here sets: cleared before each, since one test
 * binary is one process. */
static const char *const test_env[] = {"RELAY_MPARTICLE_API_SECRET",
                                       "RELAY_MPARTICLE_API_SECRET_FILE",
                                       "RELAY_KAFKA_SASL_USERNAME",
                                       "RELAY_KAFKA_SASL_PASSWORD",
                                       "RELAY_KAFKA_SASL_PASSWORD_FILE",
                                       "RELAY_KAFKA_SSL_KEY_PASSWORD",
                                       "RELAY_KAFKA_SSL_KEY_PASSWORD_FILE",
                                       "RELAY_KAFKA_DIR",
                                       "RELAY_KAFKA_BOOTSTRAP_SERVERS",
                                       "RELAY_BOUND_TOKEN",
                                       NULL};

static int setup(void **state)
{
        for (size_t i = 0; test_env[i]; i++)
                unsetenv(test_env[i]);
        err[0] = '\0';
        *state = relay_conf_new(tables, 2);
        return 0;
}

static int teardown(void **state)
{
        relay_conf_destroy(*state);
        return 0;
}

/* Load text as a file and return the loader's result. */
static int load(relay_conf_t *conf, const char *name, const char *text)
{
        return relay_conf_load_file(conf, write_file(name, text), err,
                                    sizeof(err));
}

static void assert_err(const char *part)
{
        if (!strstr(err, part))
                fail_msg("error \"%s\" lacks \"%s\"", err, part);
}

static void test_good_file(void **state)
{
        relay_conf_t *conf = *state;
        const char *path =
            write_file("good.conf", "name = \"loyalty\";\n"
                                    "deliver = {\n"
                                    "  max_attempts = 7;\n"
                                    "  backoff_factor = 1.5;\n"
                                    "  dry_run = false;\n"
                                    "  http = { url = \"https://x/\"; };\n"
                                    "};\n"
                                    "log = { rate = 3000000000L; };\n"
                                    "kafka = {\n"
                                    "  bootstrap_servers = \"b1:9092\";\n"
                                    "  enable_idempotence = true;\n"
                                    "  linger_ms = 5;\n"
                                    "  security = { protocol = \"ssl\"; };\n"
                                    "};\n");
        char origin[600];

        assert_int_equal(relay_conf_load_file(conf, path, err, sizeof(err)), 0);
        setenv("RELAY_MPARTICLE_API_SECRET", "s3cret", 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), 0);

        assert_string_equal(relay_conf_str(conf, "name"), "loyalty");
        assert_int_equal(relay_conf_int(conf, "deliver.max_attempts"), 7);
        assert_true(relay_conf_double(conf, "deliver.backoff_factor") == 1.5);
        assert_int_equal(relay_conf_bool(conf, "deliver.dry_run"), 0);
        assert_string_equal(relay_conf_str(conf, "deliver.http.url"),
                            "https://x/");
        assert_true(relay_conf_int(conf, "log.rate") == 3000000000LL);
        assert_string_equal(relay_conf_str(conf, "log.level"), "info");

        assert_int_equal(relay_conf_kafka_count(conf), 4);
        assert_string_equal(relay_conf_kafka_name(conf, 0),
                            "bootstrap.servers");
        assert_string_equal(relay_conf_kafka_value(conf, 0), "b1:9092");
        snprintf(origin, sizeof(origin), "%s:10", path);
        assert_string_equal(relay_conf_kafka_origin(conf, 0), origin);
        assert_string_equal(relay_conf_kafka_name(conf, 1),
                            "enable.idempotence");
        assert_string_equal(relay_conf_kafka_value(conf, 1), "true");
        assert_string_equal(relay_conf_kafka_name(conf, 2), "linger.ms");
        assert_string_equal(relay_conf_kafka_value(conf, 2), "5");
        assert_string_equal(relay_conf_kafka_name(conf, 3),
                            "security.protocol");
        assert_string_equal(relay_conf_kafka_value(conf, 3), "ssl");
        assert_null(relay_conf_kafka_name(conf, 4));
}

static void test_double_accepts_int(void **state)
{
        relay_conf_t *conf = *state;
        assert_int_equal(
            load(conf, "dint.conf", "deliver = { backoff_factor = 3; };\n"), 0);
        assert_true(relay_conf_double(conf, "deliver.backoff_factor") == 3.0);
}

static void test_unknown_key(void **state)
{
        relay_conf_t *conf = *state;
        const char *path = write_file("unknown.conf", "name = \"x\";\n"
                                                      "deliver = {\n"
                                                      "  max_atempts = 3;\n"
                                                      "};\n");
        char want[600];

        assert_int_equal(relay_conf_load_file(conf, path, err, sizeof(err)),
                         -1);
        snprintf(want, sizeof(want),
                 "%s:3: unknown key 'deliver.max_atempts' "
                 "(did you mean 'deliver.max_attempts'?)",
                 path);
        assert_string_equal(err, want);
}

static void test_unknown_key_suggestions(void **state)
{
        relay_conf_t *conf = *state;

        /* Right key, wrong group. */
        assert_int_equal(load(conf, "group.conf", "max_attempts = 3;\n"), -1);
        assert_err("group.conf:1: unknown key 'max_attempts' "
                   "(did you mean 'deliver.max_attempts'?)");
        /* Only separators and case differ. */
        assert_int_equal(load(conf, "sep.conf", "deliver = { DryRun = 1; };\n"),
                         -1);
        assert_err("(did you mean 'deliver.dry_run'?)");
        /* Distance 3 is too far to suggest. */
        assert_int_equal(load(conf, "d3.conf", "deliver = { mx_atmpts = 1; };"),
                         -1);
        assert_err("d3.conf:1: unknown key 'deliver.mx_atmpts'");
        assert_null(strstr(err, "did you mean"));
        /* Nothing close: no suggestion at all. */
        assert_int_equal(load(conf, "far.conf", "\nzzz = 1;\n"), -1);
        assert_err("far.conf:2: unknown key 'zzz'");
        assert_null(strstr(err, "did you mean"));
}

static void test_type_mismatch(void **state)
{
        relay_conf_t *conf = *state;
        const char *path = write_file(
            "type.conf", "deliver = {\n  max_attempts = \"three\";\n};\n");
        char want[600];

        assert_int_equal(relay_conf_load_file(conf, path, err, sizeof(err)),
                         -1);
        snprintf(want, sizeof(want),
                 "%s:2: key 'deliver.max_attempts': expected an integer, got "
                 "a string",
                 path);
        assert_string_equal(err, want);

        assert_int_equal(
            load(conf, "float.conf", "deliver = { max_attempts = 3.0; };\n"),
            -1);
        assert_err("float.conf:1: key 'deliver.max_attempts': expected an "
                   "integer, got a float");
        assert_int_equal(load(conf, "bool.conf", "deliver = { dry_run = 1; };"),
                         -1);
        assert_err("key 'deliver.dry_run': expected a boolean, got an integer");
        assert_int_equal(load(conf, "str.conf", "name = 5;"), -1);
        assert_err("key 'name': expected a string, got an integer");
        assert_int_equal(load(conf, "list.conf", "\nname = [\"a\", \"b\"];"),
                         -1);
        assert_err("list.conf:2: key 'name': expected a string, got an array "
                   "(lists and arrays are not supported)");
        assert_int_equal(load(conf, "grp.conf", "name = { a = 1; };"), -1);
        assert_err("key 'name': expected a string, got a group");
        assert_int_equal(load(conf, "kafka.conf", "kafka = 1;"), -1);
        assert_err("kafka.conf:1: key 'kafka' must be a group");
}

static void test_out_of_range(void **state)
{
        relay_conf_t *conf = *state;
        assert_int_equal(
            load(conf, "range.conf", "\n\ndeliver = { max_attempts = 0; };\n"),
            -1);
        assert_err("range.conf:3: key 'deliver.max_attempts': 0 is out of "
                   "range [1, 100]");
        assert_int_equal(
            load(conf, "edge.conf", "deliver = { max_attempts = 100; };\n"), 0);
        assert_int_equal(relay_conf_int(conf, "deliver.max_attempts"), 100);
        assert_int_equal(relay_conf_set(conf, "deliver.max_attempts", "101",
                                        err, sizeof(err)),
                         -1);
        assert_string_equal(err, "-X: key 'deliver.max_attempts': 101 is out "
                                 "of range [1, 100]");
        assert_int_equal(relay_conf_int(conf, "deliver.max_attempts"), 100);
}

static void test_secret_in_file_refused(void **state)
{
        relay_conf_t *conf = *state;
        const char *path = write_file(
            "secret.conf", "mparticle = {\n  api_secret = \"leak\";\n};\n");
        char want[600];

        assert_int_equal(relay_conf_load_file(conf, path, err, sizeof(err)),
                         -1);
        snprintf(want, sizeof(want),
                 "%s:2: key 'mparticle.api_secret' is a secret and must come "
                 "from the environment (RELAY_MPARTICLE_API_SECRET or "
                 "RELAY_MPARTICLE_API_SECRET_FILE), not from a config file",
                 path);
        assert_string_equal(err, want);

        assert_int_equal(relay_conf_set(conf, "mparticle.api_secret", "leak",
                                        err, sizeof(err)),
                         -1);
        assert_err("-X: key 'mparticle.api_secret' is a secret and must come "
                   "from the environment");
}

static void test_secret_from_env(void **state)
{
        relay_conf_t *conf = *state;
        assert_int_equal(
            relay_conf_set(conf, "deliver.http.url", "u", err, sizeof(err)), 0);
        setenv("RELAY_MPARTICLE_API_SECRET", "from-env", 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), 0);
        assert_string_equal(relay_conf_str(conf, "mparticle.api_secret"),
                            "from-env");
}

/* Which of the two would win is a guess, and a variable that shadows a
 * rotated file would never heal: both set is an error naming both. */
static void test_secret_both_set(void **state)
{
        relay_conf_t *conf = *state;
        const char *path = write_file("both.txt", "from-file\n");
        assert_int_equal(
            relay_conf_set(conf, "deliver.http.url", "u", err, sizeof(err)), 0);
        setenv("RELAY_MPARTICLE_API_SECRET", "from-env", 1);
        setenv("RELAY_MPARTICLE_API_SECRET_FILE", path, 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), -1);
        assert_string_equal(err, "RELAY_MPARTICLE_API_SECRET and "
                                 "RELAY_MPARTICLE_API_SECRET_FILE are both "
                                 "set: set only one");
}

static void test_secret_from_file(void **state)
{
        relay_conf_t *conf = *state;
        const char *path = write_file("secret.txt", "from-file\n");
        assert_int_equal(
            relay_conf_set(conf, "deliver.http.url", "u", err, sizeof(err)), 0);
        setenv("RELAY_MPARTICLE_API_SECRET_FILE", path, 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), 0);
        assert_string_equal(relay_conf_str(conf, "mparticle.api_secret"),
                            "from-file");
}

static void test_secret_file_unreadable(void **state)
{
        relay_conf_t *conf = *state;
        char missing[600];
        snprintf(missing, sizeof(missing), "%s/no-such-secret", tmpdir);
        setenv("RELAY_MPARTICLE_API_SECRET_FILE", missing, 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), -1);
        assert_err("RELAY_MPARTICLE_API_SECRET_FILE: cannot read '");
        assert_err(missing);
        assert_err("No such file or directory");
}

static void test_secret_file_empty(void **state)
{
        relay_conf_t *conf = *state;
        const char *path = write_file("empty-secret.txt", "\n");
        setenv("RELAY_MPARTICLE_API_SECRET_FILE", path, 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), -1);
        assert_err("RELAY_MPARTICLE_API_SECRET_FILE: '");
        assert_err("empty-secret.txt' is empty");
        assert_null(relay_conf_str(conf, "mparticle.api_secret"));
}

/* librdkafka's secrets come from RELAY_KAFKA_<NAME>[_FILE] into the
 * pass-through list, with the variable as origin; other RELAY_KAFKA_*
 * variables (the test broker's RELAY_KAFKA_DIR) are not properties. */
static void test_kafka_secret_from_env(void **state)
{
        relay_conf_t *conf = *state;
        const char *path = write_file("keypass.txt", "pem-pass\n");
        assert_int_equal(relay_conf_set(conf, "kafka.bootstrap.servers",
                                        "b:9092", err, sizeof(err)),
                         0);
        assert_int_equal(
            relay_conf_set(conf, "deliver.http.url", "u", err, sizeof(err)), 0);
        setenv("RELAY_MPARTICLE_API_SECRET", "s", 1);
        setenv("RELAY_KAFKA_SASL_PASSWORD", "hunter2", 1);
        setenv("RELAY_KAFKA_SSL_KEY_PASSWORD_FILE", path, 1);
        setenv("RELAY_KAFKA_DIR", "/tmp/kafka", 1);
        setenv("RELAY_KAFKA_BOOTSTRAP_SERVERS", "evil:9092", 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), 0);

        assert_int_equal(relay_conf_kafka_count(conf), 3);
        assert_string_equal(relay_conf_kafka_name(conf, 0),
                            "bootstrap.servers");
        assert_string_equal(relay_conf_kafka_value(conf, 0), "b:9092");
        assert_string_equal(relay_conf_kafka_name(conf, 1), "sasl.password");
        assert_string_equal(relay_conf_kafka_value(conf, 1), "hunter2");
        assert_string_equal(relay_conf_kafka_origin(conf, 1),
                            "environment RELAY_KAFKA_SASL_PASSWORD");
        assert_string_equal(relay_conf_kafka_name(conf, 2), "ssl.key.password");
        assert_string_equal(relay_conf_kafka_value(conf, 2), "pem-pass");
        assert_string_equal(relay_conf_kafka_origin(conf, 2),
                            "environment RELAY_KAFKA_SSL_KEY_PASSWORD_FILE");
        assert_true(relay_conf_kafka_secret("sasl.password"));
        assert_false(relay_conf_kafka_secret("bootstrap.servers"));
}

static void test_kafka_secret_both_set(void **state)
{
        relay_conf_t *conf = *state;
        const char *path = write_file("saslpass.txt", "x\n");
        setenv("RELAY_MPARTICLE_API_SECRET", "s", 1);
        setenv("RELAY_KAFKA_SASL_PASSWORD", "hunter2", 1);
        setenv("RELAY_KAFKA_SASL_PASSWORD_FILE", path, 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), -1);
        assert_string_equal(err, "RELAY_KAFKA_SASL_PASSWORD and "
                                 "RELAY_KAFKA_SASL_PASSWORD_FILE are both "
                                 "set: set only one");
}

static void test_kafka_secret_file_unreadable(void **state)
{
        relay_conf_t *conf = *state;
        char missing[600];
        snprintf(missing, sizeof(missing), "%s/no-such-kafka-secret", tmpdir);
        setenv("RELAY_MPARTICLE_API_SECRET", "s", 1);
        setenv("RELAY_KAFKA_SASL_PASSWORD_FILE", missing, 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), -1);
        assert_err("RELAY_KAFKA_SASL_PASSWORD_FILE: cannot read '");
        assert_err("No such file or directory");
}

/* A librdkafka secret in a config file (the repo) or on the command line
 * (ps) is refused like the other secrets, without echoing its value. */
static void test_kafka_secret_in_file_refused(void **state)
{
        relay_conf_t *conf = *state;
        const char *path =
            write_file("kafka-secret.conf", "kafka = {\n"
                                            "  bootstrap_servers = \"b:1\";\n"
                                            "  sasl_password = \"leak\";\n"
                                            "};\n");
        char want[600];

        assert_int_equal(relay_conf_load_file(conf, path, err, sizeof(err)),
                         -1);
        snprintf(want, sizeof(want),
                 "%s:3: kafka property 'sasl.password' is a secret and must "
                 "come from the environment (RELAY_KAFKA_SASL_PASSWORD or "
                 "RELAY_KAFKA_SASL_PASSWORD_FILE), not from a config file",
                 path);
        assert_string_equal(err, want);

        assert_int_equal(relay_conf_set(conf, "kafka.ssl.key.password", "leak",
                                        err, sizeof(err)),
                         -1);
        assert_string_equal(err, "-X: kafka property 'ssl.key.password' is a "
                                 "secret and must come from the environment "
                                 "(RELAY_KAFKA_SSL_KEY_PASSWORD or "
                                 "RELAY_KAFKA_SSL_KEY_PASSWORD_FILE), not "
                                 "from the command line");
        assert_int_equal(relay_conf_kafka_count(conf), 1); /* only b:1 */
}

/* --help names the variables of every secret and prints no value. */
static void test_describe_hides_secrets(void **state)
{
        relay_conf_t *conf = *state;
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(
            relay_conf_set(conf, "deliver.http.url", "u", err, sizeof(err)), 0);
        setenv("RELAY_MPARTICLE_API_SECRET", "mp-value-1", 1);
        setenv("RELAY_KAFKA_SASL_PASSWORD", "kafka-value-1", 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), 0);
        FILE *fp = open_memstream(&text, &len);
        assert_non_null(fp);
        relay_conf_describe(conf, fp);
        fclose(fp);
        assert_contains(text, "RELAY_KAFKA_SASL_PASSWORD_FILE");
        assert_contains(text, "RELAY_KAFKA_SSL_KEY_PASSWORD_FILE");
        assert_null(strstr(text, "mp-value-1"));
        assert_null(strstr(text, "kafka-value-1"));
        free(text);
}

static void write_secret(const char *path, const char *text)
{
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(text, fp);
        fclose(fp);
}

/* A rotated secret file is picked up without a restart: 0 while nothing
 * changed, 1 once it did; an unreadable file is an error that keeps the
 * old value; a pointer handed out before stays valid. */
static void test_reload_secrets(void **state)
{
        relay_conf_t *conf = *state;
        const char *path = write_file("rotating.txt", "first\n");
        assert_int_equal(
            relay_conf_set(conf, "deliver.http.url", "u", err, sizeof(err)), 0);
        setenv("RELAY_MPARTICLE_API_SECRET_FILE", path, 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), 0);
        const char *before = relay_conf_str(conf, "mparticle.api_secret");
        assert_string_equal(before, "first");

        assert_int_equal(relay_conf_reload_secrets(conf, err, sizeof(err)), 0);
        assert_string_equal(relay_conf_str(conf, "mparticle.api_secret"),
                            "first");

        write_secret(path, "second\n");
        assert_int_equal(relay_conf_reload_secrets(conf, err, sizeof(err)), 1);
        assert_string_equal(relay_conf_str(conf, "mparticle.api_secret"),
                            "second");
        assert_string_equal(before, "first"); /* still readable */
        assert_int_equal(relay_conf_reload_secrets(conf, err, sizeof(err)), 0);

        char moved[600];
        snprintf(moved, sizeof(moved), "%s.moved", path);
        assert_int_equal(rename(path, moved), 0);
        assert_int_equal(relay_conf_reload_secrets(conf, err, sizeof(err)), -1);
        assert_err("RELAY_MPARTICLE_API_SECRET_FILE: cannot read '");
        assert_err("No such file or directory");
        assert_string_equal(relay_conf_str(conf, "mparticle.api_secret"),
                            "second");
        assert_int_equal(rename(moved, path), 0);
        write_secret(path, "third");
        assert_int_equal(relay_conf_reload_secrets(conf, err, sizeof(err)), 1);
        assert_string_equal(relay_conf_str(conf, "mparticle.api_secret"),
                            "third");
}

/* A module's state as relay_conf_bind() fills it: fields at offset 0 and
 * elsewhere, an unbound row left alone. */
struct bound {
        long long attempts; /* offset 0: the case a sentinel would break */
        const char *url;
        int dry_run;
        double factor;
        const char *token;
        const char *unset;
        int untouched;
};

static const relay_conf_prop_t bound_props[] = {
    {"bound.attempts", RELAY_CONF_INT, "3", 1, 10, RELAY_CONF_BIND, "attempts",
     offsetof(struct bound, attempts)},
    {"bound.url", RELAY_CONF_STRING, "http://d/", 0, -1, RELAY_CONF_BIND,
     "endpoint", offsetof(struct bound, url)},
    {"bound.dry_run", RELAY_CONF_BOOL, "false", 0, -1, RELAY_CONF_BIND,
     "do not send", offsetof(struct bound, dry_run)},
    {"bound.factor", RELAY_CONF_DOUBLE, "2.5", 0, -1, RELAY_CONF_BIND,
     "backoff factor", offsetof(struct bound, factor)},
    {"bound.token", RELAY_CONF_STRING, NULL, 0, -1,
     RELAY_CONF_SECRET | RELAY_CONF_REQUIRED_IF_USED | RELAY_CONF_BIND,
     "a token", offsetof(struct bound, token)},
    {"bound.unset", RELAY_CONF_STRING, NULL, 0, -1, RELAY_CONF_BIND,
     "never set", offsetof(struct bound, unset)},
    {"bound.not_bound", RELAY_CONF_INT, "7", 0, -1, 0, "read by name", 0},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

static void test_bind(void **state)
{
        static const relay_conf_prop_t *const t[] = {bound_props};
        relay_conf_t *conf = relay_conf_new(t, 1);
        struct bound b;
        memset(&b, 0x5a, sizeof(b));
        b.untouched = 42;
        assert_int_equal(
            relay_conf_set(conf, "bound.attempts", "9", err, sizeof(err)), 0);
        assert_int_equal(
            relay_conf_set(conf, "bound.dry_run", "yes", err, sizeof(err)), 0);
        setenv("RELAY_BOUND_TOKEN", "tok", 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), 0);
        assert_int_equal(
            relay_conf_require_table(conf, bound_props, err, sizeof(err)), 0);
        relay_conf_bind(conf, bound_props, &b);
        assert_true(b.attempts == 9);
        assert_string_equal(b.url, "http://d/");
        assert_int_equal(b.dry_run, 1);
        assert_true(b.factor == 2.5);
        assert_string_equal(b.token, "tok");
        assert_null(b.unset);
        assert_int_equal(b.untouched, 42);
        assert_int_equal(relay_conf_int(conf, "bound.not_bound"), 7);
        relay_conf_destroy(conf);
}

/* A REQUIRED_IF_USED key without a value fails only when its table is
 * checked, with the error a missing REQUIRED key gets. */
static void test_require_table(void **state)
{
        static const relay_conf_prop_t *const t[] = {bound_props};
        relay_conf_t *conf = relay_conf_new(t, 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), 0);
        assert_int_equal(
            relay_conf_require_table(conf, bound_props, err, sizeof(err)), -1);
        assert_string_equal(err, "missing required key 'bound.token' (a "
                                 "token): set RELAY_BOUND_TOKEN or "
                                 "RELAY_BOUND_TOKEN_FILE");
        relay_conf_destroy(conf);
}

/* No cap on the number of tables, for relay_conf_new and for
 * relay_worker_conf (which once copied them into an 8-slot array): the
 * key of the last of 12 tables is declared and read. */
#define ONE_TABLE(n)                                                           \
        static const relay_conf_prop_t many_##n[] = {                          \
            {"many.k" #n, RELAY_CONF_INT, #n, 0, -1, 0, "one of many", 0},     \
            {NULL, 0, NULL, 0, 0, 0, NULL, 0}}
ONE_TABLE(0);
ONE_TABLE(1);
ONE_TABLE(2);
ONE_TABLE(3);
ONE_TABLE(4);
ONE_TABLE(5);
ONE_TABLE(6);
ONE_TABLE(7);
ONE_TABLE(8);
ONE_TABLE(9);
ONE_TABLE(10);
ONE_TABLE(11);
static const relay_conf_prop_t *const many[] = {
    many_0, many_1, many_2, many_3, many_4,  many_5,
    many_6, many_7, many_8, many_9, many_10, many_11};

static void test_many_tables(void **state)
{
        relay_conf_t *conf = relay_conf_new(many, 12);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), 0);
        assert_int_equal(relay_conf_int(conf, "many.k0"), 0);
        assert_int_equal(relay_conf_int(conf, "many.k11"), 11);
        relay_conf_destroy(conf);

        /* Writable: relay_worker_conf() splits name=value in place. */
        char a0[] = "relay-test", a1[] = "-X", a2[] = "many.k11=99";
        char *argv[] = {a0, a1, a2, NULL};
        optind = 0;
        conf = relay_worker_conf(3, argv, "test", many, 12);
        assert_int_equal(relay_conf_int(conf, "many.k11"), 99);
        assert_int_equal(relay_conf_int(conf, "many.k10"), 10);
        assert_string_equal(relay_conf_str(conf, "log.level"), "info");
        relay_conf_destroy(conf);
}

static void test_kafka_lists(void **state)
{
        relay_conf_t *conf = *state;
        assert_int_equal(load(conf, "klist.conf",
                              "kafka = { bootstrap_servers = [\"a:1\", "
                              "\"b:2\"]; retry_backoff = 0.5; };\n"),
                         0);
        assert_int_equal(relay_conf_kafka_count(conf), 2);
        assert_string_equal(relay_conf_kafka_value(conf, 0), "a:1,b:2");
        assert_string_equal(relay_conf_kafka_name(conf, 1), "retry.backoff");
        assert_string_equal(relay_conf_kafka_value(conf, 1), "0.5");
        assert_int_equal(
            load(conf, "knest.conf", "kafka = { x = ( { a = 1; } ); };\n"), -1);
        assert_err("knest.conf:1: kafka property 'x': expected a value or a "
                   "list of values");
}

/* A key another module parses (relay-poll's field rules): any value,
 * declared and located, never a value of the conf's, never from -X. */
static void test_opaque(void **state)
{
        (void)state;
        static const relay_conf_prop_t props[] = {
            {"src.fields", RELAY_CONF_STRING, NULL, 0, -1,
             RELAY_CONF_OPAQUE | RELAY_CONF_REQUIRED, "field rules", 0},
            {"src.name", RELAY_CONF_STRING, NULL, 0, -1, 0, "name", 0},
            {NULL, 0, NULL, 0, 0, 0, NULL, 0}};
        const relay_conf_prop_t *t[] = {props};
        relay_conf_t *conf = relay_conf_new(t, 1);
        assert_int_equal(load(conf, "opaque.conf",
                              "src = { name = \"a\";\n fields = ( { to = "
                              "\"x\"; }, { to = \"y\"; } ); };\n"),
                         0);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), 0);
        assert_contains(relay_conf_origin(conf, "src.fields"), "opaque.conf:2");
        assert_null(relay_conf_str(conf, "src.fields"));
        assert_int_equal(relay_conf_set(conf, "src.fields", "x", err,
                                         sizeof(err)),
                         -1);
        assert_err("-X: key 'src.fields' is read from its file only");
        relay_conf_destroy(conf);
        /* Required like any other key. */
        conf = relay_conf_new(t, 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), -1);
        assert_err("missing required key 'src.fields'");
        relay_conf_destroy(conf);
}

static void test_missing_required(void **state)
{
        relay_conf_t *conf = *state;
        setenv("RELAY_MPARTICLE_API_SECRET", "s", 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), -1);
        assert_string_equal(err, "missing required key 'deliver.http.url' "
                                 "(endpoint URL)");
}

static void test_missing_required_secret(void **state)
{
        relay_conf_t *conf = *state;
        assert_int_equal(
            relay_conf_set(conf, "deliver.http.url", "u", err, sizeof(err)), 0);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), -1);
        assert_string_equal(err, "missing required key 'mparticle.api_secret' "
                                 "(mParticle API secret): set "
                                 "RELAY_MPARTICLE_API_SECRET or "
                                 "RELAY_MPARTICLE_API_SECRET_FILE");
}

/* relay_conf_require: a key needed only in some uses gets the same error
 * as a missing REQUIRED key, and passes once it has a value. */
static void test_require(void **state)
{
        relay_conf_t *conf = *state;
        assert_int_equal(
            relay_conf_set(conf, "deliver.http.url", "u", err, sizeof(err)), 0);
        assert_int_equal(relay_conf_require(conf, "log.rate", err, sizeof(err)),
                         -1);
        assert_string_equal(
            err, "missing required key 'log.rate' (lines per second)");
        assert_int_equal(
            relay_conf_require(conf, "deliver.http.url", err, sizeof(err)), 0);
}

static void test_defaults(void **state)
{
        relay_conf_t *conf = *state;
        assert_int_equal(load(conf, "defaults.conf",
                              "deliver = { http = { url = \"u\"; }; "
                              "max_attempts = 9; };\n"),
                         0);
        /* Before finish, unset values read as zero. */
        assert_null(relay_conf_str(conf, "name"));
        assert_int_equal(relay_conf_bool(conf, "deliver.dry_run"), 0);
        setenv("RELAY_MPARTICLE_API_SECRET", "s", 1);
        assert_int_equal(relay_conf_finish(conf, err, sizeof(err)), 0);
        assert_string_equal(relay_conf_str(conf, "name"), "relay");
        assert_int_equal(relay_conf_int(conf, "deliver.max_attempts"), 9);
        assert_true(relay_conf_double(conf, "deliver.backoff_factor") == 2.5);
        assert_int_equal(relay_conf_bool(conf, "deliver.dry_run"), 1);
        assert_string_equal(relay_conf_str(conf, "log.level"), "info");
        assert_int_equal(relay_conf_int(conf, "log.rate"), 0);
}

static void test_x_overrides(void **state)
{
        relay_conf_t *conf = *state;
        assert_int_equal(load(conf, "x.conf",
                              "deliver = { max_attempts = 3; };\n"
                              "kafka = { bootstrap_servers = \"file:9092\"; "
                              "acks = \"all\"; };\n"),
                         0);
        assert_int_equal(relay_conf_set(conf, "deliver.max_attempts", "42", err,
                                        sizeof(err)),
                         0);
        assert_int_equal(relay_conf_int(conf, "deliver.max_attempts"), 42);
        assert_int_equal(relay_conf_set(conf, "deliver.backoff_factor", "0.25",
                                        err, sizeof(err)),
                         0);
        assert_true(relay_conf_double(conf, "deliver.backoff_factor") == 0.25);

        assert_int_equal(relay_conf_set(conf, "kafka.bootstrap.servers",
                                        "x:9092", err, sizeof(err)),
                         0);
        assert_int_equal(relay_conf_kafka_count(conf), 2);
        assert_string_equal(relay_conf_kafka_name(conf, 0),
                            "bootstrap.servers");
        assert_string_equal(relay_conf_kafka_value(conf, 0), "x:9092");
        assert_string_equal(relay_conf_kafka_origin(conf, 0), "-X");
        assert_string_equal(relay_conf_kafka_value(conf, 1), "all");
        assert_non_null(strstr(relay_conf_kafka_origin(conf, 1), "x.conf:2"));
        /* -X names are verbatim: no '_' translation. */
        assert_int_equal(
            relay_conf_set(conf, "kafka.some_prop", "v", err, sizeof(err)), 0);
        assert_string_equal(relay_conf_kafka_name(conf, 2), "some_prop");

        assert_int_equal(relay_conf_set(conf, "deliver.max_attempts", "4x", err,
                                        sizeof(err)),
                         -1);
        assert_string_equal(err, "-X: key 'deliver.max_attempts': expected an "
                                 "integer, got '4x'");
        assert_int_equal(relay_conf_set(conf, "deliver.backoff_factor", "", err,
                                        sizeof(err)),
                         -1);
        assert_err("expected a number");
        assert_int_equal(
            relay_conf_set(conf, "deliver.max_atempts", "1", err, sizeof(err)),
            -1);
        assert_string_equal(err, "-X: unknown key 'deliver.max_atempts' "
                                 "(did you mean 'deliver.max_attempts'?)");
        assert_int_equal(relay_conf_int(conf, "deliver.max_attempts"), 42);
}

static void test_x_bool(void **state)
{
        relay_conf_t *conf = *state;
        static const struct {
                const char *text;
                int want;
        } cases[] = {{"true", 1},  {"yes", 1}, {"1", 1}, {"on", 1}, {"TRUE", 1},
                     {"false", 0}, {"no", 0},  {"0", 0}, {"off", 0}};

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                /* Start from the opposite value so a no-op would fail. */
                assert_int_equal(relay_conf_set(conf, "deliver.dry_run",
                                                cases[i].want ? "0" : "1", err,
                                                sizeof(err)),
                                 0);
                assert_int_equal(relay_conf_set(conf, "deliver.dry_run",
                                                cases[i].text, err,
                                                sizeof(err)),
                                 0);
                assert_int_equal(relay_conf_bool(conf, "deliver.dry_run"),
                                 cases[i].want);
        }
        assert_int_equal(
            relay_conf_set(conf, "deliver.dry_run", "maybe", err, sizeof(err)),
            -1);
        assert_string_equal(err, "-X: key 'deliver.dry_run': expected a "
                                 "boolean, got 'maybe'");
}

static void test_parse_error(void **state)
{
        relay_conf_t *conf = *state;
        const char *path = write_file("syntax.conf", "name = \"a\";\n"
                                                     "deliver = {\n"
                                                     "  max_attempts = ;\n"
                                                     "};\n");
        char want[600];

        assert_int_equal(relay_conf_load_file(conf, path, err, sizeof(err)),
                         -1);
        snprintf(want, sizeof(want), "%s:3: ", path);
        assert_int_equal(strncmp(err, want, strlen(want)), 0);
        assert_err("syntax error");

        snprintf(want, sizeof(want), "%s/absent.conf", tmpdir);
        assert_int_equal(relay_conf_load_file(conf, want, err, sizeof(err)),
                         -1);
        assert_err("absent.conf: No such file or directory");
}

static void test_describe(void **state)
{
        relay_conf_t *conf = *state;
        char *text = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&text, &len);
        assert_non_null(fp);
        relay_conf_describe(conf, fp);
        fclose(fp);
        assert_non_null(strstr(text, "deliver.max_attempts"));
        assert_non_null(strstr(text, "[1, 100]"));
        assert_non_null(strstr(text, "attempts before dead-lettering"));
        assert_non_null(strstr(text, "required,secret"));
        assert_non_null(strstr(text, "RELAY_MPARTICLE_API_SECRET_FILE"));
        assert_non_null(strstr(text, "kafka.*"));
        free(text);
}

/* Run fn in a child and check that it aborts (a programming error). */
static void assert_aborts(void (*fn)(relay_conf_t *), relay_conf_t *conf)
{
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                FILE *devnull = fopen("/dev/null", "w");
                relay_log_set_stream(devnull);
                fn(conf);
                _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void read_undeclared(relay_conf_t *conf)
{
        relay_conf_int(conf, "deliver.nope");
}

static void read_wrong_type(relay_conf_t *conf)
{
        relay_conf_int(conf, "name");
}

static void declare_twice(relay_conf_t *conf)
{
        static const relay_conf_prop_t *const twice[] = {log_props, log_props};
        relay_conf_new(twice, 2);
}

static void bad_default(relay_conf_t *conf)
{
        static const relay_conf_prop_t bad[] = {
            {"x", RELAY_CONF_INT, "0", 1, 10, 0, "out of its own range", 0},
            {NULL, 0, NULL, 0, 0, 0, NULL, 0}};
        static const relay_conf_prop_t *const t[] = {bad};
        relay_conf_new(t, 1);
}

static void test_programming_errors_abort(void **state)
{
        assert_aborts(read_undeclared, *state);
        assert_aborts(read_wrong_type, *state);
        assert_aborts(declare_twice, *state);
        assert_aborts(bad_default, *state);
        relay_conf_destroy(NULL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(test_good_file),
            T(test_double_accepts_int),
            T(test_unknown_key),
            T(test_unknown_key_suggestions),
            T(test_type_mismatch),
            T(test_out_of_range),
            T(test_secret_in_file_refused),
            T(test_secret_from_env),
            T(test_secret_both_set),
            T(test_kafka_secret_from_env),
            T(test_kafka_secret_both_set),
            T(test_kafka_secret_file_unreadable),
            T(test_kafka_secret_in_file_refused),
            T(test_describe_hides_secrets),
            T(test_reload_secrets),
            T(test_bind),
            T(test_require_table),
            T(test_many_tables),
            T(test_secret_from_file),
            T(test_secret_file_unreadable),
            T(test_secret_file_empty),
            T(test_kafka_lists),
            T(test_opaque),
            T(test_missing_required),
            T(test_missing_required_secret),
            T(test_require),
            T(test_defaults),
            T(test_x_overrides),
            T(test_x_bool),
            T(test_parse_error),
            T(test_describe),
            T(test_programming_errors_abort),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
