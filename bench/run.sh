#!/usr/bin/env bash
# run.sh -- the bushost benchmark: every workload as raw rabbitmq-c drivers
# and as bushost with a plugin, alternating, on a private broker; one table.
#
#   bench/run.sh [--quick] [--rounds N] [--build-dir DIR] [--no-build]
#                [--port PORT] [--keep-broker] [--charts DIR]
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
#   --only LIST    run only these workloads (numbers 1-8, e.g. 2,6; the
#                  tables keep the rows they fill), and no idle or soak
#   --soak N       messages through the soak (default 1,000,000; given
#                  with --quick, the soak runs)
#   --http-port P  HTTP port of row 2m's host (default 9473, or
#                  BH_BENCH_HTTP_PORT): http_listen, scraped every second
#   --otlp-port P  port of row 2t's span sink (default HTTP port + 10, or
#                  BH_BENCH_OTLP_PORT), a local OTLP/HTTP receiver
#   --charts DIR   also copy the charts (bench-throughput.png,
#                  bench-latency.png, made in the run folder when gnuplot
#                  is there) into DIR, e.g. docs
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
otlp_port=${BH_BENCH_OTLP_PORT:-}
charts_dir=
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
    --otlp-port) otlp_port=${2:?--otlp-port needs a number}; shift ;;
    --charts) charts_dir=${2:?--charts needs a folder}; shift ;;
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
otlp_port=${otlp_port:-$((http_port + 10))}
[[ -z $charts_dir ]] || charts_dir=$(realpath -m "$charts_dir")

# Workload 6: warm-up and measured milliseconds at each offered load, and
# the round trips of the one-at-a-time run (plus a tenth more, warm-up).
# Workload 7: seconds over which the idle CPU is taken.
if ((quick)); then
    N=10000 rounds=${rounds:-1} settle=0.2
    LAT_WARM_MS=100 LAT_MS=500 LAT_SEQ=100 IDLE_S=1
else
    N=100000 rounds=${rounds:-3} settle=1
    LAT_WARM_MS=1000 LAT_MS=5000 LAT_SEQ=1000 IDLE_S=10
fi
LAT_RATES=(1000 5000)
MANY=20 # workload 7: services in one host
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --rounds takes a positive number" >&2; exit 2; }
[[ -z $only || $only =~ ^[1-8](,[1-8])*$ ]] || { echo "run.sh: --only takes workload numbers 1-8, e.g. 2,6" >&2; exit 2; }
FAN_IN=$((N / 10))   # fan-out: N/10 events in, N published
SCALE_N=$((N / 10))  # scale-out: 1 ms of CPU each, so fewer messages
SOAK_N=$soak_n
FILL_WINDOW=5000     # the filler is not measured: a wide window fills fastest

say() { echo "run.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# -- table -------------------------------------------------------------------
# print_table RESULTS [DAT]: medians over the rounds, one row per
# comparison; with DAT, the charted rows go there too ("row ref bh" msg/s).
print_table() {
    awk -v dat="${2:-}" -v many="$MANY" -v idle_s="$IDLE_S" -v rev="$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)" \
        -v host="$(nproc) CPUs, $(uname -r)" -v N="$N" -v scale_n="$SCALE_N" -v soak_n="$SOAK_N" -v rounds="$rounds" -v quick="$quick" '
function median(list,    a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    if (n == 0) return 0
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(key, v) { vals[key] = vals[key] (vals[key] == "" ? "" : " ") v }
$1 == "idle" { idle_rss = $3; idle_hwm = $4; have_idle = 1; next }
$1 == "lat" { # lat RATE SIDE ROUND p50 p90 p99 p999 max cpu_us_per_command
    lat_rounds[$2, $3] = lat_rounds[$2, $3] " " $4
    for (i = 5; i <= 10; i++) { lat[$2, $3, $4, i] = $i; add("lat" SUBSEP $2 SUBSEP $3 SUBSEP i, $i) }
    next
}
$1 == "many" { # many SIDE ROUND rss_kb cpu_pct threads connections
    have_many[$2] = 1
    for (i = 4; i <= 7; i++) add("many" SUBSEP $2 SUBSEP i, $i)
    next
}
$1 == "clusterfail" { # clusterfail SIDE ROUND handled= expected= lost= left= duplicated= ...
    for (i = 4; i <= NF; i++) { split($i, kv, "="); cf[$3, kv[1]] = kv[2] }
    cf_rounds = cf_rounds " " $3; next
}
$1 == "clusterbroker" { add("clusterbroker" SUBSEP $2, $4); next }
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
function row(label, w, ref, side, chart,    rs, i, n, a, ratios, cratios, code) {
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
    split(label, code, " ")
    if (chart && dat != "") printf "%s %.0f %.0f\n", code[1], median(vals[w, ref, "rate"]), median(vals[w, side, "rate"]) > dat
}
# One latency row: percentile columns i (5 p50, 7 p99, 8 p99.9, 9 max) of
# raw and bushost at one offered load, ratios the medians of the rounds.
function lat_ratio(rate, i,    n, a, k, list) {
    n = split(lat_rounds[rate, "bushost"], a, " "); list = ""
    for (k = 1; k <= n; k++)
        if ((rate, "raw", a[k], i) in lat && lat[rate, "raw", a[k], i] > 0)
            list = list " " lat[rate, "bushost", a[k], i] / lat[rate, "raw", a[k], i]
    return median(list)
}
function lat_diff(rate, i,    n, a, k, list) {
    n = split(lat_rounds[rate, "bushost"], a, " "); list = ""
    for (k = 1; k <= n; k++)
        if ((rate, "raw", a[k], i) in lat) list = list " " lat[rate, "bushost", a[k], i] - lat[rate, "raw", a[k], i]
    return median(list)
}
function lm(rate, side, i) { return median(vals["lat", rate, side, i]) }
function lat_row(label, rate) {
    if (!((rate, "raw") in lat_rounds) || !((rate, "bushost") in lat_rounds)) return
    printf "| %-32s | %7.0f | %7.0f | %4.2f | %7.0f | %7.0f | %4.2f | %7.0f | %7.0f | %4.2f | %7.0f | %7.0f | %5.1f | %5.1f |\n", label,
        lm(rate, "raw", 5), lm(rate, "bushost", 5), lat_ratio(rate, 5),
        lm(rate, "raw", 7), lm(rate, "bushost", 7), lat_ratio(rate, 7),
        lm(rate, "raw", 8), lm(rate, "bushost", 8), lat_ratio(rate, 8),
        lm(rate, "raw", 9), lm(rate, "bushost", 9), lm(rate, "raw", 10), lm(rate, "bushost", 10)
    have_lat = 1
}
function many_row(label, side) {
    if (!(side in have_many)) return
    printf "| %-48s | %7.1f | %8.3f | %7d | %11d |\n", label, median(vals["many", side, 4]) / 1024,
        median(vals["many", side, 5]), median(vals["many", side, 6]), median(vals["many", side, 7])
}
END {
    printf "\nbushost vs raw rabbitmq-c, %d persistent 200-byte CBOR messages per run, median of %d round(s)%s\n", N, rounds, quick ? " (QUICK MODE: smoke test, figures not meaningful)" : ""
    printf "bushost %s, %s\n", rev, host
    printf "ref = the reference program of the row; ratio = bushost/raw msg/s (median of per-round ratios); CPU in s per 100k messages\n\n"
    printf "| %-48s | %9s | %9s | %5s | %6s | %6s | %5s | %7s |\n", "workload (reference)", "ref msg/s", "bh msg/s", "ratio", "refCPU", "bh CPU", "CPU x", "RSS MiB"
    printf "|%s|%s|%s|%s|%s|%s|%s|%s|\n", "--------------------------------------------------", "-----------", "-----------", "-------", "--------", "--------", "-------", "---------"
    row("1a events, no-op (raw: ack each, prefetch 100)", "events", "raw_each", "bushost", 1)
    row("1b events, no-op (raw: multiple/50, pf 100)", "events", "raw_multiple", "bushost", 1)
    row("1c events, no-op (raw: I/O+4 workers, mult./50)", "events", "raw_threads", "bushost", 1)
    row("1d as 1b, bushost workers = 0 (handler inline)", "events", "raw_multiple", "bushost_inline", 1)
    row("1aq as 1a, quorum queues (raw: ack each)", "events_q", "raw_each", "bushost", 1)
    row("2  command->result (raw: I/O+4 workers, pf 100)", "pipeline", "raw", "bushost", 1)
    row("2p same, bushost prefetch = 100", "pipeline", "raw", "bushost_p100")
    row("2m as 2 (ref), http_listen + /metrics every 1 s", "pipeline", "bushost", "bushost_metrics")
    row("2t as 2m, + spans exported over OTLP (ref: 2)", "pipeline", "bushost", "bushost_trace")
    row("2s as 2t, otlp_sample_percent = 1 (ref: 2)", "pipeline", "bushost", "bushost_trace1")
    row("2q as 2, quorum queues (raw: I/O+4 workers)", "pipeline_q", "raw", "bushost", 1)
    row("3  fan-out x10, published+confirmed (raw pub.)", "fanout", "raw", "bushost", 1)
    row("3p same, bushost prefetch = 100", "fanout", "raw", "bushost_p100")
    row("3q as 3, quorum queues (raw pub.)", "fanout_q", "raw", "bushost", 1)
    row(sprintf("4a 1 ms CPU x %d: 2 hosts vs 1 (workers 1)", scale_n), "scale", "one_w1", "two_w1")
    row(sprintf("4b 1 ms CPU x %d: workers 2 vs 1, one host", scale_n), "scale", "one_w1", "one_w2")
    row("8  as 4a, 3-node cluster, quorum (2 hosts vs 1)", "cluster", "one_w1", "two_w1")
    row("5  as 2, both over TLS (raw: rabbitmq-c TLS)", "tls", "raw_tls", "bushost_tls", 1)
    row("5r TLS cost, raw: TLS vs plain (ref: plain)", "tls", "raw_plain", "raw_tls")
    row("5b TLS cost, bushost: TLS vs plain (ref: plain)", "tls", "bushost_plain", "bushost_tls")
    row("5e as 1a, both over TLS (raw: ack each, TLS)", "tls_events", "raw_tls", "bushost_tls", 1)
    row("5er TLS cost, raw 5e: TLS vs plain", "tls_events", "raw_plain", "raw_tls")
    row("5eb TLS cost, bushost 5e: TLS vs plain", "tls_events", "bushost_plain", "bushost_tls")
    printf "\nbushost defaults unless stated: workers 4, prefetch 25 x workers = 100, confirm window 1000.\n"
    have_lat = 0
    for (k in lat_rounds) have_lat = 1
    if (have_lat) {
        printf "\n6: command -> result round trip in us, open loop (from each command'"'"'s due time), raw bench_pipeline vs bushost; x = bushost/raw (median of the rounds); CPU: server us per command\n\n"
        printf "| %-32s | %7s | %7s | %4s | %7s | %7s | %4s | %7s | %7s | %4s | %7s | %7s | %5s | %5s |\n", "offered load", "p50 raw", "p50 bh", "x", "p99 raw", "p99 bh", "x", "p999 raw", "p999 bh", "x", "max raw", "max bh", "CPUr", "CPUb"
        printf "|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", "----------------------------------", "---------", "---------", "------", "---------", "---------", "------", "---------", "---------", "------", "---------", "---------", "-------", "-------"
        lat_row("6a 1,000 commands/s", 1000)
        lat_row("6b 5,000 commands/s", 5000)
        lat_row("6s one at a time (idle host)", 0)
        if ((0, "raw") in lat_rounds && (0, "bushost") in lat_rounds)
            printf "6s: median round trip bushost - raw: %+.0f us (median of the rounds)\n", lat_diff(0, 5)
    }
    have_m = 0
    for (k in have_many) have_m = 1
    if (have_m) {
        printf "\n7: %d idle services in one process, nothing published; CPU over %d s (/proc stat utime+stime)\n\n", many, idle_s
        printf "| %-48s | %7s | %8s | %7s | %11s |\n", "process", "RSS MiB", "CPU %", "threads", "connections"
        printf "|%s|%s|%s|%s|%s|\n", "--------------------------------------------------", "---------", "----------", "---------", "-------------"
        many_row(sprintf("raw bench_idle: %d connections, 1 thread each", many), "raw")
        many_row(sprintf("bushost, %d services, workers 4 (default)", many), "bushost_w4")
        many_row(sprintf("bushost, %d services, workers 1", many), "bushost_w1")
        many_row(sprintf("bushost, %d services, workers 0", many), "bushost_w0")
    }
    if (cf_rounds != "") {
        n = split(cf_rounds, cr, " ")
        printf "\n8: a node stopped mid-run under 2 hosts (3-node cluster, quorum queues; brokers used %.1f s CPU per 100k with 1 host, %.1f with 2)\n", median(vals["clusterbroker", "one_w1"]), median(vals["clusterbroker", "two_w1"])
        for (i = 1; i <= n; i++)
            printf "8f round %s: stopped %s (leader: %s) at %s handled; handled %s of %s, lost %s, left %s, duplicated %s\n", cr[i],
                cf[cr[i], "stopped"], cf[cr[i], "leader"], cf[cr[i], "at"], cf[cr[i], "handled"], cf[cr[i], "expected"], cf[cr[i], "lost"], cf[cr[i], "left"], cf[cr[i], "duplicated"]
    }
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
for f in "$BUSHOST" "$B"/bench_{launch,fill,consume,pipeline,publish,soak,latency,idle} "$B/plugins/bench.so" \
    "$B/plugins-quorum/benchq.so" "$B/plugins-many/idle01.so" \
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
    for pid in "${host_pids[@]}" ${sink_pid:-}; do
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
purge() { "$B/bench_fill" "$URL" purge bench.events bench.commands bench.sink benchq.events benchq.commands benchq.sink; }
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
# Row 2t: the same, exporting its spans to the run's OTLP sink as well.
CONF_TRACE=$(host_conf trace "$BENCH_DIR" "http_listen = 127.0.0.1:$http_port" \
    "otlp_endpoint = http://127.0.0.1:$otlp_port/v1/traces" "[bench]" "workers = 4")
# Row 2s: as 2t, with 1% of the traces sampled (otlp_sample_percent).
CONF_TRACE1=$(host_conf trace1 "$BENCH_DIR" "http_listen = 127.0.0.1:$http_port" \
    "otlp_endpoint = http://127.0.0.1:$otlp_port/v1/traces" "otlp_sample_percent = 1" "[bench]" "workers = 4")
# Rows 1aq, 2q, 3q: plugin benchq (bench.c with keys of its own), quorum
# queues benchq.events and benchq.commands (bench_fill setup declares them
# alike, and the sink benchq.sink).
QUORUM_DIR=$B/plugins-quorum
quorum_conf() { host_conf "$1" "$QUORUM_DIR" "[benchq]" "service = benchq" "queue_type = quorum" "workers = 4" "${@:2}"; }
CONF_Q=$(quorum_conf quorum)
CONF_QFAN=$(quorum_conf quorum-fan "fanout = 10")
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
    [[ -z $sink ]] || expect_depth "${SINK_QUEUE:-bench.sink}" "$sink"
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
EVQ=(events BenchEventQ benchq.events)
CMDQ=(commands benchq.Run benchq.commands)

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
    for side in $(order "$r" raw_each bushost); do # 1aq: quorum queues
        case $side in
        raw_each) consume_run events_q "$side" "$r" "${EVQ[@]}" "$N" "$N" "" "" -- \
            "$B/bench_consume" "$URL" benchq.events "$N" each 100 ;;
        bushost) consume_run events_q "$side" "$r" "${EVQ[@]}" "$N" "$N" "" "" -- \
            "$BUSHOST" -c "$CONF_Q" ;;
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

# The span sink of row 2t (bench/otlp_sink.py on --otlp-port): answers every
# OTLP/HTTP post with 200 and counts them; not measured (not the host's).
sink_start() {
    python3 "$ROOT/bench/otlp_sink.py" "$otlp_port" "$WORK/otlp-sink-$1" &
    sink_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -e $WORK/otlp-sink-$1.ready ]] && return
        kill -0 "$sink_pid" 2>/dev/null || die "the OTLP sink did not start (port $otlp_port taken?)"
        sleep 0.1
    done
    die "the OTLP sink did not start"
}
# sink_stop TAG: stop it; die unless it took spans.
sink_stop() {
    kill -TERM "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
    sink_pid=
    local posts
    posts=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^posts=/) print substr($i, 7) }' "$WORK/otlp-sink-$1")
    ((${posts:-0} > 0)) || die "rows 2t/2s: no span reached the OTLP sink; see $WORK/otlp-sink-$1"
    say "  OTLP sink: $(cat "$WORK/otlp-sink-$1")"
}

# traced_run SIDE ROUND SINK_TAG CONF: row 2's run, scraped and exporting
# spans to a sink of its own.
traced_run() {
    scrape_start
    sink_start "$3"
    consume_run pipeline "$1" "$2" "${CMD[@]}" "$N" "$N" bench.Done "$N" -- "$BUSHOST" -c "$4"
    scrape_stop
    sink_stop "$3"
}

w2() { # command -> result, the command acked after its result is confirmed
    local r=$1 side
    for side in $(order "$r" raw bushost bushost_p100 bushost_metrics bushost_trace bushost_trace1); do
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
        bushost_trace) traced_run "$side" "$r" "$r" "$CONF_TRACE" ;;
        bushost_trace1) traced_run "$side" "$r" "$r-1pct" "$CONF_TRACE1" ;;
        esac
    done
    for side in $(order "$r" raw bushost); do # 2q: quorum queues
        case $side in
        raw) SINK_QUEUE=benchq.sink consume_run pipeline_q "$side" "$r" "${CMDQ[@]}" "$N" "$N" benchq.Done "$N" -- \
            "$B/bench_pipeline" "$URL" benchq.commands "$N" 4 100 1000 ;;
        bushost) SINK_QUEUE=benchq.sink consume_run pipeline_q "$side" "$r" "${CMDQ[@]}" "$N" "$N" benchq.Done "$N" -- \
            "$BUSHOST" -c "$CONF_Q" ;;
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
    for side in $(order "$r" raw bushost); do # 3q: quorum queues
        case $side in
        raw)
            purge
            sleep "$settle"
            measure fanout_q raw "$r" "$N" 0 -- "$B/bench_publish" "$URL" events BenchFannedQ "$N" 1000
            expect_depth benchq.sink "$N"
            ;;
        bushost) SINK_QUEUE=benchq.sink consume_run fanout_q "$side" "$r" "${EVQ[@]}" "$FAN_IN" "$N" "" "$N" -- \
            "$BUSHOST" -c "$CONF_QFAN" ;;
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
    # 5e: events as 1a (raw: ack each), over TLS and plain.
    for side in $(order "$r" raw_plain raw_tls bushost_plain bushost_tls); do
        case $side in
        raw_plain) consume_run tls_events "$side" "$r" "${EV[@]}" "$N" "$N" "" "" -- \
            "$B/bench_consume" "$URL" bench.events "$N" each 100 ;;
        raw_tls) consume_run tls_events "$side" "$r" "${EV[@]}" "$N" "$N" "" "" -- \
            "$B/bench_consume" "$TLS_URL" bench.events "$N" each 100 ;;
        bushost_plain)
            consume_run tls_events "$side" "$r" "${EV[@]}" "$N" "$N" "" "" -- \
                "$BUSHOST" -c "$CONF_PLAIN"
            connected_to "$WORK/tls_events-$side-$r.log" "$URL"
            ;;
        bushost_tls)
            consume_run tls_events "$side" "$r" "${EV[@]}" "$N" "$N" "" "" -- \
                env BUSHOST_URL="$TLS_URL" "$BUSHOST" -c "$CONF_TLS"
            connected_to "$WORK/tls_events-$side-$r.log" "$TLS_URL"
            ;;
        esac
    done
}

# lat_run RATE SIDE ROUND -- CMD...: workload 6 at one offered load (RATE 0:
# one command at a time). The service (CMD, under bench_launch, which stops
# it at the count and gives its CPU) consumes bench.commands; bench_latency
# sends and times. Appends
#   lat RATE SIDE ROUND p50 p90 p99 p999 max cpu_us_per_command   (us)
# lat_counts RATE: the warm-up and measured commands of one run.
lat_counts() {
    if (($1)); then
        echo "$(($1 * LAT_WARM_MS / 1000)) $(($1 * LAT_MS / 1000))"
    else
        echo "$((LAT_SEQ / 10)) $LAT_SEQ"
    fi
}
lat_total() {
    local warm count
    read -r warm count < <(lat_counts "$1")
    echo $((warm + count))
}
lat_run() {
    local rate=$1 side=$2 round=$3 warm count tag stats cpu launch
    shift 4
    read -r warm count < <(lat_counts "$rate")
    tag=lat-$rate-$side-$round
    purge
    sleep "$settle"
    "$B/bench_launch" --target $((warm + count)) --timeout 300 -- "$@" \
        >"$WORK/$tag.launch" 2>"$WORK/$tag.log" &
    launch=$!
    if ! stats=$("$B/bench_latency" "$URL" "$rate" "$warm" "$count" "$WORK/$tag.cdf" 2>>"$WORK/$tag.log"); then
        kill -TERM "$launch" 2>/dev/null || true
        wait "$launch" 2>/dev/null || true
        tail -n 20 "$WORK/$tag.log" | sed 's/^/  /' >&2
        die "latency $rate/s $side (round $round) failed; log: $WORK/$tag.log"
    fi
    wait "$launch" || { tail -n 20 "$WORK/$tag.log" | sed 's/^/  /' >&2; die "the service of $tag failed; log: $WORK/$tag.log"; }
    expect_depth bench.commands 0
    cpu=$(sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p' "$WORK/$tag.launch")
    awk -v r="$rate" -v s="$side" -v k="$round" -v c="$cpu" -v n=$((warm + count)) -v st="$stats" 'BEGIN {
        split(st, f, " "); for (i in f) { split(f[i], kv, "="); v[kv[1]] = kv[2] }
        printf "lat %s %s %s %s %s %s %s %s %.1f\n", r, s, k, v["p50_us"], v["p90_us"], v["p99_us"], v["p999_us"], v["max_us"], c / n * 1e6
    }' >>"$RESULTS"
    say "  latency $( ((rate)) && echo "$rate/s" || echo "one at a time") $side: $stats"
}

w6() { # command -> result latency, open loop at each offered load, then one at a time
    local r=$1 side rate
    for rate in "${LAT_RATES[@]}" 0; do
        for side in $(order "$r" raw bushost); do
            case $side in
            raw) lat_run "$rate" raw "$r" -- "$B/bench_pipeline" "$URL" bench.commands \
                "$(lat_total "$rate")" 4 100 1000 ;;
            bushost) lat_run "$rate" bushost "$r" -- "$BUSHOST" -c "$CONF_DEFAULT" ;;
            esac
        done
    done
}

# -- workload 7: many idle services in one process --------------------------
MANY_DIR=$B/plugins-many
mapfile -t MANY_SVCS < <(for ((i = 1; i <= MANY; i++)); do printf 'idle%02d\n' "$i"; done)
many_conf() { # many_conf WORKERS: the MANY plugins of plugins-many, one host
    local s lines=()
    for s in "${MANY_SVCS[@]}"; do lines+=("[$s]" "workers = $1"); done
    host_conf "many-w$1" "$MANY_DIR" "${lines[@]}" >/dev/null
    sed -i 's/log_level = warning/log_level = notice/' "$WORK/many-w$1.ini"
    echo "$WORK/many-w$1.ini"
}
# cpu_ticks PID: utime + stime of the process, in clock ticks (/proc/PID/stat,
# fields 14 and 15, counted after the command's closing parenthesis).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# many_measure SIDE PID: once it has settled, its RSS, threads, the broker's
# connections (only this process is connected now) and its CPU over IDLE_S.
many_measure() {
    local side=$1 pid=$2 rss threads conns t0 t1 w0 w1 cpu
    sleep "$(awk -v s="$settle" 'BEGIN { print 2 * s }')"
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")
    conns=$("$ROOT/scripts/broker.sh" ctl -q list_connections pid | grep -c '^<' || true)
    t0=$(cpu_ticks "$pid") w0=$(date +%s%N)
    sleep "$IDLE_S"
    t1=$(cpu_ticks "$pid") w1=$(date +%s%N)
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v w=$((w1 - w0)) 'BEGIN { printf "%.3f", d / hz / (w / 1e9) * 100 }')
    echo "many $side 1 $rss $cpu $threads $conns" >>"$RESULTS"
    say "  $side: RSS $rss kB, CPU $cpu% of a core over ${IDLE_S} s, $threads threads, $conns connections"
}

w7() { # MANY idle services: raw, then bushost with workers 4, 1 and 0
    local side pid log i want
    for side in raw bushost_w4 bushost_w1 bushost_w0; do
        log=$WORK/many-$side.log
        : >"$log"
        : >"$WORK/many-raw.out"
        if [[ $side == raw ]]; then
            "$B/bench_idle" "$URL" 30 "${MANY_SVCS[@]}" >"$WORK/many-raw.out" 2>"$log" &
        else
            "$BUSHOST" -c "$(many_conf "${side#bushost_w}")" 2>"$log" &
        fi
        pid=$!
        host_pids+=("$pid")
        for ((i = 0; i < 300; i++)); do
            if [[ $side == raw ]]; then
                grep -q '^ready$' "$WORK/many-raw.out" && break
            else
                want=$(grep -c 'connected to' "$log" || true)
                ((want >= MANY)) && break
            fi
            kill -0 "$pid" 2>/dev/null || die "workload 7 $side exited; see $log"
            sleep 0.1
        done
        ((i < 300)) || die "workload 7 $side did not connect all its services; see $log"
        many_measure "$side" "$pid"
        kill -TERM "$pid"
        wait "$pid" || die "workload 7 $side did not stop cleanly; see $log"
        host_pids=()
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
    for w in 1 2 3 4 5 6; do
        [[ -z $only || ,$only, == *,$w,* ]] && "w$w" "$r"
    done
done
purge
if [[ -z $only || ,$only, == *,7,* ]]; then
    say "workload 7: $MANY idle services"
    w7
fi
if [[ -z $only || ,$only, == *,8,* ]]; then
    say "workload 8: scale-out and a node failure on a 3-node cluster"
    "$ROOT/bench/cluster.sh" --build-dir "$build_dir" --results "$RESULTS" --rounds "$rounds" $( ((quick)) && echo --quick) \
        || die "workload 8 (bench/cluster.sh) failed"
fi
[[ -n $only ]] || examples_and_soak

print_table "$RESULTS" "$WORK/throughput.dat"
"$ROOT/bench/charts.sh" "$WORK" "$charts_dir"
