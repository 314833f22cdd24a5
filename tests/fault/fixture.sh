#!/usr/bin/env bash
# fixture.sh -- the private RabbitMQ nodes of the fault tests.
#
#   fixture.sh start | stop                one node (the first of BH_FAULT_PORTS)
#   fixture.sh cluster-start | cluster-stop  every node of BH_FAULT_PORTS, joined
#
#   BH_BROKER_SH          scripts/broker.sh
#   BH_BROKER_DIR         state folder shared by the nodes (and their cookie)
#   BH_FAULT_NAME_PREFIX  node names are <prefix><port>
#   BH_FAULT_PORTS        AMQP ports, space-separated
#   BH_BROKER_TLS_PORT    (start) the node's AMQPS port too, with the
#   BH_BROKER_TLS_DIR     certificates scripts/tls-certs.sh makes there
#
# A fault test may leave its node damaged when it is killed mid-way (frozen
# by SIGSTOP, under a memory alarm): start repairs that before anything else.
set -euo pipefail

: "${BH_BROKER_SH:?}" "${BH_BROKER_DIR:?}" "${BH_FAULT_NAME_PREFIX:?}" "${BH_FAULT_PORTS:?}"
read -r -a PORTS <<<"$BH_FAULT_PORTS"

node() {
    local port=$1
    shift
    BH_BROKER_PORT=$port BH_BROKER_NAME=$BH_FAULT_NAME_PREFIX$port "$BH_BROKER_SH" "$@"
}

# SIGCONT the node's VM (the beam.smp child of the pid broker.sh recorded),
# in case a killed test left it frozen.
thaw() {
    local pidfile=$BH_BROKER_DIR/$BH_FAULT_NAME_PREFIX$1/broker.pid pid child
    [[ -f $pidfile ]] || return 0
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        [[ $(ps -o comm= -p "$child" 2>/dev/null) == beam.smp ]] && kill -CONT "$child" 2>/dev/null
    done
    return 0
}

case ${1:-} in
start)
    p=${PORTS[0]}
    thaw "$p"
    # A fresh node unless one is left running (reset fails then, and start
    # reuses it).
    node "$p" reset >/dev/null 2>&1 || true
    if [[ -n ${BH_BROKER_TLS_PORT:-} ]]; then
        "$(dirname "$BH_BROKER_SH")/tls-certs.sh" "${BH_BROKER_TLS_DIR:?}"
    fi
    node "$p" start
    node "$p" ctl -q set_vm_memory_high_watermark 0.4 >/dev/null
    ;;
stop)
    thaw "${PORTS[0]}"
    node "${PORTS[0]}" stop
    ;;
cluster-start)
    # Always a fresh cluster: a test stops one of its nodes.
    for p in "${PORTS[@]}"; do
        thaw "$p"
        node "$p" stop
        node "$p" reset
    done
    pids=()
    for p in "${PORTS[@]}"; do
        node "$p" start >/dev/null &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid"
    done
    seed=$BH_FAULT_NAME_PREFIX${PORTS[0]}@localhost
    # join_cluster prints harmless feature-flag warnings: show them only
    # when a step fails.
    for p in "${PORTS[@]:1}"; do
        for step in stop_app reset "join_cluster $seed" start_app; do
            # shellcheck disable=SC2086 # step holds the command and its argument
            if ! out=$(node "$p" ctl -q $step 2>&1); then
                echo "fixture.sh: rabbitmqctl $step on port $p failed:" >&2
                echo "$out" >&2
                exit 1
            fi
        done
    done
    for p in "${PORTS[@]}"; do
        node "$p" ctl -q await_startup --timeout 60
    done
    running=$(node "${PORTS[0]}" ctl -q cluster_status --formatter json |
        grep -o '"running_nodes":\[[^]]*\]' | grep -o '@localhost' | wc -l)
    if ((running != ${#PORTS[@]})); then
        echo "fixture.sh: the cluster has $running running node(s), expected ${#PORTS[@]}" >&2
        node "${PORTS[0]}" ctl cluster_status >&2 || true
        exit 1
    fi
    echo "fixture.sh: cluster of ${#PORTS[@]} nodes up on ports ${PORTS[*]}" >&2
    ;;
cluster-stop)
    for p in "${PORTS[@]}"; do
        thaw "$p"
        node "$p" stop
    done
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
