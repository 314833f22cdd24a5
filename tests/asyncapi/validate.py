#!/usr/bin/python3
"""validate.py -- check an AsyncAPI 3.0 document (bushost --describe's output)
against the AsyncAPI 3.0.0 JSON Schema vendored beside this script, and
check that every payload and header schema in it is itself a valid JSON
Schema (draft 7) and that every "$ref" inside the document resolves.

    validate.py DOCUMENT.json

Exit 0 when valid; 1 with each error on stderr."""
import json
import os
import sys

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))


def resolve(doc, ref):
    """The node a local "$ref" ("#/a/b") names, or None."""
    if not ref.startswith("#/"):
        return None
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def refs(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield path, v
            else:
                yield from refs(v, path + "/" + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from refs(v, "%s/%d" % (path, i))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(os.path.join(HERE, "asyncapi-3.0.0.json")) as f:
        schema = json.load(f)
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    errors = []
    validator = jsonschema.Draft7Validator(schema)
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        errors.append("%s: %s" % ("/".join(str(p) for p in e.absolute_path), e.message))
    for path, ref in refs(doc):
        if resolve(doc, ref) is None:
            errors.append("%s: $ref %s resolves to nothing" % (path, ref))
    for mid, m in doc.get("components", {}).get("messages", {}).items():
        for part in ("payload", "headers"):
            if part in m:
                try:
                    jsonschema.Draft7Validator.check_schema(m[part])
                except jsonschema.SchemaError as e:
                    errors.append("components/messages/%s/%s: %s" % (mid, part, e.message))
    for e in errors:
        print("validate.py: " + e, file=sys.stderr)
    if not errors:
        print("validate.py: %s is a valid AsyncAPI %s document" % (sys.argv[1], doc.get("asyncapi")))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
