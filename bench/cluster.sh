#!/usr/bin/env bash
# cluster.sh -- scale-out and a node failure on a private 3-node RabbitMQ
# cluster, with the bench plugin's queue as a quorum queue.
#
#   bench/cluster.sh --results FILE [--build-dir DIR] [--quick] [--rounds N]
#                    [--ports "5811 5812 5813"]
#
#   --results FILE  results file, appended to (bench/run.sh's format):
#                     cluster one_w1 ROUND msg/s cpu_s_per_100k maxrss_kb
#                     cluster two_w1 ROUND msg/s cpu_s_per_100k maxrss_kb
#                     clusterfail two_w1 ROUND handled=H expected=N lost=L
#                       left=Q duplicated=D runs=R stopped=PORT ...
#   --build-dir D   a build bench/run.sh has built (target bench_all;
#                   default build-bench); used as it is
#   --quick         1,000 messages, 1 round: a smoke test
#   --rounds N      rounds (default 3, quick 1): each round times one host
#                   then two (order reversed every other round) on the same
#                   pre-filled queue
#   --failure-rounds N
#                   node-failure runs (default: as many as --rounds; 0: none)
#   --ports LIST    AMQP ports of the three nodes (default "5811 5812 5813";
#                   Erlang distribution uses port+20000); nothing else may
#                   use them
#
# The cluster (tests/fault/fixture.sh cluster-start: fresh, joined, state in
# <build-dir>/bench/cluster-broker/, nodes bushost-bench-cluster-<port>) is
# stopped at the end. Every host runs the bench plugin with workers = 1,
# burn_us = 1000 (1 ms of CPU per event), queue_type = quorum and all three
# URLs, so bench.events is replicated on the three nodes and a host whose
# node stops reconnects to the next.
#
# Scale-out: N events pre-filled (not timed), then one host, or two hosts on
# the same queue, consume them, timed by bench_launch as bench/run.sh times
# its runs (first message seen to last exit).
#
# Node failure: two hosts consume N events with fanout = 1, so each handler
# that finished publishes one copy of its event (same conversation id) to
# bench.sink, a quorum queue too, which bench_cluster tallies on a node that
# stays up. When a third is handled, the node the hosts are connected to is
# stopped (rabbitmqctl stop, through fixture.sh); the hosts must fail over
# and finish. lost = events neither handled nor still queued; a duplicate
# (handled twice, at-least-once) is allowed and counted. The stopped node is
# started again for the next round, and the next round's hosts start on
# (and lose) the next node. Exits 1 when anything was lost or left over.
#
# Progress goes to stderr; each run's log stays in <build-dir>/bench/cluster-<port>/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

quick=0
rounds=
frounds=
build_dir=$ROOT/build-bench
results=
ports="5811 5812 5813"
while (($#)); do
    case $1 in
    --quick) quick=1 ;;
    --rounds) rounds=${2:?--rounds needs a number}; shift ;;
    --failure-rounds) frounds=${2:?--failure-rounds needs a number}; shift ;;
    --build-dir) build_dir=${2:?--build-dir needs a folder}; shift ;;
    --results) results=${2:?--results needs a file}; shift ;;
    --ports) ports=${2:?--ports needs three port numbers}; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) echo "cluster.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ -n $results ]] || { echo "cluster.sh: --results FILE is needed (see --help)" >&2; exit 2; }
build_dir=$(realpath -m "$build_dir")
results=$(realpath -m "$results")
read -r -a PORTS <<<"$ports"
((${#PORTS[@]} == 3)) || { echo "cluster.sh: --ports takes three ports, got '$ports'" >&2; exit 2; }
for p in "${PORTS[@]}"; do
    if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1024 || p > 45535)); then
        echo "cluster.sh: bad port '$p' (1024..45535)" >&2
        exit 2
    fi
done

if ((quick)); then
    N=1000 rounds=${rounds:-1} settle=0.5
else
    N=10000 rounds=${rounds:-3} settle=2
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "cluster.sh: --rounds takes a positive number" >&2; exit 2; }
frounds=${frounds:-$rounds}
[[ $frounds =~ ^[0-9]+$ ]] || { echo "cluster.sh: --failure-rounds takes a number" >&2; exit 2; }
FILL_WINDOW=5000

say() { echo "cluster.sh: $*" >&2; }
die() { say "$*"; exit 1; }

B=$build_dir/bench
BUSHOST=$build_dir/host/bushost
for f in "$BUSHOST" "$B"/bench_{launch,fill,cluster} "$B/plugins/bench.so"; do
    [[ -e $f ]] || die "$f is missing: build the bench_all target of $build_dir (bench/run.sh does)"
done

# Nothing of a caller's broker may leak in: bench/run.sh exports
# BUSHOST_URL (it would replace the hosts' three URLs) and its own node's
# BH_BROKER_* (a TLS port every node here would try to listen on).
unset BUSHOST_URL BUSHOST_PASSWORD BH_BROKER_PORT BH_BROKER_NAME BH_BROKER_TLS_PORT \
    BH_BROKER_TLS_DIR BH_BROKER_CONSUMER_TIMEOUT
export BH_BROKER_SH=$ROOT/scripts/broker.sh BH_BROKER_DIR=$B/cluster-broker
export BH_FAULT_NAME_PREFIX=bushost-bench-cluster- BH_FAULT_PORTS="${PORTS[*]}"
FIXTURE=$ROOT/tests/fault/fixture.sh

WORK=$B/cluster-${PORTS[0]}
rm -rf "$WORK"
mkdir -p "$WORK" "$(dirname "$results")"
touch "$results"

url_of() { echo "amqp://guest:guest@127.0.0.1:$1/"; }

# One node of the cluster, as fixture.sh names it.
node() {
    local port=$1
    shift
    BH_BROKER_PORT=$port BH_BROKER_NAME=$BH_FAULT_NAME_PREFIX$port "$BH_BROKER_SH" "$@"
}

pids=()
cluster_up=0
cleanup() {
    local pid child
    for pid in "${pids[@]}"; do
        # bench_launch's hosts first: it dies of SIGTERM without passing it on.
        for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill -TERM "$child" 2>/dev/null || true; done
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if ((cluster_up)); then
        "$FIXTURE" cluster-stop >>"$WORK/cluster.log" 2>&1 || say "stopping the cluster failed; see $WORK/cluster.log"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$SECONDS
say "starting a 3-node cluster on ports ${PORTS[*]} (state in $BH_BROKER_DIR)"
cluster_up=1
if ! "$FIXTURE" cluster-start >"$WORK/cluster.log" 2>&1; then
    tail -n 20 "$WORK/cluster.log" | sed 's/^/  /' >&2
    die "the cluster did not start; see $WORK/cluster.log"
fi
say "  cluster up after $((SECONDS - start)) s"

# -- helpers -----------------------------------------------------------------
# TOOL: the node the fill, depth and tally connect to (one that stays up).
TOOL=${PORTS[2]}
fill() { "$B/bench_fill" "$(url_of "$TOOL")" fill events BenchEvent "$1" "" "$FILL_WINDOW"; }
purge() { "$B/bench_fill" "$(url_of "$TOOL")" purge "$@"; }
depth() { "$B/bench_fill" "$(url_of "$TOOL")" depth "$1"; }
expect_depth() {
    local got
    got=$(depth "$1")
    [[ $got == "$2" ]] || die "queue $1 holds $got messages after the run, expected $2"
}

# host_conf NAME FIRST_PORT [INI LINES...]: a bench host with all three URLs,
# FIRST_PORT's first (the host connects to it), the others in cluster order.
host_conf() {
    local name=$1 first=$2 p
    shift 2
    {
        printf '[broker]\nurl = %s\n' "$(url_of "$first")"
        for p in "${PORTS[@]}"; do
            [[ $p == "$first" ]] || printf 'url = %s\n' "$(url_of "$p")"
        done
        printf 'heartbeat = 30\n'
        printf '[host]\nplugins_dir = %s\nlog_level = notice\nhealthcheck_interval = 0\n' "$B/plugins"
        printf '[bench]\nqueue_type = quorum\nworkers = 1\nburn_us = 1000\n'
        printf '%s\n' "$@"
    } >"$WORK/$name.ini"
    echo "$WORK/$name.ini"
}

# broker_ticks: CPU clock ticks (user + system) the cluster's Erlang VMs
# have used so far (the beam.smp children of the pids broker.sh recorded).
broker_ticks() {
    local p pidfile pid child total=0 t
    for p in "${PORTS[@]}"; do
        pidfile=$BH_BROKER_DIR/$BH_FAULT_NAME_PREFIX$p/broker.pid
        [[ -f $pidfile ]] || continue
        pid=$(<"$pidfile")
        for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
            [[ $(ps -o comm= -p "$child" 2>/dev/null) == beam.smp ]] || continue
            t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$child/stat" 2>/dev/null) || continue
            total=$((total + ${t:-0}))
        done
    done
    echo "$total"
}
TICK=$(getconf CLK_TCK)
# machine_ticks: busy ticks of the whole machine (every CPU), from /proc/stat.
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# measure SIDE ROUND -- CMD... [--and CMD...]: as bench/run.sh's measure;
# appends "cluster SIDE ROUND msg/s cpu_s_per_100k maxrss_kb" (the hosts'
# CPU) and "clusterbroker SIDE ROUND cpu_s_per_100k" (the three nodes' CPU
# over the same run), and keeps the rate in RATE[SIDE-ROUND].
declare -A RATE
measure() {
    local side=$1 round=$2 out log wall cpu rss b0 b1 m0 m1 bcpu other rate
    shift 3
    log=$WORK/cluster-$side-$round.log
    b0=$(broker_ticks)
    m0=$(machine_ticks)
    if ! out=$("$B/bench_launch" --target "$N" --timeout 900 -- "$@" 2>"$log"); then
        sed 's/^/  /' "$log" | tail -n 20 >&2
        die "cluster/$side (round $round) failed; log: $log"
    fi
    b1=$(broker_ticks)
    m1=$(machine_ticks)
    wall=$(sed -n 's/.*wall_s=\([0-9.]*\).*/\1/p' <<<"$out")
    cpu=$(sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p' <<<"$out")
    rss=$(sed -n 's/.*maxrss_kb=\([0-9]*\).*/\1/p' <<<"$out")
    bcpu=$(awk -v t=$((b1 - b0)) -v hz="$TICK" 'BEGIN { printf "%.2f", t / hz }')
    # What else the machine did meanwhile (other people's work, this
    # script): a noisy neighbour shows here.
    other=$(awk -v t=$((m1 - m0 - b1 + b0)) -v hz="$TICK" -v c="$cpu" 'BEGIN { printf "%.2f", t / hz - c }')
    rate=$(awk -v n="$N" -v t="$wall" 'BEGIN { printf "%.1f", n / t }')
    RATE[$side-$round]=$rate
    awk -v s="$side" -v r="$round" -v n="$N" -v t="$wall" -v c="$cpu" -v m="$rss" -v b="$bcpu" \
        'BEGIN { printf "cluster %s %s %.1f %.4f %d\nclusterbroker %s %s %.4f\n", s, r, n / t, c / n * 100000, m, s, r, b / n * 100000 }' >>"$results"
    say "  cluster $side: ${rate%.*} msg/s, hosts' cpu ${cpu}s, brokers' cpu ${bcpu}s, anything else ${other}s, peak RSS ${rss} kB"
}

order() {
    local round=$1
    shift
    if ((round % 2)); then printf '%s\n' "$@"; else printf '%s\n' "$@" | tac; fi
}

# -- topology ----------------------------------------------------------------
# bushost declares its queue (quorum) and bindings as a service does: one
# host runs until it is connected, on the first node (the queue's leader).
CONF=$(host_conf burn1 "${PORTS[0]}")
log=$WORK/topology.log
"$BUSHOST" -c "$CONF" 2>"$log" &
pids=($!)
for ((i = 0; i < 300; i++)); do
    grep -q 'connected to' "$log" && break
    kill -0 "${pids[0]}" 2>/dev/null || die "bushost exited while declaring the topology; see $log"
    sleep 0.1
done
grep -q 'connected to' "$log" || die "bushost did not connect within 30 s; see $log"
kill -TERM "${pids[0]}"
wait "${pids[0]}" || die "bushost did not stop cleanly; see $log"
pids=()
"$B/bench_cluster" "$(url_of "$TOOL")" declare bench.sink events BenchFanned
depth bench.events >/dev/null || die "bench.events was not declared"
node "$TOOL" ctl -q list_queues name type leader members >"$WORK/queues.txt" 2>&1 || true
say "  queues: $(tr '\n\t' '; ' <"$WORK/queues.txt")"

# -- scale-out ---------------------------------------------------------------
say "scale-out: $N events, 1 ms of CPU each, quorum queue; $rounds round(s)$( ((quick)) && echo ", quick mode")"
for ((r = 1; r <= rounds; r++)); do
    say "round $r of $rounds"
    for side in $(order "$r" one_w1 two_w1); do
        purge bench.events
        fill "$N"
        sleep "$settle"
        case $side in
        one_w1) measure one_w1 "$r" -- "$BUSHOST" -c "$CONF" ;;
        two_w1) measure two_w1 "$r" -- "$BUSHOST" -c "$CONF" --and "$BUSHOST" -c "$CONF" ;;
        esac
        expect_depth bench.events 0
    done
done
ratios=
for ((r = 1; r <= rounds; r++)); do
    ratios+=$(awk -v a="${RATE[two_w1-$r]}" -v b="${RATE[one_w1-$r]}" 'BEGIN { printf " %.2f", a / b }')
done
say "  2 hosts / 1 host, per round:$ratios"

# -- node failure ------------------------------------------------------------
# progress FILE: "<distinct> <total>" as the tally last wrote it.
progress_of() { cat "$WORK/progress" 2>/dev/null || echo "0 0"; }

failed=0
for ((r = 1; r <= frounds; r++)); do
    victim=${PORTS[$(((r - 1) % 3))]}
    TOOL=${PORTS[$((r % 3))]}
    say "node failure, round $r of $frounds: 2 hosts on node $victim, $N events; the tally on node $TOOL"
    FCONF=$(host_conf "fail-$r" "$victim" "fanout = 1")
    purge bench.events bench.sink
    fill "$N"
    sleep "$settle"
    rm -f "$WORK/progress"
    "$B/bench_cluster" "$(url_of "$TOOL")" count bench.sink "$N" "$WORK/progress" 3000 \
        >"$WORK/fail-$r.tally" 2>"$WORK/fail-$r.tally.log" &
    tally=$!
    pids=("$tally")
    flog=$WORK/fail-$r.log
    "$B/bench_launch" --target 0 --timeout 900 -- "$BUSHOST" -c "$FCONF" --and "$BUSHOST" -c "$FCONF" \
        >"$WORK/fail-$r.out" 2>"$flog" &
    launch=$!
    pids+=("$launch")
    t0=$SECONDS
    # Stop the hosts' node when a third is handled.
    while :; do
        read -r done_n _ < <(progress_of)
        ((done_n * 3 >= N)) && { stop_at=$done_n; break; }
        kill -0 "$launch" 2>/dev/null || die "the hosts exited before the node was stopped; see $flog"
        ((SECONDS - t0 < 120)) || die "a third of the events was not handled within 120 s; see $flog"
        sleep 0.05
    done
    queued=$(depth bench.events)
    leader=$(node "$TOOL" ctl -q list_queues name leader 2>/dev/null | awk '$1 == "bench.events" { print $2 }')
    say "  stopping node $victim (the hosts'; bench.events' leader: ${leader:-?}) after $stop_at handled, $queued still queued"
    t1=$SECONDS
    BH_FAULT_PORTS=$victim "$FIXTURE" stop >>"$WORK/cluster.log" 2>&1 || die "could not stop node $victim; see $WORK/cluster.log"
    say "  node $victim stopped in $((SECONDS - t1)) s"
    # Wait until every event was handled, or nothing moves for 60 s.
    last=-1
    moved=$SECONDS
    while :; do
        read -r done_n _ < <(progress_of)
        ((done_n >= N)) && break
        if ((done_n != last)); then last=$done_n moved=$SECONDS; fi
        ((SECONDS - moved < 60)) || { say "  no progress for 60 s at $done_n of $N"; break; }
        kill -0 "$launch" 2>/dev/null || { say "  the hosts exited at $done_n of $N"; break; }
        sleep 0.1
    done
    wall=$((SECONDS - t0))
    # Stop the hosts gracefully, then let the tally drain what they
    # published on the way out. One SIGTERM to one of bench_launch's
    # children: when it exits, bench_launch sends the other one its own (a
    # second SIGTERM would make a host exit at once).
    read -r pid _ < <(ps -o pid= --ppid "$launch" 2>/dev/null)
    [[ -z ${pid:-} ]] || kill -TERM "$pid" 2>/dev/null || true
    wait "$launch" || { sed 's/^/  /' "$flog" | tail -n 20 >&2; die "a host did not stop cleanly; see $flog"; }
    kill -TERM "$tally"
    wait "$tally" || die "the tally failed; see $WORK/fail-$r.tally.log"
    pids=()
    tally_line=$(<"$WORK/fail-$r.tally")
    runs=$(sed -n 's/.*done=\([0-9]*\).*/\1/p' "$WORK/fail-$r.out")
    left=$(depth bench.events)
    handled=$(sed -n 's/.*handled=\([0-9]*\).*/\1/p' <<<"$tally_line")
    dup=$(sed -n 's/.*duplicated=\([0-9]*\).*/\1/p' <<<"$tally_line")
    lost=$((N - handled - left))
    reconnects=$(grep -c "reconnected to" "$flog" || true)
    bad_reconnects=$(grep "reconnected to" "$flog" | grep -c "127.0.0.1:$victim/" || true)
    echo "clusterfail two_w1 $r handled=$handled expected=$N lost=$lost left=$left duplicated=$dup runs=${runs:-0} stopped=$victim leader=${leader:-unknown} at=$stop_at reconnects=$reconnects wall_s=$wall" >>"$results"
    verdict=ok
    if ((lost > 0 || left > 0 || handled < N)); then verdict=FAILED failed=1; fi
    if ((reconnects < 2 || bad_reconnects > 0)); then
        say "  the hosts did not both fail over to another node ($reconnects reconnect line(s), $bad_reconnects to node $victim); see $flog"
        verdict=FAILED failed=1
    fi
    say "  node failure round $r: $verdict: $handled of $N handled, $lost lost, $left left in the queue, $dup duplicated (handler runs: ${runs:-?}), $reconnects host reconnect(s), ${wall} s"
    if ((r < frounds)); then
        t1=$SECONDS
        node "$victim" start >/dev/null 2>>"$WORK/cluster.log" || die "could not restart node $victim; see $WORK/cluster.log"
        node "$victim" ctl -q await_startup --timeout 60 >/dev/null
        say "  node $victim started again in $((SECONDS - t1)) s"
    fi
done

say "done in $((SECONDS - start)) s; results appended to $results"
((failed == 0)) || die "the node-failure run lost or left messages (see above)"
