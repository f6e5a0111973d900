#!/bin/sh
# Mints a DEV/TEST root for `ztunnel-ts ca` with OpenSSL: ECDSA P-256, self-signed, 10 years.
# The dev CA also creates one by itself on first start (in CA_DIR); use this script when you
# want the root made ahead of time, e.g. to mount it into a container.
#
#   certs/gen-dev-root.sh [DIR]        (default: certs/dev, which certs/.gitignore keeps out of git)
#   TRUST_DOMAIN=example.org certs/gen-dev-root.sh /tmp/ca
#
# Then: ztunnel-ts ca --ca-dir DIR ...   and clients use CA_ROOT_CA=DIR/root-cert.pem
# Never commit root-key.pem.
set -eu
DIR="${1:-$(dirname "$0")/dev}"
TD="${TRUST_DOMAIN:-cluster.local}"
if [ -e "$DIR/root-cert.pem" ] || [ -e "$DIR/root-key.pem" ]; then
  echo "gen-dev-root: $DIR already holds a root; remove it first to mint a new one" >&2
  exit 1
fi
mkdir -p "$DIR"
chmod 700 "$DIR"
CONF=$(mktemp)
trap 'rm -f "$CONF"' EXIT
cat >"$CONF" <<CONF
[req]
distinguished_name = dn
prompt = no
x509_extensions = root
[dn]
O = $TD
CN = ztunnel-ts dev root CA
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CONF
umask 077
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/root-key.pem"
openssl req -config "$CONF" -x509 -new -key "$DIR/root-key.pem" -sha256 -days 3650 -out "$DIR/root-cert.pem"
chmod 600 "$DIR/root-key.pem"
chmod 644 "$DIR/root-cert.pem"
echo "gen-dev-root: wrote $DIR/root-cert.pem and $DIR/root-key.pem (trust domain $TD)"
