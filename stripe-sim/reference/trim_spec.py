"""Cuts Stripe's OpenAPI spec down to what stripe-sim's `schema` test reads.

Keeps the operations stripe-sim serves and every component their answers
(and Stripe's error) reach through `$ref`, dropping descriptions, so the copy
in this folder stays small. Usage:

    python3 trim_spec.py ../../../shared/stripe/spec3-2023-08-16.json > spec3-2023-08-16.trimmed.json
"""

import json
import sys

OPERATIONS = [
    ("/v1/payment_intents", "get"),
    ("/v1/payment_intents", "post"),
    ("/v1/payment_intents/search", "get"),
    ("/v1/payment_intents/{intent}", "get"),
    ("/v1/payment_intents/{intent}", "post"),
    ("/v1/payment_intents/{intent}/confirm", "post"),
    ("/v1/payment_intents/{intent}/capture", "post"),
    ("/v1/payment_intents/{intent}/cancel", "post"),
    ("/v1/payment_intents/{intent}/increment_authorization", "post"),
    ("/v1/refunds", "get"),
    ("/v1/refunds", "post"),
    ("/v1/refunds/{refund}", "get"),
    ("/v1/charges/{charge}", "get"),
]
KEPT = {"$ref", "anyOf", "nullable", "type", "properties", "required", "items", "enum"}


def strip(node):
    if isinstance(node, dict):
        kept = {k: strip(v) for k, v in node.items() if k in KEPT and k != "properties"}
        if "properties" in node:
            kept["properties"] = {name: strip(v) for name, v in node["properties"].items()}
        return kept
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def refs(node, found):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref:
            found.add(ref.rsplit("/", 1)[1])
        for v in node.values():
            refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


def main(path):
    spec = json.load(open(path))
    schemas = spec["components"]["schemas"]
    answers = {}
    for route, method in OPERATIONS:
        response = spec["paths"][route][method]["responses"]["200"]
        answers[f"{method.upper()} {route}"] = strip(response["content"]["application/json"]["schema"])
    wanted, done = set(), {}
    refs(answers, wanted)
    wanted.add("error")
    while wanted:
        name = wanted.pop()
        if name in done:
            continue
        done[name] = strip(schemas[name])
        more = set()
        refs(done[name], more)
        wanted |= more - done.keys()
    json.dump({"answers": answers, "schemas": dict(sorted(done.items()))}, sys.stdout, separators=(",", ":"), sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
