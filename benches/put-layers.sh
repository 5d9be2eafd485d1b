#!/bin/bash
# Side-by-side benchmark of `out` with `params.layers` against the OpsChain
# flow done with skopeo + umoci, on the same base image and site files
# (CONTRIBUTING.md "Benchmarks"). Each run pushes to a new repository of a
# loopback registry that holds the base:
#   ours:    out {layers: {base: <registry>/base:1, add: [{src: site, dest: /usr/share/nginx/html}]}}
#   insert:  skopeo copy docker://base oci: + umoci insert + umoci config + skopeo copy oci: docker://
#   repack:  skopeo copy docker://base oci: + umoci unpack + cp + umoci repack + umoci config + skopeo copy
# skopeo keeps its blob-info cache, so it may mount the base's blobs as we
# do: each tool at its best. Target: ratio <= 0.30.
# Needs: docker-registry, skopeo, umoci, python3, curl, bc.
# BIN=target/debug skips the release build (slower gzip: a harder test).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-200}
LAYERS=${LAYERS:-2}
FILES_PER_LAYER=${FILES_PER_LAYER:-1000}
SITE_MB=${SITE_MB:-20}
SITE_FILES=${SITE_FILES:-500}
BIN=${BIN:-target/release}

if [ "$BIN" = target/release ]; then cargo build --release --bin out >&2; fi
. benches/lib.sh

echo "building a ${SIZE_MB} MB base: $LAYERS layers x $FILES_PER_LAYER files; site ${SITE_MB} MB in $SITE_FILES files" >&2
mkdir -p "$work/src"
make_image "$work/src/layout" base
R="127.0.0.1:$port"
skopeo copy -q --dest-tls-verify=false "oci:$work/src/layout:base" "docker://$R/base:1"
python3 - "$work/src/site" "$SITE_FILES" $(( SITE_MB * 1024 * 1024 / SITE_FILES )) <<'PY'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    sub = os.path.join(root, f"assets{i % 20}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"page{i}.html"), "wb") as f:
        f.write(os.urandom(size // 4) + (b"<p>static page</p>\n" * (size // 19 + 1))[: size - size // 4])
PY
# The peers take owner and mtime from the disk: give them what ours sets.
chown -R 101:101 "$work/src/site"
find "$work/src/site" -exec touch -h -d @1700000000 {} +

OUT="$PWD/$BIN/out"
layers() {
    printf '{"source":{"repository":"%s/%s"},"params":{"layers":{"base":"%s/base:1","source_date_epoch":1700000000,"add":[{"src":"site","dest":"/usr/share/nginx/html","owner":"101:101"}],"config":{"env":{"NGINX_PORT":"8080"},"exposed_ports":[8080]}}}}' \
        "$R" "$1" "$R" | TEST=true "$OUT" "$work/src"
}
SKS="skopeo copy -q --src-tls-verify=false"
SKD="skopeo copy -q --dest-tls-verify=false"
CONFIG="umoci config --image img:t --config.env=NGINX_PORT=8080 --config.exposedports=8080/tcp >/dev/null"
INSERT="$SKS docker://$R/base:1 oci:img:t && umoci insert --image img:t $work/src/site /usr/share/nginx/html >/dev/null && $CONFIG && $SKD oci:img:t docker://$R/i\$RANDOM\$RANDOM:latest"
REPACK="$SKS docker://$R/base:1 oci:img:t && umoci unpack --image img:t bundle >/dev/null && mkdir -p bundle/rootfs/usr/share/nginx/html && cp -a $work/src/site/. bundle/rootfs/usr/share/nginx/html/ && umoci repack --image img:t bundle >/dev/null && $CONFIG && $SKD oci:img:t docker://$R/r\$RANDOM\$RANDOM:latest"

echo "base: ${SIZE_MB} MB, $LAYERS layers; site: ${SITE_MB} MB, $SITE_FILES files; median of $RUNS runs; $(nproc) cores; out: $BIN"
bench insert "layers l\$RANDOM\$RANDOM" "$INSERT"
bench repack "layers m\$RANDOM\$RANDOM" "$REPACK"
