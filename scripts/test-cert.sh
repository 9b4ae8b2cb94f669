#!/usr/bin/env bash
# A CA made for one test run and a server certificate it signs, for PostgreSQL's TLS in
# the tests (scripts/pg-throwaway.sh start-tls, netns-tests/hubs.sh):
#
#   scripts/test-cert.sh DIR CN SAN    writes DIR/ca.pem (0644), DIR/server.crt and
#                                      DIR/server.key (0600), both owned by postgres;
#                                      SAN as openssl takes it (DNS:localhost,IP:127.0.0.1)
#
# The CA's key is removed at once: nothing else is ever signed with it.
set -euo pipefail
dir=${1:?usage: $0 DIR CN SAN}
cn=${2:?usage: $0 DIR CN SAN}
san=${3:?usage: $0 DIR CN SAN}
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mcvpn test CA" \
    -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.crt 2>/dev/null
rm -f server.csr server.ext ca.key ca.srl
chown postgres: server.key server.crt
chmod 0600 server.key
chmod 0644 ca.pem
