#!/usr/bin/env python3
"""prom_check.py FILE -- parse a Prometheus text exposition with the official
client library's parser (as a Prometheus server would read it) and check
what the format asks of histograms: cumulative buckets ending in +Inf, equal
to _count. Prints the number of families; exits 1 on any problem."""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    families = list(text_string_to_metric_families(text))
    for fam in families:
        if not fam.name.startswith("bushost_"):
            raise SystemExit(f"unexpected family {fam.name}")
        if fam.type == "counter" and not any(s.name.endswith("_total") for s in fam.samples):
            raise SystemExit(f"counter {fam.name} has no _total sample")
        if fam.type != "histogram":
            continue
        series = {}
        for s in fam.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(labels, {"buckets": [], "count": None})
            if s.name.endswith("_bucket"):
                series[labels]["buckets"].append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                series[labels]["count"] = s.value
        for labels, h in series.items():
            b = h["buckets"]
            if not b or b[-1][0] != float("inf"):
                raise SystemExit(f"{fam.name}{labels}: no +Inf bucket")
            if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
                raise SystemExit(f"{fam.name}{labels}: buckets not cumulative")
            if b[-1][1] != h["count"]:
                raise SystemExit(f"{fam.name}{labels}: +Inf {b[-1][1]} != _count {h['count']}")
    print(f"{len(families)} families")


if __name__ == "__main__":
    main(sys.argv[1])
