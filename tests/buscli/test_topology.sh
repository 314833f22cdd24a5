#!/usr/bin/env bash
# topology: declares the bus; --show lists exchanges, queues with counts,
# bindings and policies from rabbitmqctl; --show --amqp says only what passive
# declares can; --dlx sets the policy through rabbitmqctl.
source "$(dirname "$0")/lib.sh"

expect_rc 0 declare "$BUSCLI" topology
has declare "exchanges events, commands, logs: topic, durable"

"$WIRETOOL" delete bctopo.events
"$WIRETOOL" delete bctopo.other
"$WIRETOOL" queue bctopo.events events BcTopoHappened BcTopoDone
"$WIRETOOL" queue bctopo.other events BcTopoOther
"$WIRETOOL" put events BcTopoHappened 3

expect_rc 0 show "$BUSCLI" topology --show
has show "exchanges"
grep -Eq "^  commands +topic +durable$" "$T/show.out" || fail "commands exchange not listed"
grep -Eq "^  events +topic +durable$" "$T/show.out" || fail "events exchange not listed"
grep -Eq "^  logs +topic +durable$" "$T/show.out" || fail "logs exchange not listed"
lacks show "amq.topic"
grep -Eq "^  bctopo.events +3 +0  durable" "$T/show.out" || fail "bctopo.events with 3 messages"
has show "events -> bctopo.events: BcTopoDone"
has show "events -> bctopo.events: BcTopoHappened"
has show "policies"
expect_rc 0 showall "$BUSCLI" topology --show --all
has showall "amq.topic"
# Only the queues named.
expect_rc 0 one "$BUSCLI" topology --show bctopo.events
has one "bctopo.events"
lacks one "bctopo.other"

# AMQP only: exchanges and the named queues, honestly nothing more.
expect_rc 66 amqp "$BUSCLI" topology --show --amqp bctopo.events bctopo.nosuch
has amqp "AMQP only"
grep -Eq "^  events +exists$" "$T/amqp.out" || fail "--amqp events: $(cat "$T/amqp.out")"
grep -Eq "^  bctopo.events +3 +0$" "$T/amqp.out" || fail "--amqp bctopo.events: $(cat "$T/amqp.out")"
grep -Eq "^  bctopo.nosuch +MISSING$" "$T/amqp.out" || fail "--amqp missing queue"
lacks amqp "bindings (exchange"

# --dlx: exchange, queue and policy (a pattern that matches no queue here).
expect_rc 0 dlx "$BUSCLI" topology --dlx bctopo.dlx --policy BCTOPO --pattern '^bctopo-never\.(events|commands)$'
has dlx "exchange bctopo.dlx: fanout, durable"
has dlx "queue bctopo.dlx: durable, bound to bctopo.dlx"
has dlx "policy BCTOPO: queues matching"
expect_rc 0 show2 "$BUSCLI" topology --show bctopo.dlx
grep -Eq "^  bctopo.dlx +fanout +durable$" "$T/show2.out" || fail "dlx exchange not listed"
has show2 "bctopo.dlx -> bctopo.dlx: "
grep -F "BCTOPO" "$T/show2.out" | grep -qF '"dead-letter-exchange":"bctopo.dlx"' ||
    fail "policy not listed: $(cat "$T/show2.out")"
# Without a working rabbitmqctl the policy cannot be set: said so, exit 69.
expect_rc 69 noctl "$BUSCLI" topology --dlx bctopo.dlx2 --ctl false
has_err noctl "the policy is NOT set; set it by hand: rabbitmqctl set_policy"

"$BH_BROKER_SH" ctl clear_policy BCTOPO >/dev/null
for q in bctopo.events bctopo.other bctopo.dlx bctopo.dlx2; do "$WIRETOOL" delete $q; done
pass "declare, --show via rabbitmqctl, --show --amqp, --dlx"
