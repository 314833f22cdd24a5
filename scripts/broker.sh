#!/usr/bin/env bash
# broker.sh -- a private, loopback-only RabbitMQ node for the demo and tests.
#
#   scripts/broker.sh start | stop | status | url | env | reset | ctl ARGS...
#
#   BH_BROKER_PORT     AMQP port (default 5790); Erlang distribution uses port+20000
#   BH_BROKER_NAME     node name without host (default bushost-<port>)
#   BH_BROKER_DIR      state folder (default <repo>/build/broker); the node keeps
#                      its files in <dir>/<name>/, all nodes under one folder
#                      share its Erlang cookie (<dir>/.erlang.cookie), so they
#                      can be clustered
#   BH_BROKER_TIMEOUT  seconds to wait for startup / shutdown (default 60)
#   BH_BROKER_CONSUMER_TIMEOUT
#                      ms a delivery may stay unacked before the broker closes
#                      its channel (consumer_timeout; default: the broker's, 30
#                      min). When set, the channels also check it every second
#                      (channel_tick_interval, 60 s by default, in
#                      advanced.config), so a test sees it on time
#   BH_BROKER_TLS_PORT AMQPS port (default: none, no TLS listener); needs
#   BH_BROKER_TLS_DIR  a folder holding ca.pem, server.pem and server.key (as
#                      scripts/tls-certs.sh makes them). The listener asks for
#                      a client certificate (verify_peer) without requiring one,
#                      and the EXTERNAL mechanism (rabbitmq_auth_mechanism_ssl)
#                      logs in as the certificate's CN, besides PLAIN and AMQPLAIN
#
# Runs /usr/lib/rabbitmq/bin/rabbitmq-server directly (Debian's wrapper in
# /usr/sbin insists on the rabbitmq user and system folders) with every path
# pointed into the state folder, so it never touches a system node.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RMQ_BIN=/usr/lib/rabbitmq/bin

PORT=${BH_BROKER_PORT:-5790}
if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1024 || PORT > 45535)); then
    # The distribution port (port+20000) must stay a valid port too.
    echo "broker.sh: BH_BROKER_PORT must be a number in 1024..45535, got '$PORT'" >&2
    exit 2
fi
DIST_PORT=$((PORT + 20000))
NAME=${BH_BROKER_NAME:-bushost-$PORT}
NODE=$NAME@localhost
BASE=$(realpath -m "${BH_BROKER_DIR:-$ROOT/build/broker}")
TIMEOUT=${BH_BROKER_TIMEOUT:-60}
CONSUMER_TIMEOUT=${BH_BROKER_CONSUMER_TIMEOUT:-}
if [[ -n $CONSUMER_TIMEOUT ]] && ! [[ $CONSUMER_TIMEOUT =~ ^[0-9]+$ ]]; then
    echo "broker.sh: BH_BROKER_CONSUMER_TIMEOUT must be a number of ms, got '$CONSUMER_TIMEOUT'" >&2
    exit 2
fi
URL=amqp://guest:guest@127.0.0.1:$PORT/
TLS_PORT=${BH_BROKER_TLS_PORT:-}
TLS_DIR=${BH_BROKER_TLS_DIR:-}
if [[ -n $TLS_PORT ]]; then
    if ! [[ $TLS_PORT =~ ^[0-9]+$ ]] || ((TLS_PORT < 1024 || TLS_PORT > 65535)); then
        echo "broker.sh: BH_BROKER_TLS_PORT must be a number in 1024..65535, got '$TLS_PORT'" >&2
        exit 2
    fi
    [[ -n $TLS_DIR ]] || { echo "broker.sh: BH_BROKER_TLS_PORT needs BH_BROKER_TLS_DIR (scripts/tls-certs.sh DIR)" >&2; exit 2; }
    TLS_DIR=$(realpath -m "$TLS_DIR")
    for f in ca.pem server.pem server.key; do
        [[ -r $TLS_DIR/$f ]] || { echo "broker.sh: BH_BROKER_TLS_DIR: cannot read $TLS_DIR/$f (scripts/tls-certs.sh makes it)" >&2; exit 2; }
    done
fi

die() { echo "broker.sh: $*" >&2; exit 1; }

NODE_DIR=$BASE/$NAME

# The environment the server and rabbitmqctl run with (env -i): nothing is
# inherited but this, so a stray ERL_LIBS, ERL_FLAGS or LD_PRELOAD of the
# caller cannot reach the broker. HOME holds the Erlang cookie, so
# rabbitmqctl needs the node's HOME. The distribution listeners of the node
# and of the CLI are kept on loopback too.
LOOPBACK='-kernel inet_dist_use_interface {127,0,0,1}'
RMQ_ENV=(
    PATH=/usr/sbin:/usr/bin:/sbin:/bin
    LANG=C.UTF-8
    HOME="$BASE"
    RABBITMQ_NODENAME="$NODE"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$PORT"
    RABBITMQ_DIST_PORT="$DIST_PORT"
    RABBITMQ_MNESIA_BASE="$NODE_DIR/mnesia"
    RABBITMQ_LOG_BASE="$NODE_DIR/log"
    RABBITMQ_ENABLED_PLUGINS_FILE="$NODE_DIR/enabled_plugins"
    RABBITMQ_CONFIG_FILE="$NODE_DIR/rabbitmq.conf"
    RABBITMQ_ADVANCED_CONFIG_FILE="$NODE_DIR/advanced.config"
    RABBITMQ_CONF_ENV_FILE="$NODE_DIR/rabbitmq-env.conf"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="$LOOPBACK"
    RABBITMQ_CTL_ERL_ARGS="$LOOPBACK"
    ERL_CRASH_DUMP="$NODE_DIR/erl_crash.dump"
)

ctl() { env -i "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmqctl" -n "$NODE" "$@"; }

# Bounded rabbitmqctl call for our own checks, output discarded.
ctl_quiet() {
    local secs=$1
    shift
    env -i "${RMQ_ENV[@]}" timeout "$secs" "$RMQ_BIN/rabbitmqctl" -q -n "$NODE" "$@" >/dev/null 2>&1
}

PIDFILE=$NODE_DIR/broker.pid

# A zombie still answers kill -0, so read the state from /proc.
pid_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Print the stored PID if that process is alive and is the server we started
# (guards against a recycled PID: its environment must name our node).
our_pid() {
    local pid
    [[ -f $PIDFILE ]] || return 1
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    if [[ -r /proc/$pid/environ ]]; then
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "RABBITMQ_NODENAME=$NODE" || return 1
    fi
    echo "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

who_listens() {
    command -v ss >/dev/null 2>&1 || return 0
    ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/^/  /' >&2 || true
}

# Serialise start/stop/reset of one node (two test runs at once, say).
# The fd is closed for the server so it does not hold the lock forever.
take_lock() {
    mkdir -p "$NODE_DIR"
    exec 9>"$NODE_DIR/lock"
    flock -w "$((TIMEOUT * 2))" 9 || die "timed out waiting for the lock on $NODE_DIR"
}

write_files() {
    mkdir -p "$NODE_DIR/mnesia" "$NODE_DIR/log"
    printf '[].\n' >"$NODE_DIR/enabled_plugins"
    : >"$NODE_DIR/rabbitmq-env.conf"
    cat >"$NODE_DIR/rabbitmq.conf" <<EOF
# Written by scripts/broker.sh; rewritten on every start.
listeners.tcp.default = 127.0.0.1:$PORT
loopback_users = none
EOF
    if [[ -n $TLS_PORT ]]; then
        printf '[rabbitmq_auth_mechanism_ssl].\n' >"$NODE_DIR/enabled_plugins"
        cat >>"$NODE_DIR/rabbitmq.conf" <<EOF
listeners.ssl.default = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
EOF
    fi
    if [[ -n $CONSUMER_TIMEOUT ]]; then
        echo "consumer_timeout = $CONSUMER_TIMEOUT" >>"$NODE_DIR/rabbitmq.conf"
        printf '[{rabbit, [{channel_tick_interval, 1000}]}].\n' >"$NODE_DIR/advanced.config"
    else
        rm -f "$NODE_DIR/advanced.config"
    fi
    # One cookie per state folder, made before any node so that two nodes
    # started at once agree on it (ln fails if another start won the race).
    if [[ ! -f $BASE/.erlang.cookie ]]; then
        local tmp
        tmp=$(mktemp "$BASE/.cookie.XXXXXX")
        LC_ALL=C tr -dc '[:upper:]' </dev/urandom | head -c 20 >"$tmp" || true
        chmod 400 "$tmp"
        ln "$tmp" "$BASE/.erlang.cookie" 2>/dev/null || true
        rm -f "$tmp"
    fi
}

# Kill what we started: the stored PID, then its whole process group (the
# server was started with setsid, so the group is ours alone).
kill_ours() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    echo "broker.sh: $NODE ignored SIGTERM, sending SIGKILL to its process group $pid" >&2
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || return 0
        sleep 0.1
    done
    return 1
}

wait_started() {
    local pid=$1 deadline=$((SECONDS + TIMEOUT)) left
    # await_startup fails at once while the node is not yet registered with
    # epmd, so retry until the deadline.
    while :; do
        pid_alive "$pid" || return 1
        left=$((deadline - SECONDS))
        ((left > 0)) || return 1
        if ctl_quiet "$((left + 5))" await_startup --timeout "$left"; then
            return 0
        fi
        sleep 1
    done
}

cmd_start() {
    local pid
    take_lock
    if pid=$(our_pid); then
        if ctl_quiet 15 ping || wait_started "$pid"; then
            echo "broker.sh: $NODE already running (pid $pid)" >&2
            echo "$URL"
            return 0
        fi
        die "$NODE (pid $pid) is running but does not answer; see $NODE_DIR/server.out or run: $0 stop"
    fi
    if port_busy "$PORT" || port_busy "$DIST_PORT" || { [[ -n $TLS_PORT ]] && port_busy "$TLS_PORT"; }; then
        echo "broker.sh: port $PORT, $DIST_PORT${TLS_PORT:+ or $TLS_PORT} is already in use by a process this script did not start:" >&2
        who_listens "$PORT"
        who_listens "$DIST_PORT"
        [[ -z $TLS_PORT ]] || who_listens "$TLS_PORT"
        die "choose another port with BH_BROKER_PORT=<port>"
    fi
    write_files
    rm -f "$PIDFILE"
    echo "broker.sh: starting $NODE on 127.0.0.1:$PORT${TLS_PORT:+ (TLS on $TLS_PORT)} (state in $NODE_DIR)" >&2
    (
        cd "$NODE_DIR"
        exec 9>&-
        # env, setsid and nohup all exec, so $! is the server script itself.
        env -i "${RMQ_ENV[@]}" setsid nohup "$RMQ_BIN/rabbitmq-server" >"$NODE_DIR/server.out" 2>&1 </dev/null &
        echo $! >"$PIDFILE"
    )
    pid=$(<"$PIDFILE")
    if ! wait_started "$pid"; then
        echo "broker.sh: $NODE did not start within ${TIMEOUT}s; last lines of $NODE_DIR/server.out:" >&2
        tail -n 20 "$NODE_DIR/server.out" | sed 's/^/  /' >&2 || true
        pid_alive "$pid" && kill_ours "$pid"
        rm -f "$PIDFILE"
        exit 1
    fi
    echo "broker.sh: $NODE is up (pid $pid)" >&2
    echo "$URL"
}

cmd_stop() {
    local pid i
    take_lock
    if ! pid=$(our_pid); then
        rm -f "$PIDFILE"
        echo "broker.sh: $NODE is not running" >&2
        return 0
    fi
    echo "broker.sh: stopping $NODE (pid $pid)" >&2
    if ctl_quiet "$TIMEOUT" stop; then
        for ((i = 0; i < TIMEOUT * 10; i++)); do
            pid_alive "$pid" || break
            sleep 0.1
        done
    else
        echo "broker.sh: rabbitmqctl stop failed, signalling pid $pid" >&2
    fi
    if pid_alive "$pid"; then
        kill_ours "$pid" || die "could not stop pid $pid"
    fi
    rm -f "$PIDFILE"
    echo "broker.sh: $NODE stopped" >&2
}

cmd_status() {
    local pid
    if pid=$(our_pid) && ctl_quiet 15 ping; then
        echo "$NODE running (pid $pid) at $URL"
        return 0
    fi
    echo "$NODE not running"
    return 1
}

# Wipes the node's queues, exchanges, users and policies (not its cookie).
cmd_reset() {
    take_lock
    if our_pid >/dev/null; then
        die "$NODE is running; stop it first"
    fi
    rm -rf "${NODE_DIR:?}/mnesia"
    echo "broker.sh: $NODE state wiped" >&2
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) echo "$URL" ;;
env)
    # For eval in other scripts: eval "$(scripts/broker.sh env)"
    printf 'export BUSHOST_URL=%q BH_BROKER_PORT=%q BH_BROKER_NAME=%q BH_BROKER_DIR=%q\n' \
        "$URL" "$PORT" "$NAME" "$BASE"
    ;;
reset) cmd_reset ;;
ctl)
    shift
    ctl "$@"
    ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
