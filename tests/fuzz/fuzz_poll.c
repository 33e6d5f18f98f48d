/*
 * Fuzz target: a polled source's answer, as relay-poll reads it: parsed
 * with cursor and with numbered pages, each record mapped to a
 * loyalty.events record and that encoded with the topic's Avro writer, as
 * the worker does. The answer may be anything; nothing may crash, leak or
 * read out of bounds, and a mapped record must always encode.
 */
#include "fuzz_catalogue.h"
#include "relay/poll.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *kinds[] = {"customer_id", "email"};
static char *paths[] = {"customer", "profile.email"};

/* A source as a file would give it: cursor pages of 10, records at data. */
static void source_init(relay_poll_source_t *s, enum relay_poll_paging kind,
                        enum relay_poll_time_format when)
{
        memset(s, 0, sizeof(*s));
        s->name = "fuzz";
        s->tenant = "acme";
        s->platform = "antavo";
        s->records = kind == RELAY_POLL_PAGING_PAGE ? "" : "data";
        s->paging_kind = kind;
        s->next = "meta.next";
        s->page_size = 10;
        s->map_event_id = "id";
        s->map_occurred_at = "created_at";
        s->map_time_format = "iso8601";
        s->record_format = when;
        s->map_event_type = "action";
        s->map_data = kind == RELAY_POLL_PAGING_PAGE ? "" : "data";
        s->map_key = "";
        s->id_kind = kinds;
        s->id_path = paths;
        s->nids = 2;
}

static relay_schemas_t *schemas;
static relay_avro_writer_t *w;
static relay_poll_source_t src[2];

static void fini(void)
{
        relay_avro_writer_destroy(w);
        relay_schemas_destroy(schemas);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char err[512];
        if (!schemas) {
                relay_avro_reader_t *r;
                schemas = fuzz_catalogue("fuzz_poll", "loyalty.events-value",
                                         &r);
                relay_avro_reader_destroy(r);
                if (!(w = relay_avro_writer_new(schemas, "loyalty.events-value",
                                                err, sizeof(err)))) {
                        fprintf(stderr, "fuzz_poll: %s\n", err);
                        abort();
                }
                source_init(&src[0], RELAY_POLL_PAGING_CURSOR,
                            RELAY_POLL_ISO8601);
                source_init(&src[1], RELAY_POLL_PAGING_PAGE,
                            RELAY_POLL_EPOCH_S);
                atexit(fini); /* leak checkers see a clean exit */
        }
        relay_buf_t key;
        relay_buf_init(&key);
        for (size_t k = 0; k < 2; k++) {
                relay_poll_answer_t a;
                if (relay_poll_answer_parse(&src[k], (const char *)data, size,
                                            &a, err, sizeof(err)) != RELAY_OK)
                        continue;
                size_t i;
                json_t *rec;
                json_array_foreach(a.records, i, rec)
                {
                        json_t *out;
                        const void *buf;
                        size_t len;
                        if (relay_poll_record_map(&src[k], rec, &out, &key,
                                                  err, sizeof(err)))
                                continue;
                        avro_value_t *v = relay_avro_writer_value(w);
                        if (relay_avro_from_json(v, out, err, sizeof(err)) ||
                            relay_avro_writer_encode(w, &buf, &len, err,
                                                     sizeof(err)) != RELAY_OK) {
                                /* A mapped record the writer refuses would
                                 * be dead-lettered for nothing. */
                                fprintf(stderr, "fuzz_poll: refused: %s\n",
                                        err);
                                abort();
                        }
                        json_decref(out);
                }
                relay_poll_answer_free(&a);
        }
        relay_buf_free(&key);
        return 0;
}
