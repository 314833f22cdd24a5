/* describe.c -- the loaded services as an AsyncAPI 3.0 document.
 *
 * What a service binds comes from the topology (bh__topology_build), so the
 * document names exactly the queues and keys the host declares. Ids:
 *   channels    events.<Event>, commands.<routing key>, replies,
 *               logs.<service>
 *   messages    <service>.command.<Name>, .reply.<Name>, .event.<Event>,
 *               .result.<key>, .log
 *   operations  <service>.receive.<kind>.<key>, <service>.send.reply.<Name>,
 *               <service>.send.log */
#include "describe.h"

#include <stdio.h>
#include <string.h>

#include "broker_url.h"
#include "gelf.h"
#include "schema.h"
#include "topology.h"

#define BINDING_VERSION "0.3.0"

static json_t *field_schema(const bh_field_t *f)
{
    static const char *const types[] = {
        [BH_FIELD_STR] = "string",   [BH_FIELD_INT] = "integer",  [BH_FIELD_NUMBER] = "number",
        [BH_FIELD_BOOL] = "boolean", [BH_FIELD_BYTES] = "string", [BH_FIELD_MAP] = "object",
        [BH_FIELD_ARRAY] = "array",  [BH_FIELD_ANY] = NULL};
    static const char *const lo[] = {[BH_FIELD_STR] = "minLength",
                                     [BH_FIELD_INT] = "minimum",
                                     [BH_FIELD_NUMBER] = "minimum",
                                     [BH_FIELD_ARRAY] = "minItems"};
    static const char *const hi[] = {[BH_FIELD_STR] = "maxLength",
                                     [BH_FIELD_INT] = "maximum",
                                     [BH_FIELD_NUMBER] = "maximum",
                                     [BH_FIELD_ARRAY] = "maxItems"};
    bool nullable = f->flags & BH_FIELD_NULLABLE;
    const char *type = types[f->type];
    json_t *o = json_object();
    int rc = o ? 0 : -1;
    char what[300];

    if (type)
        rc |= json_object_set_new(o, "type",
                                  nullable ? json_pack("[ss]", type, "null") : json_string(type));
    if (f->type == BH_FIELD_BYTES) rc |= json_object_set_new(o, "format", json_string("binary"));
    if ((size_t)f->type < sizeof lo / sizeof *lo && lo[f->type]) {
        if (f->flags & BH_FIELD_MIN)
            rc |= json_object_set_new(o, lo[f->type], json_integer(f->min));
        if (f->flags & BH_FIELD_MAX)
            rc |= json_object_set_new(o, hi[f->type], json_integer(f->max));
    }
    if (f->one_of) {
        json_t *e = json_array();
        for (size_t i = 0; f->one_of[i]; i++)
            rc |= json_array_append_new(e, json_string(f->one_of[i]));
        if (nullable) rc |= json_array_append_new(e, json_null());
        rc |= json_object_set_new(o, "enum", e);
    }
    if (f->fields) {
        json_t *props = json_object(), *req = json_array();
        for (const bh_field_t *c = f->fields; c->name; c++) {
            rc |= json_object_set_new(props, c->name, field_schema(c));
            if (!(c->flags & BH_FIELD_OPTIONAL))
                rc |= json_array_append_new(req, json_string(c->name));
        }
        rc |= json_object_set_new(o, "properties", props);
        rc |= json_object_set_new(o, "required", req);
    }
    if (f->items) rc |= json_object_set_new(o, "items", field_schema(f->items));
    /* Byte strings have no JSON Schema bounds: the text says them. */
    bh__schema_expected(f, what, sizeof what);
    if (f->doc || f->type == BH_FIELD_BYTES)
        rc |= json_object_set_new(o, "description",
                                  json_pack("s++", f->doc ? f->doc : "",
                                            f->doc && f->type == BH_FIELD_BYTES ? ": " : "",
                                            f->type == BH_FIELD_BYTES ? what : ""));
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *bh__describe_schema(const bh_schema_t *s)
{
    if (!s)
        return json_pack("{s:s, s:s}", "type", "object", "description",
                         "not declared: any map (the handler checks it)");
    bh_field_t root = {.type = BH_FIELD_MAP, .fields = s->fields, .doc = s->doc};
    return field_schema(&root);
}

/* ---- the document ------------------------------------------------------- */

typedef struct doc {
    json_t *root, *channels, *operations, *messages;
    int rc; /* nonzero once anything failed (out of memory) */
} doc_t;

/* s as a JSON Pointer token (RFC 6901: ~ as ~0, / as ~1), appended. */
static void token(char *out, size_t len, const char *s)
{
    size_t at = strlen(out);
    for (; *s && at + 3 < len; s++) {
        if (*s == '~' || *s == '/') {
            out[at++] = '~';
            out[at++] = *s == '~' ? '0' : '1';
        } else {
            out[at++] = *s;
        }
    }
    out[at] = '\0';
}

/* {"$ref": "#/<where>/<id>"}, or with mid "#/<where>/<id>/messages/<mid>". */
static json_t *ref(const char *where, const char *id, const char *mid)
{
    char path[1200];
    snprintf(path, sizeof path, "#/%s/", where);
    token(path, sizeof path, id);
    if (mid) {
        snprintf(path + strlen(path), sizeof path - strlen(path), "/messages/");
        token(path, sizeof path, mid);
    }
    return json_pack("{s:s}", "$ref", path);
}

/* A result's payload: what the route declares on success, an error map
 * on error. */
static json_t *result_payload(const bh_schema_t *success)
{
    json_t *err = json_pack("{s:s, s:{s:{s:s}}, s:[s]}", "type", "object", "properties", "error",
                            "type", "string", "required", "error");
    return json_pack("{s:[o,o]}", "anyOf", bh__describe_schema(success), err);
}

/* The headers every message has; results add status. */
static json_t *headers(bool result)
{
    json_t *h = json_pack(
        "{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:[s]}", "type", "object", "properties",
        "conversation_id", "type", "string", "description",
        "the conversation the message belongs to: a new one for a message that starts one, "
        "else copied from the message that caused it",
        "traceparent", "type", "string", "description",
        "W3C trace context of the span that sent it (optional)", "required", "conversation_id");
    if (h && result) {
        json_t *props = json_object_get(h, "properties");
        int rc = json_object_set_new(props, "status",
                                     json_pack("{s:s, s:[ss], s:s}", "type", "string", "enum",
                                               "success", "error", "description",
                                               "error: the payload is an error map"));
        rc |= json_array_append_new(json_object_get(h, "required"), json_string("status"));
        if (rc) json_decref(h), h = NULL;
    }
    return h;
}

/* Every channel is a routing key on one of the contract's exchanges. */
static json_t *amqp_channel(const char *exchange)
{
    return json_pack("{s:{s:s, s:{s:s, s:s, s:b, s:b}, s:s}}", "amqp", "is", "routingKey",
                     "exchange", "name", exchange, "type", "topic", "durable", 1, "autoDelete", 0,
                     "bindingVersion", BINDING_VERSION);
}

/* The channel `id` (made on first use: several services may bind it),
 * with message `mid` added. */
static void channel(doc_t *d, const char *id, const char *address, const char *exchange,
                    const char *about, const char *mid)
{
    json_t *c = json_object_get(d->channels, id);
    if (!c) {
        c = json_pack("{s:o, s:s, s:{}, s:o}", "address",
                      address ? json_string(address) : json_null(), "description", about,
                      "messages", "bindings", amqp_channel(exchange));
        d->rc |= json_object_set_new(d->channels, id, c);
        if (!c) return;
    }
    d->rc |= json_object_set_new(json_object_get(c, "messages"), mid,
                                 ref("components/messages", mid, NULL));
}

static void message(doc_t *d, const char *mid, const char *name, const char *about, bool result,
                    json_t *payload)
{
    d->rc |= json_object_set_new(d->messages, mid,
                                 json_pack("{s:s, s:s, s:o, s:o}", "name", name, "summary", about,
                                           "headers", headers(result), "payload", payload));
}

static void operation(doc_t *d, const char *oid, const char *action, const char *ch,
                      const char *mid, const char *queue, int delivery_mode, json_t *reply)
{
    json_t *o = json_pack("{s:s, s:o, s:[o]}", "action", action, "channel",
                          ref("channels", ch, NULL), "messages", ref("channels", ch, mid));
    json_t *amqp = !strcmp(action, "receive")
                       ? json_pack("{s:b, s:s}", "ack", 1, "bindingVersion", BINDING_VERSION)
                       : json_pack("{s:i, s:s}", "deliveryMode", delivery_mode, "bindingVersion",
                                   BINDING_VERSION);
    int rc = o ? json_object_set_new(o, "bindings", json_pack("{s:o}", "amqp", amqp))
               : (json_decref(amqp), -1);
    if (!rc && queue) rc = json_object_set_new(o, "x-bushost-queue", json_string(queue));
    if (!rc && reply) rc = json_object_set_new(o, "reply", reply), reply = NULL;
    json_decref(reply);
    d->rc |= rc | json_object_set_new(d->operations, oid, o);
}

/* A binding on `commands`: a command the service answers, or a result. */
static void command_binding(doc_t *d, const char *svc, const bh_plugin_t *p, const bh__binding_t *b)
{
    char ch[400], mid[400], oid[400], rmid[400];
    const char *name = bh__topology_command_name(svc, b->key);
    snprintf(ch, sizeof ch, "commands.%s", b->key);
    for (const bh_route_t *r = name ? p->commands : NULL; r && r->key; r++) {
        if (strcmp(r->key, name)) continue;
        snprintf(mid, sizeof mid, "%s.command.%s", svc, name);
        snprintf(rmid, sizeof rmid, "%s.reply.%s", svc, name);
        message(d, mid, name,
                "a command: reply_to (an AMQP property) names the result key, "
                "correlation_id the caller's reference",
                false, bh__describe_schema(r->payload));
        message(d, rmid, name, "its result: status success with the reply payload, or error", true,
                result_payload(r->reply));
        channel(d, ch, b->key, "commands", "commands a service answers", mid);
        channel(d, "replies", NULL, "commands",
                "results, each sent to the key its command's reply_to named", rmid);
        snprintf(oid, sizeof oid, "%s.receive.command.%s", svc, name);
        operation(d, oid, "receive", ch, mid, b->queue, 0,
                  json_pack("{s:o, s:[o]}", "channel", ref("channels", "replies", NULL), "messages",
                            ref("channels", "replies", rmid)));
        snprintf(oid, sizeof oid, "%s.send.reply.%s", svc, name);
        operation(d, oid, "send", "replies", rmid, NULL, 2, NULL);
        return;
    }
    for (const bh_route_t *r = p->results; r && r->key; r++) {
        if (!bh__topology_result_is(p, svc, r->key, b->key)) continue;
        snprintf(mid, sizeof mid, "%s.result.%s", svc, b->key);
        message(d, mid, b->key, "a result of a command this service sent", true,
                result_payload(r->payload));
        channel(d, ch, b->key, "commands", "results of the commands a service sends", mid);
        snprintf(oid, sizeof oid, "%s.receive.result.%s", svc, b->key);
        operation(d, oid, "receive", ch, mid, b->queue, 0, NULL);
        return;
    }
}

static void event_binding(doc_t *d, const char *svc, const bh_plugin_t *p, const bh__binding_t *b)
{
    char ch[400], mid[400], oid[400];
    for (const bh_route_t *r = p->events; r && r->key; r++) {
        if (strcmp(r->key, b->key)) continue;
        snprintf(ch, sizeof ch, "events.%s", b->key);
        snprintf(mid, sizeof mid, "%s.event.%s", svc, b->key);
        message(d, mid, b->key, "an event", false, bh__describe_schema(r->payload));
        channel(d, ch, b->key, "events", "events, by type name", mid);
        snprintf(oid, sizeof oid, "%s.receive.event.%s", svc, b->key);
        operation(d, oid, "receive", ch, mid, b->queue, 0, NULL);
        return;
    }
}

/* What every service sends on `logs`: GELF 1.1 records, keyed by level. */
static void logs(doc_t *d, const char *svc)
{
    char ch[400], mid[400], oid[400], address[400];
    json_t *levels = json_array();
    for (int l = BH_EMERGENCY; l <= BH_DEBUG; l++)
        d->rc |= json_array_append_new(levels, json_string(bh__level_name((bh_level_t)l)));
    snprintf(ch, sizeof ch, "logs.%s", svc);
    snprintf(mid, sizeof mid, "%s.log", svc);
    snprintf(address, sizeof address, "%s.{level}", svc);
    json_t *gelf = json_pack(
        "{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:i, s:i}, s:{s:s},"
        " s:{s:s}, s:{s:s}, s:{s:s}}, s:[sssssssss]}",
        "type", "object", "properties", "version", "const", "1.1", "host", "type", "string",
        "short_message", "type", "string", "full_message", "type", "string", "timestamp", "type",
        "number", "level", "type", "integer", "minimum", 0, "maximum", 7, "_levelname", "type",
        "string", "_conversation_id", "type", "string", "_logical_service", "type", "string",
        "_worker_pid", "type", "integer", "required", "version", "host", "short_message",
        "full_message", "timestamp", "level", "_levelname", "_conversation_id", "_logical_service");
    d->rc |= json_object_set_new(d->messages, mid,
                                 json_pack("{s:s, s:s, s:s, s:o}", "name", "log", "summary",
                                           "a GELF 1.1 log record, transient, with no properties",
                                           "contentType", "application/json", "payload", gelf));
    json_t *c = json_pack("{s:s, s:s, s:{s:{s:o, s:s}}, s:{s:o}, s:o}", "address", address,
                          "description", "the service's log records", "parameters", "level", "enum",
                          levels, "description", "the record's level name", "messages", mid,
                          ref("components/messages", mid, NULL), "bindings", amqp_channel("logs"));
    d->rc |= json_object_set_new(d->channels, ch, c);
    snprintf(oid, sizeof oid, "%s.send.log", svc);
    operation(d, oid, "send", ch, mid, NULL, 1, NULL);
}

static void service(doc_t *d, const char *svc, const bh_plugin_t *p)
{
    bh__svc_conf_t sc = {.service = (char *)svc};
    bh__topology_t t;
    if (bh__topology_build(&t, &sc, p)) {
        d->rc = -1;
        return;
    }
    for (size_t i = 0; i < t.n_bindings; i++) {
        if (t.bindings[i].exchange == BH__EX_EVENTS) event_binding(d, svc, p, &t.bindings[i]);
        else command_binding(d, svc, p, &t.bindings[i]);
    }
    bh__topology_free(&t);
    logs(d, svc);
}

/* The brokers of the config, without credentials. */
static json_t *servers(const bh__config_t *cfg)
{
    json_t *s = json_object();
    for (size_t i = 0; s && i < cfg->n_urls; i++) {
        bh__broker_url_parts_t u;
        char id[32], host[300];
        if (bh__broker_url_parts(cfg->urls[i], &u)) continue;
        snprintf(id, sizeof id, "broker%zu", i + 1);
        snprintf(host, sizeof host, strchr(u.host, ':') ? "[%s]:%d" : "%s:%d", u.host, u.port);
        if (json_object_set_new(s, id,
                                json_pack("{s:s, s:s, s:s++}", "host", host, "protocol",
                                          u.tls ? "amqps" : "amqp", "description", "vhost \"",
                                          u.vhost, "\"")))
            json_decref(s), s = NULL;
    }
    return s;
}

json_t *bh__describe(const bh__host_t *h, char *err, size_t errlen)
{
    doc_t d = {.channels = json_object(), .operations = json_object(), .messages = json_object()};
    json_t *plugins = json_array();
    char title[300] = "", abi[16];
    size_t at = 0;

    for (size_t i = 0; i < bh__host_count(h); i++) {
        const bh__loaded_t *p = bh__host_plugin(h, i);
        const char *svc = bh__service_name(bh__host_service(h, i));
        service(&d, svc, p->desc);
        d.rc |= json_array_append_new(plugins, json_pack("{s:s, s:s, s:s, s:s}", "name",
                                                         p->desc->name, "version", p->desc->version,
                                                         "service", svc, "path", p->path));
        if (at < sizeof title)
            at += (size_t)snprintf(title + at, sizeof title - at, "%s%s", i ? ", " : "", svc);
    }
    snprintf(abi, sizeof abi, "%d.%d", BH_ABI_MAJOR, BH_ABI_MINOR);
    d.root = json_pack(
        "{s:s, s:{s:s++, s:s, s:s}, s:s, s:o, s:o, s:o, s:{s:o}, s:{s:s, s:o}}", "asyncapi",
        "3.0.0", "info", "title", "bushost: ", title, "", "version", BH_VERSION, "description",
        "The services one bushost process runs: what each receives from and sends to the "
        "bus. Payloads are CBOR (application/cbor) or JSON; the schemas are those the "
        "routes declare.",
        "defaultContentType", "application/cbor", "servers", servers(bh__host_config(h)),
        "channels", d.channels, "operations", d.operations, "components", "messages", d.messages,
        "x-bushost", "abi", abi, "plugins", plugins);
    if (!d.root || d.rc) {
        json_decref(d.root);
        snprintf(err, errlen,
                 "cannot build the document (out of memory, or a name, version or doc that is "
                 "not UTF-8)");
        return NULL;
    }
    return d.root;
}
