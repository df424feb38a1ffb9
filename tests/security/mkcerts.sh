#!/usr/bin/env bash
# mkcerts.sh DIR [CLIENT...]: a throwaway CA, a server certificate for localhost and
# 127.0.0.1, and one client certificate per CLIENT name (its CN), as PEM files in DIR:
# ca.pem, server.pem, server.key, <client>.pem, <client>.key. For tests and make run
# with TLS; never for production.
set -euo pipefail
dir=$1; shift
mkdir -p "$dir"
cd "$dir"
days=3650
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days $days \
    -subj "/CN=sluice-test-ca" -keyout ca.key -out ca.pem 2>/dev/null
issue() { # name cn extfile-content
    local name=$1 cn=$2 ext=$3
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
        -keyout "$name.key" -out "$name.csr" 2>/dev/null
    printf '%s\n' "$ext" > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
        -extfile "$name.ext" -out "$name.pem" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}
issue server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
for c in "$@"; do
    issue "$c" "$c" "extendedKeyUsage=clientAuth"
done
chmod 600 ./*.key
