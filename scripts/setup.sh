#!/usr/bin/env bash
# setup.sh -- install what bushost needs (Debian 12) and build it. Idempotent.
#
#   scripts/setup.sh [--deps-only] [extra cmake arguments...]
#
#   BUILD_DIR    build folder, relative to the repo root (default build)
#   BH_WERROR    ON or OFF (default OFF)
#   BH_SANITIZE  '' (default), address (ASan+UBSan) or thread (TSan)
#   CMAKE_ARGS   more cmake arguments, split on spaces
#   BH_JOBS      parallel build jobs (default 2)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PACKAGES=(
    gcc make cmake pkg-config iproute2 procps
    librabbitmq-dev libuv1-dev libinih-dev libcmocka-dev libcbor-dev libjansson-dev libssl-dev openssl
    libcurl4-openssl-dev # [host] otlp_endpoint: spans exported over OTLP/HTTP
    libmicrohttpd-dev # the OTLP integration test's receiver
    libsystemd-dev # sd_notify: READY, STATUS, STOPPING and the watchdog under systemd
    libmicrohttpd-dev # the HTTP endpoint: /metrics, the probes, /status
    libcurl4-openssl-dev # buscli top/status
    curl python3-prometheus-client # the HTTP endpoint's tests, the dashboard check, the bench row
    gnuplot-nox # bench/charts.sh: the benchmark's charts (bench-throughput.png, bench-latency.png)
    rabbitmq-server # only its binaries: scripts/broker.sh runs a private node
    clang-14 libclang-rt-14-dev # scripts/fuzz.sh: clang and its libFuzzer runtime; tests/sdk: clang, clang++
    g++ # tests/sdk: the C++ example plugin
    dpkg-dev systemd man-db # the install tests: dpkg-shlibdeps, systemd-analyze verify, man --warnings
    python3-jsonschema # bushost --describe: its output is checked against the AsyncAPI 3.0 JSON Schema
)
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_MARK='# bushost setup.sh: no service starts during install'

say() { echo "setup.sh: $*" >&2; }
die() { say "$*"; exit 1; }

as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        # shellcheck disable=SC2016 # ${Status} is dpkg-query's, not ours
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

remove_policy_rc() {
    if [[ -f $POLICY_RC ]] && grep -qxF "$POLICY_MARK" "$POLICY_RC"; then
        as_root rm -f "$POLICY_RC"
    fi
}

# Installing rabbitmq-server would start a system node (rabbit@<host> on
# 0.0.0.0:5672) from its postinst. A policy-rc.d answering 101 forbids that;
# an existing policy-rc.d is left as it is.
install_packages() {
    local missing=("$@") system_amqp_before=0
    port_busy 5672 && system_amqp_before=1
    if [[ ! -e $POLICY_RC ]]; then
        as_root sh -c "printf '#!/bin/sh\n%s\nexit 101\n' '$POLICY_MARK' >'$POLICY_RC' && chmod 755 '$POLICY_RC'"
        trap remove_policy_rc EXIT
    fi
    say "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    remove_policy_rc
    trap - EXIT

    # Belt and braces: if this install started the system node anyway (a
    # policy-rc.d of someone else's that allows it), stop and disable it.
    if [[ " ${missing[*]} " == *" rabbitmq-server "* ]] && pgrep -u rabbitmq -x beam.smp >/dev/null 2>&1; then
        say "stopping the system RabbitMQ node the package started (bushost runs its own)"
        if [[ -d /run/systemd/system ]]; then
            as_root systemctl disable --now rabbitmq-server || true
        else
            as_root service rabbitmq-server stop || true
        fi
    fi
    if ((!system_amqp_before)) && port_busy 5672; then
        say "warning: something now listens on 127.0.0.1:5672; it is not used by bushost's scripts"
    fi
}

deps_only=0
if [[ ${1:-} == --deps-only ]]; then
    deps_only=1
    shift
fi

if command -v dpkg-query >/dev/null 2>&1; then
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]})); then
        install_packages "${missing[@]}"
    else
        say "all packages present"
    fi
else
    say "not a Debian system: install these (or equivalents) yourself: ${PACKAGES[*]}"
fi
((deps_only)) && exit 0

BUILD_DIR=${BUILD_DIR:-build}
read -ra extra <<<"${CMAKE_ARGS:-}"
# BH_SANITIZE is always passed so a cached value cannot outlive the request.
cmake -S "$ROOT" -B "$BUILD_DIR" \
    -DBH_WERROR="${BH_WERROR:-OFF}" \
    -DBH_SANITIZE="${BH_SANITIZE:-}" \
    "${extra[@]}" "$@"
cmake --build "$BUILD_DIR" -j"${BH_JOBS:-2}"
