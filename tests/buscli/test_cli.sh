#!/usr/bin/env bash
# Every subcommand has --help; usage errors exit 64 with a message; no broker
# is needed for any of this.
source "$(dirname "$0")/lib.sh"

for cmd in logs monitor publish send inspect resurrect topology; do
    expect_rc 0 help "$BUSCLI" "$cmd" --help
    has help "usage: buscli $cmd"
    has help "--url URL"
    has help "exit codes:"
    expect_rc 0 help2 "$BUSCLI" help "$cmd"
    has help2 "usage: buscli $cmd"
done

# top and status read a host's HTTP endpoint, not the broker: no --url.
for cmd in top status; do
    expect_rc 0 help "$BUSCLI" "$cmd" --help
    has help "usage: buscli $cmd"
    has help "--http ADDR"
    has help "exit codes:"
done

expect_rc 0 top "$BUSCLI" --help
for cmd in logs monitor publish send inspect resurrect topology top status; do has top "  $cmd "; done
expect_rc 64 none "$BUSCLI"
expect_rc 64 unknown "$BUSCLI" frobnicate
has_err unknown "unknown command 'frobnicate'"
expect_rc 0 version "$BUSCLI" --version
has version "buscli "

# Options and arguments.
expect_rc 64 badopt "$BUSCLI" publish Foo --data '{}' --frob
has_err badopt "unknown option '--frob'"
expect_rc 64 noval "$BUSCLI" send echo.Echo --data
has_err noval "--data needs a value"
expect_rc 64 missing "$BUSCLI" publish
has_err missing "missing arguments"
expect_rc 64 extra "$BUSCLI" inspect q1 q2
has_err extra "unexpected argument 'q2'"
expect_rc 64 nopayload "$BUSCLI" publish Foo
has_err nopayload "no payload"
expect_rc 64 twopayloads "$BUSCLI" send a.B /dev/null --data '{}'
has_err twopayloads "either FILE or --data"
expect_rc 64 bothfmt "$BUSCLI" publish Foo --data '{}' --json --cbor
has_err bothfmt "exclude each other"
expect_rc 64 emptydata "$BUSCLI" publish Foo --data ''
has_err emptydata "--data is empty"
expect_rc 64 badkey "$BUSCLI" send nodot --data '{}'
has_err badkey "SERVICE.Command"
expect_rc 64 badcount "$BUSCLI" inspect q --count 0
has_err badcount "--count takes a whole number from 1"
expect_rc 64 badcount2 "$BUSCLI" logs --count 12abc
expect_rc 64 badfilter "$BUSCLI" monitor --filter novalue
has_err badfilter "--filter takes FIELD=VALUE"
expect_rc 64 badlevel "$BUSCLI" logs --level loud
has_err badlevel "--level"
expect_rc 64 badcolor "$BUSCLI" logs --color sometimes
expect_rc 64 dlqalone "$BUSCLI" topology --dlq x
has_err dlqalone "go with --dlx"
expect_rc 64 showargs "$BUSCLI" topology somequeue
has_err showargs "go with --show"
expect_rc 64 loop "$BUSCLI" topology --dlx dead.commands
has_err loop "would loop"
# top and status: which host, and its address.
expect_rc 64 nohost "$BUSCLI" status
has_err nohost "give -c FILE"
expect_rc 64 bothhost "$BUSCLI" top -c x.ini --http 127.0.0.1:9464
has_err bothhost "not both"
expect_rc 64 badaddr "$BUSCLI" status --http 127.0.0.1
has_err badaddr "--http '127.0.0.1': expected ADDRESS:PORT"
expect_rc 64 badport "$BUSCLI" top --http 127.0.0.1:99999
has_err badport "from 1 to 65535"
expect_rc 66 noini "$BUSCLI" status -c "$T/none.ini"
has_err noini "cannot open"
printf '[broker]\nurl = amqp://localhost/\n' >"$T/nolisten.ini"
expect_rc 64 nolisten "$BUSCLI" status -c "$T/nolisten.ini"
has_err nolisten "[host] http_listen is not set"
printf '[host]\nhttp_listen = 127.0.0.1:1\n' >"$T/deadport.ini"
expect_rc 69 deadport "$BUSCLI" status -c "$T/deadport.ini"
has_err deadport "GET http://127.0.0.1:1/status"
expect_rc 64 badinterval "$BUSCLI" top --http 127.0.0.1:9464 --interval 0
expect_rc 64 badurl "$BUSCLI" publish Foo --data '{}' --url 'http://example.com/'
has_err badurl "is not an AMQP URL"
# amqps:// is taken (tests/buscli/test_tls.sh): nothing listens on port 1.
expect_rc 69 amqps "$BUSCLI" publish Foo --data '{}' --url 'amqps://guest:guest@127.0.0.1:1/'
has_err amqps "cannot connect to amqps://guest@127.0.0.1:1/: Connection refused"
# No piece of a password in any message: a raw '@' in it, TLS, a list.
no_secret() { ! grep -qE -- 'S3c|etPW' "$T/$1.err" "$T/$1.out" || fail "$1 shows the password"; }
expect_rc 64 rawat "$BUSCLI" publish Foo --data '{}' --url 'amqp://app:S3c@retPW@127.0.0.1:1/'
has_err rawat "'amqp://app:***@127.0.0.1:1/' is not an AMQP URL: expected"
has_err rawat "%40"
no_secret rawat
expect_rc 64 tlspw "$BUSCLI" publish Foo --data '{}' --url 'amqps://app:S3cretPW@127.0.0.1:99999/'
has_err tlspw "'amqps://app:***@127.0.0.1:99999/' is not an AMQP URL"
no_secret tlspw
expect_rc 64 envpw env BUSHOST_URL='amqp://app:S3c@retPW@h/ amqp://b:S3cretPW@h/' \
    "$BUSCLI" publish Foo --data '{}'
has_err envpw "'amqp://app:***@h/' is not an AMQP URL"
no_secret envpw
expect_rc 64 vhostpw "$BUSCLI" topology --show --url 'amqp://app:S3c@retPW@h/'
has_err vhostpw "'amqp://app:***@h/' is not an AMQP URL"
no_secret vhostpw
pass "help for every subcommand, usage errors exit 64"
