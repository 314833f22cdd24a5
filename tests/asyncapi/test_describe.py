#!/usr/bin/python3
"""test_describe.py -- `bushost --describe` on a host with the echo, cart
and testkit plugins: the document must be valid AsyncAPI 3.0 (validate.py,
against the vendored JSON Schema) and say what the host really binds,
with testkit's declared payloads as JSON Schema, and no secret.

Environment: BH_BUSHOST (the binary), BH_PLUGINS (the folder of echo.so and
cart.so), BH_TESTKIT (testkit.so)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)


def describe(tmp, ini_text):
    ini = os.path.join(tmp, "service.ini")
    with open(ini, "w") as f:
        f.write(ini_text)
    return subprocess.run([os.environ["BH_BUSHOST"], "-c", ini, "--describe"],
                          capture_output=True, text=True, timeout=60)


def main():
    tmp = tempfile.mkdtemp(prefix="bh-describe-")
    try:
        plugins = os.path.join(tmp, "plugins")
        os.mkdir(plugins, 0o755)
        for src in (os.path.join(os.environ["BH_PLUGINS"], "echo.so"),
                    os.path.join(os.environ["BH_PLUGINS"], "cart.so"), os.environ["BH_TESTKIT"]):
            shutil.copy(src, plugins)
        ini = ("[host]\nplugins_dir = %s\n\n[broker]\nurl = amqps://bob:s3cret-pw@[::1]:5671/prod\n"
               "url = amqp://bob:s3cret-pw@broker-2.example:5672/\n\n[echo]\nservice = echo-a\n"
               % plugins)
        r = describe(tmp, ini)
        check(r.returncode == 0, "--describe exits 0 (was %d: %s)" % (r.returncode, r.stderr))
        check("s3cret" not in r.stdout + r.stderr, "no password in the output")
        path = os.path.join(tmp, "doc.json")
        with open(path, "w") as f:
            f.write(r.stdout)
        v = subprocess.run([sys.executable, os.path.join(HERE, "validate.py"), path],
                           capture_output=True, text=True)
        sys.stderr.write(v.stdout + v.stderr)
        check(v.returncode == 0, "the document is valid AsyncAPI 3.0")
        doc = json.loads(r.stdout)
        ch, ops, msgs = doc["channels"], doc["operations"], doc["components"]["messages"]

        # Brokers without credentials; the renamed echo binds as echo-a.
        check(doc["servers"]["broker1"] == {"host": "[::1]:5671", "protocol": "amqps",
                                            "description": "vhost \"prod\""}, "server 1")
        check(doc["servers"]["broker2"]["host"] == "broker-2.example:5672", "server 2")
        check(ch.get("commands.echo-a.Echo", {}).get("address") == "echo-a.Echo",
              "echo's command channel carries the effective service name")
        check("commands.echo.Echo" not in ch, "no channel under echo's built-in name")
        amqp = ch["commands.echo-a.Echo"]["bindings"]["amqp"]
        check(amqp["exchange"]["name"] == "commands" and amqp["exchange"]["type"] == "topic",
              "commands channel is on the commands topic exchange")

        # testkit.Order: receive, its reply, the declared schema.
        op = ops.get("testkit.receive.command.Order", {})
        check(op.get("action") == "receive", "Order is received")
        check(op.get("x-bushost-queue") == "testkit.commands", "from testkit.commands")
        check(op.get("reply", {}).get("channel") == {"$ref": "#/channels/replies"},
              "Order's reply goes to the replies channel")
        check(ops.get("testkit.send.reply.Order", {}).get("action") == "send", "results are sent")
        order = msgs["testkit.command.Order"]
        p = order["payload"]
        check(p.get("type") == "object" and p.get("description") == "An order of one article",
              "Order payload is an object with the schema's doc")
        check(p.get("required") == ["sku", "qty"], "required: sku, qty (was %r)" % p.get("required"))
        props = p.get("properties", {})
        check(props.get("sku") == {"type": "string", "minLength": 1, "maxLength": 16}, "sku")
        check(props.get("qty") == {"type": "integer", "minimum": 1, "description": "how many"}, "qty")
        check(props.get("colour") == {"type": "string", "enum": ["red", "green"]}, "colour")
        check(props.get("note") == {"type": ["string", "null"]}, "note is nullable")
        check(props.get("lines", {}).get("minItems") == 1, "lines has minItems")
        item = props.get("lines", {}).get("items", {})
        check(item.get("required") == ["sku", "qty"] and
              item.get("properties", {}).get("qty") == {"type": "integer", "minimum": 1, "maximum": 99},
              "lines' items are maps with bounded qty")
        check(props.get("price") == {"type": "number", "minimum": 0}, "price")
        check(props.get("gift") == {"type": "boolean"}, "gift")
        check(props.get("tag", {}).get("format") == "binary", "tag is bytes")
        check(props.get("meta") == {}, "meta is any value")
        h = order["headers"]
        check(h["required"] == ["conversation_id"], "commands carry conversation_id")
        reply = msgs["testkit.reply.Order"]
        check(reply["headers"]["properties"]["status"]["enum"] == ["success", "error"],
              "results carry status success|error")
        check(reply["payload"]["anyOf"][0]["properties"] ==
              {"sku": {"type": "string"}, "qty": {"type": "integer"}}, "Order's reply schema")
        check(msgs["testkit.command.Echo"]["payload"]["type"] == "object",
              "an undeclared payload is any map")

        # Events and logs.
        check("testkit.receive.event.OrderNoted" in ops, "OrderNoted is received")
        check(msgs["testkit.event.OrderNoted"]["payload"] == p, "OrderNoted has Order's schema")
        check(ch["events.OrderNoted"]["bindings"]["amqp"]["exchange"]["name"] == "events",
              "events are on the events exchange")
        logs = ch.get("logs.testkit", {})
        check(logs.get("address") == "testkit.{level}" and
              "ERROR" in logs.get("parameters", {}).get("level", {}).get("enum", []),
              "logs channel keyed by level")
        check(ops.get("testkit.send.log", {}).get("bindings", {}).get("amqp", {}).get(
            "deliveryMode") == 1, "logs are transient")
        check([x["name"] for x in doc["x-bushost"]["plugins"]] == ["cart", "echo", "testkit"],
              "every plugin is listed")

        # --check and --describe together, and a bad config: clear errors.
        r = subprocess.run([os.environ["BH_BUSHOST"], "-c", os.path.join(tmp, "service.ini"),
                            "--describe", "--check"], capture_output=True, text=True, timeout=60)
        check(r.returncode == 2 and "exclude each other" in r.stderr, "--check --describe refused")
        r = describe(tmp, ini + "\n[nosuch]\nkey = 1\n")
        check(r.returncode == 2 and "nosuch" in r.stderr and not r.stdout,
              "a bad config: exit 2, the cause, no document")
    finally:
        shutil.rmtree(tmp)
    print("test_describe: %s" % ("%d failed" % len(failures) if failures else "all checks passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
