#!/usr/bin/env bash
# send: a real bushost with the echo plugin answers (success and error
# results), a command nobody consumes times out (exit 2), a command no queue
# is bound for is unroutable (exit 3).
source "$(dirname "$0")/lib.sh"

start_bushost

printf '{"text": "hello", "n": 1}\n' >"$T/in.json"
expect_rc 0 echo "$BUSCLI" send echo.Echo "$T/in.json"
has echo "success (echo.Echo, conversation "
has echo '{"text":"hello","n":1}'
[[ $(lines echo) == 2 ]] || fail "send printed more than the status and the payload"
expect_rc 0 echojson "$BUSCLI" send echo.Echo "$T/in.json" --json --conversation-id conv-send-1
has echojson "success (echo.Echo, conversation conv-send-1,"
has echojson '{"text":"hello","n":1}'
# From standard input.
expect_rc 0 stdin "$BUSCLI" send echo.Echo - <"$T/in.json"
has stdin '{"text":"hello","n":1}'

# An error result: exit 1, payload shown.
expect_rc 1 div0 "$BUSCLI" send echo.Divide --data '{"a": 1, "b": 0}'
has div0 "error (echo.Divide"
has div0 '{"error":"division by zero"}'
expect_rc 0 quiet "$BUSCLI" send echo.Divide --data '{"a": 6, "b": 4}' -q
[[ $(cat "$T/quiet.out") == '{"q":1.5}' ]] || fail "-q prints only the payload: $(cat "$T/quiet.out")"
expect_rc 0 verbose "$BUSCLI" send echo.Divide --data '{"a": 6, "b": 3}' -v --correlation-id corr-v
has verbose "result commands buscli.Result"
has verbose "(result)"
has verbose "correlation_id   corr-v"
has verbose "status           success"
has verbose 'payload          {"q":2.0}'
# A result key of our own choosing.
expect_rc 0 rkey "$BUSCLI" send echo.Echo --data '{}' --result-key bcsend.MyResult -v
has rkey "result commands bcsend.MyResult (result)"

# Bound but never consumed: the command waits in the queue, no result: exit 2.
"$WIRETOOL" delete bcsend.commands
"$WIRETOOL" queue bcsend.commands commands bcsend.Stall
expect_rc 2 timeout "$BUSCLI" send bcsend.Stall --data '{"x": 1}' --timeout 2
has_err timeout "no result for bcsend.Stall within the timeout (the command was routed to a queue"
# The command on the wire: a command per the contract.
"$WIRETOOL" drain bcsend.commands >"$T/drain.out"
l=$(cat "$T/drain.out")
[[ $l == *'"props":["content_type","headers","delivery_mode","correlation_id","reply_to"]'* &&
    $l == *'"reply_to":"buscli.Result'* && $l == *'"delivery_mode":2'* &&
    $l == *'"content_type":"application/cbor"'* && $l == *'"payload":{"x":1}'* ]] ||
    fail "the command on the wire: $l"
corr=$(sed -n 's/.*"correlation_id":"\([^"]*\)".*/\1/p' "$T/drain.out")
[[ ${#corr} == 36 ]] || fail "correlation id '$corr' is not a UUID"
"$WIRETOOL" delete bcsend.commands

# No queue bound for the key: returned at once, exit 3.
expect_rc 3 unroutable "$BUSCLI" send nosuchservice.DoIt --data '{}' --timeout 20
has_err unroutable "nosuchservice.DoIt is unroutable (312 NO_ROUTE)"
# echo has no such command: unroutable too.
expect_rc 3 unroutable2 "$BUSCLI" send echo.Nothing --data '{}'

stop_pid "$BUSHOST_PID"
pass "echo results, error result exit 1, timeout exit 2, unroutable exit 3"
