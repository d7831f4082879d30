#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Generate the TLS test material into the directory given as the only argument (created if
# missing). Nothing here is committed: tests run this script into a temporary directory, so no
# private key ever lives in the repository. Uses only the `openssl` command-line tool.
#
# Files produced (PEM):
#   ca.crt ca.key                 root CA "Tern Test CA" (ECC P-256)
#   inter.crt inter.key           intermediate CA signed by the root
#   other-ca.crt other-ca.key     an unrelated root ("wrong CA" tests)
#   server-rsa.crt/.key           RSA 2048 server cert, signed by the root
#   server-ecc.crt/.key           ECC P-256 server cert, signed by the INTERMEDIATE: a client that
#                                 trusts only ca.crt needs the chain file inter.crt from the server
#   server-other.crt/.key         ECC server cert signed by other-ca
#   server-rsa-enc.key            server-rsa.key encrypted with a passphrase (must be refused)
#   (every server cert: CN=localhost, SAN DNS:localhost, IP:127.0.0.1)
#   client.crt/.key               client cert, subject CN=client1,O=Tern Test,C=GB
#   client-revoked.crt/.key       client cert CN=revoked, listed in crl.pem
#   client-expired.crt/.key       client cert CN=expired, valid 2020-01-01 .. 2021-01-01
#   client-other.crt/.key         client cert signed by other-ca
#   crl.pem                       the root's CRL revoking client-revoked.crt
#   psk.txt                       PSK file: identity:hexkey lines
#   dhparam.pem                   DH parameters (the RFC 7919 ffdhe2048 group)
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
mkdir -p "$out"
cd "$out"
umask 077

# A minimal `openssl ca` setup per CA (index, serial, config), so certificates get real serials
# and the CRL can name the revoked one.
make_ca_conf() { # name
    mkdir -p "$1.db/new"
    : >"$1.db/index.txt"
    echo 1000 >"$1.db/serial"
    echo 1000 >"$1.db/crlnumber"
    cat >"$1.cnf" <<CNF
[ ca ]
default_ca = this_ca
[ this_ca ]
dir = $1.db
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
crlnumber = \$dir/crlnumber
certificate = $1.crt
private_key = $1.key
default_md = sha256
default_days = 3650
default_crl_days = 3650
policy = any
unique_subject = no
preserve = yes
copy_extensions = copy
[ any ]
commonName = supplied
organizationName = optional
countryName = optional
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ server ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[ client ]
basicConstraints = CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
CNF
}

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

root_ca() { # name CN
    ec_key "$1.key"
    openssl req -new -x509 -key "$1.key" -subj "/CN=$2" -days 3650 -sha256 \
        -addext "basicConstraints=critical,CA:true" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.crt"
    make_ca_conf "$1"
}

# issue CA NAME SUBJECT EXT [extra `openssl ca` args]: sign NAME.key into NAME.crt
issue() {
    ca=$1 name=$2 subj=$3 ext=$4
    shift 4
    openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr"
    openssl ca -batch -notext -config "$ca.cnf" -extensions "$ext" -in "$name.csr" \
        -out "$name.crt" "$@" 2>/dev/null
    rm -f "$name.csr"
}

root_ca ca "Tern Test CA"
root_ca other-ca "Other Test CA"

ec_key inter.key
issue ca inter "/CN=Tern Test Intermediate" v3_ca
make_ca_conf inter

rsa_key server-rsa.key
issue ca server-rsa "/CN=localhost/O=Tern Test" server
openssl pkey -in server-rsa.key -aes256 -passout pass:secret -out server-rsa-enc.key
ec_key server-ecc.key
issue inter server-ecc "/CN=localhost/O=Tern Test" server
ec_key server-other.key
issue other-ca server-other "/CN=localhost/O=Other" server

ec_key client.key
issue ca client "/C=GB/O=Tern Test/CN=client1" client
ec_key client-revoked.key
issue ca client-revoked "/O=Tern Test/CN=revoked" client
ec_key client-expired.key
issue ca client-expired "/O=Tern Test/CN=expired" client \
    -startdate 20200101000000Z -enddate 20210101000000Z
ec_key client-other.key
issue other-ca client-other "/O=Other/CN=client1" client

openssl ca -batch -config ca.cnf -revoke client-revoked.crt 2>/dev/null
openssl ca -batch -config ca.cnf -gencrl -out crl.pem 2>/dev/null

openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out dhparam.pem 2>/dev/null

cat >psk.txt <<PSK
# identity:hexkey
device1:00112233445566778899aabbccddeeff
device2:0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000
PSK
