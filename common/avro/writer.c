/*
 * Writers: fill a generic value of the subject's local schema, get it
 * framed under the subject's wire id (bound at creation). One buffer per
 * writer, reused, so a steady producer stops allocating.
 */
#include "avro_int.h"
#include "relay/codec.h"

#include <stdlib.h>

struct relay_avro_writer {
        int32_t id;
        avro_value_iface_t *iface;
        avro_value_t value;
        avro_writer_t out;
        relay_buf_t buf;
        relay_shape_t *shape; /* the compiled path */
        relay_slots_t slots;
};

relay_avro_writer_t *relay_avro_writer_new(relay_schemas_t *s,
                                           const char *subject, char *errstr,
                                           size_t errstr_size)
{
        int32_t id;
        if (relay_schemas_bind(s, subject, &id, errstr, errstr_size) !=
            RELAY_OK)
                return NULL;
        relay_avro_writer_t *w = relay_calloc(1, sizeof(*w));
        w->id = id;
        relay_buf_init(&w->buf);
        if (relay_avro_generic_new(relay_schemas_local(s, subject), &w->iface,
                                   &w->value, "writer", subject, errstr,
                                   errstr_size)) {
                relay_avro_writer_destroy(w);
                return NULL;
        }
        w->out = avro_writer_memory("", 0);
        if (!(w->shape = relay_shape_new(relay_schemas_local(s, subject),
                                         errstr, errstr_size))) {
                relay_avro_writer_destroy(w);
                return NULL;
        }
        relay_slots_init(&w->slots, w->shape);
        return w;
}

void relay_avro_writer_destroy(relay_avro_writer_t *w)
{
        if (!w)
                return;
        if (w->value.self)
                avro_value_decref(&w->value);
        if (w->iface)
                avro_value_iface_decref(w->iface);
        if (w->out)
                avro_writer_free(w->out);
        relay_buf_free(&w->buf);
        if (w->shape)
                relay_slots_free(&w->slots);
        relay_shape_destroy(w->shape);
        free(w);
}

avro_value_t *relay_avro_writer_value(relay_avro_writer_t *w)
{
        avro_value_reset(&w->value);
        return &w->value;
}

/* The Confluent header of w's id, as the start of b. */
static void frame_start(relay_avro_writer_t *w, relay_buf_t *b)
{
        relay_buf_reset(b);
        relay_buf_reserve(b, RELAY_AVRO_HEADER_LEN);
        unsigned char *p = (unsigned char *)b->data;
        p[0] = RELAY_AVRO_MAGIC;
        p[1] = (unsigned char)((uint32_t)w->id >> 24);
        p[2] = (unsigned char)((uint32_t)w->id >> 16);
        p[3] = (unsigned char)((uint32_t)w->id >> 8);
        p[4] = (unsigned char)w->id;
        b->len = RELAY_AVRO_HEADER_LEN;
}

const relay_shape_t *relay_avro_writer_shape(const relay_avro_writer_t *w)
{
        return w->shape;
}

relay_slots_t *relay_avro_writer_slots(relay_avro_writer_t *w)
{
        relay_slots_reset(&w->slots);
        return &w->slots;
}

enum relay_result relay_avro_writer_encode_slots(relay_avro_writer_t *w,
                                                 const void **buf, size_t *len,
                                                 char *errstr,
                                                 size_t errstr_size)
{
        char why[512];
        frame_start(w, &w->buf);
        if (relay_shape_encode(w->shape, &w->slots, &w->buf, why,
                               sizeof(why))) {
                relay_seterr(errstr, errstr_size, "cannot encode record: %s",
                             why);
                return RELAY_FATAL;
        }
        *buf = w->buf.data;
        *len = w->buf.len;
        return RELAY_OK;
}

enum relay_result relay_avro_writer_encode(relay_avro_writer_t *w,
                                           const void **buf, size_t *len,
                                           char *errstr, size_t errstr_size)
{
        size_t size;
        avro_set_error("no detail");
        if (avro_value_sizeof(&w->value, &size)) {
                relay_seterr(errstr, errstr_size, "cannot encode record: %s",
                             avro_strerror());
                return RELAY_FATAL;
        }
        frame_start(w, &w->buf);
        relay_buf_reserve(&w->buf, size);
        avro_writer_memory_set_dest(w->out, w->buf.data + RELAY_AVRO_HEADER_LEN,
                                    (int64_t)size);
        if (avro_value_write(w->out, &w->value)) {
                relay_seterr(errstr, errstr_size, "cannot encode record: %s",
                             avro_strerror());
                return RELAY_FATAL;
        }
        w->buf.len = RELAY_AVRO_HEADER_LEN + size;
        *buf = w->buf.data;
        *len = w->buf.len;
        return RELAY_OK;
}
