/*
 * The Prometheus text exposition format (0.0.4), read one line at a time:
 *
 *   name [ "{" label "=" "\"" value "\"" { "," ... } [ "," ] "}" ] value [
 * timestamp ]
 *
 * with spaces or tabs between the parts. The rules follow Prometheus' own
 * lexer (model/textparse/promlex.l): a label value may hold any byte but
 * an unescaped quote, backslash or newline; \\ \" \n are unescaped and any
 * other escape is kept as written; the value is a Go float (strtod reads
 * the same spellings: NaN, +Inf, -Inf, exponents, hex); the timestamp is
 * whole milliseconds. What follows a '#' after the value (an OpenMetrics
 * exemplar) is passed over.
 */
#include "relay/promtext.h"
#include "relay/common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A cursor over one line. */
struct lex {
        const char *p, *end;
};

static int is_space(char ch)
{
        return ch == ' ' || ch == '\t';
}

static void skip_space(struct lex *x)
{
        while (x->p < x->end && is_space(*x->p))
                x->p++;
}

static int name_char(char ch, int first, int colon)
{
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_')
                return 1;
        if (colon && ch == ':')
                return 1;
        return !first && ch >= '0' && ch <= '9';
}

/* A metric name (colon allowed) or label name at the cursor: its length,
 * 0 when there is none. */
static size_t name_len(const struct lex *x, int colon)
{
        size_t n = 0;
        while (x->p + n < x->end && name_char(x->p[n], n == 0, colon))
                n++;
        return n;
}

static int wanted_name(const char *name, size_t n, const char *const *wanted)
{
        if (!wanted)
                return 1;
        for (; *wanted; wanted++)
                if (strlen(*wanted) == n && !memcmp(*wanted, name, n))
                        return 1;
        return 0;
}

static void copy_name(char *dst, const char *src, size_t n)
{
        memcpy(dst, src, n);
        dst[n] = '\0';
}

/* A quoted label value at the cursor (on its opening quote), unescaped
 * into dst (size bytes). 0, or -1 when it is not closed on the line, holds
 * a NUL byte or does not fit. */
static int label_value(struct lex *x, char *dst, size_t size)
{
        size_t n = 0;
        x->p++; /* the opening quote */
        while (x->p < x->end && *x->p != '"') {
                char ch = *x->p++;
                if (ch == '\0')
                        return -1;
                if (ch == '\\') {
                        if (x->p == x->end || *x->p == '\0')
                                return -1;
                        char esc = *x->p++;
                        if (esc == 'n') {
                                ch = '\n';
                        } else if (esc == '\\' || esc == '"') {
                                ch = esc;
                        } else { /* kept as written, like Prometheus */
                                if (n + 1 >= size)
                                        return -1;
                                dst[n++] = '\\';
                                ch = esc;
                        }
                }
                if (n + 1 >= size)
                        return -1;
                dst[n++] = ch;
        }
        if (x->p == x->end)
                return -1;
        x->p++; /* the closing quote */
        dst[n] = '\0';
        return 0;
}

/* The label set at the cursor (on its '{') into out. 0, or -1 with the
 * reason in *why. */
static int labels(struct lex *x, relay_promtext_sample_t *out, const char **why)
{
        x->p++; /* '{' */
        for (;;) {
                skip_space(x);
                if (x->p < x->end && *x->p == '}')
                        break;
                size_t n = name_len(x, 0);
                if (!n)
                        return *why = "a label name expected", -1;
                if (n >= RELAY_PROMTEXT_NAME_MAX)
                        return *why = "a label name too long", -1;
                if (out->nlabels == RELAY_PROMTEXT_LABELS)
                        return *why = "too many labels", -1;
                relay_promtext_label_t *l = &out->labels[out->nlabels++];
                copy_name(l->name, x->p, n);
                x->p += n;
                skip_space(x);
                if (x->p == x->end || *x->p != '=')
                        return *why = "'=' expected after a label name", -1;
                x->p++;
                skip_space(x);
                if (x->p == x->end || *x->p != '"')
                        return *why = "a quoted label value expected", -1;
                if (label_value(x, l->value, sizeof(l->value)))
                        return *why = "a label value unterminated, with a "
                                      "NUL byte or too long",
                               -1;
                skip_space(x);
                if (x->p < x->end && *x->p == ',') {
                        x->p++;
                        continue;
                }
                if (x->p < x->end && *x->p == '}')
                        break;
                return *why = "',' or '}' expected after a label value", -1;
        }
        x->p++; /* '}' */
        return 0;
}

/* The next space-separated token at the cursor into buf as a C string:
 * its length, 0 when there is none or it does not fit. */
static size_t token(struct lex *x, char *buf, size_t size)
{
        size_t n = 0;
        while (x->p + n < x->end && !is_space(x->p[n]))
                n++;
        if (!n || n >= size || memchr(x->p, '\0', n))
                return 0;
        memcpy(buf, x->p, n);
        buf[n] = '\0';
        x->p += n;
        return n;
}

int relay_promtext_line(const char *line, size_t len, const char *const *wanted,
                        relay_promtext_sample_t *out, char *errstr,
                        size_t errstr_size)
{
        struct lex x = {line, line + len};
        const char *why = NULL;
        char buf[64], *end;
        if (x.end > x.p && x.end[-1] == '\r')
                x.end--;
        skip_space(&x);
        if (x.p == x.end || *x.p == '#')
                return 0;
        size_t n = name_len(&x, 1);
        if (!n) {
                why = "a metric name expected";
                goto bad;
        }
        if (!wanted_name(x.p, n, wanted))
                return 0;
        if (n >= sizeof(out->name)) {
                why = "a metric name too long";
                goto bad;
        }
        copy_name(out->name, x.p, n);
        x.p += n;
        out->nlabels = 0;
        out->has_timestamp = 0;
        out->timestamp_ms = 0;
        if (x.p < x.end && *x.p == '{') {
                if (labels(&x, out, &why))
                        goto bad;
        } else if (x.p < x.end && !is_space(*x.p)) {
                why = "a space or '{' expected after the metric name";
                goto bad;
        }
        skip_space(&x);
        if (!token(&x, buf, sizeof(buf))) {
                why = "a value expected";
                goto bad;
        }
        out->value = strtod(buf, &end);
        if (*end) {
                why = "the value is not a number";
                goto bad;
        }
        skip_space(&x);
        if (x.p < x.end && *x.p != '#') {
                long long ts;
                if (!token(&x, buf, sizeof(buf))) {
                        why = "a timestamp too long";
                        goto bad;
                }
                errno = 0;
                ts = strtoll(buf, &end, 10);
                if (*end || errno) {
                        why = "the timestamp is not whole milliseconds";
                        goto bad;
                }
                out->has_timestamp = 1;
                out->timestamp_ms = ts;
                skip_space(&x);
        }
        if (x.p < x.end && *x.p != '#') {
                why = "text after the timestamp";
                goto bad;
        }
        return 1;
bad:
        relay_seterr(errstr, errstr_size, "column %zu: %s",
                     (size_t)(x.p - line) + 1, why);
        return -1;
}

size_t relay_promtext_parse(const char *text, size_t len,
                            const char *const *wanted, relay_promtext_cb *cb,
                            void *arg)
{
        relay_promtext_sample_t s;
        size_t bad = 0;
        const char *p = text, *end = text + len;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *eol = nl ? nl : end;
                int r = relay_promtext_line(p, (size_t)(eol - p), wanted, &s,
                                            NULL, 0);
                if (r > 0)
                        cb(&s, arg);
                else if (r < 0)
                        bad++;
                p = nl ? nl + 1 : end;
        }
        return bad;
}

const char *relay_promtext_label(const relay_promtext_sample_t *s,
                                 const char *name)
{
        for (size_t i = 0; i < s->nlabels; i++)
                if (!strcmp(s->labels[i].name, name))
                        return s->labels[i].value;
        return NULL;
}
