/*
 * Fuzz target: a CRM export as relayctl onboard reads it (any bytes a
 * client's file may hold). The CSV reader reads the input twice, whole
 * and in chunks of a size the first byte picks, and must hand over the
 * same records and stop (or not) with the same reason either way; every
 * record must be well formed (a mistake names a field it has). The first
 * record is then bound as the header of the default column spec and every
 * row of its width goes through the row mapper, and so through the
 * e-mail, phone and address normalisers; a row that is sent must have
 * a 64-character content hash and a record id.
 */
#include "relay/crm.h"
#include "relay/csv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
        relay_buf_t out; /* the records, serialised */
        const relay_crm_spec_t *spec;
        relay_crm_cols_t *cols;
        relay_crm_row_t row;
        int map;
};

static int on_record(const relay_csv_record_t *rec, void *arg)
{
        struct run *r = arg;
        if (rec->end_line < rec->line || rec->nfields == 0)
                abort();
        if (rec->err && (rec->err_field < 1 || rec->err_field > rec->nfields))
                abort();
        relay_buf_printf(&r->out, "%llu-%llu %zu %s:",
                         (unsigned long long)rec->line,
                         (unsigned long long)rec->end_line, rec->err_field,
                         rec->err ? rec->err : "");
        for (size_t i = 0; i < rec->nfields; i++) {
                if (rec->fields[i].n > RELAY_CSV_RECORD_MAX + 1)
                        abort();
                relay_buf_printf(&r->out, "%zu%c", rec->fields[i].n,
                                 rec->fields[i].quoted ? 'q' : 'u');
                relay_buf_append(&r->out, rec->fields[i].p, rec->fields[i].n);
        }
        relay_buf_append(&r->out, "\n", 1);
        if (!r->map)
                return 0;
        if (!r->cols) {
                r->cols = relay_crm_cols_new(r->spec, rec, NULL, 0);
                if (!r->cols)
                        r->map = 0;
                return 0;
        }
        if (rec->err || rec->nfields != relay_crm_cols_count(r->cols))
                return 0;
        if (relay_crm_row_map(r->cols, rec, "NL", &r->row) == 0) {
                char id[37];
                if (!r->row.content || strlen(r->row.content_hash) != 64 ||
                    !r->row.record_id.len ||
                    relay_crm_event_id("t", "s", r->row.record_id.data,
                                       r->row.record_id.len,
                                       r->row.content_hash, id))
                        abort();
        } else if (!r->row.reason || r->row.content) {
                abort();
        }
        return 0;
}

/* Read data in chunks of step (0: whole); the reason it stopped, or "". */
static void read_all(struct run *r, const uint8_t *data, size_t size,
                     size_t step, char *errstr, size_t errstr_size)
{
        relay_csv_t *c = relay_csv_new(',', on_record, r);
        int rc = 0;
        errstr[0] = '\0';
        if (!step)
                step = size ? size : 1;
        for (size_t off = 0; rc == 0 && off < size; off += step)
                rc = relay_csv_feed(c, data + off,
                                    off + step > size ? size - off : step,
                                    errstr, errstr_size);
        if (rc == 0)
                rc = relay_csv_finish(c, errstr, errstr_size);
        if ((rc != 0) != (errstr[0] != '\0'))
                abort();
        relay_csv_destroy(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static relay_crm_spec_t *spec;
        if (!spec)
                spec = relay_crm_spec_load(NULL, NULL, 0);
        struct run whole = {.spec = spec, .map = 1}, chunks = {.spec = spec};
        relay_buf_init(&whole.out);
        relay_buf_init(&chunks.out);
        relay_crm_row_init(&whole.row);
        relay_crm_row_init(&chunks.row);
        char e1[512], e2[512];
        size_t step = size ? 1 + data[0] % 7 : 1;
        read_all(&whole, data, size, 0, e1, sizeof(e1));
        read_all(&chunks, data, size, step, e2, sizeof(e2));
        if (strcmp(e1, e2) || whole.out.len != chunks.out.len ||
            (whole.out.len &&
             memcmp(whole.out.data, chunks.out.data, whole.out.len)))
                abort();
        relay_buf_free(&whole.out);
        relay_buf_free(&chunks.out);
        relay_crm_row_clear(&whole.row);
        relay_crm_row_clear(&chunks.row);
        relay_crm_cols_destroy(whole.cols);
        relay_crm_cols_destroy(chunks.cols);
        return 0;
}
