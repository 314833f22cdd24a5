#!/usr/bin/env bash
# fuzz.sh -- build the libFuzzer harnesses of tests/fuzz and run each for a while.
#
#   scripts/fuzz.sh [--seconds N] [--jobs J] [harness...]
#
#   --seconds N   run each harness for N seconds (default 60)
#   --jobs J      harnesses run at the same time (default 2)
#   harness...    only these (default: every bh_fuzzer of tests/fuzz/CMakeLists.txt)
#
# Builds with clang, ASan+UBSan and -fsanitize=fuzzer in its own folder
# (FUZZ_BUILD_DIR, default build-fuzz). Each harness starts from its seed
# corpus (tests/fuzz/corpus/<name>) and regression inputs (tests/fuzz/regress/<name>);
# what it finds goes to <build>/fuzz/corpus/<name>, never into the tree. A
# crash, leak, sanitizer report or timeout fails the run; its input is saved
# as <build>/fuzz/artifacts/<name>-crash-... (copy it into regress/<name>/ with
# the fix). Prints one line per harness: `FUZZ <name>: ok execs=N ...`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

seconds=60
jobs=2
only=()
while (($#)); do
    case $1 in
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --jobs=*) jobs=${1#*=}; shift ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) only+=("$1"); shift ;;
    esac
done
[[ $seconds =~ ^[0-9]+$ && $jobs =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --seconds and --jobs take numbers" >&2; exit 2; }

# The packages (clang-14 and libclang-rt-14-dev among them) when missing.
"$ROOT/scripts/setup.sh" --deps-only
CC=${FUZZ_CC:-}
if [[ -z $CC ]]; then
    for c in clang-14 clang; do command -v "$c" >/dev/null 2>&1 && { CC=$c; break; }; done
fi
[[ -n $CC ]] || { echo "fuzz.sh: no clang found (install clang-14 libclang-rt-14-dev)" >&2; exit 1; }

BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER="$CC" -DBH_FUZZ=ON -DBH_SANITIZE=address \
    -DBH_WERROR=ON -DBH_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target bh_fuzzers -j"${BH_JOBS:-2}"

mapfile -t all <"$BUILD/tests/fuzz/fuzzers.txt"
((${#only[@]})) || only=("${all[@]}")
work=$BUILD/fuzz
mkdir -p "$work/corpus" "$work/artifacts" "$work/logs"

# One harness: libFuzzer writes new inputs to the first folder and only reads
# the others. -timeout: an input taking 10 s is a hang, not slowness;
# -max_len keeps mutations small and fast (the regression inputs reach 43 KB).
run_one() {
    local name=$1 log=$work/logs/$1.log
    mkdir -p "$work/corpus/$name"
    ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        "$BUILD/tests/fuzz/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=8192 -print_final_stats=1 -artifact_prefix="$work/artifacts/$name-" \
        "$work/corpus/$name" "$ROOT/tests/fuzz/corpus/$name" \
        $([[ -d $ROOT/tests/fuzz/regress/$name ]] && echo "$ROOT/tests/fuzz/regress/$name") \
        >"$log" 2>&1
}

declare -A pid_of=()
status=0
report() {
    local name=$1 rc=$2 log=$work/logs/$1.log execs cov
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    if ((rc == 0)); then
        echo "FUZZ $name: ok execs=${execs:-?} cov=${cov:-?} seconds=$seconds"
    else
        echo "FUZZ $name: FAILED (exit $rc) execs=${execs:-?}; log $log, inputs in $work/artifacts/"
        grep -E 'ERROR|SUMMARY|check failed|deadly signal' "$log" | head -5 | sed 's/^/  /'
        status=1
    fi
}
for name in "${only[@]}"; do
    [[ -x $BUILD/tests/fuzz/$name ]] || { echo "fuzz.sh: no harness '$name' (have: ${all[*]})" >&2; exit 2; }
    while ((${#pid_of[@]} >= jobs)); do
        for n in "${!pid_of[@]}"; do
            if ! kill -0 "${pid_of[$n]}" 2>/dev/null; then
                rc=0; wait "${pid_of[$n]}" || rc=$?
                report "$n" "$rc"; unset "pid_of[$n]"
            fi
        done
        ((${#pid_of[@]} >= jobs)) && sleep 1
    done
    echo "fuzz.sh: running $name for ${seconds}s" >&2
    run_one "$name" &
    pid_of[$name]=$!
done
for n in "${!pid_of[@]}"; do
    rc=0; wait "${pid_of[$n]}" || rc=$?
    report "$n" "$rc"
done
exit "$status"
