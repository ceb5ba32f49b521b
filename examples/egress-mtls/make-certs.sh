#!/bin/sh
# Makes the certificates of the egress-mtls example with openssl: a private
# CA, the gateway's server certificate (localhost, 127.0.0.1) and one client
# certificate per agent, whose identity is the SPIFFE-style URI in its SAN.
#
#   examples/egress-mtls/make-certs.sh [OUT_DIR] [AGENT...]
#
# OUT_DIR defaults to examples/egress-mtls/certs (where egress-mtls.toml looks);
# AGENT defaults to agent-1 (identity spiffe://enclave/agent-1). Keys are
# P-256, certificates valid 30 days. Existing files are overwritten.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/certs"}
[ $# -gt 0 ] && shift
[ $# -eq 0 ] && set -- agent-1
mkdir -p "$out"
cd "$out"
umask 077

# The CA: signs the gateway's and the agents' certificates; the gateway trusts it as client_ca.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt \
  -subj "/O=Enclave/CN=Enclave egress CA" -days 30 -sha256 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# One certificate signed by the CA: issue NAME SUBJECT EXTENSIONS...
issue() {
  name=$1 subj=$2
  shift 2
  printf '%s\n' "[v3]" "basicConstraints = CA:FALSE" "$@" > "$name.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 8)" -days 30 -sha256 \
    -extfile "$name.ext" -extensions v3 -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

# The gateway's certificate: the names clients dial.
issue server "/O=Enclave/CN=localhost" \
  "keyUsage = critical, digitalSignature" "extendedKeyUsage = serverAuth" "subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1"

# One client certificate per agent; the gateway reads the identity from the SAN URI (tls.identity = "san_uri").
for agent in "$@"; do
  issue "$agent" "/O=Enclave/CN=$agent" \
    "keyUsage = critical, digitalSignature" "extendedKeyUsage = clientAuth" "subjectAltName = URI:spiffe://enclave/$agent"
done
chmod 644 ./*.crt
echo "made in $out: ca.crt (trust it), server.crt/.key (the gateway), $(printf '%s.crt/.key ' "$@")(the agents)"
