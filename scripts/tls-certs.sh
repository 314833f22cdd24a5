#!/usr/bin/env bash
# tls-certs.sh -- throwaway certificates for the TLS tests, made with openssl
# at run time (never committed).
#
#   scripts/tls-certs.sh DIR
#
# Writes into DIR (created, mode 0700; files 0600):
#   ca.pem, ca.key                  the test CA
#   server.pem, server.key          a server certificate for localhost and
#                                   127.0.0.1 (subjectAltName), signed by ca
#   client.pem, client.key          a client certificate, CN=guest, signed by ca
#                                   (RabbitMQ's EXTERNAL login takes the CN)
#   other-ca.pem, other-ca.key      a second CA that signed nothing here
#   expired.pem, expired.key        a server certificate for localhost, signed
#                                   by ca, that expired long ago
#   expired-client.pem/.key         a client certificate, CN=guest, expired
# Does nothing if DIR/ca.pem exists already. Keys are RSA 2048, unencrypted.
set -euo pipefail

DIR=${1:?usage: tls-certs.sh DIR}
command -v openssl >/dev/null || { echo "tls-certs.sh: openssl is missing (scripts/setup.sh installs it)" >&2; exit 2; }
[[ -f $DIR/ca.pem && -f $DIR/expired-client.pem ]] && exit 0
mkdir -p "$DIR"
chmod 700 "$DIR"
umask 077
cd "$DIR"

ossl() { openssl "$@" 2>/dev/null || { echo "tls-certs.sh: openssl $1 failed" >&2; openssl "$@"; exit 1; }; }

# A self-signed CA: NAME SUBJECT.
make_ca() {
    ossl req -x509 -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" -days 30 \
        -subj "$2" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

# A leaf signed by ca: NAME SUBJECT EXTFILE-TEXT START END (openssl ca
# dates, YYYYMMDDHHMMSSZ). openssl x509 -req cannot set a start date in the
# past, so a tiny openssl ca setup signs them.
make_leaf() {
    local name=$1 subj=$2 ext=$3 start=$4 end=$5
    ossl req -new -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj"
    printf '%s\n' "$ext" >"$name.ext"
    mkdir -p ca.db
    : >ca.db/index.txt
    [[ -f ca.db/serial ]] || echo 1000 >ca.db/serial
    cat >ca.db/ca.cnf <<CNF
[ca]
default_ca = test
[test]
dir = ca.db
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
CNF
    ossl ca -batch -config ca.db/ca.cnf -cert ca.pem -keyfile ca.key -in "$name.csr" \
        -out "$name.pem" -startdate "$start" -enddate "$end" -extfile "$name.ext" -notext
    rm -f "$name.csr" "$name.ext"
}

now=$(date -u +%Y%m%d%H%M%SZ)
later=$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)
SERVER_EXT=$'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1'
CLIENT_EXT=$'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth'

make_ca ca "/CN=bushost test CA"
make_ca other-ca "/CN=bushost unrelated CA"
make_leaf server "/CN=localhost" "$SERVER_EXT" "$now" "$later"
make_leaf client "/CN=guest" "$CLIENT_EXT" "$now" "$later"
make_leaf expired "/CN=localhost" "$SERVER_EXT" 20200101000000Z 20200102000000Z
make_leaf expired-client "/CN=guest" "$CLIENT_EXT" 20200101000000Z 20200102000000Z
rm -rf ca.db
# The broker (possibly another user) reads its own files; keys stay 0600.
chmod 644 ./*.pem
echo "tls-certs.sh: test certificates in $DIR" >&2
