#!/usr/bin/env bash
# logs and monitor see what a bushost service emits (echo's request logs, the
# command and its result), and monitor's --filter and --save work on events.
source "$(dirname "$0")/lib.sh"

start_bushost

bg_start logs "$BUSCLI" logs 'echo.*' --timeout 120
LOGS=$BG_PID
bg_start logsjson "$BUSCLI" logs 'echo.INFO' --json --timeout 120
LOGSJSON=$BG_PID
bg_start logserr "$BUSCLI" logs '*.ERROR' --count 1 --timeout 120
LOGSERR=$BG_PID
bg_start logswarn "$BUSCLI" logs 'echo.*' 'bclogs.*' --level warning --count 1 --timeout 120
LOGSWARN=$BG_PID
bg_start mon "$BUSCLI" monitor --commands 'echo.#' 'buscli.#' --timeout 120
MON=$BG_PID
bg_start monjson "$BUSCLI" monitor --commands 'echo.*' 'buscli.*' --json --count 2 --timeout 120
MONJSON=$BG_PID
# The URL's password, given as an argument, is not in /proc/PID/cmdline.
[[ $BUSHOST_URL == *:*:*@* ]] || fail "BUSHOST_URL has no password to hide: $BUSHOST_URL"
bg_start logsurl "$BUSCLI" logs 'echo.INFO' --url "$BUSHOST_URL" --count 1 --timeout 120
LOGSURL=$BG_PID
for n in logs logsjson logserr logswarn mon monjson logsurl; do wait_for 30 grep_err $n "listening on"; done
CMDLINE=$(tr '\0' ' ' <"/proc/$LOGSURL/cmdline")
PASSWORD=${BUSHOST_URL#*://*:}
PASSWORD=${PASSWORD%@*}
[[ $CMDLINE != *"$PASSWORD@"* && $CMDLINE == *"--url amqp://guest:***@"* ]] ||
    fail "buscli's cmdline shows the URL's password: $CMDLINE"

expect_rc 0 send "$BUSCLI" send echo.Echo --data '{"text": "hi"}' --conversation-id conv-lm-1
bg_wait "$LOGSURL" 30
[[ $RC == 0 ]] || fail "logs --url (password hidden from cmdline) exited with $RC: $(cat "$T/logsurl.err")"

# logs: one readable line per record, with service, level, message, conversation.
wait_for 30 grep_out logs "[conv-lm-1]"
kill -TERM "$LOGS"
bg_wait "$LOGS" 10
[[ $RC == 0 ]] || fail "logs did not stop cleanly on SIGTERM (exit $RC)"
grep -E "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]{12} echo INFO +conversation conv-lm-1: echo.Echo, [0-9]+ bytes  \[conv-lm-1\]$" \
    "$T/logs.out" >/dev/null || fail "logs line format: $(cat "$T/logs.out")"
# Not a terminal: no colours.
! grep -q $'\033' "$T/logs.out" || fail "colours written to a pipe"
# --json: the GELF records themselves.
wait_for 30 grep_out logsjson '"_conversation_id":"conv-lm-1"'
kill -TERM "$LOGSJSON"
bg_wait "$LOGSJSON" 10
grep -F '"_conversation_id":"conv-lm-1"' "$T/logsjson.out" | grep -qF '"version":"1.1"' ||
    fail "logs --json did not print the GELF record: $(cat "$T/logsjson.out")"
# A record from within the handler carries its trace (the text line above does not).
grep -F '"_conversation_id":"conv-lm-1"' "$T/logsjson.out" | grep -qE '"_trace_id":"[0-9a-f]{32}"' ||
    fail "the handler's GELF record has no _trace_id: $(cat "$T/logsjson.out")"
# '*.ERROR' saw nothing of this: echo logged only INFO.
kill -0 "$LOGSERR" 2>/dev/null || fail "logs '*.ERROR' stopped: $(cat "$T/logserr.out")"
[[ ! -s $T/logserr.out ]] || fail "'*.ERROR' printed: $(cat "$T/logserr.out")"
# An error log of our own (echo.Divide without numbers logs a WARNING; send
# an ERROR record as a service would) reaches it.
"$WIRETOOL" service bclogs --fail --ready "$T/ready" 2>"$T/svc.err" &
SVC=$!
BG_PIDS+=("$SVC")
wait_for 30 test -e "$T/ready"
"$WIRETOOL" put commands bclogs.Echo 1 --reply-to bclogs.Result
bg_wait "$LOGSERR" 30
[[ $RC == 0 ]] || fail "logs '*.ERROR' --count 1 exited with $RC"
grep -qF "bclogs ERROR     failing on purpose: bclogs.Echo  [conv-0]" "$T/logserr.out" ||
    fail "ERROR record: $(cat "$T/logserr.out")"
# --level warning: echo's INFO records were left out, the ERROR was its first.
bg_wait "$LOGSWARN" 30
[[ $RC == 0 && $(lines logswarn) == 1 ]] && grep -qF "bclogs ERROR" "$T/logswarn.out" ||
    fail "--level warning (exit $RC): $(cat "$T/logswarn.out")"
stop_pid "$SVC"
"$WIRETOOL" delete bclogs.commands

# monitor --json: the command, then echo's result.
bg_wait "$MONJSON" 30
[[ $RC == 0 ]] || fail "monitor --count 2 exited with $RC: $(cat "$T/monjson.err")"
l=$(sed -n 1p "$T/monjson.out")
[[ $l == *'"exchange":"commands","routing_key":"echo.Echo","kind":"command"'* &&
    $l == *'"conversation_id":"conv-lm-1"'* && $l == *'"reply_to":"buscli.Result'* &&
    $l == *'"payload":{"text":"hi"}'* ]] || fail "monitor command: $l"
l=$(sed -n 2p "$T/monjson.out")
[[ $l == *'"routing_key":"buscli.Result'* && $l == *'"kind":"result"'* &&
    $l == *'"status":"success"'* && $l == *'"conversation_id":"conv-lm-1"'* &&
    $l == *'"reply_to":""'* && $l == *'"payload":{"text":"hi"}'* ]] || fail "monitor result: $l"
# The result carries bushost's trace context, an optional header monitor
# shows with the others.
[[ $l =~ \"traceparent\":\"00-[0-9a-f]{32}-[0-9a-f]{16}-01\" ]] ||
    fail "monitor --json result without a traceparent: $l"
# monitor, text.
wait_for 30 grep_out mon "(result)"
kill -TERM "$MON"
bg_wait "$MON" 10
[[ $RC == 0 ]] || fail "monitor did not stop cleanly on SIGTERM (exit $RC)"
has mon "commands echo.Echo (command)"
has mon "status           success"
has mon 'payload          {"text":"hi"}'
has mon '"traceparent":"00-'
stop_pid "$BUSHOST_PID"

# Events: --filter compares by the field's type; --save writes the payloads.
mkdir "$T/saved"
bg_start num "$BUSCLI" monitor --events BcNumbers --filter n=3 --count 2 --timeout 60 --json \
    --save "$T/saved"
NUM=$BG_PID
bg_start str "$BUSCLI" monitor --events BcNumbers --filter 'name="3"' ok=true --count 1 --timeout 60
STR=$BG_PID
wait_for 30 grep_err num "listening on"
wait_for 30 grep_err str "listening on"
for data in '{"n": "3"}' '{"n": 3.0}' '{"n": 4}' '{"n": 3, "name": "x"}' \
    '{"name": 3, "ok": true}' '{"name": "3", "ok": false}' '{"name": "3", "ok": true}'; do
    expect_rc 0 pub "$BUSCLI" publish BcNumbers --data "$data" --conversation-id conv-num
done
bg_wait "$NUM" 30
[[ $RC == 0 ]] || fail "monitor --filter n=3 exited with $RC"
[[ $(lines num) == 2 ]] || fail "--filter n=3 kept $(lines num) messages, expected 2"
grep -qF '"payload":{"n":3.0}' "$T/num.out" && grep -qF '"payload":{"n":3,"name":"x"}' "$T/num.out" ||
    fail "--filter n=3 kept: $(cat "$T/num.out")"
ls "$T/saved"/BcNumbers.conv-num*.cbor >/dev/null 2>&1 || fail "--save wrote: $(ls "$T/saved")"
[[ $(ls "$T/saved" | wc -l) == 2 ]] || fail "--save wrote $(ls "$T/saved")"
grep -qF '"saved":"'"$T/saved/BcNumbers.conv-num.cbor"'"' "$T/num.out" || fail "saved path not shown"
bg_wait "$STR" 30
[[ $RC == 0 ]] || fail "monitor --filter name=\"3\" ok=true exited with $RC"
has str 'payload          {"name":"3","ok":true}'
# A saved payload publishes again as it was.
bg_start capture "$WIRETOOL" capture events BcNumbers --count 1 --timeout 30 --ready "$T/ready3"
wait_for 30 test -e "$T/ready3"
expect_rc 0 again "$BUSCLI" publish BcNumbers "$T/saved/BcNumbers.conv-num.cbor"
bg_wait "$BG_PID" 30
[[ $RC == 0 ]] && grep -qF '"payload":{"n":3.0}' "$T/capture.out" ||
    fail "republished saved payload: $(cat "$T/capture.out")"
pass "logs and monitor see bushost's logs, commands and results; filter and save"
