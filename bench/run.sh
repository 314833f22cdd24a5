#!/usr/bin/env bash
# run.sh -- the bushost benchmark: every workload as raw rabbitmq-c drivers
# and as bushost with a plugin, alternating, on a private broker; one table.
#
#   bench/run.sh [--quick] [--rounds N] [--build-dir DIR] [--no-build]
#                [--port PORT] [--keep-broker]
#
#   --quick        10,000 messages, 1 round, no soak: a smoke test (ctest
#                  bench_quick runs it), its figures are not worth much
#   --rounds N     rounds of every workload (default 3); each figure is the
#                  median over the rounds, each ratio the median of the
#                  per-round ratios
#   --build-dir D  build folder (default build-bench); configured as a
#                  Release build and built unless --no-build
#   --no-build     use the build folder as it is (ctest does, so a sanitizer
#                  build is not reconfigured)
#   --port PORT    AMQP port of the private broker (default 5796, or
#                  BH_BENCH_PORT); Erlang distribution uses PORT+20000
#   --tls-port P   its AMQPS port (default PORT+2, or BH_BENCH_TLS_PORT),
#                  for the TLS rows; certificates are made at run time
#   --keep-broker  leave the broker running afterwards (scripts/broker.sh
#                  stop, with the same BH_BROKER_* variables, stops it)
#   --only LIST    run only these workloads (numbers, e.g. 2,5; the
#                  table keeps the rows they fill), and no idle or soak
#   --soak N       messages through the soak (default 1,000,000; given
#                  with --quick, the soak runs)
#   --http-port P  HTTP port of row 2m's host (default 9473, or
#                  BH_BENCH_HTTP_PORT): http_listen, scraped every second
#   --table FILE   only print the table of an earlier run's results file
#                  (<build-dir>/bench/run-<port>/results), with the same
#                  --quick/--rounds
#
# See bench/README.md for what each workload measures and how to read the table.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

quick=0
rounds=
build_dir=$ROOT/build-bench
build=1
port=${BH_BENCH_PORT:-5796}
tls_port=${BH_BENCH_TLS_PORT:-}
http_port=${BH_BENCH_HTTP_PORT:-9473}
keep_broker=0
table_only=
soak_n=1000000
soak_set=0
only=
while (($#)); do
    case $1 in
    --quick) quick=1 ;;
    --rounds) rounds=${2:?--rounds needs a number}; shift ;;
    --build-dir) build_dir=${2:?--build-dir needs a folder}; shift ;;
    --no-build) build=0 ;;
    --port) port=${2:?--port needs a number}; shift ;;
    --tls-port) tls_port=${2:?--tls-port needs a number}; shift ;;
    --http-port) http_port=${2:?--http-port needs a number}; shift ;;
    --keep-broker) keep_broker=1 ;;
    --only) only=${2:?--only needs workload numbers}; shift ;;
    --soak) soak_n=${2:?--soak needs a count}; soak_set=1; shift ;;
    --table) table_only=${2:?--table needs a results file}; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
build_dir=$(realpath -m "$build_dir")
tls_port=${tls_port:-$((port + 2))}

if ((quick)); then
    N=10000 rounds=${rounds:-1} settle=0.2
else
    N=100000 rounds=${rounds:-3} settle=1
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --rounds takes a positive number" >&2; exit 2; }
[[ -z $only || $only =~ ^[1-5](,[1-5])*$ ]] || { echo "run.sh: --only takes workload numbers 1-5, e.g. 2,5" >&2; exit 2; }
FAN_IN=$((N / 10))   # fan-out: N/10 events in, N published
SCALE_N=$((N / 10))  # scale-out: 1 ms of CPU each, so fewer messages
SOAK_N=$soak_n
FILL_WINDOW=5000     # the filler is not measured: a wide window fills fastest

say() { echo "run.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# -- table -------------------------------------------------------------------
# print_table RESULTS: medians over the rounds, one row per comparison.
print_table() {
    awk -v rev="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
        -v host="$(nproc) CPUs, $(uname -r)" -v N="$N" -v scale_n="$SCALE_N" -v soak_n="$SOAK_N" -v rounds="$rounds" -v quick="$quick" '
function median(list,    a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    if (n == 0) return 0
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(key, v) { vals[key] = vals[key] (vals[key] == "" ? "" : " ") v }
$1 == "idle" { idle_rss = $3; idle_hwm = $4; have_idle = 1; next }
$1 == "soak" {
    for (i = 3; i <= NF; i++) { split($i, kv, "="); soak[kv[1]] = kv[2] }
    have_soak = 1; next
}
{
    w = $1; sd = $2; r = $3
    rate[w, sd, r] = $4; cpu[w, sd, r] = $5
    add(w SUBSEP sd SUBSEP "rate", $4); add(w SUBSEP sd SUBSEP "cpu", $5); add(w SUBSEP sd SUBSEP "rss", $6)
    rounds_of[w, sd] = rounds_of[w, sd] " " r
}
function row(label, w, ref, side,    rs, i, n, a, ratios, cratios) {
    if (!((w, side) in rounds_of)) return
    n = split(rounds_of[w, side], a, " ")
    ratios = ""; cratios = ""
    for (i = 1; i <= n; i++) {
        if ((w, ref, a[i]) in rate) {
            ratios = ratios " " rate[w, side, a[i]] / rate[w, ref, a[i]]
            cratios = cratios " " cpu[w, side, a[i]] / cpu[w, ref, a[i]]
        }
    }
    printf "| %-48s | %9.0f | %9.0f | %5.2f | %6.2f | %6.2f | %5.2f | %7.1f |\n", label,
        median(vals[w, ref, "rate"]), median(vals[w, side, "rate"]), median(ratios),
        median(vals[w, ref, "cpu"]), median(vals[w, side, "cpu"]), median(cratios),
        median(vals[w, side, "rss"]) / 1024
}
END {
    printf "\nbushost vs raw rabbitmq-c, %d persistent 200-byte CBOR messages per run, median of %d round(s)%s\n", N, rounds, quick ? " (QUICK MODE: smoke test, figures not meaningful)" : ""
    printf "bushost %s, %s\n", rev, host
    printf "ref = the reference program of the row; ratio = bushost/raw msg/s (median of per-round ratios); CPU in s per 100k messages\n\n"
    printf "| %-48s | %9s | %9s | %5s | %6s | %6s | %5s | %7s |\n", "workload (reference)", "ref msg/s", "bh msg/s", "ratio", "refCPU", "bh CPU", "CPU x", "RSS MiB"
    printf "|%s|%s|%s|%s|%s|%s|%s|%s|\n", "--------------------------------------------------", "-----------", "-----------", "-------", "--------", "--------", "-------", "---------"
    row("1a events, no-op (raw: ack each, prefetch 100)", "events", "raw_each", "bushost")
    row("1b events, no-op (raw: multiple/50, pf 100)", "events", "raw_multiple", "bushost")
    row("1c events, no-op (raw: I/O+4 workers, mult./50)", "events", "raw_threads", "bushost")
    row("1d as 1b, bushost workers = 0 (handler inline)", "events", "raw_multiple", "bushost_inline")
    row("2  command->result (raw: I/O+4 workers, pf 100)", "pipeline", "raw", "bushost")
    row("2p same, bushost prefetch = 100", "pipeline", "raw", "bushost_p100")
    row("2m as 2 (ref), http_listen + /metrics every 1 s", "pipeline", "bushost", "bushost_metrics")
    row("3  fan-out x10, published+confirmed (raw pub.)", "fanout", "raw", "bushost")
    row("3p same, bushost prefetch = 100", "fanout", "raw", "bushost_p100")
    row(sprintf("4a 1 ms CPU x %d: 2 hosts vs 1 (workers 1)", scale_n), "scale", "one_w1", "two_w1")
    row(sprintf("4b 1 ms CPU x %d: workers 2 vs 1, one host", scale_n), "scale", "one_w1", "one_w2")
    row("5  as 2, both over TLS (raw: rabbitmq-c TLS)", "tls", "raw_tls", "bushost_tls")
    row("5r TLS cost, raw: TLS vs plain (ref: plain)", "tls", "raw_plain", "raw_tls")
    row("5b TLS cost, bushost: TLS vs plain (ref: plain)", "tls", "bushost_plain", "bushost_tls")
    printf "\nbushost defaults unless stated: workers 4, prefetch 25 x workers = 100, confirm window 1000.\n"
    if (have_idle) printf "idle host with echo + cart: RSS %.1f MiB (peak %.1f MiB)\n", idle_rss / 1024, idle_hwm / 1024
    if (have_soak) {
        split(soak["rss_kb"], s, ",")
        printf "soak, %d messages through echo + cart: %.0f msg/s, RSS at 10%% %.2f MiB, at 100%% %.2f MiB, growth %+.2f MiB, peak %.2f MiB, CPU %.2f s per 100k\n",
            soak_n, soak_n / soak["wall_s"], soak["rss10_kb"] / 1024, soak["rss100_kb"] / 1024,
            (soak["rss100_kb"] - soak["rss10_kb"]) / 1024, soak["hwm_kb"] / 1024, soak["cpu_s"] / soak_n * 100000
        printf "soak RSS at each tenth (MiB):"
        for (i = 1; i <= 10; i++) printf " %.2f", s[i] / 1024
        printf "\n"
    } else {
        printf "soak: skipped\n"
    }
}' "$1"
}

if [[ -n $table_only ]]; then
    [[ -r $table_only ]] || { echo "run.sh: cannot read '$table_only'" >&2; exit 2; }
    print_table "$table_only"
    exit 0
fi

# -- build -------------------------------------------------------------------
if ((build)); then
    say "building (Release) in $build_dir"
    # Sanitizers off, whatever the folder's cache says: figures of a plain
    # optimized build only.
    cmake -S "$ROOT" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DBH_SANITIZE= -DBH_BENCH=ON >/dev/null
    cmake --build "$build_dir" -j2 --target bench_all >/dev/null
fi
B=$build_dir/bench
BUSHOST=$build_dir/host/bushost
for f in "$BUSHOST" "$B"/bench_{launch,fill,consume,pipeline,publish,soak} "$B/plugins/bench.so" \
    "$build_dir/plugins/echo.so" "$build_dir/plugins/cart.so"; do
    [[ -e $f ]] || die "$f is missing: build the bench_all target (or drop --no-build)"
done

# -- private broker ----------------------------------------------------------
export BH_BROKER_PORT=$port BH_BROKER_NAME=bushost-bench-$port BH_BROKER_DIR=$B/broker
URL=amqp://guest:guest@127.0.0.1:$port/
# The TLS rows: the same node's AMQPS listener, certificates for localhost
# (the name both sides verify) made at run time.
TLS_DIR=$B/tls-certs
"$ROOT/scripts/tls-certs.sh" "$TLS_DIR"
export BH_BROKER_TLS_PORT=$tls_port BH_BROKER_TLS_DIR=$TLS_DIR BENCH_TLS_CA=$TLS_DIR/ca.pem
TLS_URL=amqps://guest:guest@localhost:$tls_port/
export BUSHOST_URL=$URL
WORK=$B/run-$port
rm -rf "$WORK"
mkdir -p "$WORK"
RESULTS=$WORK/results
: >"$RESULTS"

host_pids=()
cleanup() {
    local pid
    for pid in "${host_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if ((!keep_broker)); then
        "$ROOT/scripts/broker.sh" stop >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$ROOT/scripts/broker.sh" reset >/dev/null 2>&1 || true
"$ROOT/scripts/broker.sh" start >/dev/null
"$B/bench_fill" "$URL" setup

# -- helpers -----------------------------------------------------------------
fill() { "$B/bench_fill" "$URL" fill "$@" "$FILL_WINDOW"; }
purge() { "$B/bench_fill" "$URL" purge bench.events bench.commands bench.sink; }
depth() { "$B/bench_fill" "$URL" depth "$1"; }

expect_depth() {
    local got
    got=$(depth "$1")
    [[ $got == "$2" ]] || die "queue $1 holds $got messages after the run, expected $2"
}

# host_conf NAME PLUGINS_DIR [INI LINES...]: a bushost config in $WORK.
host_conf() {
    local name=$1 dir=$2
    shift 2
    {
        printf '[broker]\nurl = %s\nheartbeat = 30\n' "$URL"
        printf '[host]\nplugins_dir = %s\nlog_level = warning\nhealthcheck_interval = 0\n' "$dir"
        printf '%s\n' "$@"
    } >"$WORK/$name.ini"
    echo "$WORK/$name.ini"
}

# measure WORKLOAD SIDE ROUND COUNT TARGET -- CMD... [--and CMD...]
# Runs one measured run through bench_launch and appends to $RESULTS:
#   workload side round msg/s cpu_s_per_100k maxrss_kb
measure() {
    local workload=$1 side=$2 round=$3 count=$4 target=$5 out log
    shift 6
    log=$WORK/$workload-$side-$round.log
    if ! out=$("$B/bench_launch" --target "$target" --timeout 900 -- "$@" 2>"$log"); then
        sed 's/^/  /' "$log" | tail -n 20 >&2
        die "$workload/$side (round $round) failed; log: $log"
    fi
    local wall cpu rss
    wall=$(sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p' <<<"$out")
    cpu=$(sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p' <<<"$out")
    rss=$(sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p' <<<"$out")
    awk -v w="$workload" -v s="$side" -v r="$round" -v n="$count" -v t="$wall" -v c="$cpu" \
        -v m="$rss" 'BEGIN { printf "%s %s %s %.1f %.4f %d\n", w, s, r, n / t, c / n * 100000, m }' \
        >>"$RESULTS"
    say "  $workload $side: $(awk -v n="$count" -v t="$wall" 'BEGIN { printf "%.0f", n / t }') msg/s, cpu ${cpu}s, peak RSS ${rss} kB"
}

# Order of the sides within a round: reversed every other round, so a slow
# drift of the machine does not always favour the same side.
order() {
    local round=$1
    shift
    if ((round % 2)); then printf '%s\n' "$@"; else printf '%s\n' "$@" | tac; fi
}

BENCH_DIR=$B/plugins
bench_conf() { host_conf "$1" "$BENCH_DIR" "[bench]" "${@:2}"; }
CONF_DEFAULT=$(bench_conf default "workers = 4")
CONF_P100=$(bench_conf p100 "workers = 4" "prefetch = 100")
# Row 2m: the default host with its HTTP endpoint on. host_conf writes the
# [host] section last-but-the-plugin's, so the key goes in before [bench].
CONF_METRICS=$(host_conf metrics "$BENCH_DIR" "http_listen = 127.0.0.1:$http_port" "[bench]" "workers = 4")
CONF_INLINE=$(bench_conf inline "workers = 0")
CONF_FAN=$(bench_conf fan "workers = 4" "fanout = 10")
CONF_FAN100=$(bench_conf fan100 "workers = 4" "fanout = 10" "prefetch = 100")
CONF_BURN1=$(bench_conf burn1 "workers = 1" "burn_us = 1000")
CONF_BURN2=$(bench_conf burn2 "workers = 2" "burn_us = 1000")

# consume_run WORKLOAD SIDE ROUND EXCHANGE KEY QUEUE FILL RATED REPLY_TO SINK -- CMD...
# Purge, pre-fill QUEUE with FILL messages (through EXCHANGE/KEY), let the
# broker settle, measure (RATED messages: what the rate counts), then check
# that QUEUE is empty and that bench.sink holds SINK messages (if given).
consume_run() {
    local workload=$1 side=$2 round=$3 exchange=$4 key=$5 queue=$6 count=$7 rated=$8
    local reply_to=$9 sink=${10}
    shift 11
    purge
    fill "$exchange" "$key" "$count" "$reply_to"
    sleep "$settle"
    measure "$workload" "$side" "$round" "$rated" "$count" -- "$@"
    expect_depth "$queue" 0
    [[ -z $sink ]] || expect_depth bench.sink "$sink"
}

# tls_conf NAME URL: the default bench host on URL (with the run's CA), at
# log level notice so that the run can check which URL it connected to.
tls_conf() {
    local conf
    conf=$(bench_conf "$1" "workers = 4")
    sed -i -e "s|^url = .*|url = $2\ntls_ca = $TLS_DIR/ca.pem|" -e 's/log_level = warning/log_level = notice/' "$conf"
    echo "$conf"
}
CONF_TLS=$(tls_conf tls "$TLS_URL")
CONF_PLAIN=$(tls_conf plain "$URL")

# connected_to LOG URL: die unless the host of that run's log connected to URL.
connected_to() {
    local shown=${2/:guest@/:***@}
    grep -qF "connected to $shown" "$1" || die "the host of $1 did not connect to $shown"
}

# -- workloads ---------------------------------------------------------------
EV=(events BenchEvent bench.events)
CMD=(commands bench.Run bench.commands)

w1() { # event consumption, no-op handler
    local r=$1 side
    for side in $(order "$r" raw_each raw_multiple raw_threads bushost bushost_inline); do
        case $side in
        raw_each) consume_run events "$side" "$r" "${EV[@]}" "$N" "$N" "" "" -- \
            "$B/bench_consume" "$URL" bench.events "$N" each 100 ;;
        raw_multiple) consume_run events "$side" "$r" "${EV[@]}" "$N" "$N" "" "" -- \
            "$B/bench_consume" "$URL" bench.events "$N" multiple 100 50 ;;
        raw_threads) consume_run events "$side" "$r" "${EV[@]}" "$N" "$N" "" "" -- \
            "$B/bench_pipeline" --events "$URL" bench.events "$N" 4 100 50 ;;
        bushost) consume_run events "$side" "$r" "${EV[@]}" "$N" "$N" "" "" -- \
            "$BUSHOST" -c "$CONF_DEFAULT" ;;
        bushost_inline) consume_run events "$side" "$r" "${EV[@]}" "$N" "$N" "" "" -- \
            "$BUSHOST" -c "$CONF_INLINE" ;;
        esac
    done
}

# A Prometheus-like scraper: GET /metrics every second while a run lasts
# (its own CPU is not the host's: bench_launch measures its children only).
scrape_start() {
    (while :; do curl -s -o /dev/null "http://127.0.0.1:$http_port/metrics" || true; sleep 1; done) &
    scraper=$!
}
scrape_stop() { kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; }

w2() { # command -> result, the command acked after its result is confirmed
    local r=$1 side
    for side in $(order "$r" raw bushost bushost_p100 bushost_metrics); do
        case $side in
        raw) consume_run pipeline "$side" "$r" "${CMD[@]}" "$N" "$N" bench.Done "$N" -- \
            "$B/bench_pipeline" "$URL" bench.commands "$N" 4 100 1000 ;;
        bushost) consume_run pipeline "$side" "$r" "${CMD[@]}" "$N" "$N" bench.Done "$N" -- \
            "$BUSHOST" -c "$CONF_DEFAULT" ;;
        bushost_p100) consume_run pipeline "$side" "$r" "${CMD[@]}" "$N" "$N" bench.Done "$N" -- \
            "$BUSHOST" -c "$CONF_P100" ;;
        bushost_metrics)
            scrape_start
            consume_run pipeline "$side" "$r" "${CMD[@]}" "$N" "$N" bench.Done "$N" -- \
                "$BUSHOST" -c "$CONF_METRICS"
            scrape_stop
            ;;
        esac
    done
}

w3() { # fan-out x10, rated on published-and-confirmed messages
    local r=$1 side
    for side in $(order "$r" raw bushost bushost_p100); do
        case $side in
        raw)
            purge
            sleep "$settle"
            measure fanout raw "$r" "$N" 0 -- "$B/bench_publish" "$URL" events BenchFanned "$N" 1000
            expect_depth bench.sink "$N"
            ;;
        bushost) consume_run fanout "$side" "$r" "${EV[@]}" "$FAN_IN" "$N" "" "$N" -- \
            "$BUSHOST" -c "$CONF_FAN" ;;
        bushost_p100) consume_run fanout "$side" "$r" "${EV[@]}" "$FAN_IN" "$N" "" "$N" -- \
            "$BUSHOST" -c "$CONF_FAN100" ;;
        esac
    done
}

w4() { # scale-out, 1 ms of CPU per message
    local r=$1 side
    for side in $(order "$r" one_w1 two_w1 one_w2); do
        case $side in
        one_w1) consume_run scale "$side" "$r" "${EV[@]}" "$SCALE_N" "$SCALE_N" "" "" -- \
            "$BUSHOST" -c "$CONF_BURN1" ;;
        two_w1) consume_run scale "$side" "$r" "${EV[@]}" "$SCALE_N" "$SCALE_N" "" "" -- \
            "$BUSHOST" -c "$CONF_BURN1" --and "$BUSHOST" -c "$CONF_BURN1" ;;
        one_w2) consume_run scale "$side" "$r" "${EV[@]}" "$SCALE_N" "$SCALE_N" "" "" -- \
            "$BUSHOST" -c "$CONF_BURN2" ;;
        esac
    done
}

w5() { # command -> result as row 2, over TLS and plain, raw and bushost
    local r=$1 side
    for side in $(order "$r" raw_plain raw_tls bushost_plain bushost_tls); do
        case $side in
        raw_plain) consume_run tls "$side" "$r" "${CMD[@]}" "$N" "$N" bench.Done "$N" -- \
            "$B/bench_pipeline" "$URL" bench.commands "$N" 4 100 1000 ;;
        raw_tls) consume_run tls "$side" "$r" "${CMD[@]}" "$N" "$N" bench.Done "$N" -- \
            "$B/bench_pipeline" "$TLS_URL" bench.commands "$N" 4 100 1000 ;;
        bushost_plain)
            consume_run tls "$side" "$r" "${CMD[@]}" "$N" "$N" bench.Done "$N" -- \
                "$BUSHOST" -c "$CONF_PLAIN"
            connected_to "$WORK/tls-$side-$r.log" "$URL"
            ;;
        bushost_tls)
            consume_run tls "$side" "$r" "${CMD[@]}" "$N" "$N" bench.Done "$N" -- \
                env BUSHOST_URL="$TLS_URL" "$BUSHOST" -c "$CONF_TLS"
            connected_to "$WORK/tls-$side-$r.log" "$TLS_URL"
            ;;
        esac
    done
}

# A host with both example plugins: idle RSS after it connected, then (full
# mode) the soak through the same process.
EXAMPLES=$WORK/examples
mkdir -p "$EXAMPLES"
ln -sf "$build_dir/plugins/echo.so" "$build_dir/plugins/cart.so" "$EXAMPLES/"
examples_and_soak() {
    local conf log pid i kb hwm soak
    conf=$(host_conf examples "$EXAMPLES" "[echo]" "workers = 4" "[cart]" "workers = 2")
    sed -i 's/log_level = warning/log_level = notice/' "$conf"
    log=$WORK/examples.log
    "$BUSHOST" -c "$conf" 2>"$log" &
    pid=$!
    host_pids+=("$pid")
    for ((i = 0; i < 300; i++)); do
        (($(grep -c 'connected to' "$log" || true) >= 2)) && break
        kill -0 "$pid" 2>/dev/null || die "bushost with the examples exited; see $log"
        sleep 0.1
    done
    (($(grep -c 'connected to' "$log" || true) >= 2)) || die "the examples did not connect; see $log"
    sleep 2
    kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    echo "idle examples $kb $hwm" >>"$RESULTS"
    say "idle host with echo and cart: RSS $kb kB (peak $hwm kB)"
    if ((!quick || soak_set)); then
        "$B/bench_fill" "$URL" purge cart.events echo.commands soak.sink
        say "soak: $SOAK_N messages through echo and cart"
        soak=$("$B/bench_soak" "$URL" "$SOAK_N" "$pid") || die "the soak failed; see $log"
        echo "soak examples $soak" >>"$RESULTS"
        say "  $soak"
    fi
    kill -TERM "$pid"
    wait "$pid" || die "bushost with the examples did not stop cleanly; see $log"
    host_pids=()
}

# -- run ---------------------------------------------------------------------
say "broker on port $port; $N messages, $rounds round(s)$( ((quick)) && echo ", quick mode")"
for ((r = 1; r <= rounds; r++)); do
    say "round $r of $rounds"
    for w in 1 2 3 4 5; do
        [[ -z $only || ,$only, == *,$w,* ]] && "w$w" "$r"
    done
done
purge
[[ -n $only ]] || examples_and_soak

print_table "$RESULTS"
