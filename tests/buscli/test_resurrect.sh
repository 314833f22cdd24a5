#!/usr/bin/env bash
# resurrect: 100 commands dead-lettered by a failing handler (wiretool's
# minimal service, rejecting) go back to the service's queue with their
# properties and headers intact, none lost; --filter leaves the others in the
# DLQ; --count and --dry-run; unroutable copies and messages that are not
# dead letters stay in the DLQ (exit 1).
source "$(dirname "$0")/lib.sh"

DLX=bcresurrect.dlx
SVC=bcres
Q=$SVC.commands

# The DLX, its queue and the policy, as an operator would set them up.
expect_rc 0 topo "$BUSCLI" topology --dlx $DLX
has topo "policy DLX: queues matching ^.+\.(events|commands)\$ dead-letter to $DLX"
"$WIRETOOL" purge $DLX
"$WIRETOOL" delete $Q

bg_start failing "$WIRETOOL" service $SVC --fail --ready "$T/ready"
FAILING=$BG_PID
wait_for 30 test -e "$T/ready"
"$WIRETOOL" put commands $SVC.Echo 60 --reply-to $SVC.Result
"$WIRETOOL" put commands $SVC.Other 40 --first 60 --reply-to $SVC.Result
wait_for 60 queue_has $DLX 100
stop_pid "$FAILING"
[[ $(messages $Q) == 0 ]] || fail "$Q holds $(messages $Q) messages, expected 0"

# The dead letters as inspect shows them.
expect_rc 0 inspect "$BUSCLI" inspect $DLX --count 1
has inspect "(command)"
has inspect "first death      rejected in $Q, from exchange 'commands'"
has inspect "x-death          rejected in $Q, from exchange 'commands' with keys [\"$SVC.Echo\"], 1 time"

# Dry run: lists, changes nothing.
expect_rc 0 dry "$BUSCLI" resurrect $DLX --filter $SVC.Other --dry-run
[[ $(grep -c "^would republish $SVC.Other to 'commands'" "$T/dry.out") == 40 ]] ||
    fail "dry run listed $(grep -c '^would' "$T/dry.out") messages, expected 40"
has dry "dry run: would republish 40, skipped 60, failed 0 (examined 100 of 100 in $DLX, which now holds 100)"
[[ $(messages $DLX) == 100 && $(messages $Q) == 0 ]] || fail "the dry run moved messages"

# A filter: only the 40 Others go back; the 60 Echos stay.
expect_rc 0 other "$BUSCLI" resurrect $DLX --filter $SVC.Other
has other "republished 40, skipped 60, failed 0 (examined 100 of 100 in $DLX, which now holds 60)"
[[ $(messages $DLX) == 60 && $(messages $Q) == 40 ]] ||
    fail "after --filter: DLQ $(messages $DLX) (want 60), $Q $(messages $Q) (want 40)"
# Topic patterns: '*.Echo' with --count 10.
expect_rc 0 ten "$BUSCLI" resurrect $DLX --filter '*.Echo' --count 10
has ten "republished 10, skipped 0, failed 0"
[[ $(messages $DLX) == 50 && $(messages $Q) == 50 ]] ||
    fail "after --count 10: DLQ $(messages $DLX) (want 50), $Q $(messages $Q) (want 50)"
expect_rc 0 rest "$BUSCLI" resurrect $DLX
has rest "republished 50, skipped 0, failed 0 (examined 50 of 50 in $DLX, which now holds 0)"
[[ $(messages $DLX) == 0 && $(messages $Q) == 100 ]] ||
    fail "at the end: DLQ $(messages $DLX) (want 0), $Q $(messages $Q) (want 100)"

# Every one of the 100 is back once, with what it was sent with.
"$WIRETOOL" drain $Q >"$T/drain.out"
[[ $(wc -l <"$T/drain.out") == 100 ]] || fail "drained $(wc -l <"$T/drain.out"), expected 100"
for ((i = 0; i < 100; i++)); do
    key=$SVC.Echo
    ((i < 60)) || key=$SVC.Other
    l=$(grep -F "\"payload\":{\"n\":$i}" "$T/drain.out") || fail "message n=$i is lost"
    [[ $(grep -cF "\"payload\":{\"n\":$i}" "$T/drain.out") == 1 ]] || fail "message n=$i is duplicated"
    for want in "\"routing_key\":\"$key\"" '"exchange":"commands"' "\"conversation_id\":\"conv-$i\"" \
        "\"x-test\":\"keep-$i\"" "\"correlation_id\":\"corr-$i\"" "\"reply_to\":\"$SVC.Result\"" \
        '"app_id":"wiretool"' '"content_type":"application/json"' '"delivery_mode":2' \
        "\"x-first-death-queue\":\"$Q\"" "\"routing-keys\":[\"$key\"]"; do
        [[ $l == *"$want"* ]] || fail "message n=$i lacks $want: $l"
    done
done

# What cannot go back stays: a dead letter whose queue is gone (its copy is
# returned), and a message that is not a dead letter at all.
bg_start failing2 "$WIRETOOL" service bcgone --fail --ready "$T/ready2"
wait_for 30 test -e "$T/ready2"
"$WIRETOOL" put commands bcgone.Echo 1 --reply-to bcgone.Result
wait_for 30 queue_has $DLX 1
stop_pid "$BG_PID"
"$WIRETOOL" delete bcgone.commands
"$WIRETOOL" put "" $DLX 1 --first 500
expect_rc 1 stuck "$BUSCLI" resurrect $DLX
has stuck "republished 0, skipped 0, failed 2 (examined 2 of 2 in $DLX, which now holds 2)"
has_err stuck "bcgone.Echo to 'commands' was returned (no queue is bound for it); left in $DLX"
has_err stuck "is not a dead letter (no x-first-death-exchange header)"
[[ $(messages $DLX) == 2 ]] || fail "the DLQ lost messages that could not be republished"
# --to-queue would need the queue too: still returned.
expect_rc 1 toq "$BUSCLI" resurrect $DLX --to-queue
"$WIRETOOL" purge $DLX
pass "100 dead letters back with headers intact, filter, count, dry run, failures kept"
