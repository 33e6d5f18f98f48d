/*
 * Unit tests for the HTTP client against the scripted HTTP/1.1 server of
 * httpd.h, run in a thread of the test itself (127.0.0.1, a port the kernel
 * picks). The server records what arrived (method, header block, body, and
 * how many connections it accepted) and answers with the next reply of the
 * test's script. Everything it does is bounded by 50 ms polls on a stop
 * flag, and main() arms an alarm, so a broken client makes the test fail
 * rather than hang.
 */
#include "relay/common.h"
#include "relay/http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "httpd.h"

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

/* The platform's rate-limit headers: X-RateLimit-* with the reset as Unix
 * seconds (Braze), the IETF RateLimit-* with a delta, and none. */
static void test_ratelimit_headers(void **state)
{
        struct server *s = *state;
        static char braze[160];
        snprintf(braze, sizeof(braze),
                 "X-RateLimit-Limit: 250000\r\nX-RateLimit-Remaining: 7\r\n"
                 "X-RateLimit-Reset: %lld\r\n",
                 (long long)time(NULL) + 30);
        const struct reply script[] = {
            {.status = 201, .headers = braze, .body = "{}"},
            {.status = 200,
             .headers = "ratelimit-remaining: 0\r\nratelimit-reset: 12\r\n",
             .body = "ok"},
            {.status = 200,
             .headers = "X-RateLimit-Remaining: many\r\n",
             .body = "ok"},
        };
        relay_http_request_t req = {.body = "x", .body_len = 1};
        relay_http_response_t resp;
        relay_http_t *h = relay_http_new(1500, 1000);
        char url[64];

        assert_non_null(h);
        server_script(s, script, 3);
        make_url(url, sizeof(url), s->port, "/");
        req.url = url;
        relay_http_response_init(&resp);
        assert_int_equal(resp.ratelimit_remaining, -1);
        assert_int_equal(resp.ratelimit_reset_ms, -1);

        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_int_equal(resp.ratelimit_remaining, 7);
        /* 30 s from when the header was written, read a moment later. */
        assert_in_range(resp.ratelimit_reset_ms, 28000, 30000);

        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_int_equal(resp.ratelimit_remaining, 0);
        assert_int_equal(resp.ratelimit_reset_ms, 12000);

        /* Not a number: absent, and nothing of the last answer is left. */
        assert_int_equal(relay_http_perform(h, &req, &resp), 0);
        assert_int_equal(resp.ratelimit_remaining, -1);
        assert_int_equal(resp.ratelimit_reset_ms, -1);

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
            RELAY_RETRY, RELAY_FATAL, RELAY_RETRY,
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
                                            httpd_setup, httpd_teardown),
            cmocka_unit_test_setup_teardown(
                test_methods_headers_and_no_leaked_credentials, httpd_setup,
                httpd_teardown),
            cmocka_unit_test_setup_teardown(test_ratelimit_headers, httpd_setup,
                                            httpd_teardown),
            cmocka_unit_test_setup_teardown(test_429_retry_after_then_no_leak,
                                            httpd_setup, httpd_teardown),
            cmocka_unit_test_setup_teardown(
                test_interim_response_headers_do_not_leak, httpd_setup,
                httpd_teardown),
            cmocka_unit_test_setup_teardown(test_status_classification,
                                            httpd_setup, httpd_teardown),
            cmocka_unit_test_setup_teardown(test_timeout, httpd_setup,
                                            httpd_teardown),
            cmocka_unit_test(test_connection_refused),
            cmocka_unit_test_setup_teardown(test_keepalive_reuses_connection,
                                            httpd_setup, httpd_teardown),
            cmocka_unit_test_setup_teardown(test_large_bodies, httpd_setup,
                                            httpd_teardown),
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
