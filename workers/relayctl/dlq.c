/*
 * relayctl dlq: the operator's tools for a dead-letter topic.
 *
 *   list   the dead letters the filters select, one JSON line each
 *   show   one dead letter in full, for a person
 *   replay the selected dead letters back to their original topic, once:
 *          a compacted ledger topic <dlq>.replayed, keyed
 *          "<partition>/<offset>" of the dead letter, remembers what was
 *          replayed, and a replay skips it
 *   purge  delete a dead-letter topic's records up to an offset per
 *          partition (Kafka deletes no single record), refused while a
 *          dead letter below it was never replayed
 *
 * The filters (--platform, --connection, --reason, --since/--until, -p,
 * --from/--to) are the same for list, replay and purge.
 *
 * The ledger's guarantee: an entry is written only once the replayed
 * record's delivery report said it was written, so a record is replayed
 * twice only if relayctl dies (or the ledger write fails, which is named
 * and exits 1) between that report and its entry's. Two replays of the
 * same records running at the same time are not fenced from each other.
 */
#include "relay/common.h"
#include "relay/dlq.h"
#include "relay/kafka.h"

#include "relayctl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The stages dlq.c is handed by the workers (relay.stage). */
static const char *const reasons[] = {"decode", "map", "encode", "deliver",
                                      "produce", NULL};

struct filter {
        const char *platform;   /* worker "<stage>-NAME" or topic dlq.NAME */
        const char *connection; /* relay.connection */
        const char *reason;     /* relay.stage */
        int64_t since, until;   /* ms, inclusive; -1: open */
        int32_t partition;      /* -1: all */
        int64_t from, to;       /* offsets, inclusive; -1: open */
};

/* Everything a dlq subcommand takes on its command line. */
struct dlq_opts {
        struct filter f;
        int offset_set; /* show: -o */
        int64_t offset;
        int force, yes, dry_run;
};

/* ms since the epoch of "YYYY-MM-DD[THH:MM[:SS[.fff]]][Z]" (UTC) or of a
 * number of Unix milliseconds: 0, or -1. */
static int parse_time(const char *text, int64_t *ms)
{
        if (*text && strspn(text, "0123456789") == strlen(text)) {
                char *end;
                errno = 0;
                long long v = strtoll(text, &end, 10);
                if (errno)
                        return -1;
                *ms = v;
                return 0;
        }
        struct tm tm = {0};
        int n = 0, frac_n = 0;
        unsigned frac = 0;
        if (sscanf(text, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &n) != 3 || n != 10)
                return -1;
        const char *p = text + n;
        if (*p == 'T' || *p == ' ') {
                int k = 0;
                if (sscanf(p + 1, "%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &k) !=
                        2 || k != 5)
                        return -1;
                p += 1 + k;
                if (*p == ':') {
                        if (sscanf(p + 1, "%2d%n", &tm.tm_sec, &k) != 1 ||
                            k != 2)
                                return -1;
                        p += 1 + k;
                        if (*p == '.') {
                                p++;
                                while (isdigit((unsigned char)*p)) {
                                        if (frac_n < 3) {
                                                frac = frac * 10 +
                                                       (unsigned)(*p - '0');
                                                frac_n++;
                                        }
                                        p++;
                                }
                                while (frac_n < 3) {
                                        frac *= 10;
                                        frac_n++;
                                }
                        }
                }
        }
        if (*p == 'Z')
                p++;
        if (*p || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
            tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
            tm.tm_sec > 60)
                return -1;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        time_t t = timegm(&tm);
        if (t == (time_t)-1)
                return -1;
        *ms = (int64_t)t * 1000 + frac;
        return 0;
}

/* ms as "2024-05-01T12:00:00.000Z". */
static const char *fmt_time(int64_t ms, char *buf, size_t size)
{
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char s[32];
        strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, size, "%s.%03dZ", s, (int)(ms % 1000));
        return buf;
}

static int bad_value(int opt, const char *arg, const char *expected)
{
        const char *name = opt_name(opt);
        fprintf(stderr, "relayctl: %s%s '%s': %s\n", name[0] == '-' ? "" : "--",
                name, arg, expected);
        return -1;
}

static int dlq_opt(int opt, const char *arg, void *ctx)
{
        struct dlq_opts *o = ctx;
        long long v;
        switch (opt) {
        case 'P':
        case 'C':
                if (!*arg)
                        return bad_value(opt, arg, "expected a name");
                *(opt == 'P' ? &o->f.platform : &o->f.connection) = arg;
                break;
        case 'R':
                for (const char *const *r = reasons; *r; r++)
                        if (!strcmp(*r, arg)) {
                                o->f.reason = arg;
                                return 0;
                        }
                return bad_value(opt, arg,
                                 "expected a stage: decode, map, encode, "
                                 "deliver or produce");
        case 'a':
        case 'b':
                if (parse_time(arg, opt == 'a' ? &o->f.since : &o->f.until))
                        return bad_value(opt, arg,
                                         "expected a time in UTC "
                                         "(2024-05-01T12:00:00Z) or Unix "
                                         "milliseconds");
                break;
        case 'p':
                {
                        char *end;
                        errno = 0;
                        v = strtoll(arg, &end, 10);
                        if (*arg < '0' || *arg > '9' || *end || errno ||
                            v > INT32_MAX)
                                return bad_value(opt, arg,
                                                 "expected a partition (a "
                                                 "whole number from 0)");
                }
                o->f.partition = (int32_t)v;
                break;
        case 'F':
        case 'T':
        case 'o':
                {
                        char *end;
                        errno = 0;
                        v = strtoll(arg, &end, 10);
                        if (*arg < '0' || *arg > '9' || *end || errno)
                                return bad_value(opt, arg,
                                                 "expected an offset (a "
                                                 "whole number from 0)");
                }
                if (opt == 'o') {
                        o->offset = v;
                        o->offset_set = 1;
                        return 0;
                }
                *(opt == 'F' ? &o->f.from : &o->f.to) = v;
                break;
        case 'f':
                o->force = 1;
                return 0;
        case 'y':
                o->yes = 1;
                return 0;
        case 'D':
                o->dry_run = 1;
                return 0;
        }
        return 0;
}

/* The value of header name as a string in buf, or NULL. */
static const char *header(const rd_kafka_message_t *m, const char *name,
                          char *buf, size_t size)
{
        rd_kafka_headers_t *h;
        const void *val;
        size_t n;
        if (rd_kafka_message_headers(m, &h) ||
            rd_kafka_header_get_last(h, name, &val, &n) || !val)
                return NULL;
        if (n >= size)
                n = size - 1;
        memcpy(buf, val, n);
        buf[n] = '\0';
        return buf;
}

/* When the record was dead-lettered: relay.failed_at, else its
 * timestamp. */
static int64_t failed_at(const rd_kafka_message_t *m)
{
        char buf[32], *end;
        if (header(m, RELAY_DLQ_H_FAILED_AT, buf, sizeof(buf))) {
                long long v = strtoll(buf, &end, 10);
                if (*buf && !*end)
                        return v;
        }
        return rd_kafka_message_timestamp(m, NULL);
}

/* Whether the filter selects m. */
static int selects(const struct filter *f, const rd_kafka_message_t *m)
{
        char buf[256];
        if (f->partition >= 0 && m->partition != f->partition)
                return 0;
        if ((f->from >= 0 && m->offset < f->from) ||
            (f->to >= 0 && m->offset > f->to))
                return 0;
        if (f->connection &&
            (!header(m, RELAY_DLQ_H_CONNECTION, buf, sizeof(buf)) ||
             strcmp(buf, f->connection)))
                return 0;
        if (f->reason && (!header(m, RELAY_DLQ_H_STAGE, buf, sizeof(buf)) ||
                          strcmp(buf, f->reason)))
                return 0;
        if (f->platform) {
                /* The worker is "deliver-<platform>"; the topic of a
                 * platform's dead letters dlq.<platform>. */
                const char *t = rd_kafka_topic_name(m->rkt);
                size_t n = strlen(f->platform);
                const char *w = header(m, RELAY_DLQ_H_WORKER, buf, sizeof(buf));
                size_t wn = w ? strlen(w) : 0;
                int by_topic = !strncmp(t, "dlq.", 4) &&
                               !strcmp(t + 4, f->platform);
                int by_worker = w && wn > n && w[wn - n - 1] == '-' &&
                                !strcmp(w + wn - n, f->platform);
                if (!by_topic && !by_worker)
                        return 0;
        }
        if (f->since >= 0 || f->until >= 0) {
                int64_t t = failed_at(m);
                if ((f->since >= 0 && t < f->since) ||
                    (f->until >= 0 && t > f->until))
                        return 0;
        }
        return 1;
}

/* Watermarks of every partition of topic through rk: 0 with *lo and *hi
 * (allocated, n of them), 1 when the topic does not exist, -1 (printed). */
static int watermarks(rd_kafka_t *rk, const char *topic, int *n, int64_t **lo,
                      int64_t **hi)
{
        char errstr[512];
        int rc = partition_count(rk, topic, n, errstr, sizeof(errstr));
        if (rc) {
                if (rc < 0)
                        fprintf(stderr, "relayctl: %s\n", errstr);
                return rc;
        }
        *lo = relay_calloc((size_t)*n + 1, sizeof(**lo));
        *hi = relay_calloc((size_t)*n + 1, sizeof(**hi));
        for (int p = 0; p < *n; p++) {
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
                    rk, topic, p, &(*lo)[p], &(*hi)[p], 10000);
                if (err) {
                        fprintf(stderr, "relayctl: watermarks of %s[%d]: %s\n",
                                topic, p, rd_kafka_err2str(err));
                        free(*lo);
                        free(*hi);
                        return -1;
                }
        }
        return 0;
}

/* The records of topic the filter may select: the sum over its
 * partitions of hi - lo, clipped to -p and --from/--to. */
static int64_t span(const struct filter *f, int n, const int64_t *lo,
                    const int64_t *hi)
{
        int64_t sum = 0;
        for (int p = 0; p < n; p++) {
                if (f->partition >= 0 && p != f->partition)
                        continue;
                int64_t a = lo[p], b = hi[p];
                if (f->from > a)
                        a = f->from;
                if (f->to >= 0 && f->to + 1 < b)
                        b = f->to + 1;
                if (b > a)
                        sum += b - a;
        }
        return sum;
}

/* A producer asking for a missing topic's metadata would have the broker
 * create it (with its defaults: the ledger would not be compacted). */
static const char *const no_auto_create[] = {"allow.auto.create.topics",
                                             "false", NULL};

/* --- list ----------------------------------------------------------- */

struct list {
        struct filter f;
        relay_schemas_t *s;
};

static int list_record(const rd_kafka_message_t *m, void *arg)
{
        struct list *l = arg;
        return selects(&l->f, m) ? print_record(m, l->s) : 0;
}

/* --- show ----------------------------------------------------------- */

struct show {
        int64_t offset;
        relay_schemas_t *s;
        int found;
};

static void hex_dump(const unsigned char *p, size_t n)
{
        for (size_t i = 0; i < n; i += 16) {
                printf("  %08zx ", i);
                for (size_t k = i; k < i + 16; k++)
                        if (k < n)
                                printf(" %02x", p[k]);
                        else
                                printf("   ");
                printf("  ");
                for (size_t k = i; k < i + 16 && k < n; k++)
                        putchar(isprint(p[k]) ? p[k] : '.');
                putchar('\n');
        }
}

static int show_record(const rd_kafka_message_t *m, void *arg)
{
        struct show *sh = arg;
        if (m->offset < sh->offset)
                return 0;
        if (m->offset > sh->offset) /* compacted or a transaction marker */
                return -1;
        sh->found = 1;
        char tbuf[40], errstr[512];
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(m, &tt);
        printf("topic:     %s\npartition: %d\noffset:    %lld\n",
               rd_kafka_topic_name(m->rkt), (int)m->partition,
               (long long)m->offset);
        if (ts >= 0)
                printf("timestamp: %s (%lld, %s)\n",
                       fmt_time(ts, tbuf, sizeof(tbuf)), (long long)ts,
                       tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "log append"
                                                                 : "create");
        if (m->key)
                printf("key:       %.*s\n", (int)m->key_len,
                       (const char *)m->key);
        else
                printf("key:       (null)\n");
        rd_kafka_headers_t *h;
        printf("headers:\n");
        if (!rd_kafka_message_headers(m, &h)) {
                const char *name;
                const void *val;
                size_t size;
                for (size_t i = 0;
                     !rd_kafka_header_get_all(h, i, &name, &val, &size); i++) {
                        printf("  %s: %.*s", name, val ? (int)size : 6,
                               val ? (const char *)val : "(null)");
                        char *end;
                        long long v =
                            val ? strtoll((const char *)val, &end, 10) : 0;
                        if (!strcmp(name, RELAY_DLQ_H_FAILED_AT) && v > 0 &&
                            end == (const char *)val + size)
                                printf(" (%s)", fmt_time(v, tbuf, sizeof(tbuf)));
                        putchar('\n');
                }
        }
        const unsigned char *p = m->payload;
        json_t *v = decode_value(sh->s, m, errstr, sizeof(errstr));
        if (!m->payload) {
                printf("value:     (null)\n");
        } else if (v) {
                long id = m->len >= 5 ? (long)p[1] << 24 | (long)p[2] << 16 |
                                            (long)p[3] << 8 | (long)p[4]
                                      : -1;
                char *text = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);
                printf("value (%zu bytes, schema id %ld):\n%s\n", m->len, id,
                       text ? text : "");
                free(text);
        } else {
                printf("value (%zu bytes, not decodable: %s):\n", m->len,
                       errstr);
                hex_dump(p, m->len);
        }
        json_decref(v);
        return -1;
}

/* --- the replay ledger ---------------------------------------------- */

/* The dead letters the ledger says were replayed, sorted. */
struct ledger {
        char topic[300];
        int exists;
        struct lentry {
                int32_t partition;
                int64_t offset;
                size_t seq;  /* the order read, so the last entry wins */
                int present; /* 0: a tombstone */
        } *e;
        size_t n;
};

static int ledger_record(const rd_kafka_message_t *m, void *arg)
{
        struct ledger *l = arg;
        char key[64];
        int p;
        long long o;
        int k = 0;
        if (!m->key || m->key_len >= sizeof(key))
                return 0;
        memcpy(key, m->key, m->key_len);
        key[m->key_len] = '\0';
        if (sscanf(key, "%d/%lld%n", &p, &o, &k) != 2 || key[k])
                return 0;
        l->e = relay_realloc(l->e, (l->n + 1) * sizeof(*l->e));
        l->e[l->n] = (struct lentry){p, o, l->n, m->payload != NULL};
        l->n++;
        return 0;
}

static int lentry_cmp(const void *a, const void *b)
{
        const struct lentry *x = a, *y = b;
        if (x->partition != y->partition)
                return x->partition < y->partition ? -1 : 1;
        if (x->offset != y->offset)
                return x->offset < y->offset ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Read topic's ledger (none yet: empty, l->exists 0): 0, or 1 (printed). */
static int ledger_read(const struct ctl *c, rd_kafka_t *rk, const char *topic,
                       struct ledger *l)
{
        char errstr[512];
        int n;
        snprintf(l->topic, sizeof(l->topic), "%s.replayed", topic);
        int rc = partition_count(rk, l->topic, &n, errstr, sizeof(errstr));
        if (rc < 0) {
                fprintf(stderr, "relayctl: replay ledger: %s\n", errstr);
                return 1;
        }
        l->exists = rc == 0;
        if (l->exists && read_topic(c, l->topic, ledger_record, l))
                return 1;
        if (l->n) /* qsort's base may not be NULL, even for none */
                qsort(l->e, l->n, sizeof(*l->e), lentry_cmp);
        /* Keep each key's last entry. */
        size_t k = 0;
        for (size_t i = 0; i < l->n; i++) {
                if (k && l->e[k - 1].partition == l->e[i].partition &&
                    l->e[k - 1].offset == l->e[i].offset)
                        k--;
                l->e[k++] = l->e[i];
        }
        l->n = k;
        return 0;
}

static int ledger_has(const struct ledger *l, int32_t partition, int64_t offset)
{
        struct lentry key = {partition, offset, 0, 0};
        size_t a = 0, b = l->n;
        while (a < b) {
                size_t mid = (a + b) / 2;
                key.seq = l->e[mid].seq;
                int c = lentry_cmp(&key, &l->e[mid]);
                if (!c)
                        return l->e[mid].present;
                if (c < 0)
                        b = mid;
                else
                        a = mid + 1;
        }
        return 0;
}

/* Create the ledger, compacted, if missing: 0, or -1 with errstr. */
static int ledger_create(rd_kafka_t *rk, struct ledger *l, char *errstr,
                         size_t errstr_size)
{
        static const char *const compact[] = {"cleanup.policy", "compact",
                                              NULL};
        if (l->exists)
                return 0;
        if (relay_kafka_topic_ensure(rk, l->topic, 1, compact, errstr,
                                     errstr_size) < 0)
                return -1;
        l->exists = 1;
        return 0;
}

/* --- replay --------------------------------------------------------- */

/* A delivery report's target: the replayed record's or its ledger
 * entry's. The ack comes first: librdkafka hands back the pointer
 * relay_kafka_produce() was given, and replay_dr() reads it as this. */
struct rack {
        relay_kafka_ack_t ack;
        struct replayed *r;
};

/* One dead letter put back: where from and to, and its two reports. */
struct replayed {
        struct rack rec, entry;
        char from[300]; /* "<dlq topic>[<partition>]@<offset>" */
        char to[256];
        int32_t partition;
        int64_t offset;
        const char *error; /* set when it never reached the producer */
        const char *ledger_topic; /* borrowed from struct replay */
};

struct replay {
        rd_kafka_t *producer;
        struct dlq_opts o;
        struct ledger ledger;
        struct ctl_progress pg;
        struct replayed **items; /* each its own allocation: librdkafka
                                  * holds pointers to them */
        size_t n;
        size_t skipped, filtered_out, would;
};

/* The ledger entry of a record whose replay was acknowledged. Produced
 * from the delivery report, on the application thread (inside poll or
 * flush), without waiting on a full queue (that would wait on itself). */
static void ledger_write(rd_kafka_t *rk, struct replayed *r)
{
        char key[64];
        snprintf(key, sizeof(key), "%d/%lld", (int)r->partition,
                 (long long)r->offset);
        json_t *v = json_pack("{sIsssisI}", "replayed_at",
                              (json_int_t)relay_now_ms(), "to", r->to,
                              "partition", (int)r->rec.ack.partition, "offset",
                              (json_int_t)r->rec.ack.offset);
        char *text = json_dumps(v, JSON_COMPACT);
        json_decref(v);
        r->entry.r = r;
        rd_kafka_resp_err_t err = relay_kafka_produce_once(
            rk, r->ledger_topic, key, strlen(key), text, strlen(text), NULL,
            &r->entry.ack, 0);
        free(text);
        if (err) {
                r->entry.ack.err = err;
                r->entry.ack.done = 1;
        }
}

/* Delivery reports of the replay producer (relayctl's own client, not
 * relay_kafka_producer_new(), so the callback is ours). */
static void replay_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        struct rack *a = m->_private;
        if (!a)
                return;
        a->ack.err = m->err;
        a->ack.partition = m->partition;
        a->ack.offset = m->offset;
        a->ack.done = 1;
        if (a == &a->r->rec && !m->err)
                ledger_write(rk, a->r);
}

static struct replayed *replay_item(struct replay *rp,
                                    const rd_kafka_message_t *m)
{
        struct replayed *r = relay_calloc(1, sizeof(*r));
        snprintf(r->from, sizeof(r->from), "%s[%d]@%lld",
                 rd_kafka_topic_name(m->rkt), (int)m->partition,
                 (long long)m->offset);
        r->partition = m->partition;
        r->offset = m->offset;
        r->rec.r = r->entry.r = r;
        r->ledger_topic = rp->ledger.topic;
        rp->items = relay_realloc(rp->items, (rp->n + 1) * sizeof(*rp->items));
        rp->items[rp->n++] = r;
        return r;
}

/* Produce a dead letter back to its original topic: same key, value and
 * headers, less the relay.* ones, plus relay.replayed_from. Only
 * relay.connection stays: the transform then re-applies that one
 * connection, and destinations that took the record get no duplicate. A
 * record that cannot be replayed is noted and the read goes on, so the
 * summary names every one. One the ledger has is skipped. */
static int replay_record(const rd_kafka_message_t *m, void *arg)
{
        struct replay *rp = arg;
        ctl_progress_tick(&rp->pg);
        rd_kafka_poll(rp->producer, 0); /* reports, and so ledger entries */
        if (!selects(&rp->o.f, m)) {
                rp->filtered_out++;
                return 0;
        }
        char to[256];
        const char *tp = header(m, RELAY_DLQ_H_TOPIC, to, sizeof(to));
        if (ledger_has(&rp->ledger, m->partition, m->offset)) {
                rp->skipped++;
                if (rp->o.dry_run) {
                        ctl_progress_clear(&rp->pg);
                        printf("already replayed %s[%d]@%lld\n",
                               rd_kafka_topic_name(m->rkt), (int)m->partition,
                               (long long)m->offset);
                }
                return 0;
        }
        if (rp->o.dry_run) {
                rp->would++;
                ctl_progress_clear(&rp->pg);
                printf("would replay %s[%d]@%lld to %s\n",
                       rd_kafka_topic_name(m->rkt), (int)m->partition,
                       (long long)m->offset, tp ? tp : "(no original topic)");
                return 0;
        }
        struct replayed *r = replay_item(rp, m);
        rd_kafka_headers_t *h = NULL;
        const void *val;
        size_t size;
        if (rd_kafka_message_headers(m, &h) ||
            rd_kafka_header_get_last(h, RELAY_DLQ_H_TOPIC, &val, &size) ||
            !val || size == 0 || size >= sizeof(r->to)) {
                r->error =
                    "no " RELAY_DLQ_H_TOPIC " header: not a relay dead letter";
                return 0;
        }
        memcpy(r->to, val, size);
        r->to[size] = '\0';
        if (!rd_kafka_header_get_last(h, RELAY_DLQ_H_OMITTED, &val, &size)) {
                /* Replaying it would send an empty value in its place. */
                r->error = "a stub dead letter (" RELAY_DLQ_H_OMITTED
                           "): the record's value was too large to keep, so "
                           "there is nothing to replay; fetch it from its "
                           "origin (relay.original_topic/partition/offset)";
                return 0;
        }
        rd_kafka_headers_t *out = rd_kafka_headers_new(8);
        const char *name;
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &size);
             i++)
                if (strncmp(name, "relay.", 6) ||
                    !strcmp(name, RELAY_DLQ_H_CONNECTION))
                        rd_kafka_header_add(out, name, -1, val, (ssize_t)size);
        relay_kafka_header_addf(out, RELAY_DLQ_H_REPLAYED, "%s/%d/%lld",
                                rd_kafka_topic_name(m->rkt), (int)m->partition,
                                (long long)m->offset);
        rd_kafka_resp_err_t err =
            relay_kafka_produce(rp->producer, r->to, m->key, m->key_len,
                                m->payload, m->len, out, &r->rec.ack);
        if (err) { /* no report will come */
                r->rec.ack.err = err;
                r->rec.ack.done = 1;
        }
        if (!rp->pg.tty)
                fprintf(stderr, "relayctl: replaying %s to %s\n", r->from,
                        r->to);
        return 0;
}

/* The summary: every failure with its reason, then the counts. Returns
 * the number that failed. */
static size_t replay_summary(const struct replay *rp, const char *dlq)
{
        size_t ok = 0, failed = 0;
        for (size_t i = 0; i < rp->n; i++) {
                const struct replayed *r = rp->items[i];
                const char *why = r->error;
                if (!why && !r->rec.ack.done)
                        why = "no delivery report (timed out)";
                else if (!why && r->rec.ack.err)
                        why = rd_kafka_err2str(r->rec.ack.err);
                if (!why) {
                        ok++;
                        if (!r->entry.ack.done || r->entry.ack.err)
                                fprintf(stderr,
                                        "relayctl: FAILED %s to %s: replayed, "
                                        "but its entry in %s was not "
                                        "written (%s): a later replay "
                                        "would replay it again\n",
                                        r->from, r->to, rp->ledger.topic,
                                        r->entry.ack.done
                                            ? rd_kafka_err2str(
                                                  r->entry.ack.err)
                                            : "no delivery report");
                        if (!r->entry.ack.done || r->entry.ack.err)
                                failed++, ok--;
                        continue;
                }
                failed++;
                fprintf(stderr, "relayctl: FAILED %s%s%s: %s\n", r->from,
                        *r->to ? " to " : "", r->to, why);
        }
        /* The first clauses as before the ledger, so that scripts reading
         * "replayed N record(s) from T, M failed" still match. */
        fprintf(stderr, "relayctl: replayed %zu record(s) from %s, %zu failed",
                ok, dlq, failed);
        if (rp->skipped)
                fprintf(stderr, ", %zu already replayed", rp->skipped);
        if (rp->filtered_out)
                fprintf(stderr, ", %zu filtered out", rp->filtered_out);
        fputc('\n', stderr);
        if (failed)
                fprintf(stderr,
                        "relayctl: dlq replay: %zu of %zu record(s) were not "
                        "replayed (listed above); keep them in %s\n",
                        failed, rp->n, dlq);
        return failed;
}

static int cmd_replay(const struct ctl *c, const char *topic,
                      const struct dlq_opts *o)
{
        struct replay rp = {0};
        rp.o = *o;
        rp.pg.tty = isatty(2);
        rp.pg.what = "replaying";
        char errstr[512];
        int n, rc = 1;
        int64_t *lo = NULL, *hi = NULL;
        if (!(rp.producer =
                  client(c, RD_KAFKA_PRODUCER, NULL, replay_dr, no_auto_create)))
                return 1;
        int w = watermarks(rp.producer, topic, &n, &lo, &hi);
        if (w) {
                if (w > 0)
                        fprintf(stderr, "relayctl: topic %s does not exist\n",
                                topic);
                goto out;
        }
        rp.pg.total = span(&rp.o.f, n, lo, hi);
        if (ledger_read(c, rp.producer, topic, &rp.ledger))
                goto out;
        if (!rp.o.dry_run &&
            ledger_create(rp.producer, &rp.ledger, errstr, sizeof(errstr))) {
                fprintf(stderr,
                        "relayctl: dlq replay: cannot create the replay ledger "
                        "%s (a compacted topic, cleanup.policy=compact): %s; "
                        "not replaying, as without it a second replay would "
                        "deliver the same records again\n",
                        rp.ledger.topic, errstr);
                goto out;
        }
        int32_t p = rp.o.f.partition;
        if (p >= n) {
                fprintf(stderr, "relayctl: %s has no partition %d (it has %d)\n",
                        topic, (int)p, n);
                goto out;
        }
        rc = read_topic_from(c, topic, p,
                             p >= 0 && rp.o.f.from > lo[p] ? rp.o.f.from : -1,
                             replay_record, &rp);
        rd_kafka_flush(rp.producer, 60000);
        rd_kafka_poll(rp.producer, 0); /* reports of the last batch */
        rd_kafka_flush(rp.producer, 30000); /* the last ledger entries */
        rd_kafka_poll(rp.producer, 0);
        ctl_progress_clear(&rp.pg);
        if (rp.o.dry_run) {
                fprintf(stderr,
                        "relayctl: dry run: would replay %zu record(s) from "
                        "%s, %zu already replayed, %zu filtered out%s\n",
                        rp.would, topic, rp.skipped, rp.filtered_out,
                        rp.ledger.exists ? "" : " (no ledger yet)");
        } else if (replay_summary(&rp, topic)) {
                rc = 1;
        }
out:
        rd_kafka_destroy(rp.producer);
        for (size_t i = 0; i < rp.n; i++)
                free(rp.items[i]);
        free(rp.items);
        free(rp.ledger.e);
        free(lo);
        free(hi);
        return rc;
}

/* --- purge ---------------------------------------------------------- */

struct purge {
        struct filter f;
        int n;
        int64_t *cut;   /* per partition: delete below this, or -1 */
        int64_t **offs; /* per partition: the offsets read */
        size_t *noffs;
        struct ctl_progress pg;
};

static int purge_record(const rd_kafka_message_t *m, void *arg)
{
        struct purge *pu = arg;
        int32_t p = m->partition;
        ctl_progress_tick(&pu->pg);
        if (p >= pu->n)
                return 0;
        pu->offs[p] = relay_realloc(pu->offs[p],
                                    (pu->noffs[p] + 1) * sizeof(**pu->offs));
        pu->offs[p][pu->noffs[p]++] = m->offset;
        if (selects(&pu->f, m) && m->offset + 1 > pu->cut[p])
                pu->cut[p] = m->offset + 1;
        return 0;
}

/* Delete the records of topic below cut[p] in each partition p with
 * cut[p] >= 0: 0 with the new low watermarks in lo, or 1 (printed). */
static int delete_records(rd_kafka_t *rk, const char *topic, int n,
                          const int64_t *cut, int64_t *lo)
{
        rd_kafka_topic_partition_list_t *tl =
            rd_kafka_topic_partition_list_new(n);
        for (int p = 0; p < n; p++)
                if (cut[p] >= 0)
                        rd_kafka_topic_partition_list_add(tl, topic, p)
                            ->offset = cut[p];
        rd_kafka_DeleteRecords_t *del = rd_kafka_DeleteRecords_new(tl);
        rd_kafka_topic_partition_list_destroy(tl);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *ao =
            rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETERECORDS);
        rd_kafka_AdminOptions_set_operation_timeout(ao, 30000, NULL, 0);
        rd_kafka_DeleteRecords(rk, &del, 1, ao, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
        int rc = 1;
        if (!ev) {
                fprintf(stderr, "relayctl: dlq purge: no answer to "
                                "DeleteRecords in 60 s\n");
        } else if (rd_kafka_event_error(ev)) {
                fprintf(stderr, "relayctl: dlq purge: %s\n",
                        rd_kafka_event_error_string(ev));
        } else {
                const rd_kafka_topic_partition_list_t *res =
                    rd_kafka_DeleteRecords_result_offsets(
                        rd_kafka_event_DeleteRecords_result(ev));
                rc = 0;
                for (int i = 0; res && i < res->cnt; i++) {
                        const rd_kafka_topic_partition_t *tp = &res->elems[i];
                        if (tp->err) {
                                fprintf(stderr,
                                        "relayctl: dlq purge: %s[%d]: %s\n",
                                        topic, (int)tp->partition,
                                        rd_kafka_err2str(tp->err));
                                rc = 1;
                        } else if (tp->partition < n) {
                                lo[tp->partition] = tp->offset;
                        }
                }
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(ao);
        rd_kafka_queue_destroy(q);
        rd_kafka_DeleteRecords_destroy(del);
        return rc;
}

/* Ask on the terminal: 1 when the answer is "yes". */
static int confirmed(const char *question)
{
        char line[64];
        fprintf(stderr, "%s\nType yes to delete: ", question);
        fflush(stderr);
        if (!fgets(line, sizeof(line), stdin))
                return 0;
        line[strcspn(line, "\r\n")] = '\0';
        return !strcmp(line, "yes");
}

static int cmd_purge(const struct ctl *c, const char *topic,
                     const struct dlq_opts *o)
{
        struct purge pu = {0};
        struct ledger ledger = {0};
        int64_t *lo = NULL, *hi = NULL, *was = NULL;
        int n, rc = 1;
        pu.f = o->f;
        pu.pg.tty = isatty(2);
        pu.pg.what = "reading";
        rd_kafka_t *rk =
            client(c, RD_KAFKA_PRODUCER, NULL, NULL, no_auto_create);
        if (!rk)
                return 1;
        int w = watermarks(rk, topic, &n, &lo, &hi);
        if (w) {
                if (w > 0)
                        fprintf(stderr, "relayctl: topic %s does not exist\n",
                                topic);
                goto out;
        }
        if (o->f.partition >= n) {
                fprintf(stderr, "relayctl: %s has no partition %d (it has %d)\n",
                        topic, (int)o->f.partition, n);
                goto out;
        }
        pu.n = n;
        pu.cut = relay_calloc((size_t)n, sizeof(*pu.cut));
        pu.offs = relay_calloc((size_t)n, sizeof(*pu.offs));
        pu.noffs = relay_calloc((size_t)n, sizeof(*pu.noffs));
        for (int p = 0; p < n; p++)
                pu.cut[p] = -1;
        /* Every record below the cut is read, selected or not: the
         * unreplayed check covers what the deletion takes, not only what
         * the filters chose. */
        struct filter all = {NULL, NULL, NULL, -1, -1, o->f.partition, -1, -1};
        pu.pg.total = span(&all, n, lo, hi);
        if (read_topic_from(c, topic, o->f.partition, -1, purge_record, &pu) ||
            ledger_read(c, rk, topic, &ledger))
                goto out;
        ctl_progress_clear(&pu.pg);
        size_t unreplayed = 0, npurge = 0;
        char first[320] = "";
        for (int p = 0; p < n; p++)
                for (size_t i = 0; i < pu.noffs[p]; i++) {
                        int64_t off = pu.offs[p][i];
                        if (off >= pu.cut[p])
                                continue;
                        npurge++;
                        if (ledger_has(&ledger, p, off))
                                continue;
                        if (!unreplayed++)
                                snprintf(first, sizeof(first), "%s[%d]@%lld",
                                         topic, p, (long long)off);
                }
        int any = 0;
        for (int p = 0; p < n; p++)
                if (pu.cut[p] > lo[p])
                        any = 1;
        if (!any) {
                fprintf(stderr,
                        "relayctl: dlq purge: nothing to purge in %s (the "
                        "filters select no record)\n",
                        topic);
                rc = 0;
                goto out;
        }
        if (unreplayed && !o->force) {
                fprintf(stderr,
                        "relayctl: dlq purge: refusing: %zu dead letter(s) "
                        "of %s below the purge point were never replayed "
                        "(per %s), the first %s; replay them first, or "
                        "--force to delete them anyway\n",
                        unreplayed, topic, ledger.topic, first);
                goto out;
        }
        char plan[4096];
        size_t len = 0;
        for (int p = 0; p < n; p++)
                if (pu.cut[p] > lo[p] && len < sizeof(plan))
                        len += (size_t)snprintf(
                            plan + len, sizeof(plan) - len,
                            "%spartition %d below offset %lld (%lld record(s))",
                            len ? ", " : "", p, (long long)pu.cut[p],
                            (long long)(pu.cut[p] - lo[p]));
        if (o->dry_run) {
                printf("would purge %s: %s\n", topic, plan);
                fprintf(stderr,
                        "relayctl: dry run: would purge %zu record(s) of %s, "
                        "%zu of them never replayed\n",
                        npurge, topic, unreplayed);
                rc = 0;
                goto out;
        }
        if (!o->yes) {
                char q[4200];
                snprintf(q, sizeof(q), "relayctl: delete from %s: %s?", topic,
                         plan);
                if (!isatty(0)) {
                        fprintf(stderr,
                                "relayctl: dlq purge: refusing: stdin is not "
                                "a terminal to confirm on; pass --yes to "
                                "delete (%s)\n",
                                plan);
                        goto out;
                }
                if (!confirmed(q)) {
                        fprintf(stderr, "relayctl: dlq purge: not confirmed; "
                                        "nothing deleted\n");
                        goto out;
                }
        }
        was = relay_calloc((size_t)n, sizeof(*was));
        memcpy(was, lo, (size_t)n * sizeof(*was));
        for (int p = 0; p < n; p++)
                if (pu.cut[p] <= lo[p])
                        pu.cut[p] = -1;
        rc = delete_records(rk, topic, n, pu.cut, lo);
        fprintf(stderr, "relayctl: purged %s:", topic);
        for (int p = 0, k = 0; p < n; p++)
                if (pu.cut[p] >= 0)
                        fprintf(stderr, "%s partition %d: %lld record(s), now from offset %lld",
                                k++ ? "," : "", p,
                                (long long)(lo[p] - was[p]), (long long)lo[p]);
        fputc('\n', stderr);
out:
        if (pu.offs)
                for (int p = 0; p < pu.n; p++)
                        free(pu.offs[p]);
        free(pu.offs);
        free(pu.noffs);
        free(pu.cut);
        free(ledger.e);
        free(lo);
        free(hi);
        free(was);
        rd_kafka_destroy(rk);
        return rc;
}

/* --- the command ---------------------------------------------------- */

int cmd_dlq(const struct ctl *c, int argc, char **argv)
{
        const char *sub = argv[0];
        struct dlq_opts o = {.f = {NULL, NULL, NULL, -1, -1, -1, -1, -1}};
        const char *optstring;
        if (!strcmp(sub, "show"))
                optstring = "p:o:";
        else if (!strcmp(sub, "list"))
                optstring = "p:P:C:R:a:b:F:T:";
        else if (!strcmp(sub, "replay"))
                optstring = "p:o:P:C:R:a:b:F:T:D";
        else if (!strcmp(sub, "purge"))
                optstring = "p:P:C:R:a:b:F:T:fyD";
        else
                return usage();
        char *pos[1];
        int npos = command_args(argc, argv, optstring, dlq_opt, &o, pos, 1);
        if (npos < 0)
                return 2;
        if (npos != 1)
                return usage();
        if (o.f.from >= 0 && o.f.to >= 0 && o.f.from > o.f.to) {
                fprintf(stderr,
                        "relayctl: --from %lld is after --to %lld: the range "
                        "is empty\n",
                        (long long)o.f.from, (long long)o.f.to);
                return 2;
        }
        if (o.f.since >= 0 && o.f.until >= 0 && o.f.since > o.f.until) {
                fprintf(stderr,
                        "relayctl: --since is after --until: the range is "
                        "empty\n");
                return 2;
        }
        /* replay -o O: the one record at -p P, offset O, as before. */
        if (!strcmp(sub, "replay") && o.offset_set)
                o.f.from = o.f.to = o.offset;
        if (!strcmp(sub, "show")) {
                if (o.f.partition < 0 || !o.offset_set) {
                        fprintf(stderr, "relayctl: dlq show needs -p "
                                        "PARTITION and -o OFFSET\n");
                        return 2;
                }
                struct show sh = {o.offset, schemas(c), 0};
                if (!sh.s)
                        return 1;
                rd_kafka_t *rk =
                    client(c, RD_KAFKA_PRODUCER, NULL, NULL, no_auto_create);
                int64_t lo = 0, hi = 0;
                rd_kafka_resp_err_t err =
                    rk ? rd_kafka_query_watermark_offsets(
                             rk, pos[0], o.f.partition, &lo, &hi, 10000)
                       : RD_KAFKA_RESP_ERR__FAIL;
                int rc = 1;
                if (rk)
                        rd_kafka_destroy(rk);
                if (err)
                        fprintf(stderr, "relayctl: %s[%d]: %s\n", pos[0],
                                (int)o.f.partition, rd_kafka_err2str(err));
                else if (o.offset < lo || o.offset >= hi)
                        fprintf(stderr,
                                "relayctl: %s[%d] has no record at offset "
                                "%lld (it holds offsets %lld to %lld)\n",
                                pos[0], (int)o.f.partition,
                                (long long)o.offset, (long long)lo,
                                (long long)hi - 1);
                else if ((rc = read_topic_from(c, pos[0], o.f.partition,
                                               o.offset, show_record, &sh)) ==
                             0 &&
                         !sh.found) {
                        fprintf(stderr,
                                "relayctl: %s[%d] has no record at offset "
                                "%lld (a transaction marker, or compacted)\n",
                                pos[0], (int)o.f.partition,
                                (long long)o.offset);
                        rc = 1;
                }
                relay_schemas_destroy(sh.s);
                return rc;
        }
        if (!strcmp(sub, "list")) {
                struct list l = {o.f, schemas(c)};
                if (!l.s)
                        return 1;
                int rc = read_topic(c, pos[0], list_record, &l);
                relay_schemas_destroy(l.s);
                return rc;
        }
        if (!strcmp(sub, "replay"))
                return cmd_replay(c, pos[0], &o);
        return cmd_purge(c, pos[0], &o);
}
