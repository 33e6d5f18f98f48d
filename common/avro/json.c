/*
 * Avro values and JSON: natural JSON (not Avro's JSON encoding) into a
 * value, a value out as natural JSON, dotted path lookup, and the text
 * form of scalars that mapping templates use.
 */
#include "avro_int.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes from Avro's JSON encoding (see json_bytes): 0 and the bytes in
 * out, or -1 for a code point past U+00FF. */
static int bytes_from_json(json_t *j, relay_buf_t *out)
{
        const unsigned char *p = (const unsigned char *)json_string_value(j);
        size_t n = json_string_length(j);
        for (size_t i = 0; i < n; i++) {
                unsigned char c = p[i];
                if (c >= 0x80) {
                        if ((c != 0xC2 && c != 0xC3) || i + 1 == n)
                                return -1;
                        c = (unsigned char)(((c & 0x03) << 6) |
                                            (p[++i] & 0x3F));
                }
                relay_buf_append(out, &c, 1);
        }
        return 0;
}

/* Which union branch fits a JSON value of this type; -1 when none does. */
static int union_branch_for(avro_schema_t us, json_t *j)
{
        static const avro_type_t by_kind[][4] = {
            [JSON_NULL] = {AVRO_NULL},
            [JSON_STRING] = {AVRO_STRING, AVRO_ENUM, AVRO_BYTES},
            [JSON_INTEGER] = {AVRO_INT64, AVRO_INT32, AVRO_DOUBLE, AVRO_FLOAT},
            [JSON_REAL] = {AVRO_DOUBLE, AVRO_FLOAT},
            [JSON_TRUE] = {AVRO_BOOLEAN},
            [JSON_FALSE] = {AVRO_BOOLEAN},
            [JSON_OBJECT] = {AVRO_RECORD, AVRO_MAP},
            [JSON_ARRAY] = {AVRO_ARRAY},
        };
        const avro_type_t *want = by_kind[json_typeof(j)];
        size_t nb = avro_schema_union_size(us);
        for (int k = 0; k < 4; k++) {
                if (k > 0 && want[k] == AVRO_STRING)
                        break; /* zero-filled tail of a short row */
                for (size_t b = 0; b < nb; b++) {
                        avro_schema_t bs = avro_schema_union_branch(us, (int)b);
                        /* A named type used again is a link to it. */
                        while (avro_typeof(bs) == AVRO_LINK)
                                bs = avro_schema_link_target(bs);
                        if (avro_typeof(bs) != want[k])
                                continue;
                        if (want[k] == AVRO_ENUM &&
                            avro_schema_enum_get_by_name(
                                bs, json_string_value(j)) < 0)
                                continue;
                        return (int)b;
                }
                if (json_typeof(j) == JSON_NULL ||
                    json_typeof(j) == JSON_TRUE || json_typeof(j) == JSON_FALSE)
                        break;
        }
        return -1;
}

static int null_branch(avro_schema_t s)
{
        if (avro_typeof(s) != AVRO_UNION)
                return -1;
        for (size_t b = 0; b < avro_schema_union_size(s); b++)
                if (avro_typeof(avro_schema_union_branch(s, (int)b)) ==
                    AVRO_NULL)
                        return (int)b;
        return -1;
}

static int from_json(avro_value_t *v, json_t *j, relay_buf_t *path,
                     char *errstr, size_t errstr_size);

static int json_err(char *errstr, size_t errstr_size, relay_buf_t *path,
                    const char *what)
{
        relay_seterr(errstr, errstr_size, "%s: %s",
                     path->len ? path->data : "(record)", what);
        return -1;
}

static int record_from_json(avro_value_t *v, json_t *j, relay_buf_t *path,
                            char *errstr, size_t errstr_size)
{
        avro_schema_t rs = avro_value_get_schema(v);
        size_t plen = path->len;
        if (!json_is_object(j))
                return json_err(errstr, errstr_size, path,
                                "expected a JSON object");
        const char *key;
        json_t *jv;
        json_object_foreach(j, key, jv)
        {
                if (avro_schema_record_field_get_index(rs, key) < 0) {
                        char what[300];
                        snprintf(what, sizeof(what), "unknown field '%s'", key);
                        return json_err(errstr, errstr_size, path, what);
                }
        }
        size_t nf = avro_schema_record_size(rs);
        for (size_t i = 0; i < nf; i++) {
                const char *name = avro_schema_record_field_name(rs, (int)i);
                avro_value_t field;
                avro_value_get_by_index(v, i, &field, NULL);
                if (plen)
                        relay_buf_puts(path, ".");
                relay_buf_puts(path, name);
                json_t *fj = json_object_get(j, name);
                int rc = 0;
                if (fj) {
                        rc = from_json(&field, fj, path, errstr, errstr_size);
                } else {
                        avro_schema_t fs =
                            avro_schema_record_field_get_by_index(rs, (int)i);
                        int nb = null_branch(fs);
                        avro_value_t branch;
                        if (nb >= 0)
                                avro_value_set_branch(&field, nb, &branch);
                        else if (avro_typeof(fs) != AVRO_NULL)
                                rc = json_err(errstr, errstr_size, path,
                                              "missing field");
                }
                if (rc)
                        return -1;
                path->len = plen;
                path->data[plen] = '\0';
        }
        return 0;
}

static int from_json(avro_value_t *v, json_t *j, relay_buf_t *path,
                     char *errstr, size_t errstr_size)
{
        avro_schema_t s = avro_value_get_schema(v);
        avro_value_t child;
        switch (avro_value_get_type(v)) {
        case AVRO_NULL:
                if (!json_is_null(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected null");
                return avro_value_set_null(v);
        case AVRO_BOOLEAN:
                if (!json_is_boolean(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected true or false");
                return avro_value_set_boolean(v, json_is_true(j));
        case AVRO_INT32: {
                json_int_t n = json_integer_value(j);
                if (!json_is_integer(j) || n < INT32_MIN || n > INT32_MAX)
                        return json_err(errstr, errstr_size, path,
                                        "expected a 32-bit integer");
                return avro_value_set_int(v, (int32_t)n);
        }
        case AVRO_INT64:
                if (!json_is_integer(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected an integer");
                return avro_value_set_long(v, json_integer_value(j));
        case AVRO_FLOAT:
                if (!json_is_number(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected a number");
                return avro_value_set_float(v, (float)json_number_value(j));
        case AVRO_DOUBLE:
                if (!json_is_number(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected a number");
                return avro_value_set_double(v, json_number_value(j));
        case AVRO_STRING:
                if (!json_is_string(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected a string");
                return avro_value_set_string_len(v, json_string_value(j),
                                                 json_string_length(j) + 1);
        case AVRO_BYTES:
        case AVRO_FIXED: {
                relay_buf_t b;
                relay_buf_init(&b);
                int rc;
                if (!json_is_string(j) || bytes_from_json(j, &b))
                        rc = json_err(errstr, errstr_size, path,
                                      "expected a string of code points "
                                      "U+0000..U+00FF, one per byte");
                else if (avro_typeof(s) == AVRO_BYTES)
                        rc = avro_value_set_bytes(v, b.data ? b.data : "",
                                                  b.len);
                else if ((int64_t)b.len != avro_schema_fixed_size(s))
                        rc = json_err(errstr, errstr_size, path,
                                      "expected the fixed size in bytes");
                else
                        rc = avro_value_set_fixed(v, b.data, b.len);
                relay_buf_free(&b);
                return rc;
        }
        case AVRO_ENUM: {
                int idx =
                    json_is_string(j)
                        ? avro_schema_enum_get_by_name(s, json_string_value(j))
                        : -1;
                if (idx < 0)
                        return json_err(errstr, errstr_size, path,
                                        "not a symbol of the enum");
                return avro_value_set_enum(v, idx);
        }
        case AVRO_UNION: {
                int b = union_branch_for(s, j);
                if (b < 0)
                        return json_err(errstr, errstr_size, path,
                                        "JSON type fits no branch of the "
                                        "union");
                if (avro_value_set_branch(v, b, &child))
                        return json_err(errstr, errstr_size, path,
                                        avro_strerror());
                return from_json(&child, j, path, errstr, errstr_size);
        }
        case AVRO_RECORD:
                return record_from_json(v, j, path, errstr, errstr_size);
        case AVRO_MAP: {
                if (!json_is_object(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected a JSON object (map)");
                const char *key;
                json_t *jv;
                size_t plen = path->len;
                json_object_foreach(j, key, jv)
                {
                        if (avro_value_add(v, key, &child, NULL, NULL))
                                return json_err(errstr, errstr_size, path,
                                                avro_strerror());
                        relay_buf_printf(path, "%s%s", plen ? "." : "", key);
                        if (from_json(&child, jv, path, errstr, errstr_size))
                                return -1;
                        path->len = plen;
                        path->data[plen] = '\0';
                }
                return 0;
        }
        case AVRO_ARRAY: {
                if (!json_is_array(j))
                        return json_err(errstr, errstr_size, path,
                                        "expected a JSON array");
                size_t i, plen = path->len;
                json_t *jv;
                json_array_foreach(j, i, jv)
                {
                        if (avro_value_append(v, &child, NULL))
                                return json_err(errstr, errstr_size, path,
                                                avro_strerror());
                        relay_buf_printf(path, "[%zu]", i);
                        if (from_json(&child, jv, path, errstr, errstr_size))
                                return -1;
                        path->len = plen;
                        path->data[plen] = '\0';
                }
                return 0;
        }
        default:
                return json_err(errstr, errstr_size, path,
                                "unsupported Avro type");
        }
}

int relay_avro_from_json(avro_value_t *v, json_t *j, char *errstr,
                         size_t errstr_size)
{
        relay_buf_t path;
        relay_buf_init(&path);
        relay_buf_append(&path, "", 0);
        int rc = from_json(v, j, &path, errstr, errstr_size);
        relay_buf_free(&path);
        return rc ? -1 : 0;
}

json_t *relay_json_text(const char *p, size_t n)
{
        json_t *j = json_stringn(p, n);
        if (j)
                return j;
        relay_buf_t b;
        relay_buf_init(&b);
        for (size_t i = 0; i < n;) {
                const unsigned char *u = (const unsigned char *)p + i;
                size_t l = *u < 0x80 ? 1 : relay_utf8_len(u, n - i);
                if (l)
                        relay_buf_append(&b, u, l);
                else
                        relay_buf_puts(&b, "\xEF\xBF\xBD");
                i += l ? l : 1;
        }
        j = json_stringn(b.data ? b.data : "", b.len);
        relay_buf_free(&b);
        return j;
}

/* Bytes as Avro's JSON encoding does: one code point U+0000..U+00FF per
 * byte. */
static json_t *json_bytes(const unsigned char *p, size_t n)
{
        relay_buf_t b;
        relay_buf_init(&b);
        for (size_t i = 0; i < n; i++) {
                unsigned char c[2] = {(unsigned char)(0xC0 | (p[i] >> 6)),
                                      (unsigned char)(0x80 | (p[i] & 0x3F))};
                if (p[i] < 0x80)
                        relay_buf_append(&b, p + i, 1);
                else
                        relay_buf_append(&b, c, 2);
        }
        json_t *j = json_stringn(b.data ? b.data : "", b.len);
        relay_buf_free(&b);
        return j;
}

json_t *relay_avro_to_json(const avro_value_t *v)
{
        avro_value_t child;
        const char *s;
        const void *p;
        size_t n;
        switch (avro_value_get_type(v)) {
        case AVRO_NULL:
                return json_null();
        case AVRO_BOOLEAN: {
                int b = 0;
                avro_value_get_boolean(v, &b);
                return json_boolean(b);
        }
        case AVRO_INT32: {
                int32_t i = 0;
                avro_value_get_int(v, &i);
                return json_integer(i);
        }
        case AVRO_INT64: {
                int64_t l = 0;
                avro_value_get_long(v, &l);
                return json_integer(l);
        }
        case AVRO_FLOAT: {
                float f = 0;
                avro_value_get_float(v, &f);
                return json_real(f);
        }
        case AVRO_DOUBLE: {
                double d = 0;
                avro_value_get_double(v, &d);
                return json_real(d);
        }
        case AVRO_STRING:
                if (avro_value_get_string(v, &s, &n) || !s)
                        return json_string("");
                return relay_json_text(s, n ? n - 1 : 0);
        case AVRO_BYTES:
                if (avro_value_get_bytes(v, &p, &n))
                        return json_string("");
                return json_bytes(p, n);
        case AVRO_FIXED:
                if (avro_value_get_fixed(v, &p, &n))
                        return json_string("");
                return json_bytes(p, n);
        case AVRO_ENUM: {
                int idx = 0;
                avro_value_get_enum(v, &idx);
                s = avro_schema_enum_get(avro_value_get_schema(v), idx);
                return json_string(s ? s : "");
        }
        case AVRO_UNION:
                if (avro_value_get_current_branch(v, &child))
                        return json_null();
                return relay_avro_to_json(&child);
        case AVRO_RECORD:
        case AVRO_MAP: {
                json_t *o = json_object();
                avro_value_get_size(v, &n);
                for (size_t i = 0; i < n; i++) {
                        const char *name = NULL;
                        avro_value_get_by_index(v, i, &child, &name);
                        json_object_set_new(o, name,
                                            relay_avro_to_json(&child));
                }
                return o;
        }
        case AVRO_ARRAY: {
                json_t *a = json_array();
                avro_value_get_size(v, &n);
                for (size_t i = 0; i < n; i++) {
                        avro_value_get_by_index(v, i, &child, NULL);
                        json_array_append_new(a, relay_avro_to_json(&child));
                }
                return a;
        }
        default:
                return json_null();
        }
}

/* Step through a union to its current branch; -1 if unset or null. */
static int unwrap(avro_value_t *v)
{
        while (avro_value_get_type(v) == AVRO_UNION) {
                avro_value_t b;
                if (avro_value_get_current_branch(v, &b))
                        return -1;
                *v = b;
        }
        return avro_value_get_type(v) == AVRO_NULL ? -1 : 0;
}

int relay_avro_path(const avro_value_t *root, const char *path,
                    avro_value_t *out)
{
        avro_value_t cur = *root;
        char seg[256];
        const char *p = path;
        for (;;) {
                if (unwrap(&cur))
                        return -1;
                const char *dot = strchr(p, '.');
                size_t n = dot ? (size_t)(dot - p) : strlen(p);
                if (n == 0 || n >= sizeof(seg))
                        return -1;
                memcpy(seg, p, n);
                seg[n] = '\0';
                avro_type_t t = avro_value_get_type(&cur);
                if (t != AVRO_RECORD && t != AVRO_MAP)
                        return -1;
                avro_value_t next;
                /* Map keys may hold dots (sources' nested fields, joined):
                 * "data.address.city" is the key "address.city" first. */
                if (t == AVRO_MAP && dot &&
                    avro_value_get_by_name(&cur, p, &next, NULL) == 0) {
                        cur = next;
                        break;
                }
                if (avro_value_get_by_name(&cur, seg, &next, NULL))
                        return -1;
                cur = next;
                if (!dot)
                        break;
                p = dot + 1;
        }
        if (unwrap(&cur))
                return -1;
        *out = cur;
        return 0;
}

/* A double that is a decimal of at most 15 significant digits and 6
 * places, 1e-4 <= |d| < 1e15 (amounts, points, prices), written without
 * snprintf: what the loop below would write, for about a tenth of the
 * work. If d is the double nearest m / 10^k (m < 10^15, checked by the
 * division, which rounds correctly), d lies within half an ulp (a relative
 * 1.1e-16) of that decimal, far inside half a unit of its 15th digit, so
 * %.15g rounds d to exactly that decimal, which reads back as d; in that
 * range %g writes no exponent and drops trailing zeros. 0 when d is not
 * such a number (the caller formats it). */
static int short_decimal(char *t, double d)
{
        static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
        static const uint64_t u10[] = {1,     10,     100,    1000,
                                       10000, 100000, 1000000};
        double a = d < 0 ? -d : d;
        if (!(a >= 1e-4 && a < 1e15))
                return 0;
        for (int k = 0; k < 7; k++) {
                double m = a * p10[k];
                if (m >= 1e15)
                        return 0;
                if (m != (double)(uint64_t)m || m / p10[k] != a)
                        continue;
                uint64_t u = (uint64_t)m, ip = u / u10[k], fp = u % u10[k];
                char digits[24];
                size_t n = 0, o = 0;
                do {
                        digits[n++] = (char)('0' + ip % 10);
                        ip /= 10;
                } while (ip);
                if (d < 0)
                        t[o++] = '-';
                while (n)
                        t[o++] = digits[--n];
                if (fp) {
                        t[o++] = '.';
                        for (int i = k - 1; i >= 0; i--) {
                                t[o++] = (char)('0' + fp / u10[i]);
                                fp %= u10[i];
                        }
                        while (t[o - 1] == '0')
                                o--;
                }
                t[o] = 0;
                return 1;
        }
        return 0;
}

/* The shortest %g form, from min digits up, that reads back as the same
 * number (as float when is_float): "19.99", not "19.989999999999998",
 * while a number that needs all 17 digits keeps them. */
void relay_avro_append_number(relay_buf_t *b, double d, int min, int max,
                              int is_float)
{
        char t[64];
        if (!is_float && min == 15 && short_decimal(t, d)) {
                relay_buf_puts(b, t);
                return;
        }
        for (int prec = min;; prec++) {
                snprintf(t, sizeof(t), "%.*g", prec, d);
                double back = strtod(t, NULL);
                if (prec >= max ||
                    (is_float ? (float)back == (float)d : back == d))
                        break;
        }
        relay_buf_puts(b, t);
}

int relay_avro_to_text(const avro_value_t *v, relay_buf_t *b)
{
        avro_value_t cur = *v;
        if (unwrap(&cur))
                return -1;
        switch (avro_value_get_type(&cur)) {
        case AVRO_STRING: {
                const char *s;
                size_t n;
                if (avro_value_get_string(&cur, &s, &n) || !s)
                        return -1;
                relay_buf_append(b, s, n ? n - 1 : 0);
                return 0;
        }
        case AVRO_ENUM: {
                int idx;
                avro_value_get_enum(&cur, &idx);
                const char *s =
                    avro_schema_enum_get(avro_value_get_schema(&cur), idx);
                if (!s)
                        return -1;
                relay_buf_puts(b, s);
                return 0;
        }
        case AVRO_INT32: {
                int32_t i;
                avro_value_get_int(&cur, &i);
                relay_buf_printf(b, "%" PRId32, i);
                return 0;
        }
        case AVRO_INT64: {
                int64_t l;
                avro_value_get_long(&cur, &l);
                relay_buf_printf(b, "%" PRId64, l);
                return 0;
        }
        case AVRO_FLOAT: {
                float f;
                avro_value_get_float(&cur, &f);
                relay_avro_append_number(b, (double)f, 6, 9, 1);
                return 0;
        }
        case AVRO_DOUBLE: {
                double d;
                avro_value_get_double(&cur, &d);
                relay_avro_append_number(b, d, 15, 17, 0);
                return 0;
        }
        case AVRO_BOOLEAN: {
                int x;
                avro_value_get_boolean(&cur, &x);
                relay_buf_puts(b, x ? "true" : "false");
                return 0;
        }
        default:
                return -1;
        }
}
