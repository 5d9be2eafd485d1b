#!/bin/bash
# Side-by-side benchmark of `out` in push-only mode (`params.image`) against
# `skopeo copy` on the same machine and image (CONTRIBUTING.md "Benchmarks"):
#   layout:       out {image: layout}     vs  skopeo copy oci:            docker://
#   archive:      out {image: image.tar}  vs  skopeo copy docker-archive: docker://
#   layout-again: both pushing again to a repository that has every blob
# Each first-push run goes to a new repository. Target: ratio <= 1.00.
# Needs: docker-registry, skopeo, umoci, python3, curl, bc. Note: it deletes
# skopeo's blob-info cache (a cache only) before each first-push peer run.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-300}
LAYERS=${LAYERS:-4}
FILES_PER_LAYER=${FILES_PER_LAYER:-1500}
BIN=${BIN:-target/release}

cargo build --release --bin out >&2
. benches/lib.sh

echo "building a ${SIZE_MB} MB image: $LAYERS layers x $FILES_PER_LAYER files" >&2
mkdir -p "$work/src"
make_image "$work/src/layout" bench
skopeo copy -q "oci:$work/src/layout:bench" "docker-archive:$work/src/image.tar:bench/img:latest"

OUT="$PWD/$BIN/out"
R="127.0.0.1:$port"
# put REPO IMAGE: one `out` request pushing $work/src/IMAGE to REPO
put() {
    printf '{"source":{"repository":"%s/%s"},"params":{"image":"%s"}}' "$R" "$1" "$2" |
        TEST=true "$OUT" "$work/src"
}
SK="skopeo copy -q --dest-tls-verify=false"
# skopeo remembers which repositories of a registry hold a blob and then
# mounts it across repositories instead of uploading it; forget that before
# each first push so both sides upload the same bytes.
FORGET="rm -f /var/lib/containers/cache/blob-info-cache-v1.* \$HOME/.local/share/containers/cache/blob-info-cache-v1.*;"
echo "image: ${SIZE_MB} MB, $LAYERS layers; median of $RUNS runs; $(nproc) cores"
bench layout "put o\$RANDOM\$RANDOM layout" "$FORGET $SK oci:$work/src/layout:bench docker://$R/s\$RANDOM\$RANDOM:latest"
bench archive "put a\$RANDOM\$RANDOM image.tar" "$FORGET $SK docker-archive:$work/src/image.tar docker://$R/t\$RANDOM\$RANDOM:latest"
put again-o layout >/dev/null 2>&1
$SK "oci:$work/src/layout:bench" "docker://$R/again-s:latest"
bench layout-again "put again-o layout" "$SK oci:$work/src/layout:bench docker://$R/again-s:latest"
