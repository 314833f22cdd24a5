/* test_cpp.c -- the C++ example plugin (examples/cpp/echo.cpp), as the
 * guide's C++ recipe built it (tests/sdk/recipes.sh), run by bushost on
 * the real broker: Greet answers from its config, Echo with the same
 * bytes, a Greet without a name with the host's invalid payload result
 * (its declared schema), an empty name with bh_result_errorf's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RESULT_KEY "itest.CppResult"

static it_msg_t *call(it_conn_t *c, it_listener_t *l, const char *key, const char *body)
{
    char corr[IT_ID_MAX], conv[IT_ID_MAX];
    it_unique(corr, "corr");
    it_unique(conv, "conv");
    it_pub_t cmd = it_command(key, RESULT_KEY, corr, conv, "application/json", body, strlen(body));
    it_publish(c, &cmd);
    it_msg_t *r = it_get(l, 10000);
    if (!r) IT_FAIL("no result for %s within 10 s", key);
    assert_string_equal(r->correlation_id, corr);
    return r;
}

static void test_cpp_plugin_answers_its_commands(void **state)
{
    char *so = it_asprintf("%s/%s/echo_cpp.so", it_env("BH_RECIPES"), it_env("BH_CPP_BUILD"));
    it_conn_t *c = it_connect();
    it_listener_t *l = it_listen("commands", (const char *[]){RESULT_KEY, NULL});
    it_host_t *h =
        it_host_ready(c, "echo_cpp.commands",
                      &(it_host_opts_t){.plugins = so, .sections = "[echo_cpp]\ngreeting = Hi\n"});

    it_msg_t *r = call(c, l, "echo_cpp.Greet", "{\"name\": \"Ann\"}");
    assert_string_equal(r->status, "success");
    json_t *p = it_payload(r);
    assert_string_equal(json_string_value(json_object_get(p, "greeting")), "Hi, Ann");
    json_decref(p);
    it_msg_free(r);

    r = call(c, l, "echo_cpp.Echo", "{ \"k\" :1 }");
    assert_string_equal(r->status, "success");
    assert_int_equal(r->len, 10);
    assert_memory_equal(r->body, "{ \"k\" :1 }", 10);
    it_msg_free(r);

    r = call(c, l, "echo_cpp.Greet", "{}");
    assert_string_equal(r->status, "error");
    p = it_payload(r);
    json_t *want = json_pack("{s:s, s:s, s:s}", "error", "invalid payload", "field", "name",
                             "expected", "string");
    assert_true(json_equal(p, want));
    json_decref(want);
    json_decref(p);
    it_msg_free(r);

    r = call(c, l, "echo_cpp.Greet", "{\"name\": \"\"}");
    assert_string_equal(r->status, "error");
    p = it_payload(r);
    assert_string_equal(json_string_value(json_object_get(p, "error")), "name is empty");
    json_decref(p);
    it_msg_free(r);

    assert_int_equal(it_host_stop(h, 15000), 0);
    it_unlisten(l);
    it_close(c);
    free(so);
    it_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_cpp_plugin_answers_its_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
