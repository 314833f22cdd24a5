#!/usr/bin/env bash
# publish: what reaches the wire (seen by wiretool, not by buscli) has the
# contract's properties, and the content type follows --cbor/--json whatever
# the input format; a new conversation id unless one is given; returned when
# no queue is bound (exit 3).
source "$(dirname "$0")/lib.sh"

bg_start capture "$WIRETOOL" capture events BcPublished --count 4 --timeout 60 --ready "$T/ready"
CAPTURE=$BG_PID
wait_for 30 test -e "$T/ready"

printf '{"cart": "c-1", "n": 3, "ok": true, "x": 1.5}\n' >"$T/in.json"
# {"cart": "c-2", "n": 4} in CBOR.
printf '\xa2\x64cart\x63c-2\x61n\x04' >"$T/in.cbor"

expect_rc 0 p1 "$BUSCLI" publish BcPublished "$T/in.json"
has p1 "published BcPublished: confirmed"
has p1 "application/cbor"
conv1=$(sed -n 's/.*(conversation \([0-9a-f-]*\),.*/\1/p' "$T/p1.out")
[[ $conv1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] ||
    fail "conversation id '$conv1' is not a UUID v4"
expect_rc 0 p2 "$BUSCLI" publish BcPublished "$T/in.json" --json
has p2 "application/json"
expect_rc 0 p3 "$BUSCLI" publish BcPublished "$T/in.cbor" --json
expect_rc 0 p4 "$BUSCLI" publish BcPublished --data '{"cart": "c-3"}' --conversation-id conv-fixed --cbor
conv2=$(sed -n 's/.*(conversation \([0-9a-f-]*\),.*/\1/p' "$T/p2.out")
[[ $conv1 != "$conv2" ]] || fail "two publishes shared conversation id $conv1"

bg_wait "$CAPTURE" 30
[[ $RC == 0 ]] || fail "wiretool captured fewer than 4 events (exit $RC)"
line() { sed -n "$1p" "$T/capture.out"; }
# Exactly the contract's properties, nothing else.
props='"props":["content_type","headers","delivery_mode","correlation_id","reply_to"]'
for i in 1 2 3 4; do
    l=$(line $i)
    [[ $l == *"$props"* ]] || fail "event $i properties: $l"
    [[ $l == *'"delivery_mode":2'* && $l == *'"reply_to":""'* && $l == *'"correlation_id":""'* ]] ||
        fail "event $i: delivery_mode 2 and empty reply_to/correlation_id expected: $l"
    re='"exchange":"events","headers":\{"conversation_id":"[^"]+"\}'
    [[ $l =~ $re ]] || fail "event $i: only a conversation_id header expected: $l"
done
l=$(line 1)
[[ $l == *'"content_type":"application/cbor"'* ]] || fail "JSON file sent as CBOR by default: $l"
[[ $l == *'"payload":{"cart":"c-1","n":3,"ok":true,"x":1.5}'* ]] || fail "CBOR payload: $l"
[[ $l == *"\"conversation_id\":\"$conv1\""* ]] || fail "conversation id $conv1 not on the wire: $l"
l=$(line 2)
[[ $l == *'"content_type":"application/json"'* ]] || fail "--json: $l"
# The body is really JSON: its bytes, in hex, are {"cart":"c-1",...
[[ $l == *'"body_hex":"7b2263617274223a22632d31222c'* ]] || fail "--json body is not JSON text: $l"
l=$(line 3)
[[ $l == *'"content_type":"application/json"'* && $l == *'"payload":{"cart":"c-2","n":4}'* ]] ||
    fail "CBOR file sent as JSON: $l"
l=$(line 4)
[[ $l == *'"content_type":"application/cbor"'* && $l == *'"conversation_id":"conv-fixed"'* &&
    $l == *'"payload":{"cart":"c-3"}'* ]] || fail "--data with --conversation-id: $l"

# Nobody is bound for this name: returned, exit 3.
expect_rc 3 returned "$BUSCLI" publish BcPublishedToNobody --data '{}'
has returned "returned by the broker (312 NO_ROUTE)"
# An empty file: an event without payload (empty body).
bg_start capture2 "$WIRETOOL" capture events BcPublishedEmpty --count 1 --timeout 30 --ready "$T/ready2"
wait_for 30 test -e "$T/ready2"
expect_rc 0 empty "$BUSCLI" publish BcPublishedEmpty /dev/null
has empty "0 bytes"
bg_wait "$BG_PID" 30
[[ $RC == 0 ]] && grep -qF '"body_hex":""' "$T/capture2.out" || fail "empty payload not sent empty"
pass "properties, content type per flag, conversation ids, returned"
