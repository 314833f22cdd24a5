#!/usr/bin/env bash
# check-layering.sh -- the layering rules of the host's sources (CI runs it).
#
#   scripts/check-layering.sh [DIR]     DIR: the host sources (default: host/)
#
# (a) No file is over 600 lines, and service.c (the wiring) is under 400.
# (b) Only the broker module (broker.c, broker_io.c, broker_impl.h) includes
#     rabbitmq-c headers; everything else goes through broker.h. broker_url.c
#     (the URL check the config uses, by rabbitmq-c's parser) and
#     broker_tls.c (the socket and login that buscli shares, whose settings
#     the config holds) are the exceptions: config cannot include broker.h
#     without a cycle.
# (c) The include graph between modules has no cycle. A module is a .c/.h
#     pair by basename (broker_impl.h and broker_io.c belong to broker,
#     config_keys.[ch] to config, host_impl.h and host_reload.[ch] to host,
#     service_impl.h and service_swap.[ch] to service); A
#     depends on B when A.c or A.h includes "B.h".
# (d) No static function is declared before its definition (a forward
#     declaration hides a call cycle within a file), except a declaration
#     that carries an attribute (BH_PRINTF, __attribute__), which is there
#     for the compiler's printf checks.
#
# Prints every violation with what to do about it, and exits 1 if there is
# any. Bash and standard tools only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$ROOT/host}
[[ -d $DIR ]] || { echo "check-layering: no directory $DIR" >&2; exit 2; }
DIR=${DIR%/}

MAX_LINES=600
SERVICE_MAX=399 # "under 400"

failures=0
fail() {
    failures=$((failures + 1))
    printf 'check-layering: %s\n' "$1"
    shift
    local why
    for why in "$@"; do printf '    %s\n' "$why"; done
}
# Paths as the reader knows them: relative to the repository when inside it.
show() { local p=$1; printf '%s' "${p#"$ROOT"/}"; }

# The sources directly in DIR (modules are flat), sorted for stable output.
sources=()
while IFS= read -r f; do sources+=("$f"); done < <(find "$DIR" -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)

# -- (a) file sizes -----------------------------------------------------------
while IFS= read -r f; do
    n=$(wc -l <"$f")
    if ((n > MAX_LINES)); then
        fail "$(show "$f") has $n lines (at most $MAX_LINES)" \
            "A file this long holds more than one concern: move one into a module of its own" \
            "(a .c/.h pair that owns its state), as CONTRIBUTING.md describes."
    fi
done < <(find "$DIR" -type f | LC_ALL=C sort)
if [[ -f $DIR/service.c ]]; then
    n=$(wc -l <"$DIR/service.c")
    if ((n > SERVICE_MAX)); then
        fail "$(show "$DIR/service.c") has $n lines (must be under $((SERVICE_MAX + 1)))" \
            "service.c only wires the modules together: move the logic that grew here into" \
            "the module that owns the state it touches."
    fi
fi

# -- (b) rabbitmq-c stays in the broker module ----------------------------------
while IFS= read -r hit; do
    file=${hit%%:*}
    case ${file##*/} in
    broker.c | broker_io.c | broker_impl.h | broker_url.c | broker_tls.c) continue ;;
    esac
    fail "$(show "$file"):${hit#*:}" \
        "Only the broker module (broker.c, broker_io.c, broker_impl.h, broker_url.c, broker_tls.c) may include rabbitmq-c" \
        "headers. Use the adapter's own types and calls from broker.h; if one is missing, add" \
        "it to broker.h and implement it in broker.c."
done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<(amqp[^>]*|rabbitmq-c/[^>]*)>' "$DIR" |
    LC_ALL=C sort || true)

# -- (c) no include cycle between modules ------------------------------------------
# The module a file belongs to.
module_of() {
    local b=${1##*/}
    b=${b%.[ch]}
    case $b in
    broker_impl | broker_io) b=broker ;;
    config_keys) b=config ;;
    host_impl | host_reload | host_reload_run) b=host ;;
    service_impl | service_swap) b=service ;;
    esac
    printf '%s' "$b"
}
# Edges "from to file:line", one per include of another module's header.
edges=$(
    for f in ${sources[@]+"${sources[@]}"}; do
        from=$(module_of "$f")
        { grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"/]+\.h"' "$f" || true; } |
            while IFS= read -r line; do
                hdr=${line#*\"}
                hdr=${hdr%%\"*}
                [[ -f $DIR/$hdr ]] || continue # not a host header (bushost.h is the SDK's)
                to=$(module_of "$hdr")
                [[ $to == "$from" ]] && continue
                printf '%s %s %s:%s\n' "$from" "$to" "$(show "$f")" "${line%%:*}"
            done
    done
)
# Depth-first search; every back edge closes a cycle, printed on one line:
# the path, then (tab-separated) the include that makes each step.
cycles=$(printf '%s\n' "$edges" | awk '
    NF == 3 {
        if (!(($1, $2) in where)) {
            where[$1, $2] = $3
            adj[$1, ++nadj[$1]] = $2
        }
        node[$1] = node[$2] = 1
    }
    function visit(u,    i, v, k, first, path, steps) {
        state[u] = 1
        stack[++depth] = u
        for (i = 1; i <= nadj[u]; i++) {
            v = adj[u, i]
            if (state[v] == 1) {
                for (first = depth; stack[first] != v; first--) {}
                path = ""
                steps = ""
                for (k = first; k <= depth; k++) {
                    path = path stack[k] " -> "
                    steps = steps "\t" stack[k] " -> " (k < depth ? stack[k + 1] : v) ": " \
                        where[stack[k], k < depth ? stack[k + 1] : v]
                }
                print path v steps
            } else if (!state[v]) {
                visit(v)
            }
        }
        depth--
        state[u] = 2
    }
    END {
        # Start from the modules in name order, whatever the awk.
        for (m in node) names[++n] = m
        for (i = 2; i <= n; i++)
            for (j = i; j > 1 && names[j - 1] > names[j]; j--) {
                t = names[j]; names[j] = names[j - 1]; names[j - 1] = t
            }
        for (i = 1; i <= n; i++)
            if (!state[names[i]]) visit(names[i])
    }')
# One wrong include often closes many cycles: show the shortest few, and the
# include that most of them go through.
MAX_CYCLES=3
n_cycles=$(grep -c . <<<"$cycles" || true)
shown=0
while IFS=$'\t' read -r -a cycle; do
    ((${#cycle[@]})) || continue
    fail "include cycle: ${cycle[0]}" "${cycle[@]:1}" \
        "Modules must form layers. Break the cycle: move what both need into a lower module," \
        "or pass a callback (as conn.h's ops do) instead of including the caller's header."
    shown=$((shown + 1))
done < <(awk -F'\t' 'NF { print NF "\t" $0 }' <<<"$cycles" | LC_ALL=C sort -n -s -k1,1 | cut -f2- |
    head -n "$MAX_CYCLES")
if ((n_cycles > shown)); then
    common=$(awk -F'\t' '{ for (i = 2; i <= NF; i++) n[$i]++ }
        END { for (e in n) print n[e] "\t" e }' <<<"$cycles" | LC_ALL=C sort -t$'\t' -k1,1nr -k2 | head -n 1)
    printf 'check-layering: %d more include cycle(s) not shown; %d of all %d go through\n    %s\n' \
        "$((n_cycles - shown))" "${common%%$'\t'*}" "$n_cycles" "${common#*$'\t'}"
fi
# tsort (coreutils) must agree: it fails on any loop.
if [[ -z $cycles && -n $edges ]] && ! awk 'NF == 3 { print $1, $2 }' <<<"$edges" | tsort >/dev/null 2>&1; then
    fail "tsort finds an include cycle that the search above missed (a bug in this script)"
fi

# -- (d) static prototypes ------------------------------------------------------------
# A file-scope statement starting with "static" (clang-format leaves file
# scope unindented) is a prototype when it ends in ";" before any "{", and
# its first "(" opens a parameter list (not "(*" of a function pointer) with
# no "=" before it (an initialised variable).
statics=$(
    for f in ${sources[@]+"${sources[@]}"}; do
        awk -v file="$(show "$f")" '
            function judge(    t, semi, brace, p, head, name) {
                semi = index(stmt, ";")
                brace = index(stmt, "{")
                if (!semi || (brace && brace < semi)) return # a definition
                t = substr(stmt, 1, semi - 1)
                p = index(t, "(")
                if (!p) return # a variable
                head = substr(t, 1, p - 1)
                if (head ~ /=/) return                     # an initialised variable
                if (substr(t, p + 1) ~ /^[ \t]*\*/) return # a function pointer
                if (attr || t ~ /__attribute__|BH_PRINTF/) return
                name = head
                sub(/[ \t]+$/, "", name)
                sub(/.*[^A-Za-z0-9_]/, "", name)
                printf "%s:%d\t%s\n", file, start, name
            }
            {
                line = $0
                gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, "", line) # one-line comments
                sub(/\/\/.*/, "", line)
            }
            inside {
                stmt = stmt " " line
                if (line ~ /[;{]/) { judge(); inside = 0 }
            }
            !inside && line ~ /^static[ \t]/ {
                stmt = line
                start = FNR
                attr = prev ~ /^(BH_PRINTF|__attribute__)[ \t]*\(/ # on the line above
                if (line ~ /[;{]/) judge(); else inside = 1
            }
            line !~ /^[ \t]*$/ { prev = line }
        ' "$f"
    done
)
while IFS=$'\t' read -r where name; do
    [[ -n $where ]] || continue
    fail "$where: static function '$name' is declared before its definition" \
        "Define '$name' above its first use and drop the declaration. If two functions call" \
        "each other, that cycle is what to fix: split the work so that only one calls the" \
        "other. (A declaration that carries BH_PRINTF or __attribute__ is allowed.)"
done <<<"$statics"

n_modules=$(for f in ${sources[@]+"${sources[@]}"}; do module_of "$f"; echo; done | LC_ALL=C sort -u | grep -c . || true)
n_edges=$(printf '%s\n' "$edges" | awk 'NF == 3 { print $1, $2 }' | LC_ALL=C sort -u | grep -c . || true)
if ((failures)); then
    printf 'check-layering: %d violation(s) in %s\n' "$failures" "$(show "$DIR")"
    exit 1
fi
printf 'check-layering: %s is layered (%d files, %d modules, %d module edges, no cycle)\n' \
    "$(show "$DIR")" "${#sources[@]}" "$n_modules" "$n_edges"
