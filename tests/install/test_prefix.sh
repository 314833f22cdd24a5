#!/usr/bin/env bash
# prefix: `cmake --install --prefix P` installs what docs/deployment.md
# lists; the example plugin builds out of tree, both ways the plugin guide
# documents, against P only; the installed bushost runs each build against
# the private broker and the installed buscli gets its answer; the man
# pages, the example config and the unit hold up.
source "$(dirname "$0")/lib.sh"
GUIDE=$BH_SOURCE_DIR/docs/plugin-guide.md

P=$T/prefix
run install cmake --install "$BH_BUILD_DIR" --prefix "$P"
for f in bin/bushost bin/buscli include/bushost/bushost.h lib/pkgconfig/bushost.pc \
    include/bushost/bushost_test.h lib/libbushost-testkit.a lib/pkgconfig/bushost-testkit.pc \
    share/doc/bushost/examples/plugin/test_greeter.c \
    lib/cmake/bushost/bushostConfig.cmake lib/cmake/bushost/bushostConfigVersion.cmake \
    lib/cmake/bushost/BushostPlugin.cmake share/man/man8/bushost.8.gz \
    share/man/man1/buscli.1.gz share/man/man5/bushost.ini.5.gz etc/bushost/example.ini \
    lib/systemd/system/bushost@.service lib/bushost/examples/echo.so \
    share/doc/bushost/examples/plugin/greeter.c share/doc/bushost/examples/plugin/CMakeLists.txt; do
    [[ -f $P/$f ]] || fail "not installed: $f"
done
[[ -d $P/lib/bushost/plugins ]] || fail "not installed: the folder lib/bushost/plugins"
cmp -s "$BH_SOURCE_DIR/sdk/bushost.h" "$P/include/bushost/bushost.h" || fail "installed header differs"
cmp -s "$BH_SOURCE_DIR/sdk/bushost_test.h" "$P/include/bushost/bushost_test.h" ||
    fail "installed test kit header differs"

# The guide shows examples/plugin as it is: its greeter.c and CMakeLists.txt.
EX=$P/share/doc/bushost/examples/plugin
# code_block LANG AFTER: the first ```LANG block after the line AFTER.
code_block() {
    awk -v lang="$1" -v after="$2" '
        index($0, after) == 1 { seen = 1 }
        seen && !inb && $0 == "```" lang { inb = 1; next }
        inb && $0 == "```" { exit }
        inb { print }' "$GUIDE"
}
diff <(code_block c "## A complete example") "$EX/greeter.c" >"$T/guide_c.out" ||
    fail "docs/plugin-guide.md's greeter.c differs from examples/plugin/greeter.c"
diff <(code_block cmake "With CMake, this") "$EX/CMakeLists.txt" >"$T/guide_cmake.out" ||
    fail "docs/plugin-guide.md's CMake project differs from examples/plugin/CMakeLists.txt"
PC_LINE=$(code_block sh "With pkg-config and a plain compiler")
# shellcheck disable=SC2016 # the text of the guide, not an expansion
[[ $PC_LINE == *'$(pkg-config --cflags bushost)'* ]] || fail "no pkg-config line in the guide"

# Out of tree, against P only: a copy of the installed example, nothing of
# the source tree on any search path.
unset CPATH C_INCLUDE_PATH PKG_CONFIG_PATH
export PKG_CONFIG_LIBDIR=$P/lib/pkgconfig
run cflags pkg-config --cflags bushost
[[ $(sed 's/ *$//' "$T/cflags.out") == "-I$P/include/bushost" ]] || fail "pkg-config --cflags: $(cat "$T/cflags.out")"
run pluginsdir pkg-config --variable=pluginsdir bushost
has pluginsdir "$P/lib/bushost/plugins"

mkdir -p "$T/pc" "$T/cm"
cp "$EX/greeter.c" "$T/pc/"
cp "$EX/greeter.c" "$EX/test_greeter.c" "$EX/CMakeLists.txt" "$T/cm/"
cp "$EX/test_greeter.c" "$T/pc/"
(cd "$T/pc" && bash -euc "$PC_LINE -Werror") >"$T/pc_build.out" 2>&1 || fail "the guide's pkg-config line failed"
# Which header it compiled against: the installed one, never the tree's.
(cd "$T/pc" && cc -M $(pkg-config --cflags bushost) greeter.c) >"$T/deps.out"
has deps "$P/include/bushost/bushost.h"
lacks deps "$BH_SOURCE_DIR/sdk"
lacks deps "$BH_SOURCE_DIR/host"

# The test kit is a static library built as the tree was: under a sanitizer
# a test that links it links that sanitizer's runtime too.
case ${BH_SANITIZE:-} in
address) SAN=-fsanitize=address,undefined ;;
thread) SAN=-fsanitize=thread ;;
*) SAN= ;;
esac
run cm_configure cmake -S "$T/cm" -B "$T/cm/build" -DCMAKE_PREFIX_PATH="$P" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_C_FLAGS=-Werror \
    -DCMAKE_EXE_LINKER_FLAGS="$SAN"
grep -qx "bushost_DIR:PATH=$P/lib/cmake/bushost" "$T/cm/build/CMakeCache.txt" ||
    fail "find_package(bushost) found $(grep '^bushost_DIR' "$T/cm/build/CMakeCache.txt")"
run cm_build cmake --build "$T/cm/build"
# The plugin's unit test, on the installed test kit (bushost::testkit).
run cm_test ctest --test-dir "$T/cm/build" --output-on-failure
has cm_test "100% tests passed, 0 tests failed out of 1"
# The same with pkg-config, as docs/testing-plugins.md writes it.
TEST_LINE=$(awk '/^## Building a test/ { seen = 1 } seen && /^cc .*bushost-testkit/ { print; exit }' \
    "$BH_SOURCE_DIR/docs/testing-plugins.md")
[[ -n $TEST_LINE ]] || fail "no pkg-config line for the test kit in docs/testing-plugins.md"
# libcbor and jansson come from the system's pkg-config folders; bushost's
# from P alone (the tree has no .pc file on any of them).
(cd "$T/pc" && env -u PKG_CONFIG_LIBDIR PKG_CONFIG_PATH="$P/lib/pkgconfig" \
    bash -euc "$TEST_LINE -Werror $SAN" && ./test_greeter) >"$T/pc_test.out" 2>&1 ||
    fail "the test kit's pkg-config line, or the test it built, failed: $(cat "$T/pc_test.out")"
has pc_test "test_greeter: ok"
cp "$T/cm/build/compile_commands.json" "$T/cm_commands.out"
has cm_commands "-isystem $P/include/bushost"
lacks cm_commands "$BH_SOURCE_DIR/sdk"
lacks cm_commands "$BH_SOURCE_DIR/host"

# Both export the descriptor and nothing else.
for so in "$T/pc/greeter.so" "$T/cm/build/greeter.so"; do
    exported=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^_' | tr '\n' ' ')
    [[ $exported == "bh_plugin " ]] || fail "$so exports: $exported"
done

# greet NAME SO GREETING: the installed bushost runs SO; the installed
# buscli's greeter.Greet gets "GREETING, Ada!".
greet() {
    local name=$1 so=$2 greeting=$3 i rc pid
    mkdir -p "$T/$name/plugins"
    cp "$so" "$T/$name/plugins/"
    cat >"$T/$name/service.ini" <<INI
[broker]
url = $BUSHOST_URL
[host]
plugins_dir = plugins
healthcheck_interval = 0
[greeter]
workers = 2
greeting = $greeting
INI
    run "${name}_check" "$P/bin/bushost" --check -c "$T/$name/service.ini"
    has "${name}_check" "plugin greeter 1.0.0, service 'greeter'"
    bg_start "${name}_host" "$P/bin/bushost" -c "$T/$name/service.ini"
    pid=$BG_PID
    # Unroutable (3) until the host has bound greeter.Greet.
    for ((i = 0; i < 60; i++)); do
        rc=0
        "$P/bin/buscli" send greeter.Greet --data '{"name": "Ada"}' -q --timeout 10 \
            >"$T/${name}_send.out" 2>"$T/${name}_send.err" || rc=$?
        [[ $rc == 3 ]] || break
        kill -0 "$pid" 2>/dev/null || fail "$name: bushost exited"
        sleep 0.5
    done
    [[ $rc == 0 ]] || fail "$name: buscli send exited with $rc"
    [[ $(cat "$T/${name}_send.out") == "{\"text\":\"$greeting, Ada!\"}" ]] ||
        fail "$name: the answer is $(cat "$T/${name}_send.out")"
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    [[ $rc == 0 ]] || fail "$name: bushost stopped with $rc"
}
greet pkgconfig "$T/pc/greeter.so" Hello
greet cmake "$T/cm/build/greeter.so" Hi

# The installed example config is valid with the installed example plugins.
run example "$P/bin/bushost" --check -c "$P/etc/bushost/example.ini"
has example "$P/lib/bushost/examples/echo.so: plugin echo"
has example "$P/etc/bushost/example.ini: OK"

# Man pages: no formatter warnings; bushost(8) names every option of
# --help; bushost.ini(5) lists exactly the keys docs/config.md documents.
if command -v man >/dev/null 2>&1; then
    for page in "$P"/share/man/man*/*.gz; do
        MANWIDTH=80 man --warnings -E UTF-8 -l "$page" >/dev/null 2>"$T/man.err" || fail "man $page failed"
        [[ ! -s $T/man.err ]] || fail "man $page: $(cat "$T/man.err")"
    done
else
    echo "NOTE: man not installed (package man-db): the man pages were not formatted" >&2
fi
"$P/bin/bushost" --help >"$T/help.out"
zcat "$P/share/man/man8/bushost.8.gz" | sed 's/\\-/-/g' >"$T/man8.out"
for opt in $(grep -o -- '--[a-z-]*' "$T/help.out" | sort -u); do
    has man8 "$opt"
done
zcat "$P/share/man/man1/buscli.1.gz" | sed 's/\\-/-/g' >"$T/man1.out"
has man1 "--result-key"
zcat "$P/share/man/man5/bushost.ini.5.gz" >"$T/man5.out"
grep -A1 '^\.TP' "$T/man5.out" | sed -n 's/^\\fB\([a-z_]*\)\\fR = .*/\1/p' | sort -u >"$T/man_keys.out"
sed -n 's/^| `\([a-z_]*\)` *|.*/\1/p' "$BH_SOURCE_DIR/docs/config.md" | sort -u >"$T/doc_keys.out"
[[ -s $T/man_keys.out ]] || fail "no keys in bushost.ini(5)"
diff "$T/doc_keys.out" "$T/man_keys.out" >"$T/keys_diff.out" ||
    fail "keys of docs/config.md (<) and of the key tables (>) differ: $(cat "$T/keys_diff.out")"

# The unit: the prefix's paths, the hardening, a stop timeout above the
# drain deadline; systemd-analyze accepts it.
UNIT=$P/lib/systemd/system/bushost@.service
u() { grep -qx -- "$1" "$UNIT" || fail "bushost@.service lacks the line '$1'"; }
u "ExecStart=$P/bin/bushost -c $P/etc/bushost/%i.ini"
for line in Type=notify NotifyAccess=main User=bushost NoNewPrivileges=yes ProtectSystem=strict \
    ProtectHome=yes PrivateTmp=yes CapabilityBoundingSet= Restart=on-failure; do
    u "$line"
done
grep -qx 'WatchdogSec=[0-9]*s' "$UNIT" || fail "bushost@.service has no WatchdogSec"
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$UNIT")
drain=$(grep -A1 '^\\fBshutdown_timeout\\fR' "$T/man5.out" | sed -n 's/.*Default: \\fB\([0-9]*\)\\fR.*/\1/p')
[[ -n $stop && -n $drain ]] || fail "TimeoutStopSec ('$stop') or the shutdown_timeout default ('$drain') not found"
((stop * 1000 > drain)) || fail "TimeoutStopSec=${stop}s is not above shutdown_timeout's ${drain} ms"
if command -v systemd-analyze >/dev/null 2>&1; then
    # A template is verified as an instance; its man pages are P's.
    cp "$UNIT" "$T/bushost@check.service"
    MANPATH=$P/share/man systemd-analyze verify "$T/bushost@check.service" >"$T/verify.out" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$T/verify.out")"
    verified="systemd-analyze verify passed"
else
    verified="systemd-analyze not installed (package systemd): the unit was not verified"
    echo "NOTE: $verified" >&2
fi

pass "installed to $P; greeter built with pkg-config and CMake, answered; $verified"
