#!/usr/bin/env bash
# tls: buscli over amqps:// against the node with a TLS listener that
# tests/integration starts (BUSHOST_URL is its plain port; TLS_PORT its
# AMQPS port, TLS_DIR the certificates scripts/tls-certs.sh made): send with
# --tls-ca, with a client certificate and --auth external, with the host's
# ini (--config) and $BUSHOST_PASSWORD; refusals name the cause and never
# the password.
source "$(dirname "$0")/lib.sh"
for v in TLS_PORT TLS_DIR; do
    [[ -n ${!v:-} ]] || fail "$v is not set (run the tests through ctest)"
done
SECRET=S3cretPW
TLS_URL=amqps://guest:guest@localhost:$TLS_PORT/
BAD_URL=amqps://guest:$SECRET@localhost:$TLS_PORT/

start_bushost

expect_rc 0 send "$BUSCLI" send echo.Echo --data '{"n": 1}' --url "$TLS_URL" --tls-ca "$TLS_DIR/ca.pem"
has send "success (echo.Echo, conversation "
has send '{"n":1}'

# A client certificate with EXTERNAL: the URL's password is wrong, so only
# the certificate can have logged in.
expect_rc 0 external "$BUSCLI" send echo.Echo --data '{"n": 2}' --url "$BAD_URL" \
    --tls-ca "$TLS_DIR/ca.pem" --tls-cert "$TLS_DIR/client.pem" --tls-key "$TLS_DIR/client.key" \
    --auth external
has external '{"n":2}'
# ... and with PLAIN the same password is refused, without being shown.
expect_rc 77 plainbad "$BUSCLI" send echo.Echo --data '{}' --url "$BAD_URL" --tls-ca "$TLS_DIR/ca.pem"
has_err plainbad "cannot log in to amqps://guest@localhost:$TLS_PORT/ (PLAIN)"

# The host's ini: url and tls_ca from [broker] (relative to the ini's
# folder); the password from $BUSHOST_PASSWORD, not the file.
mkdir -p "$T/etc"
cp "$TLS_DIR/ca.pem" "$T/etc/ca.pem"
cat >"$T/etc/host.ini" <<INI
[broker]
url = amqps://guest@localhost:$TLS_PORT/
tls_ca = ca.pem
[host]
plugins_dir = plugins
[echo]
workers = 1
INI
expect_rc 0 config env -u BUSHOST_URL BUSHOST_PASSWORD=guest "$BUSCLI" send echo.Echo --data '{"n": 3}' \
    --config "$T/etc/host.ini"
has config '{"n":3}'
expect_rc 77 configbad env -u BUSHOST_URL BUSHOST_PASSWORD=$SECRET "$BUSCLI" send echo.Echo --data '{}' \
    --config "$T/etc/host.ini"
# A broken ini: the host's own message, naming the file and line.
printf '[broker]\ntls_verify = maybe\n' >"$T/etc/bad.ini"
expect_rc 64 badini "$BUSCLI" send echo.Echo --data '{}' --config "$T/etc/bad.ini"
has_err badini "--config: $T/etc/bad.ini:2: [broker] tls_verify = 'maybe': expected true or false"

# Refusals: the cause, the URL without its password, exit 69.
expect_rc 69 wrongca "$BUSCLI" send echo.Echo --data '{}' --url "$BAD_URL" --tls-ca "$TLS_DIR/other-ca.pem"
has_err wrongca "cannot connect to amqps://guest@localhost:$TLS_PORT/: certificate verification failed: unknown CA"
expect_rc 69 name "$BUSCLI" send echo.Echo --data '{}' --url "$BAD_URL" --tls-ca "$TLS_DIR/ca.pem" \
    --tls-server-name rabbit.example.com
has_err name "certificate verification failed: name mismatch: the server's certificate (/CN=localhost) is not for 'rabbit.example.com'"
expect_rc 69 expired "$BUSCLI" send echo.Echo --data '{}' --url "$BAD_URL" --tls-ca "$TLS_DIR/ca.pem" \
    --tls-cert "$TLS_DIR/expired-client.pem" --tls-key "$TLS_DIR/expired-client.key" --auth external
# The broker's alert says why, unless its close reset the connection before
# the alert was read; then the message says what is known.
grep -qE "TLS handshake refused by the broker: (certificate expired \(of the client certificate\)|it closed the connection after the handshake.*client certificate $TLS_DIR/expired-client.pem)" \
    "$T/expired.err" || fail "expired: $(cat "$T/expired.err")"
expect_rc 69 noca "$BUSCLI" send echo.Echo --data '{}' --url "$BAD_URL" --tls-ca "$T/none.pem"
has_err noca "TLS: cannot read the CA bundle $T/none.pem: No such file or directory"
expect_rc 69 keymismatch "$BUSCLI" send echo.Echo --data '{}' --url "$BAD_URL" --tls-ca "$TLS_DIR/ca.pem" \
    --tls-cert "$TLS_DIR/client.pem" --tls-key "$TLS_DIR/server.key"
has_err keymismatch "key values mismatch"
expect_rc 64 auth "$BUSCLI" send echo.Echo --data '{}' --url "$BAD_URL" --auth kerberos
has_err auth "--auth takes plain or external, not 'kerberos'"
expect_rc 64 nocert "$BUSCLI" send echo.Echo --data '{}' --url "$BAD_URL" --auth external
has_err nocert "--auth external needs a client certificate"

# --tls-insecure: connects whatever the CA, and warns.
expect_rc 0 insecure "$BUSCLI" send echo.Echo --data '{"n": 4}' --url "$TLS_URL" \
    --tls-ca "$TLS_DIR/other-ca.pem" --tls-insecure
has insecure '{"n":4}'
has_err insecure "warning: TLS verification is off"

for f in "$T"/*.out "$T"/*.err; do
    ! grep -qF "$SECRET" "$f" || fail "$f shows the password"
done
pass "send over TLS, EXTERNAL, --config, refusals"
