/*
 * mhd_static: the yardstick of tests/bench/ingest.sh. A libmicrohttpd
 * server with relay-ingest's daemon flags (one internal polling thread,
 * poll(), suspend/resume allowed) and limits,
 * that reads a POST's body and answers 202 with a JSON body of the size
 * relay-ingest's has, at once: what serving HTTP costs on this machine
 * with nothing of relay (no JSON, no Avro, no Kafka) behind it.
 *
 *   mhd_static PORT_FILE     (listens on 127.0.0.1, any free port)
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char answer[] =
    "{\"event_id\":\"9453e81c-310a-5a78-9a6d-07e89f495ad4\",\"request_id\":"
    "\"b71700a7-0ab3-401a-9dfa-5dfee20e6f59\"}\n";

static enum MHD_Result handle(void *cls, struct MHD_Connection *con,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
        (void)cls;
        (void)url;
        (void)method;
        (void)version;
        (void)upload;
        if (!*con_cls) {
                *con_cls = (void *)1;
                return MHD_YES;
        }
        if (*upload_size) {
                *upload_size = 0;
                return MHD_YES;
        }
        struct MHD_Response *r = MHD_create_response_from_buffer(
            sizeof(answer) - 1, (void *)answer, MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json");
        enum MHD_Result ret = MHD_queue_response(con, MHD_HTTP_ACCEPTED, r);
        MHD_destroy_response(r);
        return ret;
}

static volatile sig_atomic_t run = 1;
static void stop(int sig)
{
        (void)sig;
        run = 0;
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: mhd_static PORT_FILE\n");
                return 2;
        }
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        struct MHD_Daemon *d = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                MHD_ALLOW_SUSPEND_RESUME,
            0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
            MHD_OPTION_END);
        if (!d)
                return 1;
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        FILE *fp = fopen(argv[1], "w");
        if (!fp)
                return 1;
        fprintf(fp, "%d\n", di->port);
        fclose(fp);
        signal(SIGTERM, stop);
        signal(SIGINT, stop);
        while (run)
                pause();
        MHD_stop_daemon(d);
        return 0;
}
