#!/usr/bin/env bash
# recipes.sh -- build the example plugins exactly as docs/plugin-guide.md
# tells an author to, plus -Werror, and have bushost load them.
#
#   tests/sdk/recipes.sh SDK_DIR OUT_DIR BUSHOST
#
# The C recipe (the guide's line starting "cc -std=c11") builds
# plugins/echo/echo.c, plugins/cart/cart.c and examples/plugin/greeter.c,
# with cc and with clang; OUT_DIR/plugins gets the cc build (the
# integration tests run those too: itest_*_recipe). The C++ recipe (the line
# starting "c++ -std=") builds examples/cpp/echo.cpp with g++ and clang++,
# -std=c++17 and -std=c++20, and checks that bushost_test.h compiles so
# too. `$(pkg-config --cflags bushost)` becomes
# -I SDK_DIR (the uninstalled SDK). Each folder is then loaded and its
# plugins' init run by `bushost --check`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
(($# == 3)) || { echo "usage: recipes.sh SDK_DIR OUT_DIR BUSHOST" >&2; exit 2; }
sdk=$1 out=$2 bushost=$3
guide=$ROOT/docs/plugin-guide.md

c_recipe=$(grep -m1 '^cc -std=c11 ' "$guide") || { echo "recipes.sh: no 'cc -std=c11' line in $guide" >&2; exit 1; }
cxx_recipe=$(grep -m1 '^c++ -std=' "$guide") || { echo "recipes.sh: no 'c++ -std=' line in $guide" >&2; exit 1; }

find_tool() { # the first of the names found on PATH
    local n
    for n; do command -v "$n" >/dev/null && { echo "$n"; return; }; done
    echo "recipes.sh: none of $* found (scripts/setup.sh installs them)" >&2
    exit 1
}

# build RECIPE COMPILER STD OUTPUT SOURCE: the recipe with its compiler, its
# -std (when STD is not empty), the SDK folder, its output and source
# replaced, and -Werror added.
build() {
    local recipe=$1 compiler=$2 std=$3 output=$4 source=$5 words
    recipe=${recipe% -o *}                                 # drop "-o greeter.so greeter.c"
    recipe=${recipe//'$(pkg-config --cflags bushost)'/-I$sdk}
    read -ra words <<<"$recipe"
    words[0]=$compiler
    [[ -n $std ]] && words[1]=-std=$std
    echo "+ ${words[*]} -Werror -o $output $source"
    "${words[@]}" -Werror -o "$output" "$source"
}

# check DIR: bushost loads every plugin in DIR and runs its init.
check() {
    local dir=$1
    cat >"$dir/service.ini" <<INI
[broker]
url = amqp://guest:guest@127.0.0.1:1/
[host]
plugins_dir = .
INI
    echo "+ $bushost -c $dir/service.ini --check"
    "$bushost" -c "$dir/service.ini" --check
}

rm -rf "$out"
c_examples=(plugins/echo/echo.c plugins/cart/cart.c examples/plugin/greeter.c)
for cc in cc "$(find_tool clang clang-14)"; do
    dir=$out/$([[ $cc == cc ]] && echo plugins || echo "$cc")
    mkdir -p "$dir"
    for src in "${c_examples[@]}"; do
        name=$(basename "$src" .c)
        build "$c_recipe" "$cc" "" "$dir/$name.so" "$ROOT/$src"
    done
    check "$dir"
done
for cxx in "$(find_tool g++)" "$(find_tool clang++ clang++-14)"; do
    for std in c++17 c++20; do
        dir=$out/$cxx-$std
        mkdir -p "$dir"
        build "$cxx_recipe" "$cxx" "$std" "$dir/echo_cpp.so" "$ROOT/examples/cpp/echo.cpp"
        check "$dir"
        # A C++ test may include the test kit's header too.
        "$cxx" -std="$std" -Wall -Wextra -Werror -fsyntax-only -x c++ -I"$sdk" "$sdk/bushost_test.h" ||
            { echo "recipes.sh: bushost_test.h does not compile as $std with $cxx" >&2; exit 1; }
    done
done
echo "recipes.sh: OK"
