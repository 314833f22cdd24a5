#!/usr/bin/env bash
# buscli top and status against a real host's HTTP endpoint: the echo row's
# counts and rates, --json, frames, a host that goes away; and every series
# the Grafana dashboard queries is in that host's /metrics.
source "$(dirname "$0")/lib.sh"

HTTP=127.0.0.1:$BUSCLI_TEST_HTTP_PORT
ready() { curl -fsS "http://$HTTP/readyz" >/dev/null 2>&1; }
BUSHOST_HOST_KEYS="http_listen = $HTTP" start_bushost
wait_for 30 ready

echo '{"text": "hi"}' >"$T/in.json"
for i in 1 2 3 4 5; do expect_rc 0 send$i "$BUSCLI" send echo.Echo "$T/in.json"; done

# --json: the document itself, with the 5 commands counted as done.
expect_rc 0 js "$BUSCLI" status -c "$T/host/service.ini" --json
done_count=$(/usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print([s for s in d["services"] if s["name"]=="echo"][0]["handled"]["done"])' <"$T/js.out")
[[ $done_count == 5 ]] || fail "/status counts $done_count done for echo, expected 5"

# status: one frame over one second, the echo row ready.
expect_rc 0 st "$BUSCLI" status -c "$T/host/service.ini"
has st "up"
grep -Eq '^echo +up +yes ' "$T/st.out" || fail "no ready echo row in: $(cat "$T/st.out")"

# top under load: some frame shows echo results done at a rate above zero.
( for i in $(seq 1 40); do "$BUSCLI" send echo.Echo "$T/in.json" >/dev/null 2>&1 || true; done ) &
load=$!
expect_rc 0 top "$BUSCLI" top --http "$HTTP" -n 4
wait "$load"
[[ $(grep -c '^SERVICE ' "$T/top.out") == 4 ]] || fail "top -n 4 printed $(grep -c '^SERVICE ' "$T/top.out") frames"
awk '$1 == "echo" && $5 != "-" && $5 + 0 > 0 { found = 1 } END { exit !found }' "$T/top.out" ||
    fail "no frame shows echo DONE/s above 0: $(cat "$T/top.out")"
grep -Eq '^echo .* [0-9.]+(us|ms|s) ' "$T/top.out" || fail "no handler percentile shown: $(cat "$T/top.out")"

# The dashboard queries only series the host exposes.
curl -fsS "http://$HTTP/metrics" >"$T/metrics.txt" || fail "GET /metrics failed"
run dash /usr/bin/python3 "$BH_SOURCE_DIR/bench/dashboard.py" check \
    "$BH_SOURCE_DIR/docs/grafana/bushost.json" "$T/metrics.txt"
[[ $RC == 0 ]] || fail "dashboard check: $(cat "$T/dash.err")"

# A host that goes away while top watches: shown, and top goes on.
bg_start watch "$BUSCLI" top --http "$HTTP" -n 4
WATCH_PID=$BG_PID
wait_for 10 grep_out watch "SERVICE"
stop_pid "$BUSHOST_PID"
wait "$WATCH_PID" && rc=0 || rc=$?
[[ $rc == 0 ]] || fail "top exited $rc when the host went away"
grep -qF "GET http://$HTTP/status:" "$T/watch.out" || fail "top did not show the host gone: $(cat "$T/watch.out")"
expect_rc 69 gone "$BUSCLI" status --http "$HTTP"

pass "status --json counts 5 done; status and top -n 4 show echo ready and busy; dashboard series exposed; a host gone is shown"
