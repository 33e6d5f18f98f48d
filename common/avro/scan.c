/*
 * What is checked before avro-c sees a record: the Confluent frame (magic
 * byte, schema id) and a pre-scan of the body against the writer schema,
 * since avro-c trusts every length, count and index it reads.
 */
#include "avro_int.h"
#include "relay/codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int relay_avro_frame_parse(const void *buf, size_t len, int32_t *id,
                           char *errstr, size_t errstr_size)
{
        const unsigned char *p = buf;
        if (len < RELAY_AVRO_HEADER_LEN) {
                relay_seterr(errstr, errstr_size,
                             "record of %zu bytes is shorter than the 5-byte "
                             "Confluent header",
                             len);
                return -1;
        }
        if (p[0] != RELAY_AVRO_MAGIC) {
                relay_seterr(errstr, errstr_size,
                             "wrong magic byte 0x%02x (Confluent wire format "
                             "starts with 0x00)",
                             p[0]);
                return -1;
        }
        *id = (int32_t)(((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
                        ((uint32_t)p[3] << 8) | (uint32_t)p[4]);
        return 0;
}

/*
 * avro-c trusts the lengths, counts and indexes in the data: a string
 * length of -1 makes it write before its buffer, a huge one makes it
 * allocate that much, and an enum index out of range is kept and later
 * read as a symbol pointer that was never set. Records come from anyone
 * who can produce to the topic, so check the body against the writer
 * schema first: every length within the bytes left, every block count no
 * larger than them (which bounds what avro-c allocates by the record's
 * size), every index in range.
 */
struct scan {
        const unsigned char *p, *end;
        int depth;
};

#define SCAN_MAX_DEPTH 64

static int scan_long(struct scan *s, int64_t *out)
{
        uint64_t v = 0;
        for (int shift = 0; shift < 64 && s->p < s->end; shift += 7) {
                unsigned char b = *s->p++;
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80)) {
                        *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
                        return 0;
                }
        }
        return -1;
}

static int scan_skip(struct scan *s, int64_t n)
{
        if (n < 0 || n > s->end - s->p)
                return -1;
        s->p += n;
        return 0;
}

static int scan_value(struct scan *s, avro_schema_t sc)
{
        int64_t n, size;
        int rc = 0;
        if (++s->depth > SCAN_MAX_DEPTH)
                return -1;
        switch (avro_typeof(sc)) {
        case AVRO_NULL:
                break;
        case AVRO_BOOLEAN:
                /* 0 or 1 (avro-c would keep any other byte as it is). */
                rc = s->p >= s->end || *s->p > 1 || scan_skip(s, 1);
                break;
        case AVRO_INT32:
        case AVRO_INT64:
                rc = scan_long(s, &n);
                break;
        case AVRO_FLOAT:
                rc = scan_skip(s, 4);
                break;
        case AVRO_DOUBLE:
                rc = scan_skip(s, 8);
                break;
        case AVRO_STRING:
        case AVRO_BYTES:
                rc = scan_long(s, &n) || scan_skip(s, n);
                break;
        case AVRO_FIXED:
                rc = scan_skip(s, avro_schema_fixed_size(sc));
                break;
        case AVRO_ENUM:
                rc = scan_long(s, &n) || n < 0 ||
                     n >= avro_schema_enum_number_of_symbols(sc);
                break;
        case AVRO_UNION:
                rc = scan_long(s, &n) || n < 0 ||
                     n >= (int64_t)avro_schema_union_size(sc) ||
                     scan_value(s, avro_schema_union_branch(sc, (int)n));
                break;
        case AVRO_RECORD:
                for (size_t i = 0; !rc && i < avro_schema_record_size(sc); i++)
                        rc = scan_value(
                            s,
                            avro_schema_record_field_get_by_index(sc, (int)i));
                break;
        case AVRO_MAP:
        case AVRO_ARRAY: {
                /* Blocks of n items (n < 0: -n items after their byte
                 * size), ended by a block of 0. A map's keys are kept to
                 * refuse one given twice (avro-c would merge or replace
                 * the values). */
                int map = avro_typeof(sc) == AVRO_MAP;
                struct relay_key *keys = NULL;
                size_t nkeys = 0;
                avro_schema_t item = map ? avro_schema_map_values(sc)
                                         : avro_schema_array_items(sc);
                for (;;) {
                        if (scan_long(s, &n) || n == INT64_MIN ||
                            (n < 0 && scan_long(s, &size))) {
                                rc = -1;
                                break;
                        }
                        if (n == 0)
                                break;
                        n = n < 0 ? -n : n;
                        if (n > s->end - s->p) {
                                rc = -1;
                                break;
                        }
                        if (map)
                                keys = relay_realloc(keys, (nkeys + (size_t)n) *
                                                               sizeof(*keys));
                        for (int64_t i = 0; !rc && i < n; i++) {
                                /* avro-c keeps map keys as C strings:
                                 * one with a NUL byte would silently lose
                                 * its tail, so it is refused. */
                                if (map) {
                                        rc = scan_long(s, &size) || size < 0 ||
                                             size > s->end - s->p ||
                                             memchr(s->p, 0, (size_t)size);
                                        if (rc)
                                                break;
                                        keys[nkeys].p = (const char *)s->p;
                                        keys[nkeys++].n = (size_t)size;
                                        s->p += size;
                                }
                                rc = scan_value(s, item);
                        }
                        if (rc)
                                break;
                }
                if (!rc && nkeys > 1 && relay_avro_keys_repeat(keys, nkeys))
                        rc = -1;
                free(keys);
                break;
        }
        case AVRO_LINK:
                rc = scan_value(s, avro_schema_link_target(sc));
                break;
        default:
                rc = -1;
        }
        s->depth--;
        return rc ? -1 : 0;
}

/* Whether the body after the frame is exactly one value of writer schema
 * ws (see struct scan): 0, or -1 with the reason. */
int relay_avro_check_body(avro_schema_t ws, int32_t id, const void *buf,
                          size_t len, char *errstr, size_t errstr_size)
{
        const unsigned char *body =
            (const unsigned char *)buf + RELAY_AVRO_HEADER_LEN;
        struct scan sc = {body, body + (len - RELAY_AVRO_HEADER_LEN), 0};
        if (scan_value(&sc, ws)) {
                relay_seterr(errstr, errstr_size,
                             "invalid Avro data for schema id %d: bad or "
                             "truncated value at body byte %zu",
                             (int)id, (size_t)(sc.p - body));
                return -1;
        }
        if (sc.p != sc.end) {
                /* Typically bytes of another schema framed with this id. */
                relay_seterr(errstr, errstr_size,
                             "invalid Avro data for schema id %d: %zu bytes "
                             "left after the record",
                             (int)id, (size_t)(sc.end - sc.p));
                return -1;
        }
        return 0;
}
