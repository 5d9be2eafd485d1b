#!/bin/sh
# Makes the mutual-TLS certificates for buildkitd-statefulset.yaml with
# openssl (docs/put.md, "A shared BuildKit fleet"):
#
#   ca.pem, ca-key.pem        the fleet's CA (keep ca-key.pem offline)
#   daemon/{ca,cert,key}.pem  the daemons' certificate, for the Service's
#                             DNS names (the `buildkit-daemon-certs` Secret)
#   client/{ca,cert,key}.pem  a client certificate for the puts
#                             (source.buildkit_tls ca_cert, cert, key)
#
# Usage: create-certs.sh [OUTPUT_DIR] [EXTRA_DNS_NAME...]
# then:  kubectl -n buildkit create secret generic buildkit-daemon-certs \
#          --from-file=OUTPUT_DIR/daemon/
set -eu

out=${1:-.certs}
[ $# -gt 0 ] && shift
mkdir -p "$out/daemon" "$out/client"
cd "$out"
umask 077

names="DNS:buildkitd,DNS:buildkitd.buildkit,DNS:buildkitd.buildkit.svc,DNS:buildkitd.buildkit.svc.cluster.local"
for extra in "$@"; do
    names="$names,DNS:$extra"
done

key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

key ca-key.pem
openssl req -x509 -new -key ca-key.pem -out ca.pem -days 825 \
    -subj "/CN=buildkit fleet CA"

# sign NAME SUBJECT EXTENSIONS
sign() {
    key "$1/key.pem"
    openssl req -new -key "$1/key.pem" -out "$1/req.pem" -subj "$2"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature" "$3" > "$1/ext.cnf"
    openssl x509 -req -in "$1/req.pem" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -days 825 -extfile "$1/ext.cnf" -out "$1/cert.pem"
    rm "$1/req.pem" "$1/ext.cnf"
    cp ca.pem "$1/ca.pem"
}

sign daemon "/CN=buildkitd" "extendedKeyUsage=serverAuth
subjectAltName=$names"
sign client "/CN=oci-build-resource" "extendedKeyUsage=clientAuth"

echo "certificates in $(pwd): daemon/ for the Secret, client/ for source.buildkit_tls"
