#!/usr/bin/env bash
# test.sh -- build bushost and run the whole test suite against a private broker.
#
#   scripts/test.sh [--sanitize address|thread] [ctest arguments...]
#
#   e.g. scripts/test.sh -L unit            only the unit tests
#        scripts/test.sh -R config          tests whose name matches
#        scripts/test.sh --sanitize thread  TSan build in build-tsan
#
# Builds with scripts/setup.sh (BUILD_DIR, BH_WERROR, CMAKE_ARGS are passed
# on), starts scripts/broker.sh unless that node already runs (BH_BROKER_*
# choose it), exports BUSHOST_URL and BH_BROKER_* for the tests, runs ctest
# and exits with its status. A broker this script started is stopped at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

sanitize=
ctest_args=()
while (($#)); do
    case $1 in
    --sanitize)
        (($# >= 2)) || { echo "test.sh: --sanitize needs address or thread" >&2; exit 2; }
        sanitize=$2
        shift 2
        ;;
    --sanitize=*)
        sanitize=${1#*=}
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        ctest_args+=("$1")
        shift
        ;;
    esac
done

# Sanitizer options come first so that values already in the environment
# (later in the list) win.
case $sanitize in
'') export BUILD_DIR=${BUILD_DIR:-build} ;;
address)
    export BUILD_DIR=${BUILD_DIR:-build-asan}
    export ASAN_OPTIONS="halt_on_error=1:print_stacktrace=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
    ;;
thread)
    export BUILD_DIR=${BUILD_DIR:-build-tsan}
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
    ;;
*)
    echo "test.sh: --sanitize takes address or thread, not '$sanitize'" >&2
    exit 2
    ;;
esac
export BH_SANITIZE=$sanitize

"$ROOT/scripts/setup.sh"

BROKER=$ROOT/scripts/broker.sh
started_broker=0
# shellcheck disable=SC2317 # called from the EXIT trap
stop_broker() {
    if ((started_broker)); then
        "$BROKER" stop || true
    fi
}
trap stop_broker EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if "$BROKER" status >/dev/null 2>&1; then
    echo "test.sh: using the broker that is already running" >&2
else
    # A fresh node: no queues or messages left over from an earlier run.
    "$BROKER" reset
    started_broker=1
    "$BROKER" start >/dev/null
fi
# BUSHOST_URL for the tests, BH_BROKER_* so that tests calling
# scripts/broker.sh ctl reach the same node.
eval "$("$BROKER" env)"
echo "test.sh: broker at $BUSHOST_URL, build in $BUILD_DIR" >&2

# ctest runs in its own process group, in the background, so that a signal
# to this script is handled at once and takes the tests down with ctest
# (ctest alone dies on SIGTERM and leaves its tests running).
setsid ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 "${ctest_args[@]}" &
ctest_pid=$!
trap 'kill -TERM -- "-$ctest_pid" 2>/dev/null; exit 130' INT
trap 'kill -TERM -- "-$ctest_pid" 2>/dev/null; exit 143' TERM
status=0
wait "$ctest_pid" || status=$?
exit "$status"
