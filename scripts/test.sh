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
# on), runs ctest and exits with its status. The integration tests start and
# stop their own private broker through a ctest fixture (scripts/broker.sh on
# port BH_ITEST_PORT, a CMake cache variable, default 5791).
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

# The integration tests start and stop their own private broker (a ctest
# fixture on port BH_ITEST_PORT, default 5791), so nothing is started here.
echo "test.sh: build in $BUILD_DIR" >&2

setsid ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 "${ctest_args[@]}" &
ctest_pid=$!
trap 'kill -TERM -- "-$ctest_pid" 2>/dev/null; exit 130' INT
trap 'kill -TERM -- "-$ctest_pid" 2>/dev/null; exit 143' TERM
status=0
wait "$ctest_pid" || status=$?
# The fault tests' counts (ctest keeps passing tests' output in its log only).
log=$BUILD_DIR/Testing/Temporary/LastTest.log
if grep -q '^FAULT ' "$log" 2>/dev/null; then
    echo "test.sh: fault test counts:"
    grep '^FAULT ' "$log"
fi
exit "$status"
