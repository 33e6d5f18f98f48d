/*
 * JSON-lines logging: one object per line on stderr (or a chosen stream),
 * with time, level, component and message. Lines are formatted into a stack
 * buffer and written with one fwrite so that lines from librdkafka's threads
 * and the main thread never interleave mid-line.
 */
#include "relay/log.h"
#include "relay/common.h"

#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

_Atomic int relay_log_level = LOG_INFO;
static FILE *log_fp;

static const char *level_names[] = {"emerg",   "alert",  "crit", "error",
                                    "warning", "notice", "info", "debug"};

const char *relay_log_level_name(int level)
{
        if (level < 0)
                level = 0;
        if (level > 7)
                level = 7;
        return level_names[level];
}

int relay_log_level_parse(const char *name)
{
        for (int i = 0; i < 8; i++)
                if (!strcasecmp(name, level_names[i]))
                        return i;
        if (!strcasecmp(name, "err"))
                return LOG_ERR;
        if (!strcasecmp(name, "warn"))
                return LOG_WARNING;
        char *end;
        long v = strtol(name, &end, 10);
        if (*name && !*end && v >= 0 && v <= 7)
                return (int)v;
        return -1;
}

void relay_log_set_stream(FILE *fp)
{
        log_fp = fp;
}

/* len, less a UTF-8 sequence cut short at the end of s[0..len): a message
 * truncated mid-character would be invalid UTF-8, and so invalid JSON. */
static size_t utf8_trim(const char *s, size_t len)
{
        size_t i = len;
        while (i > 0 && len - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
                i--;
        if (i == 0)
                return len;
        unsigned char c = (unsigned char)s[i - 1];
        size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (c >= 0xc0 && len - (i - 1) < want)
                return i - 1;
        return len;
}

/* Escape src into dst as JSON string content (no quotes); stops at dstsize. */
static size_t json_escape(char *dst, size_t dstsize, const char *src)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *s = (const unsigned char *)src;
        size_t n = strlen(src), o = 0, i = 0;
        /* Room for the longest step (a 6-byte escape) is kept free. */
        while (i < n && o + 7 < dstsize) {
                unsigned char c = s[i];
                size_t len;
                if (c >= 0x80) {
                        /* Payload text may be anything: keep the line JSON. */
                        if ((len = relay_utf8_len(s + i, n - i))) {
                                memcpy(dst + o, s + i, len);
                                o += len;
                                i += len;
                        } else {
                                memcpy(dst + o, "\\ufffd", 6);
                                o += 6;
                                i++;
                        }
                        continue;
                }
                if (c == '"' || c == '\\') {
                        dst[o++] = '\\';
                        dst[o++] = (char)c;
                } else if (c == '\n') {
                        dst[o++] = '\\';
                        dst[o++] = 'n';
                } else if (c < 0x20) {
                        o += (size_t)snprintf(dst + o, dstsize - o, "\\u00%c%c",
                                              hex[c >> 4], hex[c & 0xf]);
                } else {
                        dst[o++] = (char)c;
                }
                i++;
        }
        dst[o] = '\0';
        return o;
}

void relay_log_write(int level, const char *component, const char *fmt, ...)
{
        char msg[2048], emsg[4200], ecomp[200], line[4800], ts[40];
        va_list ap;
        va_start(ap, fmt);
        int mlen = vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (mlen >= (int)sizeof(msg))
                msg[utf8_trim(msg, sizeof(msg) - 1)] = '\0';
        json_escape(emsg, sizeof(emsg), msg);
        json_escape(ecomp, sizeof(ecomp), component);

        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

        int n = snprintf(line, sizeof(line),
                         "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\","
                         "\"component\":\"%s\",\"msg\":\"%s\"}\n",
                         ts, (long)(tv.tv_usec / 1000),
                         relay_log_level_name(level), ecomp, emsg);
        if (n < 0)
                return;
        if ((size_t)n >= sizeof(line)) {
                n = sizeof(line) - 1;
                line[n - 3] = '"';
                line[n - 2] = '}';
                line[n - 1] = '\n';
        }
        FILE *fp = log_fp ? log_fp : stderr;
        fwrite(line, 1, (size_t)n, fp);
        fflush(fp);
}

void relay_log_limited_write(relay_log_limit_t *lim, long interval_ms,
                             int level, const char *component, const char *fmt,
                             ...)
{
        long long now = (long long)relay_mono_ms();
        if (lim->last && now - lim->last < interval_ms) {
                lim->skipped++;
                return;
        }
        char msg[4096];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (lim->skipped)
                relay_log_write(level, component,
                                "%s (and %lu more like it in the last %.0f s)",
                                msg, lim->skipped,
                                (double)(now - lim->last) / 1000.0);
        else
                relay_log_write(level, component, "%s", msg);
        lim->skipped = 0;
        lim->last = now;
}

void relay_log_rdkafka_cb(const struct rd_kafka_s *rk, int level,
                          const char *fac, const char *buf)
{
        /* librdkafka levels are syslog levels already. */
        if (level > relay_log_level)
                return;
        relay_log_write(level, "rdkafka", "%s: %s: %s",
                        rd_kafka_name((const rd_kafka_t *)rk), fac, buf);
}
