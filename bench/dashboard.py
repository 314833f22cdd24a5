#!/usr/bin/python3
"""dashboard.py -- the Grafana dashboard's panels without Grafana.

  dashboard.py scrape URL OUT      GET URL (a host's /metrics) every second,
                                   appending each answer to OUT, until killed
  dashboard.py plot OUT PNG        draw the panels of docs/grafana/bushost.json
                                   from the scrapes in OUT into PNG
  dashboard.py check JSON METRICS  exit 1 unless every bushost_* series the
                                   dashboard JSON queries is in the exposition
                                   file METRICS (so the dashboard cannot rot)

The exposition is read with the Prometheus client library's parser
(Debian's python3-prometheus-client); plots use python3-matplotlib. Both are
Debian's, so this runs with /usr/bin/python3, not another python on PATH.
"""
import json
import re
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

SEP = "\n# ---- scrape at "


def scrape(url, out):
    with open(out, "a", encoding="utf-8") as f:
        while True:
            t = time.time()
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    f.write(f"{SEP}{t:.3f}\n{r.read().decode()}")
            except OSError as e:
                f.write(f"{SEP}{t:.3f}\n# unreachable: {e}\n")
            f.flush()
            time.sleep(max(0.0, 1.0 - (time.time() - t)))


def samples(text):
    """{(name, frozenset(labels)): value} of one exposition."""
    got = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            got[(s.name, frozenset(s.labels.items()))] = s.value
    return got


def load(out):
    with open(out, encoding="utf-8") as f:
        parts = f.read().split(SEP)[1:]
    series = []
    for p in parts:
        head, _, text = p.partition("\n")
        series.append((float(head), samples(text) if "# unreachable" not in text else None))
    return series


def total(s, name, **want):
    """The sum of the samples of name whose labels include want."""
    if s is None:
        return None
    return sum(v for (n, labels), v in s.items()
               if n == name and all((k, w) in labels for k, w in want.items()))


def values(s, name, label):
    return sorted({dict(labels)[label] for (n, labels) in s if n == name and label in dict(labels)})


def rates(series, name, **want):
    t, r = [], []
    for (t0, a), (t1, b) in zip(series, series[1:]):
        x, y = total(a, name, **want), total(b, name, **want)
        if x is not None and y is not None:
            t.append(t1)
            r.append(max(0.0, (y - x) / (t1 - t0)))
    return t, r


def buckets(s, name):
    """[(le, cumulative count)] of a histogram summed over its labels."""
    les = {}
    for (n, labels), v in s.items():
        if n == name + "_bucket":
            le = float(dict(labels)["le"])
            les[le] = les.get(le, 0.0) + v
    return sorted(les.items())


def quantile(q, before, now, name):
    a, b = dict(buckets(before, name)), buckets(now, name)
    grown = [(le, c - a.get(le, 0.0)) for le, c in b]
    if not grown or grown[-1][1] <= 0:
        return None
    rank, lo, prev = q * grown[-1][1], 0.0, 0.0
    for le, c in grown:
        if c >= rank:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * (rank - prev) / max(c - prev, 1e-12)
        lo, prev = le, c
    return lo


def plot(out, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = load(out)
    up = [(t, s) for t, s in series if s is not None]
    t0 = series[0][0]
    rel = lambda ts: [x - t0 for x in ts]
    fig, ax = plt.subplots(3, 3, figsize=(16, 11))
    fig.suptitle("bushost: echo + cart under bench_soak, broker stopped and started in between "
                 "(docs/grafana/bushost.json's panels, scraped once a second)")
    last = up[-1][1]

    a = ax[0][0]
    for o in values(last, "bushost_deliveries_handled_total", "outcome"):
        t, r = rates(series, "bushost_deliveries_handled_total", outcome=o)
        if any(r):
            a.plot(rel(t), r, label=o)
    a.set_title("Deliveries handled, by outcome (/s)")
    a.legend(fontsize=8)

    a = ax[0][1]
    for svc in values(last, "bushost_deliveries_received_total", "service"):
        for key in values(last, "bushost_deliveries_received_total", "key"):
            t, r = rates(series, "bushost_deliveries_received_total", service=svc, key=key)
            if any(r):
                a.plot(rel(t), r, label=f"{svc} {key}")
    a.set_title("Deliveries received, by routing key (/s)")
    a.legend(fontsize=8)

    a = ax[0][2]
    name = "bushost_handler_duration_seconds"
    les = [le for le, _ in buckets(last, name)]
    grid, ts = [], []
    for (ta, sa), (tb, sb) in zip(up, up[1:]):
        ca, cb = dict(buckets(sa, name)), buckets(sb, name)
        cum = [c - ca.get(le, 0.0) for le, c in cb]
        grid.append([max(0.0, x - y) for x, y in zip(cum, [0.0] + cum[:-1])])
        ts.append(tb - t0)
    if grid:
        import numpy as np
        g = np.array(grid).T
        a.imshow(np.log1p(g), aspect="auto", origin="lower", cmap="Oranges",
                 extent=[ts[0], ts[-1], 0, len(les)])
        a.set_yticks([i + 0.5 for i in range(len(les))][::2])
        a.set_yticklabels([("+Inf" if le == float("inf") else f"{le:g}") for le in les][::2], fontsize=7)
    a.set_title("Handler duration heat map (s; colour: log count)")

    a = ax[1][0]
    for q, hist, label in [(0.5, name, "handler p50"), (0.99, name, "handler p99"),
                           (0.99, "bushost_queue_wait_seconds", "queue wait p99")]:
        t, v = [], []
        for (ta, sa), (tb, sb) in zip(up, up[1:]):
            x = quantile(q, sa, sb, hist)
            t.append(tb - t0)
            v.append(float("nan") if x is None else x * 1e3)  # a gap where nothing ran
        a.plot(t, v, ".-", label=label, markersize=3)
    a.set_yscale("log")
    a.set_title("Handler duration and queue wait (ms)")
    a.legend(fontsize=8)

    a = ax[1][1]
    for svc in values(last, "bushost_handlers_running", "service"):
        for metric, label in [("bushost_handlers_running", "running"), ("bushost_deliveries_unacked", "unacked")]:
            t = [x - t0 for x, s in up]
            a.plot(t, [total(s, metric, service=svc) for _, s in up], label=f"{svc} {label}")
    a.set_title("In flight")
    a.legend(fontsize=8)

    a = ax[1][2]
    for svc in values(last, "bushost_workers", "service"):
        t, busy = rates(series, "bushost_handler_busy_seconds_total", service=svc)
        w = total(last, "bushost_workers", service=svc) or 1
        a.plot(rel(t), [100 * b / w for b in busy], label=svc)
    a.set_title("Worker utilisation (%)")
    a.legend(fontsize=8)

    a = ax[2][0]
    for kind in values(last, "bushost_publishes_confirmed_total", "kind"):
        t, r = rates(series, "bushost_publishes_confirmed_total", kind=kind)
        if any(r):
            a.plot(rel(t), r, label=f"confirmed {kind}")
    for metric in ["bushost_publishes_nacked_total", "bushost_publishes_returned_total"]:
        t, r = rates(series, metric)
        a.plot(rel(t), r, label=metric.split("_")[2])
    a.set_title("Publishes confirmed, nacked, returned (/s)")
    a.legend(fontsize=8)

    a = ax[2][1]
    t, v = [], []
    for (ta, sa), (tb, sb) in zip(up, up[1:]):
        x = quantile(0.99, sa, sb, "bushost_confirm_duration_seconds")
        t.append(tb - t0)
        v.append(float("nan") if x is None else x * 1e3)
    a.plot(t, v, ".-", label="confirm p99", markersize=3)
    a.set_title("Confirm latency p99 (ms)")
    a.legend(fontsize=8)

    a = ax[2][2]
    states = values(last, "bushost_connection_state", "state")
    r = a.twinx()
    for svc in values(last, "bushost_connection_state", "service"):
        t = [x - t0 for x, s in up]
        idx = [next((i for i, st in enumerate(states)
                     if total(s, "bushost_connection_state", service=svc, state=st) == 1), -1) for _, s in up]
        a.step(t, idx, where="post", label=f"{svc} state")
        r.plot(t, [total(s, "bushost_reconnects_total", service=svc) for _, s in up], ":",
               label=f"{svc} reconnects (right)")
    a.set_yticks(range(len(states)))
    a.set_yticklabels(states, fontsize=8)
    r.tick_params(labelsize=8)
    a.set_title("Connection state; reconnects, total (right axis)")
    a.legend(fontsize=8, loc="center left")
    r.legend(fontsize=8, loc="center right")

    for row in ax:
        for a in row:
            a.set_xlabel("s", fontsize=8)
            a.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=80)


def check(dashboard, metrics):
    with open(dashboard, encoding="utf-8") as f:
        dash = json.load(f)
    with open(metrics, encoding="utf-8") as f:
        have = {n for n, _ in samples(f.read())}
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [json.dumps(v.get("query", "")) for v in dash.get("templating", {}).get("list", [])]
    wanted = {m for e in exprs for m in re.findall(r"\bbushost_[a-z_]+", e)}
    missing = sorted(wanted - have)
    if not exprs or not wanted:
        sys.exit("dashboard.py check: the dashboard queries no bushost_* series")
    if missing:
        sys.exit("dashboard.py check: not in the exposition: " + ", ".join(missing))
    print(f"dashboard.py check: all {len(wanted)} series of {len(exprs)} queries are exposed")


if __name__ == "__main__":
    cmds = {"scrape": scrape, "plot": plot, "check": check}
    if len(sys.argv) != 4 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](sys.argv[2], sys.argv[3])
