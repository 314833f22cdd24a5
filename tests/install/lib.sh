# shellcheck shell=bash
# lib.sh -- helpers of the install tests (sourced by test_*.sh).
#
# Environment (tests/install/CMakeLists.txt): BH_BUILD_DIR, BH_SOURCE_DIR,
# BH_INSTALL_TMP, BUSHOST_URL (the private broker). Each test gets a fresh
# folder $T; background processes started with bg_start are stopped (by
# their pid) when the test exits.
set -euo pipefail

for v in BH_BUILD_DIR BH_SOURCE_DIR BH_INSTALL_TMP BUSHOST_URL; do
    [[ -n ${!v:-} ]] || { echo "FAIL: $v is not set (run the tests through ctest)" >&2; exit 1; }
done

TEST_NAME=$(basename "$0" .sh)
mkdir -p "$BH_INSTALL_TMP"
T=$(mktemp -d "$BH_INSTALL_TMP/$TEST_NAME.XXXXXX")
BG_PIDS=()

cleanup() {
    local pid
    for pid in "${BG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${BG_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

fail() {
    echo "FAIL: $TEST_NAME: $*" >&2
    local f
    for f in "$T"/*.out "$T"/*.err; do
        [[ -s $f ]] || continue
        echo "---- $f" >&2
        tail -n 30 "$f" >&2
    done
    exit 1
}
pass() {
    echo "PASS: $TEST_NAME: $*"
    rm -rf "$T" # kept when a test fails, for a look
}
skip() { echo "SKIP: $TEST_NAME: $*"; exit 77; }

# run NAME CMD...: CMD with stdout in $T/NAME.out and stderr in $T/NAME.err;
# fails the test unless it exits 0.
run() {
    local name=$1
    shift
    "$@" >"$T/$name.out" 2>"$T/$name.err" || fail "'$*' exited with $?"
}
has() { grep -qF -- "$2" "$T/$1.out" || fail "$1 stdout lacks '$2'"; }
lacks() { ! grep -qF -- "$2" "$T/$1.out" || fail "$1 stdout has '$2'"; }

bg_start() {
    local name=$1
    shift
    "$@" >"$T/$name.out" 2>"$T/$name.err" &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}
