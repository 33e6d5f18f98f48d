/*
 * Unit tests of the Mapp Engage adapter (common/adapters/mappengage.c):
 * the calls exactly as a server receives them (path, the email's
 * encoding, Basic auth, Host, Accept, Content-Type), the group of a new
 * audience found or cloned once and not again (also after a restart, when
 * it is found by name), remove, the records refused with their reasons,
 * and what each answer means. The deliver engine's part (send, classify,
 * partial, send again on RELAY_RETRY) is played by deliver() below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "adapter_fixture.h"

/* The fake Engage's groups ("relay-<aud>" -> id) and how often it was
 * asked to find and to clone one; emptied by setup. */
static struct engage {
        char groups[8][64];
        long long ids[8];
        int ngroups, clones, finds;
} fake;

/* A fake Engage answering find, clone and membership calls. */
static const struct reply *engage(void *arg, const struct request *rq, int n)
{
        static struct reply r;
        static char body[512];
        struct engage *g = arg;
        (void)n;
        memset(&r, 0, sizeof(r));
        const char *target = strchr(rq->head, ' ') + 1;
        if (!strncmp(target, "/api/rest/v19/group/find?name=", 30)) {
                const char *name = target + 30;
                size_t len = strcspn(name, " ");
                g->finds++;
                r.status = 200;
                snprintf(body, sizeof(body), "[]");
                for (int i = 0; i < g->ngroups; i++)
                        if (strlen(g->groups[i]) == len &&
                            !strncmp(g->groups[i], name, len))
                                snprintf(body, sizeof(body),
                                         "[{\"id\":%lld,\"name\":\"%s\","
                                         "\"email\":\"x@y\"}]",
                                         g->ids[i], g->groups[i]);
                r.body = body;
                return &r;
        }
        if (!strncmp(target, "/api/rest/v19/group/clone?", 26)) {
                json_t *j = json_loadb(rq->body.data, rq->body.len, 0, NULL);
                const char *name = json_string_value(json_object_get(j, "name"));
                g->clones++;
                int i = g->ngroups++;
                snprintf(g->groups[i], sizeof(g->groups[i]), "%s", name);
                g->ids[i] = 5000 + i;
                snprintf(body, sizeof(body),
                         "{\"id\":%lld,\"name\":\"%s\",\"description\":\"\","
                         "\"email\":\"e@g\"}",
                         g->ids[i], name);
                json_decref(j);
                r.status = 200;
                r.body = body;
                return &r;
        }
        r.status = 204;
        return &r;
}

/* A conf with the URL, the account and one more key, which may be
 * refused (-1); else init's result. */
static int setup_conf(struct fixture *f, const char *k, const char *v,
                      char *errstr, size_t errstr_size)
{
        static const char *const kv[][2] = {
            {"mappengage.username", "api-user"},
            {"mappengage.host", "engage.example.com"},
            {"mappengage.default_group_id", "1000"},
            {"mappengage.group_email_domain", "groups.example.com"},
        };
        const char *const url[][2] = {{"mappengage.url", f->url}};
        fx_conf_new(f);
        unsetenv("RELAY_MAPPENGAGE_PASSWORD_FILE");
        setenv("RELAY_MAPPENGAGE_PASSWORD", "s3cret", 1);
        fx_conf_set(f, url, 1, errstr, errstr_size);
        fx_conf_set(f, kv, sizeof(kv) / sizeof(kv[0]), errstr, errstr_size);
        if (k && relay_conf_set(f->conf, k, v, errstr, errstr_size))
                return -1;
        return fx_init(f, errstr, errstr_size);
}

static void start(struct fixture *f)
{
        char errstr[512];
        if (setup_conf(f, NULL, NULL, errstr, sizeof(errstr)))
                fail_msg("init: %s", errstr);
}

static int setup(void **state)
{
        memset(&fake, 0, sizeof(fake));
        fx_setup(state, "mappengage", "/api/rest/v19/");
        struct fixture *f = *state;
        server_choose(f->srv, engage, &fake);
        return 0;
}

/* A v2 envelope with the given identities and operations (JSON text). */
static enum relay_result encode(struct fixture *f, const char *identities,
                                const char *operations, relay_buf_t *item,
                                char *errstr, size_t errstr_size)
{
        char text[2048];
        snprintf(text, sizeof(text),
                 "{\"event_id\":\"e1\",\"occurred_at\":1764064860123,"
                 "\"tenant\":\"acme\",\"source\":\"dmp\",\"connection\":"
                 "\"c1\",\"destination\":\"mappengage\",\"environment\":"
                 "\"production\",\"identity_type\":\"dmp_id\","
                 "\"identity_value\":\"u1\",\"event_name\":null,"
                 "\"event_category\":null,\"attributes\":{},"
                 "\"user_attributes\":{},\"identities\":%s,"
                 "\"operations\":%s}",
                 identities, operations);
        json_t *rec = fx_record(text, NULL, NULL);
        enum relay_result res = fx_encode(f, rec, item, errstr, errstr_size);
        json_decref(rec);
        return res;
}

#define OP(op, target)                                                         \
        "[{\"op\":\"" op "\",\"target\":" target ",\"attributes\":{}}]"

/* Play the engine for one item: send, classify, partial; send again while
 * the item is handed back as RELAY_RETRY (at most 6 sends). The last
 * result; *sends how many requests went. */
static enum relay_result deliver(struct fixture *f, const relay_buf_t *item,
                                 int *sends, char *why, size_t why_size)
{
        relay_http_t *h = relay_http_new(5000, 2000);
        relay_buf_t body;
        relay_buf_init(&body);
        enum relay_result res = RELAY_RETRY;
        for (*sends = 0; *sends < 6;) {
                relay_http_request_t req;
                relay_http_response_t resp;
                relay_adapter_request(f->a, f->st, item, 1, &body, &req);
                relay_http_response_init(&resp);
                relay_http_perform(h, &req, &resp);
                (*sends)++;
                why[0] = '\0';
                res = relay_adapter_classify(f->a, f->st, &resp, why,
                                             why_size);
                relay_item_result_t out[1];
                if (res == RELAY_OK &&
                    relay_adapter_partial(f->a, f->st, &resp, item, 1, out)) {
                        res = out[0].result;
                        snprintf(why, why_size, "%s", out[0].why);
                }
                relay_http_response_reset(&resp);
                if (res != RELAY_RETRY)
                        break;
        }
        relay_buf_free(&body);
        relay_http_destroy(h);
        return res;
}

/* The request line's target of request i. */
static const char *target_of(struct fixture *f, int i, char *out, size_t n)
{
        struct request rq = server_request(f->srv, i);
        const char *t = strchr(rq.head, ' ') + 1;
        size_t len = strcspn(t, " ");
        snprintf(out, n, "%s %.*s", rq.method, (int)len, t);
        return out;
}

static void test_calls_exact(void **state)
{
        struct fixture *f = *state;
        char errstr[512], t[512], v[256];
        int sends;
        relay_buf_t item;
        relay_buf_init(&item);
        start(f);
        assert_int_equal(encode(f, "{\"email\":\"a+b[x]@ex.com\"}",
                                OP("membership.add", "\"aud 1\""), &item,
                                errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_int_equal(deliver(f, &item, &sends, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_int_equal(sends, 3);
        assert_int_equal(server_nreq(f->srv), 3);
        assert_string_equal(target_of(f, 0, t, sizeof(t)),
                            "GET /api/rest/v19/group/find?name=relay-aud%201");
        assert_string_equal(target_of(f, 1, t, sizeof(t)),
                            "POST /api/rest/v19/group/clone?groupId=1000");
        struct request rq = server_request(f->srv, 1);
        json_t *clone = json_loadb(rq.body.data, rq.body.len, 0, NULL);
        assert_non_null(clone);
        assert_string_equal(json_string_value(json_object_get(clone, "name")),
                            "relay-aud 1");
        const char *ge = json_string_value(json_object_get(clone, "email"));
        /* relay-aud1-<8 hex>@<domain> */
        assert_int_equal(strlen(ge), strlen("relay-aud1-01234567@groups."
                                            "example.com"));
        assert_memory_equal(ge, "relay-aud1-", 11);
        assert_string_equal(ge + 19, "@groups.example.com");
        assert_true(json_is_false(json_object_get(clone, "includeTestUsers")));
        json_decref(clone);
        assert_true(find_header(rq.head, "Content-Type", v, sizeof(v)));
        assert_string_equal(v, "application/json");
        /* '+', '[' and ']' encoded, '@' raw */
        assert_string_equal(target_of(f, 2, t, sizeof(t)),
                            "POST /api/rest/v19/membership/subscribeByEmail"
                            "?email=a%2Bb%5Bx%5D@ex.com&groupId=5000"
                            "&subscriptionMode=OPT_IN");
        rq = server_request(f->srv, 2);
        assert_true(find_header(rq.head, "Host", v, sizeof(v)));
        assert_string_equal(v, "engage.example.com");
        assert_true(find_header(rq.head, "Accept", v, sizeof(v)));
        assert_string_equal(v, "application/json");
        assert_true(find_header(rq.head, "Authorization", v, sizeof(v)));
        /* base64("api-user:s3cret") */
        assert_string_equal(v, "Basic YXBpLXVzZXI6czNjcmV0");
        assert_int_equal(rq.body.len, 0);

        /* remove: the same group, no find nor clone */
        assert_int_equal(encode(f, "{\"email\":\"c@ex.com\"}",
                                OP("membership.remove", "\"aud 1\""), &item,
                                errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_int_equal(deliver(f, &item, &sends, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_int_equal(sends, 1);
        assert_string_equal(target_of(f, 3, t, sizeof(t)),
                            "POST /api/rest/v19/membership/unsubscribeByEmail"
                            "?email=c@ex.com&groupId=5000");
        /* user_id when there is no email */
        assert_int_equal(encode(f, "{\"user_id\":\"18000000001\"}",
                                OP("membership.remove", "\"aud 1\""), &item,
                                errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_int_equal(deliver(f, &item, &sends, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_string_equal(target_of(f, 4, t, sizeof(t)),
                            "POST /api/rest/v19/membership/unsubscribe"
                            "?userId=18000000001&groupId=5000"
                            "&unsubscriptionMode=OPT_IN");
        relay_buf_free(&item);
}

/* One clone per new audience, never twice: not for its next records, nor
 * after a restart (found by name). */
static void test_clone_once(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        int sends;
        relay_buf_t item;
        relay_buf_init(&item);
        start(f);
        const char *auds[] = {"\"a1\"", "\"a2\"", "\"a1\"", "\"a2\"",
                              "\"a1\""};
        for (size_t i = 0; i < 5; i++) {
                char ops[128];
                snprintf(ops, sizeof(ops), OP("membership.add", "%s"),
                         auds[i]);
                assert_int_equal(encode(f, "{\"email\":\"p@ex.com\"}", ops,
                                        &item, errstr, sizeof(errstr)),
                                 RELAY_OK);
                assert_int_equal(
                    deliver(f, &item, &sends, errstr, sizeof(errstr)),
                    RELAY_OK);
                assert_int_equal(sends, i < 2 ? 3 : 1);
        }
        assert_int_equal(fake.clones, 2);
        assert_int_equal(fake.finds, 2);
        fx_reinit(f);
        assert_int_equal(encode(f, "{\"email\":\"p@ex.com\"}",
                                OP("membership.add", "\"a2\""), &item, errstr,
                                sizeof(errstr)),
                         RELAY_OK);
        assert_int_equal(deliver(f, &item, &sends, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_int_equal(sends, 2); /* find, then membership */
        assert_int_equal(fake.clones, 2);
        char t[256];
        assert_string_equal(target_of(f, server_nreq(f->srv) - 1, t,
                                      sizeof(t)),
                            "POST /api/rest/v19/membership/subscribeByEmail"
                            "?email=p@ex.com&groupId=5001"
                            "&subscriptionMode=OPT_IN");
        relay_buf_free(&item);
}

/* A clone that lost a race: 400 OBJECT_ALREADY_EXISTS sends the audience
 * back to find, which then finds the group. */
static const struct reply *race(void *arg, const struct request *rq, int n)
{
        static const struct reply find_none = {NULL, 200, NULL, "[]", 0, 0};
        static const struct reply exists = {
            NULL, 400, NULL,
            "{\"errorActor\":\"CLIENT\",\"errorCode\":\"OBJECT_ALREADY_EXISTS\","
            "\"message\":\"Group with group.name=relay-r does already "
            "exist.\"}",
            0, 0};
        static const struct reply found = {
            NULL, 200, NULL, "{\"items\":[{\"id\":77,\"name\":\"relay-r\"}]}",
            0, 0};
        static const struct reply ok = {NULL, 204, NULL, NULL, 0, 0};
        (void)arg;
        (void)rq;
        return n == 0 ? &find_none : n == 1 ? &exists : n == 2 ? &found : &ok;
}

static void test_clone_race(void **state)
{
        struct fixture *f = *state;
        char errstr[512], t[256];
        int sends;
        relay_buf_t item;
        relay_buf_init(&item);
        start(f);
        server_choose(f->srv, race, f);
        assert_int_equal(encode(f, "{\"email\":\"p@ex.com\"}",
                                OP("membership.add", "\"r\""), &item, errstr,
                                sizeof(errstr)),
                         RELAY_OK);
        assert_int_equal(deliver(f, &item, &sends, errstr, sizeof(errstr)),
                         RELAY_OK);
        assert_int_equal(sends, 4);
        assert_string_equal(target_of(f, 2, t, sizeof(t)),
                            "GET /api/rest/v19/group/find?name=relay-r");
        assert_string_equal(target_of(f, 3, t, sizeof(t)),
                            "POST /api/rest/v19/membership/subscribeByEmail"
                            "?email=p@ex.com&groupId=77"
                            "&subscriptionMode=OPT_IN");
        relay_buf_free(&item);
}

static void test_refusals(void **state)
{
        struct fixture *f = *state;
        char errstr[512];
        relay_buf_t item;
        relay_buf_init(&item);
        start(f);
        static const struct {
                const char *ids, *ops, *why;
        } cases[] = {
            {"{\"email\":\"p@ex.com\"}", "null", "no operation"},
            {"{\"email\":\"p@ex.com\"}", "[]", "no operation"},
            {"{\"email\":\"p@ex.com\"}", OP("membership.add", "null"),
             "membership.add without a target"},
            {"{\"email\":\"p@ex.com\"}", OP("membership.remove", "\"\""),
             "membership.remove without a target"},
            {"{\"phone\":\"+4917\"}", OP("membership.add", "\"a\""),
             "no email identity"},
            {"null", OP("membership.add", "\"a\""), "no email identity"},
            {"{\"email\":\"nobody\"}", OP("membership.add", "\"a\""),
             "has no '@'"},
            {"{\"email\":\"p@ex.com\"}", OP("reward.issue", "\"a\""),
             "not one Mapp Engage performs"},
            {"{\"email\":\"p@ex.com\"}",
             "[{\"op\":\"membership.add\",\"target\":\"a\",\"attributes\":{}},"
             "{\"op\":\"membership.add\",\"target\":\"b\",\"attributes\":{}}]",
             "2 operations in one record; "
             "mappengage.max_operations_per_record is 1"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                errstr[0] = '\0';
                assert_int_equal(encode(f, cases[i].ids, cases[i].ops, &item,
                                        errstr, sizeof(errstr)),
                                 RELAY_FATAL);
                if (!strstr(errstr, cases[i].why))
                        fail_msg("case %zu: '%s' lacks '%s'", i, errstr,
                                 cases[i].why);
        }
        /* the bad settings */
        assert_int_equal(setup_conf(f, "mappengage.subscription_mode",
                                    "SOMETIMES", errstr, sizeof(errstr)),
                         -1);
        assert_non_null(strstr(errstr, "SOMETIMES"));
        assert_int_equal(setup_conf(f, "mappengage.max_operations_per_record",
                                    "2", errstr, sizeof(errstr)),
                         -1);
        relay_buf_free(&item);
}

static void test_classify(void **state)
{
        struct fixture *f = *state;
        char why[512];
        start(f);
        static const struct {
                long status;
                const char *body;
                enum relay_result want;
        } cases[] = {
            {204, NULL, RELAY_OK},
            {200, NULL, RELAY_OK},
            {400, "{\"message\":\"User with email=x@y does not exist.\"}",
             RELAY_FATAL},
            {400, "{\"errorCode\":\"OBJECT_ALREADY_EXISTS\"}", RELAY_OK},
            {401, NULL, RELAY_FATAL}, /* the engine pauses on the status */
            {403, NULL, RELAY_FATAL},
            {404, NULL, RELAY_FATAL},
            {429, NULL, RELAY_RETRY},
            {500, NULL, RELAY_RETRY},
            {503, NULL, RELAY_RETRY},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                assert_int_equal(fx_classify(f, cases[i].status, cases[i].body,
                                             0, why, sizeof(why)),
                                 cases[i].want);
                if (cases[i].status == 400 && cases[i].want == RELAY_FATAL)
                        assert_non_null(strstr(why, "does not exist"));
        }
        /* A transport error (no answer). */
        assert_int_equal(fx_classify(f, 0, NULL, 7, why, sizeof(why)),
                         RELAY_RETRY);
        assert_true(relay_adapter_has_operation(f->a, "membership.add"));
        assert_true(relay_adapter_has_operation(f->a, "membership.remove"));
        assert_false(relay_adapter_has_operation(f->a, "reward.issue"));
}

int main(void)
{
        count_init();
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_calls_exact, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_clone_once, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_clone_race, setup,
                                            fx_teardown),
            cmocka_unit_test_setup_teardown(test_refusals, setup, fx_teardown),
            cmocka_unit_test_setup_teardown(test_classify, setup, fx_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
