#!/usr/bin/env bash
# deb: cpack builds the Debian package from this build; its control fields,
# maintainer scripts, conffiles and contents are what docs/deployment.md
# says, its unit passes systemd-analyze verify, and its paths are /usr's.
# (Installing it is .ci/run's job: it needs root and changes the machine.)
source "$(dirname "$0")/lib.sh"

command -v dpkg-deb >/dev/null 2>&1 || skip "dpkg-deb not installed"
command -v cpack >/dev/null 2>&1 || skip "cpack not installed"

run cpack cpack --config "$BH_BUILD_DIR/CPackConfig.cmake" -B "$T/pkg"
debs=("$T"/pkg/bushost_*.deb)
[[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || fail "cpack made no bushost_*.deb: $(ls "$T/pkg")"
DEB=${debs[0]}
version=$("$BH_BUILD_DIR/host/bushost" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
[[ $(basename "$DEB") == "bushost_${version}_${arch}.deb" ]] || fail "file name $(basename "$DEB")"

field() { dpkg-deb -f "$DEB" "$1"; }
[[ $(field Package) == bushost ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$version" ]] || fail "Version: $(field Version), bushost says $version"
[[ $(field Architecture) == "$arch" ]] || fail "Architecture: $(field Architecture)"
[[ -n $(field Maintainer) && -n $(field Description) ]] || fail "no Maintainer or Description"
depends=$(field Depends)
[[ $depends == *adduser* ]] || fail "Depends lacks adduser (postinst uses it): $depends"
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
    for lib in libc6 librabbitmq4 libuv1 libinih1 libcbor libjansson4; do
        [[ $depends == *"$lib"* ]] || fail "Depends lacks $lib: $depends"
    done
fi

# Maintainer scripts and conffiles.
mkdir -p "$T/control"
dpkg-deb -e "$DEB" "$T/control"
for s in postinst prerm postrm; do
    [[ -x $T/control/$s ]] || fail "no executable $s"
    sh -n "$T/control/$s" || fail "$s is not valid sh"
done
grep -q 'adduser --system --group' "$T/control/postinst" || fail "postinst makes no system user"
[[ $(cat "$T/control/conffiles") == /etc/bushost/example.ini ]] || fail "conffiles: $(cat "$T/control/conffiles")"

# Contents.
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' >"$T/contents.out"
for f in /usr/bin/bushost /usr/bin/buscli /usr/include/bushost/bushost.h \
    /usr/lib/pkgconfig/bushost.pc /usr/lib/cmake/bushost/bushostConfig.cmake \
    /usr/lib/cmake/bushost/bushostConfigVersion.cmake /usr/lib/cmake/bushost/BushostPlugin.cmake \
    /usr/share/man/man8/bushost.8.gz /usr/share/man/man1/buscli.1.gz \
    /usr/share/man/man5/bushost.ini.5.gz /etc/bushost /etc/bushost/example.ini \
    /usr/lib/bushost/plugins /usr/lib/bushost/examples/echo.so /usr/lib/bushost/examples/cart.so \
    /lib/systemd/system/bushost@.service /usr/share/doc/bushost/examples/plugin/greeter.c; do
    grep -qx -- "$f" "$T/contents.out" || fail "the package lacks $f"
done
# Nothing under /usr/local or /usr/etc, and no build path.
! grep -q '^/usr/local\|^/usr/etc' "$T/contents.out" || fail "the package has /usr/local or /usr/etc paths"
# Only the descriptor folder and the examples: every *.so of a plugins_dir runs.
[[ $(grep -c '^/usr/lib/bushost/plugins/' "$T/contents.out") == 0 ]] || fail "/usr/lib/bushost/plugins is not empty"

mkdir -p "$T/root"
dpkg-deb -x "$DEB" "$T/root"
R=$T/root
grep -qx 'prefix=/usr' "$R/usr/lib/pkgconfig/bushost.pc" || fail "bushost.pc: $(head -1 "$R/usr/lib/pkgconfig/bushost.pc")"
grep -qx 'plugins_dir = /usr/lib/bushost/examples' "$R/etc/bushost/example.ini" || fail "example.ini plugins_dir"
grep -qx 'state_dir = /var/lib/bushost/example' "$R/etc/bushost/example.ini" || fail "example.ini state_dir"
UNIT=$R/lib/systemd/system/bushost@.service
grep -qx 'ExecStart=/usr/bin/bushost -c /etc/bushost/%i.ini' "$UNIT" || fail "unit: $(grep ExecStart "$UNIT")"
grep -qx 'StateDirectory=bushost/%i' "$UNIT" || fail "unit: no StateDirectory=bushost/%i"
! grep -q "$BH_BUILD_DIR" "$UNIT" "$R/etc/bushost/example.ini" "$R/usr/lib/pkgconfig/bushost.pc" ||
    fail "a build path in an installed file"
# The packaged binary runs (its libraries are those Depends names).
"$R/usr/bin/bushost" --version >"$T/version.out" || fail "the packaged bushost does not run"
has version "bushost $version"

if command -v systemd-analyze >/dev/null 2>&1; then
    # Verified as an instance, with its binary and man pages taken from the
    # extracted package (systemd-analyze checks that both exist).
    sed "s|=/usr/bin/|=$R/usr/bin/|" "$UNIT" >"$T/bushost@check.service"
    MANPATH=$R/usr/share/man systemd-analyze verify "$T/bushost@check.service" >"$T/verify.out" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$T/verify.out")"
    verified="systemd-analyze verify passed"
else
    verified="systemd-analyze not installed (package systemd): the unit was not verified"
    echo "NOTE: $verified" >&2
fi

pass "$(basename "$DEB"): Depends: $depends; $verified"
