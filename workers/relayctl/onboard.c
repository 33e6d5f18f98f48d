/*
 * relayctl onboard: a tenant's CRM export (CSV) to crm.records, with the
 * e-mails, phones and postal addresses normalised and SHA-256-hashed on
 * this machine, so that their clear text never leaves it (relay/crm.h has
 * the rules; deploy/onboard/crm-example.cfg the column spec).
 *
 * Each row becomes one record keyed "<tenant>/<record id>" (so a CRM
 * record's versions stay in order on one partition), with an event_id
 * made from tenant, source, record id and the row's content hash.
 *
 * What a re-run guarantees: the same row (same record id, same content)
 * gets the same event_id and key in every run, so a consumer that takes
 * event_id as the idempotency key (as every relay consumer does) sees no
 * new effect from a re-run; the record is still written to the topic
 * again unless --delta skips it. A changed row gets a new event_id.
 *
 * --delta with --state DIR: DIR/<tenant>.<source>.state holds record id ->
 * content hash of the rows the last successful run sent or found
 * unchanged; rows with the same hash are not sent. The new state is
 * written (atomically: a temporary file renamed over the old one) only
 * when every record produced was acknowledged by Kafka and the whole file
 * was read, so a crash or a broker failure never marks an unsent row as
 * sent: the next run sends it again (with the same event_id). Record ids
 * of the old state that this file no longer has are counted ("gone") and
 * dropped from the state; nothing is produced for them (crm.records has
 * no deletion record).
 */
#include "relay/avro.h"
#include "relay/crm.h"
#include "relay/csv.h"

#include "relayctl.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ONBOARD_TOPIC   "crm.records"
#define ONBOARD_SUBJECT "crm.records-value"

struct onboard_opts {
        const char *tenant, *file, *source, *map, *country, *state_dir,
            *rejects;
        int delta, dry_run;
};

/* A reason and how many rows had it, for the summary. */
struct count {
        const char *reason;
        size_t n;
};

struct onboard {
        struct onboard_opts o;
        const char *file_base;
        relay_crm_spec_t *spec;
        relay_crm_cols_t *cols;
        relay_schemas_t *schemas;
        relay_avro_writer_t *w;
        rd_kafka_t *rk;
        relay_crm_state_t *prev, *now, *rejected;
        int have_prev;
        FILE *rej;
        int rej_made; /* the rejects file was written */
        char rej_path[4096];
        char state_path[4096];
        relay_crm_row_t row;
        relay_buf_t key;
        int64_t started_ms;
        struct ctl_progress pg;
        int failed; /* a mistake that stops the run (printed) */
        /* counts */
        size_t read, produced, rejected_n, duplicates, unchanged, partial,
            rej_rows;
        struct count reasons[16];
        size_t nreasons;
        size_t left_out[3]; /* e-mail, phone, address */
        /* delivery reports */
        size_t acked, ack_failed, enqueue_failed;
        char ack_error[256];
};

static void count(struct onboard *ob, const char *reason)
{
        size_t i = 0;
        while (i < ob->nreasons && strcmp(ob->reasons[i].reason, reason))
                i++;
        if (i == ob->nreasons) {
                if (i == sizeof(ob->reasons) / sizeof(*ob->reasons))
                        i--; /* more classes than crm.h has: lump them */
                else
                        ob->reasons[ob->nreasons++].reason = reason;
        }
        ob->reasons[i].n++;
}

/* One field in RFC 4180 form: quoted when it holds a comma, a quote, a
 * line end or spaces at either end. */
static void put_field(FILE *f, const char *p, size_t n)
{
        int quote = n && (p[0] == ' ' || p[n - 1] == ' ');
        for (size_t i = 0; i < n && !quote; i++)
                quote = p[i] == ',' || p[i] == '"' || p[i] == '\r' ||
                        p[i] == '\n';
        if (!quote) {
                fwrite(p, 1, n, f);
                return;
        }
        fputc('"', f);
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '"')
                        fputc('"', f);
                fputc(p[i], f);
        }
        fputc('"', f);
}

/* A row of the rejects file: line, reason, detail, the row's fields. */
static void reject_row(struct onboard *ob, const relay_csv_record_t *rec,
                       const char *reason, const char *detail)
{
        fprintf(ob->rej, "%llu,", (unsigned long long)rec->line);
        put_field(ob->rej, reason, strlen(reason));
        fputc(',', ob->rej);
        put_field(ob->rej, detail, strlen(detail));
        for (size_t i = 0; i < rec->nfields; i++) {
                fputc(',', ob->rej);
                put_field(ob->rej, rec->fields[i].p, rec->fields[i].n);
        }
        fputs("\r\n", ob->rej);
        ob->rej_rows++;
}

static void reject(struct onboard *ob, const relay_csv_record_t *rec,
                   const char *reason, const char *detail)
{
        ob->rejected_n++;
        count(ob, reason);
        reject_row(ob, rec, reason, detail);
}

/* Delivery reports: every produced record is counted here, once. */
static void onboard_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
                       void *opaque)
{
        struct onboard *ob = m->_private;
        if (!ob)
                return;
        if (m->err) {
                if (!ob->ack_failed++)
                        snprintf(ob->ack_error, sizeof(ob->ack_error), "%s",
                                 rd_kafka_err2str(m->err));
        } else {
                ob->acked++;
        }
}

static int header(struct onboard *ob, const relay_csv_record_t *rec)
{
        char errstr[512];
        ob->cols = relay_crm_cols_new(ob->spec, rec, errstr, sizeof(errstr));
        if (!ob->cols) {
                fprintf(stderr, "relayctl: %s:1: %s\n", ob->o.file, errstr);
                ob->failed = 1;
                return 1;
        }
        int fd = open(ob->rej_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ob->rej = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!ob->rej) {
                fprintf(stderr, "relayctl: %s: %s\n", ob->rej_path,
                        strerror(errno));
                if (fd >= 0)
                        close(fd);
                ob->failed = 1;
                return 1;
        }
        fputs("line,reason,detail", ob->rej);
        for (size_t i = 0; i < rec->nfields; i++) {
                fputc(',', ob->rej);
                put_field(ob->rej, rec->fields[i].p, rec->fields[i].n);
        }
        fputs("\r\n", ob->rej);
        return 0;
}

/* Produce the row's record; a full queue is waited out serving reports. */
static void produce(struct onboard *ob, const void *buf, size_t len)
{
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(
                    ob->rk, RD_KAFKA_V_TOPIC(ONBOARD_TOPIC),
                    RD_KAFKA_V_KEY(ob->key.data, ob->key.len),
                    RD_KAFKA_V_VALUE((void *)buf, len),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_OPAQUE(ob), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(ob->rk, 100);
        if (err) {
                if (!ob->enqueue_failed++ && !ob->ack_failed)
                        snprintf(ob->ack_error, sizeof(ob->ack_error), "%s",
                                 rd_kafka_err2str(err));
                return;
        }
        ob->produced++;
        rd_kafka_poll(ob->rk, 0);
}

/* The record of a mapped row, encoded and produced. 0, or -1 (printed). */
static int send_row(struct onboard *ob, const relay_csv_record_t *rec)
{
        char event_id[37], errstr[512];
        relay_crm_row_t *r = &ob->row;
        if (relay_crm_event_id(ob->o.tenant, ob->o.source, r->record_id.data,
                               r->record_id.len, r->content_hash, event_id)) {
                fprintf(stderr, "relayctl: onboard: SHA-1 failed\n");
                return -1;
        }
        json_t *j = json_copy(r->content);
        json_object_set_new(j, "event_id", json_string(event_id));
        json_object_set_new(j, "occurred_at", json_integer(ob->started_ms));
        json_object_set_new(j, "tenant", json_string(ob->o.tenant));
        json_object_set_new(j, "source", json_string(ob->o.source));
        json_object_set_new(j, "source_file", json_string(ob->file_base));
        json_object_set_new(j, "source_row", json_integer((json_int_t)rec->line));
        const void *buf;
        size_t len;
        int rc = 0;
        if (ob->o.dry_run) {
                ob->produced++;
        } else if (relay_avro_from_json(relay_avro_writer_value(ob->w), j,
                                        errstr, sizeof(errstr)) ||
                   relay_avro_writer_encode(ob->w, &buf, &len, errstr,
                                            sizeof(errstr))) {
                fprintf(stderr, "relayctl: %s:%llu: cannot encode: %s\n",
                        ob->o.file, (unsigned long long)rec->line, errstr);
                rc = -1;
        } else {
                relay_buf_reset(&ob->key);
                relay_buf_printf(&ob->key, "%s/", ob->o.tenant);
                relay_buf_append(&ob->key, r->record_id.data,
                                 r->record_id.len);
                produce(ob, buf, len);
        }
        json_decref(j);
        return rc;
}

static int onboard_record(const relay_csv_record_t *rec, void *arg)
{
        struct onboard *ob = arg;
        if (!ob->cols)
                return header(ob, rec);
        ob->read++;
        char detail[256];
        if (rec->err) {
                snprintf(detail, sizeof(detail), "column %zu: %s",
                         rec->err_field, rec->err);
                reject(ob, rec, "not CSV", detail);
                return 0;
        }
        size_t want = relay_crm_cols_count(ob->cols);
        if (rec->nfields != want) {
                snprintf(detail, sizeof(detail), "%zu fields, the header has %zu",
                         rec->nfields, want);
                reject(ob, rec, "wrong number of fields", detail);
                return 0;
        }
        relay_crm_row_t *r = &ob->row;
        if (relay_crm_row_map(ob->cols, rec, ob->o.country, r)) {
                if (r->record_id.len)
                        relay_crm_state_put(ob->rejected, r->record_id.data,
                                            r->record_id.len, "", rec->line);
                reject(ob, rec, r->reason, r->detail);
                return 0;
        }
        uint64_t first =
            relay_crm_state_line(ob->now, r->record_id.data, r->record_id.len);
        if (first) {
                ob->duplicates++;
                snprintf(detail, sizeof(detail),
                         "the same record id as line %llu (the row sent)",
                         (unsigned long long)first);
                reject_row(ob, rec, "duplicate", detail);
                return 0;
        }
        relay_crm_state_put(ob->now, r->record_id.data, r->record_id.len,
                            r->content_hash, rec->line);
        if (r->dropped) {
                static const char *const what[] = {"e-mail", "phone",
                                                   "address"};
                char reason[64] = "sent without";
                for (int b = 0; b < 3; b++)
                        if (r->dropped & (1u << b)) {
                                ob->left_out[b]++;
                                strcat(reason, " ");
                                strcat(reason, what[b]);
                        }
                ob->partial++;
                reject_row(ob, rec, reason, r->dropped_detail);
        }
        const char *had =
            relay_crm_state_get(ob->prev, r->record_id.data, r->record_id.len);
        if (ob->o.delta && had && !strcmp(had, r->content_hash)) {
                ob->unchanged++;
                return 0;
        }
        if (send_row(ob, rec)) {
                ob->failed = 1;
                return 1;
        }
        return 0;
}

/* Read the whole file through the CSV reader: 0, or 1 (printed). */
static int read_file(struct onboard *ob, FILE *f)
{
        char errstr[512];
        static char buf[64 * 1024];
        relay_csv_t *csv = relay_csv_new(relay_crm_spec_delimiter(ob->spec),
                                         onboard_record, ob);
        int rc = 0;
        size_t n;
        while (rc == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
                rc = relay_csv_feed(csv, buf, n, errstr, sizeof(errstr));
                ob->pg.done = (int64_t)relay_csv_bytes(csv);
                snprintf(ob->pg.note, sizeof(ob->pg.note), " bytes, %zu rows",
                         ob->read);
                ctl_progress_draw(&ob->pg, 0);
        }
        if (rc == 0 && ferror(f)) {
                fprintf(stderr, "relayctl: %s: %s\n", ob->o.file,
                        strerror(errno));
                rc = 1;
        }
        if (rc == 0)
                rc = relay_csv_finish(csv, errstr, sizeof(errstr));
        if (rc < 0) {
                ctl_progress_clear(&ob->pg);
                fprintf(stderr, "relayctl: %s: %s\n", ob->o.file, errstr);
        }
        if (rc == 0 && !ob->cols) {
                fprintf(stderr, "relayctl: %s: empty: no header line\n",
                        ob->o.file);
                rc = 1;
        }
        relay_csv_destroy(csv);
        return rc ? 1 : 0;
}

/* Wait for the report of every record produced, drawing the count. */
static void wait_reports(struct onboard *ob)
{
        ob->pg.what = "acknowledged";
        ob->pg.total = (int64_t)ob->produced;
        ob->pg.note[0] = '\0';
        while (ob->acked + ob->ack_failed < ob->produced) {
                rd_kafka_flush(ob->rk, 200);
                rd_kafka_poll(ob->rk, 0);
                ob->pg.done = (int64_t)(ob->acked + ob->ack_failed);
                ctl_progress_draw(&ob->pg, 0);
        }
}

static void summary(const struct onboard *ob, size_t gone)
{
        fprintf(stderr,
                "relayctl: onboard %s: %zu rows read, %zu %s, %zu rejected, "
                "%zu duplicates",
                ob->file_base, ob->read, ob->produced,
                ob->o.dry_run ? "would be produced (dry run)" : "produced",
                ob->rejected_n, ob->duplicates);
        if (ob->o.delta)
                fprintf(stderr, ", %zu unchanged", ob->unchanged);
        if (ob->have_prev)
                fprintf(stderr, ", %zu gone", gone);
        fputc('\n', stderr);
        if (ob->nreasons) {
                fprintf(stderr, "relayctl:   rejected:");
                for (size_t i = 0; i < ob->nreasons; i++)
                        fprintf(stderr, "%s %zu %s", i ? "," : "",
                                ob->reasons[i].n, ob->reasons[i].reason);
                fputc('\n', stderr);
        }
        if (ob->partial)
                fprintf(stderr,
                        "relayctl:   sent without an invalid identity: %zu "
                        "rows (e-mail %zu, phone %zu, address %zu)\n",
                        ob->partial, ob->left_out[0], ob->left_out[1],
                        ob->left_out[2]);
        if (ob->rej_made)
                fprintf(stderr,
                        "relayctl:   rejects file: %s (%zu rows: rejected, "
                        "duplicates and rows sent without an identity)\n",
                        ob->rej_path, ob->rej_rows);
        if (ob->have_prev && gone)
                fprintf(stderr,
                        "relayctl:   gone: %zu record ids of the last run's "
                        "state are not in this file (nothing is produced for "
                        "them; they leave the state)\n",
                        gone);
}

static int onboard_opt(int opt, const char *arg, void *ctx)
{
        struct onboard_opts *o = ctx;
        switch (opt) {
        case 't':
                o->tenant = arg;
                break;
        case 'I':
                o->file = arg;
                break;
        case 'O':
                o->source = arg;
                break;
        case 'M':
                o->map = arg;
                break;
        case 'K':
                o->country = arg;
                break;
        case 'L':
                o->state_dir = arg;
                break;
        case 'J':
                o->rejects = arg;
                break;
        case 'A':
                o->delta = 1;
                break;
        case 'D':
                o->dry_run = 1;
                break;
        }
        return 0;
}

/* A tenant or source: letters, digits, '-' and '_' (it names a file). */
static int name_ok(const char *opt, const char *v)
{
        if (v && *v && strlen(v) <= 100 &&
            strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789-_") == strlen(v))
                return 1;
        fprintf(stderr,
                "relayctl: onboard: --%s '%s': 1 to 100 letters, digits, '-' "
                "and '_'\n",
                opt, v ? v : "");
        return 0;
}

static int check_opts(struct onboard_opts *o)
{
        if (!o->tenant || !o->file) {
                fprintf(stderr,
                        "relayctl: onboard: --tenant and --file are needed\n");
                return -1;
        }
        if (!name_ok("tenant", o->tenant) || !name_ok("source", o->source))
                return -1;
        if (o->country && !relay_crm_calling_code(o->country)) {
                fprintf(stderr,
                        "relayctl: onboard: --default-country '%s': not an "
                        "ISO 3166-1 alpha-2 code relay knows (NL, DE, GB, US, "
                        "... see common/crm/normalize.c)\n",
                        o->country);
                return -1;
        }
        if (o->delta && !o->state_dir) {
                fprintf(stderr, "relayctl: onboard: --delta needs --state DIR "
                                "(where the last run's state is)\n");
                return -1;
        }
        return 0;
}

/* Producer, writer and a look at the topic: 0, or 1 (printed). */
static int connect_kafka(const struct ctl *c, struct onboard *ob)
{
        static const char *const extra[] = {"message.timeout.ms", "60000",
                                            NULL};
        char errstr[1024];
        if (!(ob->schemas = schemas(c)))
                return 1;
        ob->w = relay_avro_writer_new(ob->schemas, ONBOARD_SUBJECT, errstr,
                                      sizeof(errstr));
        if (!ob->w) {
                fprintf(stderr, "relayctl: %s\n", errstr);
                return 1;
        }
        if (!(ob->rk = client(c, RD_KAFKA_PRODUCER, NULL, onboard_dr, extra)))
                return 1;
        int n, rc = partition_count(ob->rk, ONBOARD_TOPIC, &n, errstr,
                                    sizeof(errstr));
        if (rc < 0)
                fprintf(stderr,
                        "relayctl: onboard: Kafka at %s did not answer (%s): "
                        "nothing was sent\n",
                        c->brokers, errstr);
        else if (rc > 0)
                fprintf(stderr,
                        "relayctl: onboard: topic %s does not exist: nothing "
                        "was sent\n",
                        ONBOARD_TOPIC);
        return rc ? 1 : 0;
}

int cmd_onboard(const struct ctl *c, int argc, char **argv)
{
        struct onboard ob = {0};
        ob.o.source = "crm";
        char *pos[1], errstr[1024];
        int npos = command_args(argc, argv, "t:I:O:M:K:L:J:AD", onboard_opt,
                                &ob.o, pos, 0);
        if (npos < 0)
                return 2;
        if (check_opts(&ob.o))
                return 2;
        char *dup = relay_strdup(ob.o.file);
        ob.file_base = basename(dup);
        ob.started_ms = relay_now_ms();
        ob.pg.tty = isatty(2);
        ob.pg.what = "reading";
        relay_crm_row_init(&ob.row);
        relay_buf_init(&ob.key);
        ob.prev = relay_crm_state_new();
        ob.now = relay_crm_state_new();
        ob.rejected = relay_crm_state_new();
        snprintf(ob.rej_path, sizeof(ob.rej_path), "%s",
                 ob.o.rejects ? ob.o.rejects : ob.o.file);
        if (!ob.o.rejects)
                strncat(ob.rej_path, ".rejects.csv",
                        sizeof(ob.rej_path) - strlen(ob.rej_path) - 1);
        if (ob.o.state_dir)
                snprintf(ob.state_path, sizeof(ob.state_path), "%s/%s.%s.state",
                         ob.o.state_dir, ob.o.tenant, ob.o.source);
        int rc = 1;
        FILE *f = NULL;
        if (!(ob.spec = relay_crm_spec_load(ob.o.map, errstr,
                                            sizeof(errstr)))) {
                fprintf(stderr, "relayctl: %s\n", errstr);
                goto out;
        }
        if (!(f = fopen(ob.o.file, "rb"))) {
                fprintf(stderr, "relayctl: %s: %s\n", ob.o.file,
                        strerror(errno));
                goto out;
        }
        struct stat st;
        if (!fstat(fileno(f), &st))
                ob.pg.total = st.st_size;
        if (ob.o.state_dir) {
                int l = relay_crm_state_load(ob.prev, ob.state_path, errstr,
                                             sizeof(errstr));
                if (l < 0) {
                        fprintf(stderr, "relayctl: %s\n", errstr);
                        goto out;
                }
                ob.have_prev = l == 0;
                if (ob.o.delta && !ob.have_prev)
                        fprintf(stderr,
                                "relayctl: onboard: no state at %s yet: every "
                                "row is sent\n",
                                ob.state_path);
        }
        if (!ob.o.dry_run && connect_kafka(c, &ob))
                goto out;
        rc = read_file(&ob, f);
        if (ob.rk)
                wait_reports(&ob);
        ctl_progress_clear(&ob.pg);
        if (ob.rej) {
                ob.rej_made = 1;
                if (fclose(ob.rej)) {
                        fprintf(stderr, "relayctl: %s: %s\n", ob.rej_path,
                                strerror(errno));
                        rc = 1;
                }
                ob.rej = NULL;
        }
        size_t gone = relay_crm_state_missing(ob.prev, ob.now, ob.rejected);
        summary(&ob, gone);
        size_t lost = ob.ack_failed + ob.enqueue_failed;
        if (lost) {
                fprintf(stderr,
                        "relayctl: onboard: %zu of %zu records were not "
                        "acknowledged by Kafka (%s)%s; a re-run sends them "
                        "again, with the same event ids\n",
                        lost, ob.produced + ob.enqueue_failed, ob.ack_error,
                        ob.o.state_dir ? " and the state was not written" : "");
                rc = 1;
        } else if (ob.failed || rc) {
                if (ob.o.state_dir && !ob.o.dry_run)
                        fprintf(stderr, "relayctl: onboard: the state was not "
                                        "written\n");
                rc = 1;
        } else if (ob.o.state_dir && !ob.o.dry_run) {
                if (relay_crm_state_save(ob.now, ob.state_path, errstr,
                                         sizeof(errstr))) {
                        fprintf(stderr,
                                "relayctl: onboard: the state was not "
                                "written: %s\n",
                                errstr);
                        rc = 1;
                } else {
                        fprintf(stderr,
                                "relayctl:   state: %s (%zu record ids)\n",
                                ob.state_path,
                                relay_crm_state_count(ob.now));
                }
        }
out:
        if (f)
                fclose(f);
        if (ob.rej)
                fclose(ob.rej);
        if (ob.rk)
                rd_kafka_destroy(ob.rk);
        relay_avro_writer_destroy(ob.w);
        relay_schemas_destroy(ob.schemas);
        relay_crm_cols_destroy(ob.cols);
        relay_crm_spec_destroy(ob.spec);
        relay_crm_state_destroy(ob.prev);
        relay_crm_state_destroy(ob.now);
        relay_crm_state_destroy(ob.rejected);
        relay_crm_row_clear(&ob.row);
        relay_buf_free(&ob.key);
        free(dup);
        return rc;
}
