#!/usr/bin/env bash
# demo.sh -- the README's first command: set everything up, start a private
# broker, run bushost with the example plugins (echo and cart) and drive a
# short scenario with buscli, printing what happens on the bus.
#
#   scripts/demo.sh
#
# Uses scripts/setup.sh (installs packages, builds into build/) and
# scripts/broker.sh (a private node on BH_BROKER_PORT, default 5790), which
# is stopped again at the end if this script started it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export BUILD_DIR=${BUILD_DIR:-build}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Set up and build"
scripts/setup.sh >"$ROOT/$BUILD_DIR.setup.log" 2>&1 || {
    cat "$ROOT/$BUILD_DIR.setup.log"
    exit 1
}
echo "built into $BUILD_DIR/ (log: $BUILD_DIR.setup.log)"

BROKER=$ROOT/scripts/broker.sh
started_broker=0
host_pid=
tails=()
cleanup() {
    for p in "${tails[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$host_pid" ] && kill -0 "$host_pid" 2>/dev/null; then kill -TERM "$host_pid" || true; fi
    if ((started_broker)); then "$BROKER" stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step "Start a private RabbitMQ node"
if ! "$BROKER" status >/dev/null 2>&1; then
    "$BROKER" start >/dev/null
    started_broker=1
fi
eval "$("$BROKER" env)"
echo "broker: $BUSHOST_URL"

BUSCLI=$ROOT/$BUILD_DIR/tools/buscli/buscli
OUT=$ROOT/$BUILD_DIR/demo
mkdir -p "$OUT"

step "Run bushost with the example plugins (etc/service.ini)"
"$ROOT/$BUILD_DIR/host/bushost" -c etc/service.ini 2>"$OUT/bushost.log" &
host_pid=$!
for _ in $(seq 1 100); do
    [ "$(grep -c 'connected to' "$OUT/bushost.log" || true)" -ge 2 ] && break
    kill -0 "$host_pid" 2>/dev/null || { cat "$OUT/bushost.log"; exit 1; }
    sleep 0.1
done
cat "$OUT/bushost.log"

# Watch the bus while the scenario runs: every log record and every event.
"$BUSCLI" logs >"$OUT/logs.txt" 2>&1 &
tails+=($!)
"$BUSCLI" monitor --events '#' >"$OUT/monitor.txt" 2>&1 &
tails+=($!)
sleep 1

step "Send commands to the echo service and wait for their results"
run "$BUSCLI" send echo.Echo --data '{"hello": "bus", "n": 42}'
run "$BUSCLI" send echo.Divide --data '{"a": 7, "b": 2}'
run "$BUSCLI" send echo.Divide --json --data '{"a": 1, "b": 0}' || echo "(exit $?: an error result, as expected)"

step "Publish events to the cart service"
run "$BUSCLI" publish ItemSelected --data '{"cart": "demo", "item": "apple", "qty": 2}'
run "$BUSCLI" publish ItemSelected --data '{"cart": "demo", "item": "pear", "qty": 1}'
run "$BUSCLI" publish ItemRemoved --data '{"cart": "demo", "item": "apple"}'
sleep 1

step "The host's own view: buscli status -c etc/service.ini (its /status)"
run "$BUSCLI" status -c etc/service.ini

step "Two of its Prometheus series (curl http://127.0.0.1:9464/metrics)"
curl -fsS http://127.0.0.1:9464/metrics | grep -E '^bushost_(deliveries_handled_total\{service="echo",key="echo.Divide"|build_info)'

step "What passed on the events exchange (buscli monitor --events '#')"
cat "$OUT/monitor.txt"

step "Stop bushost gracefully (SIGTERM)"
kill -TERM "$host_pid"
wait "$host_pid" && echo "bushost exited 0" || echo "bushost exited $?"
host_pid=
sleep 0.5
tail -n 4 "$OUT/bushost.log"

step "Logs the services published on the logs exchange (buscli logs)"
cat "$OUT/logs.txt"

printf '\nFiles: %s\n' "$OUT"
