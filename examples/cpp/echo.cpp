// echo.cpp -- the echo service written in C++: command Echo answers with
// the very bytes it was given, command Greet with {"greeting": "<word>,
// <name>"}, the word read from config; Greet declares its payload, so the
// host answers one without a string "name" before the handler runs. The descriptor is made with
// BH_PLUGIN_CXX, which needs no designated initialisers; it builds without
// a warning under g++ and clang++, -std=c++17 and -std=c++20, -Wall
// -Wextra -Werror (docs/plugin-guide.md, "C++").
#include <string>

#include "bushost.h"

namespace
{

struct State {
    std::string greeting;
};

bh_outcome_t on_echo(bh_ctx_t *ctx, const bh_msg_t *msg, void *)
{
    return bh_result_raw(ctx, true, msg->content_type, msg->body, msg->body_len) ? BH_RETRY
                                                                                 : BH_DONE;
}

bh_outcome_t on_greet(bh_ctx_t *ctx, const bh_msg_t *msg, void *state)
{
    const char *name = bh_get_str(msg->payload, "name"); // a string: the host checked
    if (!*name) return bh_result_errorf(ctx, "name is empty") ? BH_RETRY : BH_DONE;
    const std::string text = static_cast<State *>(state)->greeting + ", " + name;
    bh_value_t *out = bh_map_new(ctx);
    int rc = bh_map_set_str(ctx, out, "greeting", text.c_str());
    if (!rc) rc = bh_result_success(ctx, out);
    bh_value_free(out);
    return rc ? BH_RETRY : BH_DONE;
}

int init(bh_ctx_t *ctx, void **state)
{
    const char *word = bh_config_str(ctx, "greeting");
    try {
        *state = new State{word ? word : "Hello"};
    } catch (...) { // no exception may leave a plugin: the host is C
        return BH_ENOMEM;
    }
    return BH_OK;
}

void fini(bh_ctx_t *, void *state) { delete static_cast<State *>(state); }

// Tables: routes through bh_route(), other elements spelled out, the
// terminator as {} (all zero).
const bh_field_t greet_fields[] = {
    bh_field("name", BH_FIELD_STR, 0, 0, 0, nullptr, nullptr, nullptr, "who is greeted"),
    bh_field(nullptr, BH_FIELD_ANY)};
const bh_schema_t greet = bh_schema(greet_fields, "whom to greet");
const bh_route_t commands[] = {bh_route("Echo", on_echo), bh_route("Greet", on_greet, &greet), {}};
const bh_config_key_t config[] = {
    {"greeting", BH_CONF_STR, "Hello", "word put before the name", 0, 0},
    {},
};

} // namespace

BH_PLUGIN_CXX(p)
{
    p.name = "echo_cpp";
    p.version = "1.0.0";
    p.service = "echo_cpp";
    p.commands = commands;
    p.config = config;
    p.init = init;
    p.fini = fini;
}
