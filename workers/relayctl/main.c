/*
 * relayctl: the operator's command line for relay.
 *
 *   relayctl [-b brokers] [-s manifest] [-r registry] [-X prop=value]
 *            COMMAND ...
 *     produce TOPIC [-k PATH] [-S SUBJECT]
 *                               JSON lines on stdin → Avro records in the
 *                               Confluent wire format on TOPIC, keyed by the
 *                               field at PATH (e.g. identities.customer_id),
 *                               written with SUBJECT's schema (default
 *                               TOPIC-value: a topic of another name, such
 *                               as a benchmark's, names its subject)
 *     consume TOPIC             every record of TOPIC as one JSON line
 *                               (partition, offset, key, headers, value
 *                               decoded by its schema id), then exit
 *     dlq list TOPIC [FILTERS]  the same for a dead-letter topic: the
 *                               relay.* headers say why each record is there
 *     dlq show TOPIC -p P -o O  one dead letter in full: its headers one a
 *                               line, the value decoded by its schema id, or
 *                               its bytes in hex when it does not decode
 *     dlq replay TOPIC [FILTERS] [-o O] [--dry-run]
 *                               produce the dead letters selected (-o O: the
 *                               one at offset O) back to their original
 *                               topic, marked relay.replayed_from; a
 *                               transform dead letter keeps relay.connection
 *                               so only that connection is re-applied. Each
 *                               delivery report is counted: a summary, and
 *                               exit 1 naming every record that failed.
 *                               Once: the ledger TOPIC.replayed (compacted,
 *                               created if missing; replay refuses without
 *                               it), keyed "<partition>/<offset>", gets an
 *                               entry once a record's replay is
 *                               acknowledged, and a replay skips what it
 *                               holds ("already replayed"). A record is
 *                               replayed twice only if relayctl dies (or
 *                               the entry's write fails, which is named and
 *                               exits 1) between the replayed record's
 *                               acknowledgement and its entry's; two replays
 *                               run at the same time are not fenced.
 *                               --dry-run lists what would be replayed and
 *                               skipped, and produces nothing (no ledger)
 *     dlq purge TOPIC [FILTERS] [--force] [--yes] [--dry-run]
 *                               delete, per partition, the records below the
 *                               last one the filters select (default: all;
 *                               Kafka deletes no single record:
 *                               DeleteRecords). Refused while a dead letter
 *                               below that point is not in the ledger, unless
 *                               --force; asks "yes" on a terminal unless
 *                               --yes, and refuses off a terminal without it
 *       FILTERS: --platform NAME (relay.worker "...-NAME", or the topic
 *                               dlq.NAME), --connection ID, --reason CLASS
 *                               (relay.stage: decode, map, encode, deliver,
 *                               produce), --since TIME --until TIME
 *                               (inclusive; relay.failed_at, else the record
 *                               timestamp; ISO-8601 UTC such as
 *                               2024-05-01T12:00:00Z, or Unix ms),
 *                               -p PARTITION, --from OFFSET --to OFFSET
 *                               (inclusive). replay and purge draw a progress
 *                               bar on stderr when it is a terminal, and end
 *                               with a one-line summary
 *     lag [--watch [SECONDS]] [-n COUNT] GROUP TOPIC
 *                               committed offset, end offset and lag of
 *                               each partition, in records and in seconds
 *                               (lag_s: the age of the oldest record not
 *                               committed, from its timestamp; without a
 *                               commit counted from the low watermark, as
 *                               auto.offset.reset=earliest reads). --watch
 *                               refreshes every SECONDS (default 1) until
 *                               SIGINT, or COUNT times
 *     top [-i SECONDS] [-n COUNT] [-m METRICS_URL ...] GROUP:TOPIC[:DLQ] ...
 *                               the incident view, refreshed every SECONDS
 *                               (default 1): per group its lag per
 *                               partition, records/s in and out, dead
 *                               letters/s on DLQ; per worker (-m, its
 *                               /metrics) platform and breaker state,
 *                               paused, ready, records in/out, or "down".
 *                               Rates are over the last interval, so the
 *                               first block comes after one; -n 1 is the
 *                               one-shot form
 *     onboard --tenant T --file CSV [--source S] [--map SPEC]
 *             [--default-country CC] [--state DIR [--delta]]
 *             [--rejects FILE] [--dry-run]
 *                               a CRM export (CSV, UTF-8, RFC 4180) to
 *                               crm.records: e-mail, phone and address
 *                               normalised and SHA-256-hashed here, the
 *                               clear text never sent (onboard.c and
 *                               relay/crm.h say how); columns by SPEC (a
 *                               libconfig file: deploy/onboard/
 *                               crm-example.cfg), else named as the fields.
 *                               Keyed <tenant>/<record id>; event_id a
 *                               name-based UUID of tenant, source, record id
 *                               and content, so a re-run makes the same ids.
 *                               Waits for every delivery report; rows
 *                               rejected go to FILE (default CSV.rejects.csv)
 *                               with line and reason; a progress bar on a
 *                               terminal, a summary at the end. --state DIR
 *                               keeps DIR/<tenant>.<source>.state (record id
 *                               -> content hash), written only when Kafka
 *                               acknowledged every record; --delta sends
 *                               only the rows new or changed since it
 *     schemas check [SUBJECT...]
 *                               whether each local schema (the manifest's
 *                               newest per subject) is compatible with the
 *                               registry's latest version, under the
 *                               subject's compatibility level; exit 1 if
 *                               any is not
 *     schemas register [-l LEVEL] [SUBJECT...]
 *                               set each subject's level (default BACKWARD)
 *                               and register its local schema
 *
 * Without -r (or RELAY_SCHEMA_REGISTRY_URL) schema ids are the manifest's;
 * with it they are the registry's (Basic auth from
 * RELAY_SCHEMA_REGISTRY_BASIC_AUTH, "user:password").
 *
 * Options of a command may come before or after its positional arguments
 * (produce TOPIC -k PATH, as the usage shows, or produce -k PATH TOPIC).
 * --watch takes the next argument as its SECONDS only when it is a number
 * (or write --watch=SECONDS).
 *
 * The watching commands (lag --watch, top) redraw in place on a terminal;
 * otherwise they print one block per refresh, each opened by a line with
 * the time (UTC). SIGINT or SIGTERM ends them with status 0; with -n the
 * status is the last refresh's (1 when the cluster could not be read).
 *
 * Exit status: 0 ok, 1 a failure (named on stderr), 2 a usage error.
 */
#include "relay/avro.h"
#include "relay/dlq.h"
#include "relay/kafka.h"
#include "relay/log.h"
#include "relay/registry.h"

#include "relayctl.h"

#include <errno.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int usage(void)
{
        fprintf(stderr,
                "Usage: relayctl [-b brokers] [-s manifest] [-r registry] "
                "[-X prop=value] COMMAND\n"
                "  produce TOPIC [-k PATH] [-S SUBJECT]\n"
                "                           JSON lines on stdin -> Avro on "
                "TOPIC\n"
                "  consume TOPIC            TOPIC's records as JSON lines\n"
                "  dlq list TOPIC [FILTERS] a dead-letter topic's records "
                "with their reasons\n"
                "  dlq show TOPIC -p PARTITION -o OFFSET\n"
                "                           one dead letter in full, for a "
                "person\n"
                "  dlq replay TOPIC [FILTERS] [-o OFFSET] [--dry-run]\n"
                "                           produce dead letters back to "
                "their original topic,\n"
                "                           once: the ledger TOPIC.replayed "
                "(compacted) is\n"
                "                           skipped; a record is replayed "
                "twice only if relayctl\n"
                "                           dies between its ack and its "
                "ledger entry's\n"
                "  dlq purge TOPIC [FILTERS] [--force] [--yes] [--dry-run]\n"
                "                           delete each partition's records "
                "up to the last one\n"
                "                           selected (default all); refused "
                "while one below is\n"
                "                           not replayed (--force), asks "
                "unless --yes\n"
                "    FILTERS: --platform NAME  --connection ID  --reason "
                "decode|map|encode|\n"
                "             deliver|produce  --since TIME  --until TIME "
                "(ISO-8601 UTC or Unix\n"
                "             ms; inclusive)  -p PARTITION  --from OFFSET  "
                "--to OFFSET (inclusive)\n"
                "  lag [--watch [SECONDS]] [-n COUNT] GROUP TOPIC\n"
                "                           committed offsets and lag per "
                "partition, in\n"
                "                           records and seconds (lag_s: "
                "age of the oldest\n"
                "                           record not committed; no "
                "commit: from the low\n"
                "                           watermark, as "
                "auto.offset.reset=earliest)\n"
                "  top [-i SECONDS] [-n COUNT] [-m METRICS_URL ...] "
                "GROUP:TOPIC[:DLQ] ...\n"
                "                           lag, records/s in and out, "
                "DLQ writes/s, each\n"
                "                           worker's breaker state; "
                "rates over the last\n"
                "                           interval (-n 1: one block, "
                "after one interval)\n"
                "  onboard --tenant T --file CSV [--source S] [--map SPEC] "
                "[--default-country CC]\n"
                "          [--state DIR [--delta]] [--rejects FILE] "
                "[--dry-run]\n"
                "                           a CRM CSV, hashed, to "
                "crm.records\n"
                "  schemas check [SUBJECT...]\n"
                "                           local schemas vs the registry "
                "(exit 1 if incompatible)\n"
                "  schemas register [-l LEVEL] [SUBJECT...]\n"
                "                           register local schemas (level "
                "default BACKWARD)\n"
                "  sign-link --tenant T --message ID --url URL [--link ID] "
                "[--campaign C]\n"
                "            [--contact ID] [--email-sha256 HEX] [--source S] "
                "[--key-id K]\n"
                "            [--base URL] [--read-online]\n"
                "                           a signed click (/c/) or "
                "read-online (/r/) link of\n"
                "                           relay-ingest, keys from "
                "RELAY_INGEST_LINK_KEYS\n");
        return 2;
}

/* The long options of the commands, each a synonym of a short one (a
 * letter no command uses for another option: produce's -S is its
 * subject, so --since is -a, after, and --until -b, before). */
static const struct {
        const char *name;
        int opt;
} long_opts[] = {{"watch", 'w'},       {"platform", 'P'}, {"connection", 'C'},
                 {"reason", 'R'},      {"since", 'a'},    {"until", 'b'},
                 {"from", 'F'},        {"to", 'T'},       {"force", 'f'},
                 {"yes", 'y'},         {"dry-run", 'D'},
                 {"tenant", 't'},      {"file", 'I'},     {"source", 'O'},
                 {"map", 'M'},         {"default-country", 'K'},
                 {"state", 'L'},       {"rejects", 'J'},  {"delta", 'A'}};

const char *opt_name(int opt)
{
        static char text[3] = "-?";
        for (size_t i = 0; i < sizeof(long_opts) / sizeof(*long_opts); i++)
                if (long_opts[i].opt == opt)
                        return long_opts[i].name;
        text[1] = (char)opt;
        return text;
}

/* The option of --name or --name=value (text after the dashes; *value
 * set for the latter), or 0 when there is none such. */
static int long_opt(const char *text, const char **value)
{
        size_t n = strcspn(text, "=");
        for (size_t i = 0; i < sizeof(long_opts) / sizeof(*long_opts); i++)
                if (strlen(long_opts[i].name) == n &&
                    !strncmp(long_opts[i].name, text, n)) {
                        *value = text[n] ? text + n + 1 : NULL;
                        return long_opts[i].opt;
                }
        return 0;
}

static int is_number(const char *s)
{
        return *s && strspn(s, "0123456789.") == strlen(s);
}

/* getopt for a command's own vector, with its options allowed after the
 * positional arguments too: the positionals are gathered into pos[] (at
 * most maxpos, else a usage error) and each option is handed to on_opt.
 * glibc's getopt, restarted with optind = 0 for a command's vector, did
 * not take an option after the positional (produce TOPIC -k PATH exited
 * 2); this does not depend on how getopt permutes. Returns the number of
 * positionals, or -1 once usage() or on_opt has said what was wrong. */
int command_args(int argc, char **argv, const char *optstring,
                 int (*on_opt)(int opt, const char *arg, void *ctx), void *ctx,
                 char **pos, int maxpos)
{
        int npos = 0;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (!strcmp(a, "--")) {
                        while (++i < argc) {
                                if (npos == maxpos)
                                        return usage(), -1;
                                pos[npos++] = argv[i];
                        }
                        break;
                }
                if (a[0] != '-' || !a[1]) {
                        if (npos == maxpos)
                                return usage(), -1;
                        pos[npos++] = argv[i];
                        continue;
                }
                const char *arg = NULL;
                int opt = a[1] == '-' ? long_opt(a + 2, &arg) : a[1];
                const char *o = opt ? strchr(optstring, opt) : NULL;
                if (!o || opt == ':') {
                        fprintf(stderr, "relayctl: %s: unknown option %s\n",
                                argv[0], a);
                        return usage(), -1;
                }
                if (o[1] == ':' && o[2] == ':') {
                        /* An optional value: --watch=2, -w2, or --watch 2
                         * (a next argument that is a number). */
                        if (a[1] != '-' && a[2])
                                arg = a + 2;
                        else if (!arg && i + 1 < argc && is_number(argv[i + 1]))
                                arg = argv[++i];
                } else if (o[1] == ':') {
                        if (a[1] == '-' && arg)
                                ; /* --name=value */
                        else if (a[1] != '-' && a[2])
                                arg = a + 2;
                        else if (i + 1 < argc)
                                arg = argv[++i];
                        else {
                                fprintf(stderr,
                                        "relayctl: %s: option %s needs a "
                                        "value\n",
                                        argv[0], a);
                                return usage(), -1;
                        }
                } else if (a[1] == '-' ? arg != NULL : a[2] != '\0') {
                        fprintf(stderr,
                                "relayctl: %s: option %s takes no value\n",
                                argv[0], a);
                        return usage(), -1;
                }
                if (on_opt(opt, arg, ctx))
                        return -1;
        }
        return npos;
}

int parse_count(char opt, const char *text, long long max, long long *out)
{
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno || v < 0 || v > max) {
                fprintf(stderr,
                        "relayctl: -%c '%s': expected a whole number from 0 "
                        "to %lld\n",
                        opt, text, max);
                return -1;
        }
        *out = v;
        return 0;
}

int parse_seconds(const char *opt, const char *text, long *ms)
{
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (!*text || *end || errno || !(v >= 0.1 && v <= 86400)) {
                fprintf(stderr,
                        "relayctl: %s '%s': expected seconds from 0.1 to "
                        "86400\n",
                        opt, text);
                return -1;
        }
        *ms = lround(v * 1000);
        return 0;
}

rd_kafka_t *client(const struct ctl *c, rd_kafka_type_t type, const char *group,
                   void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                   const char *const *extra)
{
        char errstr[512];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(kc, relay_log_rdkafka_cb);
        if (dr)
                rd_kafka_conf_set_dr_msg_cb(kc, dr);
        if (rd_kafka_conf_set(kc, "bootstrap.servers", c->brokers, errstr,
                              sizeof(errstr)))
                goto fail;
        if (type == RD_KAFKA_PRODUCER &&
            rd_kafka_conf_set(kc, "enable.idempotence", "true", errstr,
                              sizeof(errstr)))
                goto fail;
        if (type == RD_KAFKA_CONSUMER &&
            (rd_kafka_conf_set(kc, "enable.partition.eof", "true", errstr,
                               sizeof(errstr)) ||
             rd_kafka_conf_set(kc, "enable.auto.commit", "false", errstr,
                               sizeof(errstr))))
                goto fail;
        if (group &&
            rd_kafka_conf_set(kc, "group.id", group, errstr, sizeof(errstr)))
                goto fail;
        for (; extra && *extra; extra += 2)
                if (rd_kafka_conf_set(kc, extra[0], extra[1], errstr,
                                      sizeof(errstr)))
                        goto fail;
        for (size_t i = 0; i < c->nprops; i += 2)
                if (rd_kafka_conf_set(kc, c->props[i], c->props[i + 1], errstr,
                                      sizeof(errstr)))
                        goto fail;
        rd_kafka_t *rk = rd_kafka_new(type, kc, errstr, sizeof(errstr));
        if (rk)
                return rk;
fail:
        fprintf(stderr, "relayctl: %s\n", errstr);
        rd_kafka_conf_destroy(kc);
        return NULL;
}

/* A registry client for -r, or NULL (the reason printed). */
static relay_registry_t *registry(const struct ctl *c)
{
        char errstr[512];
        relay_registry_conf_t rc = {
            c->registry, getenv("RELAY_SCHEMA_REGISTRY_BASIC_AUTH"), 10000};
        relay_registry_t *reg = relay_registry_new(&rc, errstr, sizeof(errstr));
        if (!reg)
                fprintf(stderr, "relayctl: %s\n", errstr);
        return reg;
}

/* The catalogue, on the registry when -r is given. Binding a subject (a
 * producer's writer) waits out an unreachable registry for 10 s, then
 * fails; a record's new id is asked once, and a record that could not be
 * decoded is shown with the reason. */
relay_schemas_t *schemas(const struct ctl *c)
{
        char errstr[512];
        relay_schemas_t *s =
            relay_schemas_load(c->manifest, errstr, sizeof(errstr));
        if (!s) {
                fprintf(stderr, "relayctl: %s\n", errstr);
                return NULL;
        }
        if (c->registry) {
                relay_registry_t *reg = registry(c);
                if (!reg) {
                        relay_schemas_destroy(s);
                        return NULL;
                }
                relay_schemas_registry_conf_t sc = {
                    .cache_max = 1000,
                    .negative_ttl_ms = 300000,
                    .bind_wait_ms = 10000,
                };
                relay_schemas_use_registry(s, reg, &sc);
        }
        return s;
}

struct produce_opts {
        const char *key_path; /* -k */
        const char *subject;  /* -S */
};

static int produce_opt(int opt, const char *arg, void *ctx)
{
        struct produce_opts *o = ctx;
        if (opt == 'k')
                o->key_path = arg;
        else
                o->subject = arg;
        return 0;
}

static int cmd_produce(const struct ctl *c, int argc, char **argv)
{
        struct produce_opts o = {NULL, NULL};
        char *pos[1];
        int npos =
            command_args(argc, argv, "k:S:", produce_opt, &o, pos, 1);
        if (npos < 0)
                return 2;
        if (npos != 1)
                return usage();
        const char *topic = pos[0], *key_path = o.key_path;
        char subject[300], errstr[1024];
        if (o.subject)
                snprintf(subject, sizeof(subject), "%s", o.subject);
        else
                snprintf(subject, sizeof(subject), "%s-value", topic);
        relay_schemas_t *s = schemas(c);
        if (!s)
                return 1;
        relay_avro_writer_t *w =
            relay_avro_writer_new(s, subject, errstr, sizeof(errstr));
        rd_kafka_t *rk =
            w ? client(c, RD_KAFKA_PRODUCER, NULL, NULL, NULL) : NULL;
        if (!w)
                fprintf(stderr, "relayctl: %s\n", errstr);
        int rc = rk ? 0 : 1;
        char *line = NULL;
        size_t cap = 0, lineno = 0, sent = 0;
        ssize_t n;
        relay_buf_t key;
        relay_buf_init(&key);
        while (rc == 0 && (n = getline(&line, &cap, stdin)) > 0) {
                lineno++;
                if (n == 1 && line[0] == '\n')
                        continue;
                json_error_t jerr;
                json_t *j = json_loadb(line, (size_t)n, 0, &jerr);
                avro_value_t *v = relay_avro_writer_value(w);
                const void *buf;
                size_t len;
                if (!j) {
                        fprintf(stderr, "relayctl: stdin:%zu: %s\n", lineno,
                                jerr.text);
                        rc = 1;
                } else if (relay_avro_from_json(v, j, errstr, sizeof(errstr)) ||
                           relay_avro_writer_encode(w, &buf, &len, errstr,
                                                    sizeof(errstr))) {
                        fprintf(stderr, "relayctl: stdin:%zu: %s\n", lineno,
                                errstr);
                        rc = 1;
                } else {
                        avro_value_t kv;
                        relay_buf_reset(&key);
                        if (key_path && (relay_avro_path(v, key_path, &kv) ||
                                         relay_avro_to_text(&kv, &key))) {
                                fprintf(stderr,
                                        "relayctl: stdin:%zu: no key at %s\n",
                                        lineno, key_path);
                                rc = 1;
                        } else if (relay_kafka_produce(rk, topic, key.data,
                                                       key.len, buf, len, NULL,
                                                       NULL)) {
                                fprintf(stderr, "relayctl: produce failed\n");
                                rc = 1;
                        } else {
                                sent++;
                        }
                }
                json_decref(j);
        }
        free(line);
        relay_buf_free(&key);
        if (rk) {
                rd_kafka_flush(rk, 60000);
                if (rd_kafka_outq_len(rk) > 0) {
                        fprintf(stderr,
                                "relayctl: %d record(s) not delivered\n",
                                rd_kafka_outq_len(rk));
                        rc = 1;
                }
                rd_kafka_destroy(rk);
        }
        if (rc == 0)
                fprintf(stderr, "relayctl: produced %zu record(s) to %s\n",
                        sent, topic);
        relay_avro_writer_destroy(w);
        relay_schemas_destroy(s);
        return rc;
}

/* Decode a framed Avro value for display, with the schema it was
 * written with; NULL with the reason when it is not one. */
json_t *decode_value(relay_schemas_t *s, const rd_kafka_message_t *m,
                            char *errstr, size_t errstr_size)
{
        json_t *v = NULL;
        if (!m->payload)
                return json_null();
        if (relay_avro_decode_written(s, m->payload, m->len, &v, errstr,
                                      errstr_size) != RELAY_OK)
                return NULL;
        return v;
}

int partition_count(rd_kafka_t *rk, const char *topic, int *n, char *errstr,
                    size_t errstr_size)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (!err)
                err = md->topic_cnt == 1 ? md->topics[0].err
                                         : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        int rc = 0;
        if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                relay_seterr(errstr, errstr_size, "topic %s does not exist",
                             topic);
                rc = 1;
        } else if (err) {
                relay_seterr(errstr, errstr_size, "metadata for %s: %s", topic,
                             rd_kafka_err2str(err));
                rc = -1;
        } else {
                *n = md->topics[0].partition_cnt;
        }
        if (md)
                rd_kafka_metadata_destroy(md);
        return rc;
}

int read_topic(const struct ctl *c, const char *topic, record_cb *cb,
               void *arg)
{
        return read_topic_from(c, topic, -1, -1, cb, arg);
}

int read_topic_from(const struct ctl *c, const char *topic, int32_t partition,
                    int64_t from, record_cb *cb, void *arg)
{
        /* A throwaway group: assign() needs none, but librdkafka's consumer
         * poll wants one; nothing is ever committed to it. */
        char group[64];
        snprintf(group, sizeof(group), "relayctl-%ld", (long)getpid());
        rd_kafka_t *rk = client(c, RD_KAFKA_CONSUMER, group, NULL, NULL);
        if (!rk)
                return 1;
        int nparts = 0;
        char errstr[512];
        int rc = partition_count(rk, topic, &nparts, errstr, sizeof(errstr));
        if (rc) {
                fprintf(stderr, "relayctl: %s%s\n", errstr,
                        rc == 1 ? " (no records)" : "");
                rd_kafka_destroy(rk);
                return rc == 1 ? 0 : 1;
        }
        if (partition >= nparts) {
                fprintf(stderr, "relayctl: %s has no partition %d (it has %d)\n",
                        topic, (int)partition, nparts);
                rd_kafka_destroy(rk);
                return 1;
        }
        rd_kafka_topic_partition_list_t *tl =
            rd_kafka_topic_partition_list_new(nparts);
        for (int p = 0; p < nparts; p++)
                if (partition < 0 || p == partition)
                        rd_kafka_topic_partition_list_add(tl, topic, p)
                            ->offset =
                            from >= 0 ? from : RD_KAFKA_OFFSET_BEGINNING;
        if (partition >= 0)
                nparts = 1;
        rd_kafka_assign(rk, tl);
        rd_kafka_topic_partition_list_destroy(tl);
        int eofs = 0, idle = 0;
        while (rc == 0 && eofs < nparts && idle < 300) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
                if (!m) {
                        idle++;
                        continue;
                }
                idle = 0;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                        eofs++;
                else if (m->err) {
                        fprintf(stderr, "relayctl: %s\n",
                                rd_kafka_message_errstr(m));
                        idle += 10; /* persistent errors end the run too */
                } else {
                        rc = cb(m, arg);
                }
                rd_kafka_message_destroy(m);
        }
        if (rc == 0 && eofs < nparts) {
                fprintf(stderr, "relayctl: timed out before the end of %s\n",
                        topic);
                rc = 1;
        }
        rd_kafka_destroy(rk);
        return rc < 0 ? 0 : rc;
}

int print_record(const rd_kafka_message_t *m, void *arg)
{
        char errstr[512];
        json_t *o = json_object();
        json_object_set_new(o, "partition", json_integer(m->partition));
        json_object_set_new(o, "offset", json_integer(m->offset));
        json_object_set_new(o, "key",
                            m->key ? relay_json_text(m->key, m->key_len)
                                   : json_null());
        json_t *hj = json_object();
        rd_kafka_headers_t *h;
        if (!rd_kafka_message_headers(m, &h)) {
                const char *name;
                const void *val;
                size_t size;
                for (size_t i = 0;
                     !rd_kafka_header_get_all(h, i, &name, &val, &size); i++)
                        json_object_set_new(hj, name,
                                            val ? relay_json_text(val, size)
                                                : json_null());
        }
        json_object_set_new(o, "headers", hj);
        json_t *v = decode_value(arg, m, errstr, sizeof(errstr));
        if (v)
                json_object_set_new(o, "value", v);
        else
                json_object_set_new(o, "value_error", json_string(errstr));
        char *text = json_dumps(o, JSON_COMPACT);
        puts(text);
        free(text);
        json_decref(o);
        return 0;
}

static int cmd_consume(const struct ctl *c, const char *topic)
{
        relay_schemas_t *s = schemas(c);
        if (!s)
                return 1;
        int rc = read_topic(c, topic, print_record, s);
        relay_schemas_destroy(s);
        return rc;
}

/* The subjects a schemas command works on: those named, or every subject
 * of the manifest. Each must have a local schema. */
static size_t pick_subjects(const relay_schemas_t *s, int argc, char **argv,
                            const char **out, size_t max)
{
        if (argc == 0)
                return relay_schemas_local_subjects(s, out, max);
        size_t n = 0;
        for (int i = 0; i < argc && n < max; i++) {
                if (!relay_schemas_local(s, argv[i])) {
                        fprintf(stderr,
                                "relayctl: no local schema for subject '%s' "
                                "in the manifest\n",
                                argv[i]);
                        return 0;
                }
                out[n++] = argv[i];
        }
        return n;
}

/* The level the registry applies to subject. Some registries (Apicurio)
 * answer NONE for a subject without a level of its own although the
 * global level applies to it: then the global level is the answer. */
static enum relay_result subject_level(relay_registry_t *reg,
                                       const char *subject, char *level,
                                       size_t size, char *errstr,
                                       size_t errstr_size)
{
        enum relay_result r = relay_registry_get_compat(
            reg, subject, level, size, errstr, errstr_size);
        if (r == RELAY_OK && !strcmp(level, "NONE"))
                r = relay_registry_get_compat(reg, NULL, level, size, errstr,
                                              errstr_size);
        return r;
}

static int cmd_schemas(const struct ctl *c, int argc, char **argv)
{
        const char *level = "BACKWARD";
        int check = !strcmp(argv[0], "check");
        int opt;
        optind = 0;
        while ((opt = getopt(argc, argv, "l:")) != -1)
                if (opt == 'l' && !check)
                        level = optarg;
                else
                        return usage();
        if (!check && strcmp(argv[0], "register"))
                return usage();
        if (!c->registry) {
                fprintf(stderr,
                        "relayctl: schemas %s needs a registry: -r "
                        "URL or RELAY_SCHEMA_REGISTRY_URL\n",
                        argv[0]);
                return 2;
        }
        char errstr[1024], why[2048], have[64];
        relay_schemas_t *s =
            relay_schemas_load(c->manifest, errstr, sizeof(errstr));
        if (!s) {
                fprintf(stderr, "relayctl: %s\n", errstr);
                return 1;
        }
        relay_registry_t *reg = registry(c);
        const char *subjects[256];
        size_t n =
            reg ? pick_subjects(s, argc - optind, argv + optind, subjects, 256)
                : 0;
        int rc = n ? 0 : 1;
        for (size_t i = 0; i < n; i++) {
                const char *subj = subjects[i];
                const char *text = relay_schemas_local_text(s, subj);
                enum relay_result r;
                int ok = 0, not_found = 0;
                int32_t id;
                int version;
                if (check) {
                        r = subject_level(reg, subj, have, sizeof(have), errstr,
                                          sizeof(errstr));
                        if (r == RELAY_OK)
                                r = relay_registry_check(
                                    reg, subj, text, &ok, why, sizeof(why),
                                    &not_found, errstr, sizeof(errstr));
                        if (r == RELAY_FATAL && not_found) {
                                printf("%s: new subject, nothing to be "
                                       "compatible with yet\n",
                                       subj);
                                continue;
                        }
                        if (r == RELAY_OK)
                                printf("%s: %s (%s)%s%s\n", subj,
                                       ok ? "compatible" : "INCOMPATIBLE", have,
                                       *why ? ": " : "", why);
                        if (r == RELAY_OK && ok && !strcmp(have, "NONE"))
                                fprintf(stderr,
                                        "relayctl: warning: %s has "
                                        "compatibility NONE, so nothing is "
                                        "checked\n",
                                        subj);
                } else {
                        r = relay_registry_set_compat(reg, subj, level, errstr,
                                                      sizeof(errstr));
                        if (r == RELAY_OK)
                                r = relay_registry_register(reg, subj, text,
                                                            &id, errstr,
                                                            sizeof(errstr));
                        if (r == RELAY_OK)
                                r = relay_registry_lookup(
                                    reg, subj, text, &id, &version, &not_found,
                                    errstr, sizeof(errstr));
                        ok = r == RELAY_OK;
                        if (ok)
                                printf("%s: id %d, version %d (%s)\n", subj,
                                       (int)id, version, level);
                }
                if (r != RELAY_OK)
                        fprintf(stderr, "relayctl: %s: %s\n", subj, errstr);
                if (!ok)
                        rc = 1;
        }
        relay_registry_destroy(reg);
        relay_schemas_destroy(s);
        return rc;
}

int main(int argc, char **argv)
{
        struct ctl c = {"127.0.0.1:9092", "schemas/manifest.cfg", NULL, {0}, 0};
        const char *env = getenv("RELAY_BOOTSTRAP");
        if (env && *env)
                c.brokers = env;
        env = getenv("RELAY_SCHEMA_REGISTRY_URL");
        if (env && *env)
                c.registry = env;
        int opt;
        relay_log_level = LOG_WARNING;
        while ((opt = getopt(argc, argv, "+b:s:r:X:h")) != -1) {
                switch (opt) {
                case 'b':
                        c.brokers = optarg;
                        break;
                case 'r':
                        c.registry = optarg;
                        break;
                case 's':
                        c.manifest = optarg;
                        break;
                case 'X': {
                        char *eq = strchr(optarg, '=');
                        if (!eq || c.nprops + 2 > 64)
                                return usage();
                        *eq = '\0';
                        c.props[c.nprops++] = optarg;
                        c.props[c.nprops++] = eq + 1;
                        break;
                }
                default:
                        return usage();
                }
        }
        argc -= optind;
        argv += optind;
        if (argc >= 2 && !strcmp(argv[0], "produce"))
                return cmd_produce(&c, argc, argv);
        if (argc == 2 && !strcmp(argv[0], "consume"))
                return cmd_consume(&c, argv[1]);
        if (argc >= 3 && !strcmp(argv[0], "dlq"))
                return cmd_dlq(&c, argc - 1, argv + 1);
        if (argc >= 2 && !strcmp(argv[0], "lag"))
                return cmd_lag(&c, argc, argv);
        if (argc >= 2 && !strcmp(argv[0], "top"))
                return cmd_top(&c, argc, argv);
        if (argc >= 1 && !strcmp(argv[0], "onboard"))
                return cmd_onboard(&c, argc, argv);
        if (argc >= 2 && !strcmp(argv[0], "schemas"))
                return cmd_schemas(&c, argc - 1, argv + 1);
        if (argc >= 1 && !strcmp(argv[0], "sign-link"))
                return cmd_sign_link(argc, argv);
        return usage();
}
