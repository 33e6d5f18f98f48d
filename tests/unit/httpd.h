/*
 * A tiny scripted HTTP/1.1 server for the unit tests of HTTP clients (the
 * relay_http client, the schema registry client), run in a thread of the
 * test itself on 127.0.0.1 at a port the kernel picks. It reads a
 * connection's requests one at a time, records what arrived (method, header
 * block, body, and how many connections it accepted) and answers with the next
 * reply of the test's script, past the end of which the last reply repeats, or
 * with the reply a callback of the test chooses from the request
 * (server_choose). Everything it does is bounded by 50 ms polls on a stop flag,
 * so a broken client makes a test fail rather than hang (main() should still
 * arm an alarm).
 *
 * Use httpd_setup/httpd_teardown as a cmocka test's setup and teardown: the
 * test gets the struct server in *state. Each connection is served by a
 * thread of its own, so concurrent requests are answered concurrently. Include
 * after <cmocka.h>, whose assertions its checks then are; without cmocka (the
 * fuzz targets) a failed check aborts. Like unit.h, everything here is static
 * so each test binary has its own copy.
 */
#ifndef RELAY_TESTS_HTTPD_H
#define RELAY_TESTS_HTTPD_H

#include "relay/common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef assert_true
#define httpd_check(c) assert_true(c)
#else
#define httpd_check(c) ((c) ? (void)0 : abort())
#endif

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

#define MAX_REQUESTS 32
#define MAX_CONNS    256

/* A reply chosen from the request itself (see server_choose): rq is the
 * request as received (its body is borrowed for the call), n counts every
 * request answered before it. The reply must stay valid until sent. Runs in
 * the server's thread, with the server's lock held: it must not call the
 * server_* functions. */
typedef const struct reply *(*reply_fn)(void *arg, const struct request *rq,
                                        int n);

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
        reply_fn choose; /* or NULL: the script */
        void *choose_arg;
        int answered;           /* all requests, also those past MAX_REQUESTS */
        int active, max_active; /* being answered at once: now, at most */
};

static inline int server_stopping(struct server *s)
{
        int stop;

        pthread_mutex_lock(&s->mu);
        stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        return stop;
}

/* The value of header `name` in a header block, copied to value. */
static inline int find_header(const char *head, const char *name, char *value,
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

static inline size_t find_head_end(const relay_buf_t *b)
{
        for (size_t i = 0; i + 4 <= b->len; i++)
                if (memcmp(b->data + i, "\r\n\r\n", 4) == 0)
                        return i + 4;
        return 0;
}

static inline int send_all(struct server *s, int fd, const char *p, size_t n)
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

static inline int send_reply(struct server *s, int fd, const struct reply *r)
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
static inline int serve_one(struct server *s, int fd, relay_buf_t *in)
{
        size_t head_len = find_head_end(in);
        char cl[32];
        size_t body_len = 0;
        struct request *rq, unrecorded;
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
        if (s->choose) {
                /* Chosen by the test: requests past MAX_REQUESTS are
                 * answered too, only not recorded. */
                rq = s->nreq < MAX_REQUESTS ? &s->req[s->nreq] : &unrecorded;
        } else if (s->nreq >= MAX_REQUESTS || s->nscript == 0) {
                pthread_mutex_unlock(&s->mu);
                return -1;
        } else {
                rq = &s->req[s->nreq];
        }
        snprintf(rq->head, sizeof(rq->head), "%.*s", (int)(head_len - 2),
                 in->data);
        sscanf(rq->head, "%15s", rq->method);
        relay_buf_init(&rq->body);
        relay_buf_append(&rq->body, in->data + head_len, body_len);
        if (s->choose) {
                r = s->choose(s->choose_arg, rq, s->answered);
                if (rq != &unrecorded)
                        s->nreq++;
                else
                        relay_buf_free(&rq->body);
        } else {
                /* Past the end of the script, the last reply repeats. */
                r = &s->script[s->nreq < s->nscript ? s->nreq : s->nscript - 1];
                s->nreq++;
        }
        s->answered++;
        if (++s->active > s->max_active)
                s->max_active = s->active;
        pthread_mutex_unlock(&s->mu);

        memmove(in->data, in->data + head_len + body_len,
                in->len - head_len - body_len);
        in->len -= head_len + body_len;
        int rc = send_reply(s, fd, r);
        pthread_mutex_lock(&s->mu);
        s->active--;
        pthread_mutex_unlock(&s->mu);
        return rc == 0 ? 1 : -1;
}

/* One connection, served until the client closes it or the server
 * stops. */
struct conn {
        struct server *s;
        int fd;
        pthread_t thread;
};

static inline void *conn_main(void *arg)
{
        struct conn *c = arg;
        struct server *s = c->s;
        relay_buf_t in;

        relay_buf_init(&in);
        while (!server_stopping(s)) {
                struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
                char buf[16384];
                ssize_t n;
                int rc;

                if (poll(&pfd, 1, 50) <= 0)
                        continue;
                n = recv(c->fd, buf, sizeof(buf), 0);
                if (n <= 0)
                        break;
                relay_buf_append(&in, buf, (size_t)n);
                while ((rc = serve_one(s, c->fd, &in)) == 1)
                        ;
                if (rc < 0)
                        break;
        }
        close(c->fd);
        relay_buf_free(&in);
        return NULL;
}

/* Accepts connections and serves each in a thread of its own, so that a
 * client with several requests in flight (libcurl multi) is answered
 * concurrently, a delayed reply holding up only its own connection. */
static inline void *server_main(void *arg)
{
        struct server *s = arg;
        struct conn *conns[MAX_CONNS];
        int nconns = 0;

        while (!server_stopping(s)) {
                struct pollfd pfd = {.fd = s->listen_fd, .events = POLLIN};

                if (poll(&pfd, 1, 50) <= 0 || !(pfd.revents & POLLIN))
                        continue;
                int fd = accept(s->listen_fd, NULL, NULL);
                if (fd < 0)
                        continue;
                if (nconns == MAX_CONNS) {
                        close(fd); /* the client sees a reset */
                        continue;
                }
                struct conn *c = relay_calloc(1, sizeof(*c));
                c->s = s;
                c->fd = fd;
                if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
                        close(fd);
                        free(c);
                        continue;
                }
                conns[nconns++] = c;
                pthread_mutex_lock(&s->mu);
                s->accepts++;
                pthread_mutex_unlock(&s->mu);
        }
        /* Bounded: each connection's waits are 50 ms polls and 10 ms
         * sleeps that check stop. */
        for (int i = 0; i < nconns; i++) {
                pthread_join(conns[i]->thread, NULL);
                free(conns[i]);
        }
        return NULL;
}

static inline void server_script(struct server *s, const struct reply *script,
                                 int n)
{
        pthread_mutex_lock(&s->mu);
        s->script = script;
        s->nscript = n;
        pthread_mutex_unlock(&s->mu);
}

/* Choose every reply with fn instead of a script (NULL: back to the
 * script). */
static inline void server_choose(struct server *s, reply_fn fn, void *arg)
{
        pthread_mutex_lock(&s->mu);
        s->choose = fn;
        s->choose_arg = arg;
        pthread_mutex_unlock(&s->mu);
}

static inline int server_accepts(struct server *s)
{
        int n;

        pthread_mutex_lock(&s->mu);
        n = s->accepts;
        pthread_mutex_unlock(&s->mu);
        return n;
}

/* The most requests that were being answered at the same time. */
static inline int server_max_active(struct server *s)
{
        int n;

        pthread_mutex_lock(&s->mu);
        n = s->max_active;
        pthread_mutex_unlock(&s->mu);
        return n;
}

/* How many requests the server has answered (or is answering) so far. */
static inline int server_nreq(struct server *s)
{
        int n;

        pthread_mutex_lock(&s->mu);
        n = s->nreq;
        pthread_mutex_unlock(&s->mu);
        return n;
}

/* A copy of request i as the server saw it (its body borrowed from the
 * server, valid until teardown). */
static inline struct request server_request(struct server *s, int i)
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
        httpd_check(i < n);
        return r;
}

/* Forget the requests recorded so far, so that a long-running user (a
 * fuzz target) never meets MAX_REQUESTS: the next request is number 0
 * again and gets the script's first reply. Bodies returned by
 * server_request() before are freed. Call between requests. */
static inline void server_forget(struct server *s)
{
        pthread_mutex_lock(&s->mu);
        for (int i = 0; i < s->nreq; i++)
                relay_buf_free(&s->req[i].body);
        s->nreq = 0;
        pthread_mutex_unlock(&s->mu);
}

static inline int httpd_setup(void **state)
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

static inline int httpd_teardown(void **state)
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

static inline void make_url(char *url, size_t size, int port, const char *path)
{
        snprintf(url, size, "http://127.0.0.1:%d%s", port, path);
}
/* A loopback port that was just free and is now closed: nothing listens
 * there, so a connection to it is refused at once. */
static inline int httpd_closed_port(void)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof(sa);
        int fd;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        httpd_check(fd >= 0);
        httpd_check(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        httpd_check(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
        close(fd);
        return ntohs(sa.sin_port);
}

#endif
