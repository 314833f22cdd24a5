#!/usr/bin/env bash
# dashboard.sh -- the picture in docs/observability.md: a host with echo and
# cart under load, its /metrics scraped every second, the broker stopped and
# started half way, then the Grafana dashboard's panels drawn from the
# scrapes (bench/dashboard.py).
#
#   bench/dashboard.sh [--build-dir DIR] [--port PORT] [--http-port PORT]
#                      [--messages N] [--out PNG]
#
#   --build-dir D   a built tree (default build)
#   --port PORT     AMQP port of its private broker (default 5794)
#   --http-port P   the host's http_listen port (default 9469)
#   --messages N    bench_soak messages before and after the outage (default 100000)
#   --out PNG       default docs/observability-dashboard.png
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$ROOT/build port=5794 http_port=9469 n=100000 out=$ROOT/docs/observability-dashboard.png
while (($#)); do
    case $1 in
    --build-dir) build_dir=${2:?}; shift ;;
    --port) port=${2:?}; shift ;;
    --http-port) http_port=${2:?}; shift ;;
    --messages) n=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "dashboard.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
build_dir=$(realpath -m "$build_dir")
# Not in scripts/setup.sh: only this picture needs it, no test does.
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
    { echo "dashboard.sh: needs Debian's python3-matplotlib (apt-get install python3-matplotlib)" >&2; exit 2; }
say() { echo "dashboard.sh: $*" >&2; }
die() { say "$*"; exit 1; }
for f in "$build_dir/host/bushost" "$build_dir/bench/bench_soak" "$build_dir/bench/bench_fill" \
    "$build_dir/plugins/echo.so" "$build_dir/plugins/cart.so"; do
    [[ -e $f ]] || die "$f is missing: build the bench_all target"
done

WORK=$build_dir/bench/dashboard-$port
rm -rf "$WORK"
mkdir -p "$WORK/plugins"
export BH_BROKER_PORT=$port BH_BROKER_NAME=bushost-dashboard-$port BH_BROKER_DIR=$WORK/broker
URL=amqp://guest:guest@127.0.0.1:$port/
export BUSHOST_URL=$URL
ln -s "$build_dir/plugins/echo.so" "$build_dir/plugins/cart.so" "$WORK/plugins/"

pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    "$ROOT/scripts/broker.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$ROOT/scripts/broker.sh" start >/dev/null
"$build_dir/bench/bench_fill" "$URL" setup # soak.sink, where bench_soak counts outputs
cat >"$WORK/host.ini" <<EOF
[broker]
url = $URL
heartbeat = 5
[host]
plugins_dir = $WORK/plugins
plugin_trust = relaxed
log_level = notice
healthcheck_interval = 5
http_listen = 127.0.0.1:$http_port
[echo]
workers = 4
[cart]
workers = 2
EOF
"$build_dir/host/bushost" -c "$WORK/host.ini" 2>"$WORK/host.log" &
host=$!
pids+=("$host")
for ((i = 0; i < 100; i++)); do
    curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
    kill -0 "$host" 2>/dev/null || die "the host exited; see $WORK/host.log"
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null || die "the host did not get ready; see $WORK/host.log"

"$ROOT/bench/dashboard.py" scrape "http://127.0.0.1:$http_port/metrics" "$WORK/scrapes" &
pids+=("$!")
sleep 3
say "load: $n messages through echo and cart"
"$build_dir/bench/bench_soak" "$URL" "$n" "$host" >/dev/null
sleep 3
say "the broker stops for 5 s"
"$ROOT/scripts/broker.sh" stop >/dev/null
sleep 5
"$ROOT/scripts/broker.sh" start >/dev/null
for ((i = 0; i < 150; i++)); do
    curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
say "load again: $n messages"
"$build_dir/bench/bench_soak" "$URL" "$n" "$host" >/dev/null
sleep 3
"$ROOT/bench/dashboard.py" plot "$WORK/scrapes" "$out"
say "wrote $out (scrapes in $WORK/scrapes)"
