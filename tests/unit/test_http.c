/*
 * Unit tests for the HTTP client against a tiny scripted HTTP/1.1 server run
 * in a thread of the test itself (127.0.0.1, a port the kernel picks). The
 * server reads one request at a time, records what arrived (method, header
 * block, body, and how many connections it accepted) and answers with the
 * next reply of the test's script. Everything it does is bounded by 50 ms
 * polls on a stop flag, and main() arms an alarm, so a broken client makes
 * the test fail rather than hang.
 */
#include "relay/common.h"
#include "relay/http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the scripted server ---------------------------------------------- */

struct reply {
        const char *prefix; /* raw bytes before the status line, or NULL */
        int status;
        const char *headers; /* extra "Name: value\r\n" lines, or NULL */
        const char *body;    /* NULL = empty */
        size_t body_len;     /* 0 = strlen(body) */
        int delay_ms;        /* wait this long before answering */
};

struct request {
        char method[16];
        char head[4096]; /* request line and headers, NUL-terminated */
        relay_buf_t body;
};

#define MAX_REQUESTS 8

struct server {
        int listen_fd;
        int port;
        pthread_t thread;
        pthread_mutex_t mu;
        /* Under mu: */
        int stop;
        const struct reply *script;
        int nscript;
        struct request req[MAX_REQUESTS];
        int nreq;
        int accepts;
};

static int server_stopping(struct server *s)
{
        int stop;

        pthread_mutex_lock(&s->mu);
        stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        return stop;
}

/* The value of header `name` in a header block, copied to value. */
static int find_header(const char *head, const char *name, char *value,
                       size_t size)
{
        size_t nl = strlen(name);
        const char *line = strstr(head, "\r\n");

        while (line && line[2] != '\0') {
                const char *end;

                line += 2;
                end = strstr(line, "\r\n");
                if (!end)
                        end = line + strlen(line);
                if ((size_t)(end - line) > nl && line[nl] == ':' &&
                    strncasecmp(line, name, nl) == 0) {
                        const char *v = line + nl + 1;
                        size_t n;

                        while (*v == ' ')
                                v++;
                        n = (size_t)(end - v);
                        if (n >= size)
                                n = size - 1;
                        memcpy(value, v, n);
                        value[n] = '\0';
                        return 1;
                }
                line = end[0] ? end : NULL;
        }
        return 0;
}

static size_t find_head_end(const relay_buf_t *b)
{
        for (size_t i = 0; i + 4 <= b->len; i++)
                if (memcmp(b->data + i, "\r\n\r\n", 4) == 0)
                        return i + 4;
        return 0;
}

static int send_all(struct server *s, int fd, const char *p, size_t n)
{
        while (n > 0) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                ssize_t w;

                if (server_stopping(s))
                        return -1;
                if (poll(&pfd, 1, 50) <= 0)
                        continue;
                /* MSG_NOSIGNAL: a client that gave up must not SIGPIPE us. */
                w = send(fd, p, n, MSG_NOSIGNAL);
                if (w <= 0)
                        return -1;
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

static int send_reply(struct server *s, int fd, const struct reply *r)
{
        size_t body_len =
            r->body ? (r->body_len ? r->body_len : strlen(r->body)) : 0;
        relay_buf_t out;
        int rc;

        for (int waited = 0; waited < r->delay_ms; waited += 10) {
                if (server_stopping(s))
                        return -1;
                usleep(10000);
        }
        relay_buf_init(&out);
        if (r->prefix)
                relay_buf_puts(&out, r->prefix);
        relay_buf_printf(
            &out, "HTTP/1.1 %d Scripted\r\n%sContent-Length: %zu\r\n\r\n",
            r->status, r->headers ? r->headers : "", body_len);
        if (body_len)
                relay_buf_append(&out, r->body, body_len);
        rc = send_all(s, fd, out.data, out.len);
        relay_buf_free(&out);
        return rc;
}

/* Handle one complete request at the front of in, if there is one. Returns
 * 1 when one was answered, 0 when more bytes are needed, -1 to drop the
 * connection. */
static int serve_one(struct server *s, int fd, relay_buf_t *in)
{
        size_t head_len = find_head_end(in);
        char cl[32];
        size_t body_len = 0;
        struct request *rq;
        const struct reply *r;

        if (!head_len)
                return 0;
        in->data[head_len - 2] = '\0'; /* keep one CRLF after the last line */
        if (find_header(in->data, "Content-Length", cl, sizeof(cl)))
                body_len = strtoul(cl, NULL, 10);
        in->data[head_len - 2] = '\r';
        if (in->len < head_len + body_len)
                return 0;

        pthread_mutex_lock(&s->mu);
        if (s->nreq >= MAX_REQUESTS || s->nscript == 0) {
                pthread_mutex_unlock(&s->mu);
                return -1;
        }
        rq = &s->req[s->nreq];
        snprintf(rq->head, sizeof(rq->head), "%.*s", (int)(head_len - 2),
                 in->data);
        sscanf(rq->head, "%15s", rq->method);
        relay_buf_init(&rq->body);
        relay_buf_append(&rq->body, in->data + head_len, body_len);
        /* Past the end of the script, the last reply repeats. */
        r = &s->script[s->nreq < s->nscript ? s->nreq : s->nscript - 1];
        s->nreq++;
        pthread_mutex_unlock(&s->mu);

        memmove(in->data, in->data + head_len + body_len,
                in->len - head_len - body_len);
        in->len -= head_len + body_len;
        return send_reply(s, fd, r) == 0 ? 1 : -1;
}

static void *server_main(void *arg)
{
        struct server *s = arg;
        int conn = -1;
        relay_buf_t in;

        relay_buf_init(&in);
        while (!server_stopping(s)) {
                struct pollfd pfd[2] = {{.fd = s->listen_fd, .events = POLLIN},
                                        {.fd = conn, .events = POLLIN}};
                char buf[16384];
                ssize_t n;
                int rc;

                if (poll(pfd, conn >= 0 ? 2 : 1, 50) <= 0)
                        continue;
                if (pfd[0].revents & POLLIN) {
                        int fd = accept(s->listen_fd, NULL, NULL);

                        if (fd >= 0) {
                                /* One connection at a time is all a
                                 * single client needs; a new one means the
                                 * client gave up on the old. */
                                if (conn >= 0)
                                        close(conn);
                                conn = fd;
                                relay_buf_reset(&in);
                                pthread_mutex_lock(&s->mu);
                                s->accepts++;
                                pthread_mutex_unlock(&s->mu);
                        }
                        continue;
                }
                if (conn < 0 ||
                    !(pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                n = recv(conn, buf, sizeof(buf), 0);
                if (n <= 0) {
                        close(conn);
                        conn = -1;
                        continue;
                }
                relay_buf_append(&in, buf, (size_t)n);
                while ((rc = serve_one(s, conn, &in)) == 1)
                        ;
                if (rc < 0) {
                        close(conn);
                        conn = -1;
                }
        }
        if (conn >= 0)
                close(conn);
        relay_buf_free(&in);
        return NULL;
}

static void server_script(struct server *s, const struct reply *script, int n)
{
        pthread_mutex_lock(&s->mu);
        s->script = script;
        s->nscript = n;
        pthread_mutex_unlock(&s->mu);
}

static int server_accepts(struct server *s)
{
        int n;

        pthread_mutex_lock(&s->mu);
        n = s->accepts;
        pthread_mutex_unlock(&s->mu);
        return n;
}

/* A copy of request i as the server saw it (its body borrowed from the
 * server, valid until teardown). */
static struct request server_request(struct server *s, int i)
{
        struct request r;
        int n;

        pthread_mutex_lock(&s->mu);
        n = s->nreq;
        if (i < n)
                r = s->req[i];
        pthread_mutex_unlock(&s->mu);
        /* Asserted outside the lock: a failure longjmps to the teardown,
         * which needs the lock. */
        assert_true(i < n);
        return r;
}

static int setup(void **state)
{
        struct server *s = relay_calloc(1, sizeof(*s));
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof(sa);

        pthread_mutex_init(&s->mu, NULL);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
        if (s->listen_fd < 0 ||
            bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            listen(s->listen_fd, 8) != 0 ||
            getsockname(s->listen_fd, (struct sockaddr *)&sa, &len) != 0 ||
            pthread_create(&s->thread, NULL, server_main, s) != 0) {
                if (s->listen_fd >= 0)
                        close(s->listen_fd);
                free(s);
                return -1;
        }
        s->port = ntohs(sa.sin_port);
        *state = s;
        return 0;
}

static int teardown(void **state)
{
        struct server *s = *state;

        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_mutex_unlock(&s->mu);
        /* Bounded: every wait in the server is a 50 ms poll or a 10 ms
         * sleep that checks stop. */
        pthread_join(s->thread, NULL);
        close(s->listen_fd);
        for (int i = 0; i < s->nreq; i++)
                relay_buf_free(&s->req[i].body);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return 0;
}

static void make_url(char *url, size_t size, int port, const char *path)
{
        snprintf(url, size, "http://127.0.0.1:%d%s", port, path);
}

/* ---- tests -------------------------------------------------------------- */

static void test_post_body_and_basic_auth(void **state)
{
        struct server *s = *state;
        static const char body[] = "{\"a\":1}\0binary\xff tail";
        static const struct reply script[] = {
            {.status = 202,
             .headers = "Content-Type: application/json; charset=utf-8\r\n",
             .body = "{\"accepted\":true}"},
        };
        relay_http_request_t req = {
            .userpwd = "key:secret",
            .headers = {"Content-Type: application/json"},
            .body = body,
            .body_len = sizeof(body) - 1,
        };
        relay_http_response_t resp;
        relay_http_t *h = relay_http_new(1500, 1000);
        struct request got;
        char url[64], v[256];

        assert_non_null(h);
        server_script(s, script, 1);
        make_url(url, sizeof(url), s->port, "/v2/bulkevents");
        req.url = url;
        relay_http_response_init(&resp);

        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_int_equal(resp.status, 202);
        assert_int_equal(resp.transport_error, 0);
        assert_int_equal(resp.timed_out, 0);
        assert_string_equal(resp.error, "");
        assert_int_equal(resp.retry_after_ms, -1);
        assert_string_equal(resp.content_type,
                            "application/json; charset=utf-8");
        assert_string_equal(resp.body.data, "{\"accepted\":true}");
        assert_true(resp.seconds >= 0 && resp.seconds < 2);
        assert_int_equal(relay_http_classify(&resp), RELAY_OK);

        got = server_request(s, 0);
        assert_string_equal(got.method, "POST");
        assert_true(strncmp(got.head, "POST /v2/bulkevents HTTP/1.1\r\n", 30) ==
                    0);
        /* Every byte, the NUL and the 0xff included, and the length. */
        assert_true(find_header(got.head, "Content-Length", v, sizeof(v)));
        assert_int_equal(strtoul(v, NULL, 10), sizeof(body) - 1);
        assert_int_equal(got.body.len, sizeof(body) - 1);
        assert_memory_equal(got.body.data, body, sizeof(body) - 1);
        assert_true(find_header(got.head, "Authorization", v, sizeof(v)));
        assert_string_equal(v, "Basic a2V5OnNlY3JldA==");
        assert_true(find_header(got.head, "Content-Type", v, sizeof(v)));
        assert_string_equal(v, "application/json");
        assert_true(find_header(got.head, "User-Agent", v, sizeof(v)));
        assert_string_equal(v, "relay/0.1");
        assert_false(find_header(got.head, "Expect", v, sizeof(v)));

        relay_http_response_reset(&resp);
        assert_null(resp.body.data);
        assert_int_equal(resp.body.len, 0);
        assert_int_equal(resp.status, 0);
        assert_int_equal(resp.retry_after_ms, -1);
        relay_http_destroy(h);
}

static void test_methods_headers_and_no_leaked_credentials(void **state)
{
        struct server *s = *state;
        static const struct reply script[] = {{.status = 200}};
        relay_http_request_t put = {
            .method = "PUT",
            .userpwd = "key:secret",
            .headers = {"X-Relay-Test: yes", "X-Api-Key: k-123"},
            .body = "{}",
            .body_len = 2,
        };
        relay_http_request_t get = {.method = "GET",
                                    .headers = {"X-Second: 2"}};
        relay_http_response_t resp;
        relay_http_t *h = relay_http_new(1500, 1000);
        struct request got;
        char url[64], v[256];

        assert_non_null(h);
        server_script(s, script, 1);
        make_url(url, sizeof(url), s->port, "/users/track");
        put.url = get.url = url;
        relay_http_response_init(&resp);

        assert_int_equal(relay_http_perform(h, &put, &resp), 0);
        got = server_request(s, 0);
        assert_string_equal(got.method, "PUT");
        assert_int_equal(got.body.len, 2);
        assert_memory_equal(got.body.data, "{}", 2);
        assert_true(find_header(got.head, "X-Relay-Test", v, sizeof(v)));
        assert_string_equal(v, "yes");
        assert_true(find_header(got.head, "X-Api-Key", v, sizeof(v)));
        assert_string_equal(v, "k-123");
        assert_true(find_header(got.head, "Authorization", v, sizeof(v)));

        /* The next request on the same handle carries only its own method,
         * headers and credentials: none of the PUT's. */
        assert_int_equal(relay_http_perform(h, &get, &resp), 0);
        assert_int_equal(resp.status, 200);
        got = server_request(s, 1);
        assert_string_equal(got.method, "GET");
        assert_int_equal(got.body.len, 0);
        assert_false(find_header(got.head, "Content-Length", v, sizeof(v)));
        assert_true(find_header(got.head, "X-Second", v, sizeof(v)));
        assert_false(find_header(got.head, "X-Relay-Test", v, sizeof(v)));
        assert_false(find_header(got.head, "X-Api-Key", v, sizeof(v)));
        assert_false(find_header(got.head, "Authorization", v, sizeof(v)));

        relay_http_response_reset(&resp);
        relay_http_destroy(h);
}

static void test_429_retry_after_then_no_leak(void **state)
{
        struct server *s = *state;
        static const struct reply script[] = {
            {.status = 429,
             .headers = "retry-after: 2\r\ncontent-type: text/plain\r\n",
             .body = "slow down"},
            {.status = 200, .body = "ok"},
        };
        relay_http_request_t req = {.body = "x", .body_len = 1};
        relay_http_response_t resp;
        relay_http_t *h = relay_http_new(1500, 1000);
        char url[64];

        assert_non_null(h);
        server_script(s, script, 2);
        make_url(url, sizeof(url), s->port, "/");
        req.url = url;
        relay_http_response_init(&resp);

        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_int_equal(resp.status, 429);
        assert_int_equal(resp.retry_after_ms, 2000);
        assert_string_equal(resp.content_type, "text/plain");
        assert_string_equal(resp.body.data, "slow down");
        assert_int_equal(relay_http_classify(&resp), RELAY_RETRY);

        /* The next answer has neither header: nothing may be left over. */
        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_int_equal(resp.status, 200);
        assert_int_equal(resp.retry_after_ms, -1);
        assert_string_equal(resp.content_type, "");
        assert_string_equal(resp.body.data, "ok");
        assert_int_equal(relay_http_classify(&resp), RELAY_OK);

        relay_http_response_reset(&resp);
        relay_http_destroy(h);
}

static void test_interim_response_headers_do_not_leak(void **state)
{
        struct server *s = *state;
        static const struct reply script[] = {
            {.prefix = "HTTP/1.1 100 Continue\r\nRetry-After: 5\r\n"
                       "Content-Type: text/html\r\n\r\n",
             .status = 200,
             .body = "done"},
        };
        relay_http_request_t req = {.body = "x", .body_len = 1};
        relay_http_response_t resp;
        relay_http_t *h = relay_http_new(1500, 1000);
        char url[64];

        assert_non_null(h);
        server_script(s, script, 1);
        make_url(url, sizeof(url), s->port, "/");
        req.url = url;
        relay_http_response_init(&resp);

        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_int_equal(resp.status, 200);
        assert_int_equal(resp.retry_after_ms, -1);
        assert_string_equal(resp.content_type, "");
        assert_string_equal(resp.body.data, "done");

        relay_http_response_reset(&resp);
        relay_http_destroy(h);
}

static void test_status_classification(void **state)
{
        struct server *s = *state;
        static const struct reply script[] = {
            {.status = 503},
            {.status = 400},
            {.status = 401},
            {.status = 408},
            {.status = 500},
            {.status = 404},
            {.status = 302, .headers = "Location: http://127.0.0.1:1/\r\n"},
        };
        static const enum relay_result want[] = {
            RELAY_RETRY, RELAY_FATAL, RELAY_FATAL, RELAY_RETRY,
            RELAY_RETRY, RELAY_FATAL, RELAY_FATAL,
        };
        relay_http_request_t req = {.body = "x", .body_len = 1};
        relay_http_response_t resp;
        relay_http_t *h = relay_http_new(1500, 1000);
        char url[64];

        assert_non_null(h);
        server_script(s, script, 7);
        make_url(url, sizeof(url), s->port, "/");
        req.url = url;
        relay_http_response_init(&resp);

        for (int i = 0; i < 7; i++) {
                assert_int_equal(relay_http_perform(h, &req, &resp), 0);
                /* The 302 is reported, not followed. */
                assert_int_equal(resp.status, script[i].status);
                assert_int_equal(relay_http_classify(&resp), want[i]);
        }

        relay_http_response_reset(&resp);
        relay_http_destroy(h);
}

static void test_timeout(void **state)
{
        struct server *s = *state;
        static const struct reply script[] = {
            {.status = 200, .delay_ms = 1500}};
        relay_http_request_t req = {.body = "x", .body_len = 1};
        relay_http_response_t resp;
        relay_http_t *h = relay_http_new(300, 300);
        int64_t t0;
        char url[64];

        assert_non_null(h);
        server_script(s, script, 1);
        make_url(url, sizeof(url), s->port, "/");
        req.url = url;
        relay_http_response_init(&resp);

        t0 = relay_mono_ms();
        assert_int_equal(relay_http_perform(h, &req, &resp), -1);
        assert_true(relay_mono_ms() - t0 < 1000);
        assert_int_equal(resp.timed_out, 1);
        assert_int_equal(resp.transport_error, CURLE_OPERATION_TIMEDOUT);
        assert_int_equal(resp.status, 0);
        assert_true(resp.error[0] != '\0');
        assert_int_equal(relay_http_classify(&resp), RELAY_RETRY);

        relay_http_response_reset(&resp);
        relay_http_destroy(h);
}

static void test_connection_refused(void **state)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof(sa);
        relay_http_request_t req = {.body = "x", .body_len = 1};
        relay_http_response_t resp;
        relay_http_t *h = relay_http_new(1500, 1000);
        char url[64];
        int fd;

        /* A port that was just free and is now closed: nothing listens. */
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        close(fd);

        assert_non_null(h);
        make_url(url, sizeof(url), ntohs(sa.sin_port), "/");
        req.url = url;
        relay_http_response_init(&resp);

        assert_int_equal(relay_http_perform(h, &req, &resp), -1);
        assert_int_equal(resp.transport_error, CURLE_COULDNT_CONNECT);
        assert_int_equal(resp.timed_out, 0);
        assert_int_equal(resp.status, 0);
        assert_true(resp.error[0] != '\0');
        assert_int_equal(relay_http_classify(&resp), RELAY_RETRY);

        relay_http_response_reset(&resp);
        relay_http_destroy(h);
}

static void test_keepalive_reuses_connection(void **state)
{
        struct server *s = *state;
        static const struct reply script[] = {{.status = 200, .body = "1"},
                                              {.status = 202, .body = "2"},
                                              {.status = 200, .body = "3"}};
        relay_http_request_t req = {.body = "x", .body_len = 1};
        relay_http_response_t resp;
        relay_http_t *h = relay_http_new(1500, 1000);
        char url[64];

        assert_non_null(h);
        server_script(s, script, 3);
        make_url(url, sizeof(url), s->port, "/");
        req.url = url;
        relay_http_response_init(&resp);

        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_string_equal(resp.body.data, "1");
        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_int_equal(resp.status, 202);
        assert_string_equal(resp.body.data, "2");
        req.method = "GET";
        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_string_equal(resp.body.data, "3");
        assert_int_equal(server_accepts(s), 1);

        relay_http_response_reset(&resp);
        relay_http_destroy(h);
}

static void test_large_bodies(void **state)
{
        struct server *s = *state;
        size_t big = 3 * ((size_t)1 << 19); /* 1.5 MiB */
        char *body = relay_malloc(big);
        struct reply script[2] = {
            {.status = 200, .body = body, .body_len = big},
            {.status = 200, .body = "small"}};
        /* The request body is big too: past libcurl's threshold for
         * "Expect: 100-continue", which must not be sent. */
        relay_http_request_t req = {.body = body, .body_len = big};
        relay_http_response_t resp;
        relay_http_t *h = relay_http_new(1500, 1000);
        struct request got;
        char url[64], v[64];

        memset(body, 'b', big);
        assert_non_null(h);
        server_script(s, script, 2);
        make_url(url, sizeof(url), s->port, "/");
        req.url = url;
        relay_http_response_init(&resp);

        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_int_equal(resp.status, 200);
        assert_int_equal(resp.body.len, (size_t)1 << 20);
        assert_int_equal(resp.body.data[resp.body.len - 1], 'b');
        assert_int_equal(resp.body.data[resp.body.len], '\0');
        got = server_request(s, 0);
        assert_int_equal(got.body.len, big);
        assert_false(find_header(got.head, "Expect", v, sizeof(v)));

        /* The body buffer is reused: the next answer replaces it whole, and
         * the connection survived the truncation. */
        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_string_equal(resp.body.data, "small");
        assert_int_equal(server_accepts(s), 1);

        relay_http_response_reset(&resp);
        relay_http_destroy(h);
        /* The server reads the script only while answering, so with both
         * answers received it is safe to free. */
        free(body);
}

static void test_classify_without_answer(void **state)
{
        relay_http_response_t resp;

        relay_http_response_init(&resp);
        assert_int_equal(resp.status, 0);
        assert_int_equal(resp.retry_after_ms, -1);
        assert_string_equal(resp.error, "");
        assert_string_equal(resp.content_type, "");
        assert_int_equal(relay_http_classify(&resp), RELAY_RETRY);
        resp.status = 425;
        assert_int_equal(relay_http_classify(&resp), RELAY_RETRY);
        resp.status = 204;
        assert_int_equal(relay_http_classify(&resp), RELAY_OK);
        resp.status = 413;
        assert_int_equal(relay_http_classify(&resp), RELAY_FATAL);
        resp.transport_error = CURLE_RECV_ERROR;
        assert_int_equal(relay_http_classify(&resp), RELAY_RETRY);
        relay_http_response_reset(&resp);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_post_body_and_basic_auth,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                test_methods_headers_and_no_leaked_credentials, setup,
                teardown),
            cmocka_unit_test_setup_teardown(test_429_retry_after_then_no_leak,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                test_interim_response_headers_do_not_leak, setup, teardown),
            cmocka_unit_test_setup_teardown(test_status_classification, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
            cmocka_unit_test(test_connection_refused),
            cmocka_unit_test_setup_teardown(test_keepalive_reuses_connection,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(test_large_bodies, setup, teardown),
            cmocka_unit_test(test_classify_without_answer),
        };
        int failed;

        /* The last line of defence against a hang: every test is bounded on
         * its own, and the whole binary needs a few seconds at most. */
        alarm(30);
        if (relay_http_global_init() != 0)
                return 1;
        failed = cmocka_run_group_tests(tests, NULL, NULL);
        relay_http_global_cleanup();
        return failed;
}
