#!/usr/bin/env bash
# inspect: shows the first N messages with their details and leaves the queue
# as it was: same count, same order.
source "$(dirname "$0")/lib.sh"

Q=bcinspect.commands
"$WIRETOOL" delete $Q
"$WIRETOOL" queue $Q commands bcinspect.Do
"$WIRETOOL" put commands bcinspect.Do 5 --reply-to bcinspect.Result
[[ $(messages $Q) == 5 ]] || fail "setup: $Q holds $(messages $Q), expected 5"

expect_rc 0 first3 "$BUSCLI" inspect $Q --count 3
has first3 "#1 commands bcinspect.Do (command)"
has first3 "#3 commands bcinspect.Do (command)"
lacks first3 "#4 "
has first3 "conversation_id  conv-0"
has first3 "correlation_id   corr-2"
has first3 "reply_to         bcinspect.Result"
has first3 'headers          {"x-test":"keep-1"}'
has first3 'properties       {"app_id":"wiretool"}'
has first3 'payload          {"n":2}'
lacks first3 '{"n":3}'
has_err first3 "showed 3 of the 5 messages in '$Q'; put back, the queue holds 5"
[[ $(messages $Q) == 5 ]] || fail "after inspect, $Q holds $(messages $Q), expected 5"

# All of them, as JSON lines; more asked than there are.
expect_rc 0 all "$BUSCLI" inspect $Q --count 50 --json
[[ $(lines all) == 5 ]] || fail "inspect --json printed $(lines all) lines, expected 5"
for i in 0 1 2 3 4; do
    l=$(sed -n "$((i + 1))p" "$T/all.out")
    [[ $l == *"\"conversation_id\":\"conv-$i\""* && $l == *"\"payload\":{\"n\":$i}"* &&
        $l == *'"kind":"command"'* ]] || fail "inspect --json line $((i + 1)): $l"
done

# --save writes each payload, named after key and conversation id.
mkdir "$T/saved"
expect_rc 0 save "$BUSCLI" inspect $Q --count 2 --save "$T/saved"
[[ $(cat "$T/saved/bcinspect.Do.conv-0.json") == '{"n":0}' ]] || fail "saved payload 0"
[[ $(cat "$T/saved/bcinspect.Do.conv-1.json") == '{"n":1}' ]] || fail "saved payload 1"
[[ $(ls "$T/saved" | wc -l) == 2 ]] || fail "--save --count 2 wrote $(ls "$T/saved")"
# Saved again: a new file, never overwritten.
expect_rc 0 save2 "$BUSCLI" inspect $Q --count 1 --save "$T/saved"
[[ -e $T/saved/bcinspect.Do.conv-0-2.json ]] || fail "second save: $(ls "$T/saved")"

# Still 5, in the original order.
"$WIRETOOL" drain $Q >"$T/drain.out"
[[ $(wc -l <"$T/drain.out") == 5 ]] || fail "drained $(wc -l <"$T/drain.out") messages, expected 5"
for i in 0 1 2 3 4; do
    sed -n "$((i + 1))p" "$T/drain.out" | grep -qF "\"payload\":{\"n\":$i}" ||
        fail "message $((i + 1)) after inspect is not n=$i: order changed"
done

# An empty queue is fine.
expect_rc 0 empty "$BUSCLI" inspect $Q
has_err empty "showed 0 of the 0 messages"
"$WIRETOOL" delete $Q
pass "count and order unchanged, details, --json, --save"
