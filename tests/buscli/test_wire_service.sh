#!/usr/bin/env bash
# Everything works against a service that is not bushost: wiretool's minimal
# wire-level service (rabbitmq-c only) answers send, its logs reach logs, its
# event reaches monitor, its queue can be inspected.
source "$(dirname "$0")/lib.sh"

"$WIRETOOL" delete plain.commands
bg_start svc "$WIRETOOL" service plain --ready "$T/ready"
SVC=$BG_PID
wait_for 30 test -e "$T/ready"
bg_start logs "$BUSCLI" logs 'plain.*' --count 1 --timeout 60
LOGS=$BG_PID
bg_start mon "$BUSCLI" monitor --events WireEchoed --count 1 --timeout 60
MON=$BG_PID
wait_for 30 grep_err logs "listening on"
wait_for 30 grep_err mon "listening on"

printf '{"x": 1, "s": "plain"}' >"$T/in.json"
expect_rc 0 send "$BUSCLI" send plain.Echo "$T/in.json" --conversation-id conv-plain
has send "success (plain.Echo, conversation conv-plain,"
has send '{"x":1,"s":"plain"}'
expect_rc 0 sendjson "$BUSCLI" send plain.Other --data '{"y": [1, 2]}' --json -q
[[ $(cat "$T/sendjson.out") == '{"y":[1,2]}' ]] || fail "JSON round trip: $(cat "$T/sendjson.out")"

bg_wait "$LOGS" 30
[[ $RC == 0 ]] || fail "logs exited with $RC"
has logs "plain INFO      echoed plain.Echo  [conv-plain]"
bg_wait "$MON" 30
[[ $RC == 0 ]] || fail "monitor exited with $RC"
has mon "events WireEchoed (event)"
has mon "conversation_id  conv-plain"
has mon 'correlation_id   ""'
has mon 'payload          {"x":1,"s":"plain"}'

# Its queue, while it is stopped.
stop_pid "$SVC"
"$WIRETOOL" put commands plain.Echo 2 --reply-to plain.Result
expect_rc 0 inspect "$BUSCLI" inspect plain.commands
has inspect "#2 commands plain.Echo (command)"
[[ $(messages plain.commands) == 2 ]] || fail "inspect changed the count"
"$WIRETOOL" delete plain.commands
pass "send, logs, monitor and inspect with a service that is not bushost"
