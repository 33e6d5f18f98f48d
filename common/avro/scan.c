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
 * who can produce to the topic, so the body is first walked against the
 * writer schema by the compiled codec's own walker
 * (relay_avro_skip_body): every length within the bytes left, every block
 * count no larger than them (which bounds what avro-c allocates by the
 * record's size), every index in range, and what avro-c would read
 * wrongly refused (a map key with a NUL byte or given twice, a boolean
 * byte other than 0 or 1). So both decoding paths refuse the same
 * records.
 */

/* Whether the body after the frame is exactly one value of writer schema
 * ws (see struct scan): 0, or -1 with the reason. */
int relay_avro_check_body(avro_schema_t ws, int32_t id, const void *buf,
                          size_t len, char *errstr, size_t errstr_size)
{
        size_t at;
        int rc =
            relay_avro_skip_body(ws, (const char *)buf + RELAY_AVRO_HEADER_LEN,
                                 len - RELAY_AVRO_HEADER_LEN, &at);
        if (rc < 0) {
                relay_seterr(errstr, errstr_size,
                             "invalid Avro data for schema id %d: bad or "
                             "truncated value at body byte %zu",
                             (int)id, at);
                return -1;
        }
        if (rc > 0) {
                /* Typically bytes of another schema framed with this id. */
                relay_seterr(errstr, errstr_size,
                             "invalid Avro data for schema id %d: %zu bytes "
                             "left after the record",
                             (int)id, len - RELAY_AVRO_HEADER_LEN - at);
                return -1;
        }
        return 0;
}
