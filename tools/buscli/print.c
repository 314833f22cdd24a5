/* print.c -- describing a bus message as JSON, and printing it (print.h). */
#include "print.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Shown on lines of their own, so left out of "headers". */
static const char *const own_headers[] = {
    "conversation_id",
    "status",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    NULL,
};

/* Set o[key] to a string, or to null when s is NULL; frees s. */
static void set_str(json_t *o, const char *key, char *s)
{
    json_t *v = s ? json_string(s) : json_null();

    json_object_set_new(o, key, v ? v : json_string("(not UTF-8)"));
    free(s);
}

/* The contract's classification by exchange. A message from another
 * exchange (a dead letter that came through the default exchange, say) is
 * told by its shape, or "unknown". */
static const char *kind_of(const char *exchange, const char *reply_to, const char *status)
{
    bool has_reply = reply_to && *reply_to, has_status = status && *status;

    if (strcmp(exchange, BC_EVENTS) == 0) return "event";
    if (strcmp(exchange, BC_LOGS) == 0) return "log";
    if (strcmp(exchange, BC_COMMANDS) == 0)
        return has_reply ? "command" : has_status ? "result" : "invalid";
    return has_reply ? "command" : has_status ? "result" : "unknown";
}

/* Properties the contract leaves unset: shown only when a sender set them. */
static json_t *other_properties(const amqp_basic_properties_t *p)
{
    static const struct {
        amqp_flags_t flag;
        const char *name;
        size_t off;
    } strs[] = {
        {AMQP_BASIC_CONTENT_ENCODING_FLAG, "content_encoding",
         offsetof(amqp_basic_properties_t, content_encoding)},
        {AMQP_BASIC_EXPIRATION_FLAG, "expiration", offsetof(amqp_basic_properties_t, expiration)},
        {AMQP_BASIC_MESSAGE_ID_FLAG, "message_id", offsetof(amqp_basic_properties_t, message_id)},
        {AMQP_BASIC_TYPE_FLAG, "type", offsetof(amqp_basic_properties_t, type)},
        {AMQP_BASIC_USER_ID_FLAG, "user_id", offsetof(amqp_basic_properties_t, user_id)},
        {AMQP_BASIC_APP_ID_FLAG, "app_id", offsetof(amqp_basic_properties_t, app_id)},
        {AMQP_BASIC_CLUSTER_ID_FLAG, "cluster_id", offsetof(amqp_basic_properties_t, cluster_id)},
    };
    json_t *o = json_object();

    if (!o) return NULL;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        const amqp_bytes_t *b = (const amqp_bytes_t *)((const char *)p + strs[i].off);

        if (p->_flags & strs[i].flag) set_str(o, strs[i].name, bh__cli_bytes_dup(*b));
    }
    if (p->_flags & AMQP_BASIC_PRIORITY_FLAG)
        json_object_set_new(o, "priority", json_integer(p->priority));
    if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG)
        json_object_set_new(o, "timestamp", json_integer((json_int_t)p->timestamp));
    return o;
}

static json_t *dead_letter(const amqp_table_t *h)
{
    static const char *const keys[] = {"x-first-death-exchange", "x-first-death-queue",
                                       "x-first-death-reason", "x-death"};
    json_t *o = json_object();

    for (size_t i = 0; o && i < sizeof keys / sizeof keys[0]; i++) {
        const amqp_field_value_t *v = bh__cli_table_get(h, keys[i]);

        if (v) json_object_set_new(o, keys[i], bh__cli_field_json(v));
    }
    return o;
}

/* The body as text when it is UTF-8, else as hex (at most 4 KiB shown). */
static json_t *raw_body(const void *body, size_t len)
{
    size_t shown = len > 4096 ? 4096 : len;
    json_t *s = json_stringn(body ? body : "", shown);
    char *hex;

    if (s) return s;
    hex = malloc(shown * 2 + 1);
    if (!hex) return NULL;
    for (size_t i = 0; i < shown; i++)
        snprintf(hex + i * 2, 3, "%02x", ((const unsigned char *)body)[i]);
    hex[shown * 2] = '\0';
    s = json_string(hex);
    free(hex);
    return s;
}

json_t *bh__cli_describe(const bh__cli_msg_t *msg)
{
    const amqp_basic_properties_t *p = &msg->m.properties;
    const amqp_table_t *h = bh__cli_headers(p);
    char *reply_to = bh__cli_prop_str(p, AMQP_BASIC_REPLY_TO_FLAG, p->reply_to);
    char *status = bh__cli_field_str(bh__cli_table_get(h, "status"));
    char *first_exchange = bh__cli_field_str(bh__cli_table_get(h, "x-first-death-exchange"));
    char *ct = bh__cli_prop_str(p, AMQP_BASIC_CONTENT_TYPE_FLAG, p->content_type);
    json_t *d = json_object(), *others, *payload;
    const char *kind;
    char err[200];

    if (!d) goto out;
    set_str(d, "exchange", strdup(msg->exchange));
    set_str(d, "routing_key", strdup(msg->routing_key));
    kind = kind_of(first_exchange && *first_exchange ? first_exchange : msg->exchange, reply_to,
                   status);
    json_object_set_new(d, "kind", json_string(kind));
    json_object_set_new(d, "redelivered", json_boolean(msg->redelivered));
    set_str(d, "conversation_id", bh__cli_field_str(bh__cli_table_get(h, "conversation_id")));
    set_str(d, "correlation_id",
            bh__cli_prop_str(p, AMQP_BASIC_CORRELATION_ID_FLAG, p->correlation_id));
    set_str(d, "reply_to", reply_to);
    reply_to = NULL;
    set_str(d, "status", status);
    status = NULL;
    set_str(d, "content_type", ct ? strdup(ct) : NULL);
    json_object_set_new(d, "delivery_mode",
                        (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) ? json_integer(p->delivery_mode)
                                                                    : json_null());
    json_object_set_new(d, "headers", bh__cli_table_json(h, own_headers));
    others = other_properties(p);
    if (others && json_object_size(others)) json_object_set_new(d, "properties", others);
    else json_decref(others);
    if (bh__cli_table_get(h, "x-death") || first_exchange)
        json_object_set_new(d, "dead_letter", dead_letter(h));
    json_object_set_new(d, "size", json_integer((json_int_t)msg->m.body.len));
    payload = bh__cli_payload_json(ct, msg->m.body.bytes, msg->m.body.len, err, sizeof err);
    if (payload) {
        json_object_set_new(d, "payload", payload);
    } else {
        json_object_set_new(d, "payload_error", json_string(err));
        json_object_set_new(d, "body", raw_body(msg->m.body.bytes, msg->m.body.len));
    }
out:
    free(reply_to);
    free(status);
    free(first_exchange);
    free(ct);
    return d;
}

/* ------------------------------------------------------------------------ */
/* Text                                                                     */

static void line(FILE *f, const char *label, const char *text)
{
    fprintf(f, "  %-16s %s\n", label, text);
}

/* A string field: the text, "" for an empty string, (absent) for null. */
static void str_line(FILE *f, const json_t *d, const char *key)
{
    const json_t *v = json_object_get(d, key);

    if (json_is_string(v) && json_string_length(v)) line(f, key, json_string_value(v));
    else if (json_is_string(v)) line(f, key, "\"\"");
    else line(f, key, "(absent)");
}

static void json_line(FILE *f, const char *label, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    line(f, label, s ? s : "?");
    free(s);
}

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : dflt;
}

/* One line per x-death entry: why, where, with which keys, how often. */
static void death_lines(FILE *f, const json_t *dl)
{
    const json_t *deaths = json_object_get(dl, "x-death"), *e;
    size_t i;

    if (json_object_get(dl, "x-first-death-exchange"))
        fprintf(f, "  %-16s %s in %s, from exchange '%s'\n", "first death",
                str_or(dl, "x-first-death-reason", "?"), str_or(dl, "x-first-death-queue", "?"),
                str_or(dl, "x-first-death-exchange", "?"));
    json_array_foreach(deaths, i, e)
    {
        char *keys = json_dumps(json_object_get(e, "routing-keys"), JSON_COMPACT | JSON_ENCODE_ANY);
        json_int_t count = json_integer_value(json_object_get(e, "count"));

        fprintf(f, "  %-16s %s in %s, from exchange '%s' with keys %s, %lld time%s\n",
                i == 0 ? "x-death" : "", str_or(e, "reason", "?"), str_or(e, "queue", "?"),
                str_or(e, "exchange", "?"), keys ? keys : "?", (long long)count,
                count == 1 ? "" : "s");
        free(keys);
    }
}

void bh__cli_print_text(FILE *f, const char *title, const json_t *d)
{
    const json_t *v;
    const char *ct = json_string_value(json_object_get(d, "content_type"));
    json_int_t size;
    char buf[300];

    fprintf(f, "%s%s%s %s (%s)%s\n", title, *title ? " " : "", str_or(d, "exchange", "?"),
            str_or(d, "routing_key", "?"), str_or(d, "kind", "?"),
            json_is_true(json_object_get(d, "redelivered")) ? " redelivered" : "");
    str_line(f, d, "conversation_id");
    str_line(f, d, "correlation_id");
    str_line(f, d, "reply_to");
    if (json_is_string(json_object_get(d, "status")) ||
        strcmp(str_or(d, "kind", ""), "result") == 0)
        str_line(f, d, "status");
    size = json_integer_value(json_object_get(d, "size"));
    snprintf(buf, sizeof buf, "%s, %lld byte%s", ct ? ct : "(absent: JSON)", (long long)size,
             size == 1 ? "" : "s");
    line(f, "content_type", buf);
    v = json_object_get(d, "delivery_mode");
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld%s", (long long)json_integer_value(v),
                 json_integer_value(v) == 2 ? " (persistent)" : "");
        line(f, "delivery_mode", buf);
    } else {
        line(f, "delivery_mode", "(absent)");
    }
    v = json_object_get(d, "headers");
    if (json_object_size(v)) json_line(f, "headers", v);
    if ((v = json_object_get(d, "properties"))) json_line(f, "properties", v);
    if ((v = json_object_get(d, "dead_letter"))) death_lines(f, v);
    if ((v = json_object_get(d, "payload"))) {
        if (json_is_null(v)) line(f, "payload", "(none: empty body)");
        else json_line(f, "payload", v);
    } else {
        snprintf(buf, sizeof buf, "(does not decode: %s)", str_or(d, "payload_error", "?"));
        line(f, "payload", buf);
        json_line(f, "body", json_object_get(d, "body"));
    }
}

void bh__cli_print_json(FILE *f, const json_t *d)
{
    json_dumpf(d, f, JSON_COMPACT);
    fputc('\n', f);
}
