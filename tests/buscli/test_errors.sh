#!/usr/bin/env bash
# Bad input gets a clear message and a non-zero exit: unreachable broker,
# wrong password, unreadable files, invalid JSON or CBOR, unknown queues,
# an unwritable --save folder, a rabbitmqctl that fails.
source "$(dirname "$0")/lib.sh"

# A port nothing listens on: connection refused, 69.
expect_rc 69 refused "$BUSCLI" publish Foo --data '{}' --url amqp://guest:guest@127.0.0.1:1/
has_err refused "cannot connect to amqp://guest@127.0.0.1:1/: Connection refused"
expect_rc 69 refused_env env BUSHOST_URL=amqp://guest:guest@127.0.0.1:1/ "$BUSCLI" inspect q
# A list of URLs is tried in turn: the second one (the real broker) answers,
# and the event is returned (no queue bound): exit 3 proves it got there.
expect_rc 3 urllist "$BUSCLI" publish BcErrorsNobody --data '{}' \
    --url "amqp://guest:guest@127.0.0.1:1/, $BUSHOST_URL"
has_err urllist "Connection refused"
has urllist "returned by the broker"
# Wrong password: access refused, 77.
expect_rc 77 login "$BUSCLI" publish Foo --data '{}' \
    --url "${BUSHOST_URL/guest:guest/guest:wrong}"
has_err login "ACCESS_REFUSED"

# Input files.
expect_rc 66 nofile "$BUSCLI" publish Foo "$T/does-not-exist.json"
has_err nofile "cannot open $T/does-not-exist.json: No such file or directory"
expect_rc 66 dir "$BUSCLI" publish Foo "$T"
has_err dir "is a directory"
printf '{"a": 1,' >"$T/bad.json"
expect_rc 65 badjson "$BUSCLI" publish Foo "$T/bad.json"
has_err badjson "not a valid JSON payload"
printf '[1, 2]' >"$T/array.json"
expect_rc 65 array "$BUSCLI" send a.B "$T/array.json"
has_err array "expected a map"
# A CBOR map announcing two pairs and holding one.
printf '\xa2\x61\x61\x01' >"$T/short.cbor"
expect_rc 65 badcbor "$BUSCLI" publish Foo "$T/short.cbor"
has_err badcbor "not a valid CBOR payload"
# A CBOR byte string has no JSON form: fine as CBOR, refused with --json.
printf '\xa1\x61\x62\x42\x01\x02' >"$T/bytes.cbor"
expect_rc 65 bytesjson "$BUSCLI" publish Foo "$T/bytes.cbor" --json
has_err bytesjson "cannot be sent as application/json"
expect_rc 65 baddata "$BUSCLI" send a.B --data '{"a":'
expect_rc 3 stdin "$BUSCLI" publish BcErrorsNobody - <<<'{"a": 1}'
has stdin "returned"

# Unknown queues: 66, nothing created.
expect_rc 66 noqueue "$BUSCLI" inspect bcerrors.nosuch
has_err noqueue "no queue named 'bcerrors.nosuch'"
expect_rc 66 noqueue2 "$BUSCLI" resurrect bcerrors.nosuch
has_err noqueue2 "no queue named 'bcerrors.nosuch'"
[[ $(count bcerrors.nosuch) == none ]] || fail "inspect created the queue"

# --save into a folder that is not there: 73, before anything is consumed.
expect_rc 73 nosave "$BUSCLI" monitor --save "$T/nowhere" --timeout 1
has_err nosave "--save $T/nowhere"
expect_rc 73 nosave2 "$BUSCLI" inspect bcerrors.nosuch --save "$T/nowhere"

# rabbitmqctl that fails: 69 with a hint.
expect_rc 69 ctl "$BUSCLI" topology --show --ctl false
has_err ctl "set --ctl or \$BUSCLI_RABBITMQCTL"
expect_rc 69 ctl2 "$BUSCLI" topology --show --ctl /nonexistent/rabbitmqctl
has_err ctl2 "(not found)"
pass "clear messages and exit codes for bad input"
