# lib.sh -- helpers for the buscli tests (sourced by test_*.sh).
#
# Environment (tests/buscli/CMakeLists.txt): BUSCLI, WIRETOOL, BUSHOST,
# ECHO_SO, BUSHOST_URL (the private broker), BUSCLI_RABBITMQCTL,
# BUSCLI_TEST_TMP. Each test gets a fresh folder $T; background processes
# started with bg_start are stopped (by their pid) when the test exits.
set -euo pipefail

for v in BUSCLI WIRETOOL BUSHOST ECHO_SO BUSHOST_URL BUSCLI_TEST_TMP; do
    [[ -n ${!v:-} ]] || { echo "FAIL: $v is not set (run the tests through ctest)" >&2; exit 1; }
done

TEST_NAME=$(basename "$0" .sh)
mkdir -p "$BUSCLI_TEST_TMP"
T=$(mktemp -d "$BUSCLI_TEST_TMP/$TEST_NAME.XXXXXX")
BG_PIDS=()

cleanup() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${BG_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    local f
    for f in "$T"/*.out "$T"/*.err "$T"/*.log; do
        [[ -s $f ]] || continue
        echo "---- $f" >&2
        tail -n 40 "$f" >&2
    done
    exit 1
}

pass() { echo "PASS: $TEST_NAME: $*"; }

# run NAME CMD...: run CMD with stdout in $T/NAME.out and stderr in
# $T/NAME.err; its exit code in RC (never fails the test by itself).
run() {
    local name=$1
    shift
    RC=0
    "$@" >"$T/$name.out" 2>"$T/$name.err" || RC=$?
}

# expect_rc WANT NAME CMD...: run, and fail unless the exit code is WANT.
expect_rc() {
    local want=$1
    shift
    run "$@"
    [[ $RC == "$want" ]] || fail "'${*:2}' exited with $RC, expected $want"
}

# has NAME TEXT: NAME's stdout contains TEXT (fixed string).
has() { grep -qF -- "$2" "$T/$1.out" || fail "$1 stdout lacks '$2'"; }
has_err() { grep -qF -- "$2" "$T/$1.err" || fail "$1 stderr lacks '$2'"; }
lacks() { ! grep -qF -- "$2" "$T/$1.out" || fail "$1 stdout has '$2'"; }
# lines NAME: the number of lines of NAME's stdout.
lines() { wc -l <"$T/$1.out" | tr -d ' '; }

# bg_start NAME CMD...: run CMD in the background, output in $T/NAME.out/.err;
# its pid in BG_PID.
bg_start() {
    local name=$1
    shift
    "$@" >"$T/$name.out" 2>"$T/$name.err" &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

# bg_wait PID SECS: wait for a background process to exit; its exit code in
# RC (124 when it is still running after SECS, and then it is killed).
bg_wait() {
    local pid=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            RC=0
            wait "$pid" || RC=$?
            return 0
        fi
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    RC=124
}

# wait_for SECS CMD...: retry CMD until it succeeds, or fail the test.
wait_for() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    fail "timed out after ${secs}s waiting for: $*"
}

# grep_err NAME TEXT: for wait_for.
grep_err() { grep -qF -- "$2" "$T/$1.err" 2>/dev/null; }
grep_out() { grep -qF -- "$2" "$T/$1.out" 2>/dev/null; }

# count QUEUE: "<messages> <consumers>", or "none".
count() { "$WIRETOOL" count "$1" 2>/dev/null || echo none; }
messages() { local c; c=$(count "$1"); echo "${c%% *}"; }
consumers() { local c; c=$(count "$1"); echo "${c##* }"; }
queue_has() { [[ $(messages "$1") == "$2" ]]; }
has_consumers() { local c; c=$(consumers "$1"); [[ $c != none && $c -ge 1 ]]; }

# start_bushost: bushost with the echo plugin (log_requests on), its output in
# $T/bushost.err; waits until it consumes echo.commands. BUSHOST_HOST_KEYS:
# more lines for its [host] section.
start_bushost() {
    mkdir -p "$T/host/plugins"
    ln -sf "$ECHO_SO" "$T/host/plugins/echo.so"
    cat >"$T/host/service.ini" <<EOF
[broker]
url = $BUSHOST_URL
[host]
plugins_dir = plugins
healthcheck_interval = 0
${BUSHOST_HOST_KEYS:-}
[echo]
workers = 2
log_requests = true
EOF
    bg_start bushost "$BUSHOST" -c "$T/host/service.ini"
    BUSHOST_PID=$BG_PID
    wait_for 30 has_consumers echo.commands
}

# stop_pid PID: SIGTERM and wait.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
