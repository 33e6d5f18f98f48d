/*
 * The admin endpoint (see relay/admin.h) on libmicrohttpd: one internal
 * polling thread, answers built from atomics and a short copy under a
 * lock. libmicrohttpd does the HTTP (keep-alive, limits, timeouts) so that
 * we write only the four answers.
 */
#include "relay/admin.h"
#include "relay/log.h"
#include "relay/metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifndef RELAY_VERSION
#define RELAY_VERSION "dev"
#endif

const relay_conf_prop_t relay_admin_props[] = {
    {"admin.address", RELAY_CONF_STRING, "0.0.0.0", 0, -1, 0,
     "address the admin endpoint (/metrics, /healthz, /readyz, /loglevel) "
     "listens on",
     0},
    {"admin.port", RELAY_CONF_INT, "9400", -1, 65535, 0,
     "its port (0: off; -1: any free port, logged)", 0},
    {"admin.stall_ms", RELAY_CONF_INT, "60000", 1000, 3600000, 0,
     "/healthz fails when the worker's loop has not come round this long", 0},
    {NULL, 0, NULL, 0, 0, 0, NULL, 0}};

static const char *const cond_names[RELAY_READY_NCONDS] = {
    "assignment", "kafka", "draining", "input", "output", "platform"};

static struct {
        struct MHD_Daemon *mhd;
        int port;
        long stall_ms;
        _Atomic int_least64_t beat; /* relay_mono_ms of the last heartbeat */
        pthread_mutex_t lock;       /* the reasons */
        char why[RELAY_READY_NCONDS][400];
        atomic_int set[RELAY_READY_NCONDS];
        relay_series_t *ready;
} A = {.lock = PTHREAD_MUTEX_INITIALIZER};

void relay_heartbeat(void)
{
        atomic_store_explicit(&A.beat, relay_mono_ms(), memory_order_relaxed);
}

int relay_ready(void)
{
        for (int c = 0; c < RELAY_READY_NCONDS; c++)
                if (atomic_load_explicit(&A.set[c], memory_order_relaxed))
                        return 0;
        return 1;
}

void relay_ready_set(enum relay_ready_cond cond, const char *fmt, ...)
{
        if (!fmt) {
                atomic_store(&A.set[cond], 0);
        } else {
                char why[sizeof(A.why[0])];
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(why, sizeof(why), fmt, ap);
                va_end(ap);
                pthread_mutex_lock(&A.lock);
                memcpy(A.why[cond], why, sizeof(why));
                pthread_mutex_unlock(&A.lock);
                atomic_store(&A.set[cond], 1);
        }
        if (A.ready)
                relay_metric_set(A.ready, relay_ready());
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status,
                              const char *type, relay_buf_t *body)
{
        /* The buffer goes to libmicrohttpd, which frees it. */
        struct MHD_Response *r = MHD_create_response_from_buffer(
            body->len, body->data ? body->data : relay_strdup(""),
            MHD_RESPMEM_MUST_FREE);
        body->data = NULL;
        body->len = body->cap = 0;
        if (!r)
                return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        enum MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status,
                            const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result text(struct MHD_Connection *c, unsigned status,
                            const char *fmt, ...)
{
        relay_buf_t b;
        relay_buf_init(&b);
        char line[600];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        relay_buf_puts(&b, line);
        return answer(c, status, "text/plain; charset=utf-8", &b);
}

static enum MHD_Result readyz(struct MHD_Connection *c)
{
        relay_buf_t b;
        relay_buf_init(&b);
        pthread_mutex_lock(&A.lock);
        for (int k = 0; k < RELAY_READY_NCONDS; k++)
                if (atomic_load(&A.set[k]))
                        relay_buf_printf(&b, "not ready (%s): %s\n",
                                         cond_names[k], A.why[k]);
        pthread_mutex_unlock(&A.lock);
        if (!b.len) {
                relay_buf_puts(&b, "ready\n");
                return answer(c, MHD_HTTP_OK, "text/plain; charset=utf-8", &b);
        }
        return answer(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                      "text/plain; charset=utf-8", &b);
}

static enum MHD_Result healthz(struct MHD_Connection *c)
{
        int64_t beat = atomic_load(&A.beat);
        if (!beat)
                return text(c, MHD_HTTP_OK, "ok (starting)\n");
        int64_t age = relay_mono_ms() - beat;
        if (age > A.stall_ms)
                return text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "stalled: the worker's loop has not come round "
                            "for %lld ms (admin.stall_ms %ld)\n",
                            (long long)age, A.stall_ms);
        return text(c, MHD_HTTP_OK, "ok\n");
}

/* PUT bodies are small: a level name. */
struct upload {
        char data[64];
        size_t len;
};

static enum MHD_Result loglevel(struct MHD_Connection *c, const char *method,
                                const char *body)
{
        if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
                return text(c, MHD_HTTP_OK, "%s\n",
                            relay_log_level_name(relay_log_level));
        if (strcmp(method, "PUT") && strcmp(method, "POST"))
                return text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                            "use GET, or PUT with a level\n");
        const char *q =
            MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "level");
        char name[64];
        snprintf(name, sizeof(name), "%s", q ? q : body);
        name[strcspn(name, " \r\n\t")] = '\0';
        int level = relay_log_level_parse(name);
        if (level < 0 || level > LOG_DEBUG)
                return text(c, MHD_HTTP_BAD_REQUEST,
                            "log level '%s' is not one of error, warning, "
                            "info, debug\n",
                            name);
        int old = relay_log_level;
        relay_log_level = level;
        relay_log(LOG_WARNING, "admin", "log level %s -> %s (PUT /loglevel)",
                  relay_log_level_name(old), relay_log_level_name(level));
        return text(c, MHD_HTTP_OK, "%s\n", relay_log_level_name(level));
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
        (void)cls;
        (void)version;
        struct upload *up = *con_cls;
        if (!up) {
                /* The headers: come back for the body. */
                *con_cls = relay_calloc(1, sizeof(*up));
                return MHD_YES;
        }
        if (*upload_data_size) {
                size_t room = sizeof(up->data) - 1 - up->len;
                size_t n = *upload_data_size < room ? *upload_data_size : room;
                memcpy(up->data + up->len, upload_data, n);
                up->len += n;
                *upload_data_size = 0;
                return MHD_YES;
        }
        up->data[up->len] = '\0';
        if (!strcmp(url, "/loglevel"))
                return loglevel(c, method, up->data);
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
                return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
        if (!strcmp(url, "/metrics")) {
                relay_buf_t b;
                relay_buf_init(&b);
                relay_metrics_write(&b);
                return answer(c, MHD_HTTP_OK,
                              "text/plain; version=0.0.4; charset=utf-8", &b);
        }
        if (!strcmp(url, "/healthz"))
                return healthz(c);
        if (!strcmp(url, "/readyz"))
                return readyz(c);
        return text(c, MHD_HTTP_NOT_FOUND,
                    "no such page: try /metrics, /healthz, /readyz or "
                    "/loglevel\n");
}

static void done(void *cls, struct MHD_Connection *c, void **con_cls,
                 enum MHD_RequestTerminationCode toe)
{
        (void)cls;
        (void)c;
        (void)toe;
        free(*con_cls);
        *con_cls = NULL;
}

int relay_admin_start(const relay_conf_t *conf, const char *worker,
                      char *errstr, size_t errstr_size)
{
        relay_metric_t *info = relay_metric(
            RELAY_METRIC_GAUGE, "relay_build_info",
            "the worker and its version (always 1)", "worker,version", NULL, 0);
        relay_metric_set(relay_series(info, worker, RELAY_VERSION), 1);
        A.ready = relay_metric_series(
            relay_metric(RELAY_METRIC_GAUGE, "relay_ready",
                         "1 when /readyz answers ready", NULL, NULL, 0));
        relay_metric_set(A.ready, relay_ready());
        A.stall_ms = (long)relay_conf_int(conf, "admin.stall_ms");
        relay_ready_set(RELAY_READY_ASSIGNED, "starting: no partitions "
                                              "assigned yet");
        long long port = relay_conf_int(conf, "admin.port");
        if (!port) {
                relay_metrics_disable(); /* nobody could read them */
                return 0;
        }
        const char *addr = relay_conf_str(conf, "admin.address");
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)(port < 0 ? 0 : port));
        if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
                relay_seterr(errstr, errstr_size,
                             "admin.address '%s' is not an IPv4 address", addr);
                return -1;
        }
        A.mhd = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
            handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
            MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
        if (!A.mhd) {
                relay_seterr(errstr, errstr_size,
                             "admin endpoint: cannot listen on %s:%lld (in use "
                             "by another process?); set admin.port to a free "
                             "port, or 0 to turn it off",
                             addr, port);
                return -1;
        }
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(A.mhd, MHD_DAEMON_INFO_BIND_PORT);
        A.port = di ? di->port : (int)port;
        relay_log(LOG_INFO, "admin",
                  "serving /metrics, /healthz, /readyz and /loglevel on "
                  "%s:%d",
                  addr, A.port);
        return 0;
}

int relay_admin_port(void)
{
        return A.port;
}

void relay_admin_stop(void)
{
        if (A.mhd)
                MHD_stop_daemon(A.mhd);
        A.mhd = NULL;
        A.port = 0;
}
