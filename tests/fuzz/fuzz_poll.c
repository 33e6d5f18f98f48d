/*
 * Fuzz target: a polled source's answer, as relay-poll reads it: parsed
 * with cursor and with numbered pages, each record mapped by the source's
 * JSON mapping (relay/json_map.h, relay-ingest's too) and encoded with the
 * topic's Avro writer, as the worker does. Two sources: the shipped
 * deploy/config/sources/acme-antavo.cfg (cursor pages), and one of
 * numbered pages whose records are the answer itself, with epoch-second
 * times and the whole record flattened into data. The answer may be
 * anything; nothing may crash, leak or read out of bounds, and a record
 * these sources map must always encode: every rule of theirs converts to
 * what the schema takes.
 */
#include "fuzz_catalogue.h"
#include "relay/json_map.h"
#include "relay/poll.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char pages_source[] =
    "source = { name = \"fuzz-pages\"; url = \"http://h/ev\"; tenant = "
    "\"acme\"; platform = \"antavo\"; records = \"\";\n"
    "  paging = { kind = \"page\"; size = 10; };\n"
    "  event_id = \"id\";\n"
    "  key = \"{tenant}/{identities.customer_id}\";\n"
    "  fields = (\n"
    "    { to = \"occurred_at\"; from = \"created_at\"; type = \"epoch_s\"; "
    "required = true; },\n"
    "    { to = \"event_type\"; from = \"action\"; type = \"string\"; "
    "required = true; },\n"
    "    { to = \"identities.customer_id\"; from = \"customer\"; type = "
    "\"string\"; },\n"
    "    { to = \"identities.email\"; from = \"profile.email\"; type = "
    "\"string\"; },\n"
    "    { to = \"data\"; from = \"\"; type = \"flatten\"; },\n"
    "    { to = \"data.label\"; value = \"{action} of {customer}\"; } );\n"
    "};\n";

static relay_schemas_t *schemas;
static relay_poll_source_t *src[2];

static void fini(void)
{
        relay_poll_source_free(src[0]);
        relay_poll_source_free(src[1]);
        relay_schemas_destroy(schemas);
}

/* The only source of file path; aborts naming why (a broken tree). */
static relay_poll_source_t *load(const char *path)
{
        char err[1024];
        relay_poll_source_t **all;
        size_t n;
        if (relay_poll_sources_load(path, schemas, &all, &n, err,
                                    sizeof(err))) {
                fprintf(stderr, "fuzz_poll: %s\n", err);
                abort();
        }
        relay_poll_source_t *s = all[0];
        free(all);
        return s;
}

static void setup(void)
{
        relay_avro_reader_t *r;
        char path[1024], tmp[] = "/tmp/fuzz_poll-XXXXXX";
        schemas = fuzz_catalogue("fuzz_poll", "loyalty.events-value", &r);
        relay_avro_reader_destroy(r);
        fuzz_path(path, sizeof(path), "deploy/config/sources/acme-antavo.cfg");
        src[0] = load(path);
        int fd = mkstemp(tmp);
        if (fd < 0 || write(fd, pages_source, sizeof(pages_source) - 1) !=
                          (ssize_t)(sizeof(pages_source) - 1)) {
                fprintf(stderr, "fuzz_poll: cannot write %s\n", tmp);
                abort();
        }
        close(fd);
        src[1] = load(tmp);
        unlink(tmp);
        atexit(fini); /* leak checkers see a clean exit */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char err[512], id[RELAY_UUID_SIZE];
        if (!schemas)
                setup();
        relay_buf_t key;
        relay_buf_init(&key);
        for (size_t k = 0; k < 2; k++) {
                relay_poll_answer_t a;
                if (relay_poll_answer_parse(src[k], (const char *)data, size,
                                            &a, err, sizeof(err)) != RELAY_OK)
                        continue;
                relay_json_map_req_t req = {NULL, NULL, a.root};
                size_t i;
                json_t *rec;
                json_array_foreach(a.records, i, rec)
                {
                        json_t *out;
                        const void *buf;
                        size_t len;
                        if (relay_json_map_record(src[k]->map, &req, rec, &out,
                                                  &key, id, err, sizeof(err)))
                                continue;
                        if (relay_json_map_encode(src[k]->map, out, &buf, &len,
                                                  err, sizeof(err))) {
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
