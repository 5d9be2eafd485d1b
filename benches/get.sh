#!/bin/bash
# Side-by-side benchmark of `in` against its peers on the same machine and
# image (CONTRIBUTING.md "Benchmarks"):
#   rootfs:      in {format: rootfs}      vs  skopeo copy docker:// oci: + umoci unpack
#   oci:         in {format: oci}         vs  skopeo copy docker:// docker-archive:
#   oci-layout:  in {format: oci-layout}  vs  skopeo copy --all docker:// oci:
# Targets (get-side issue): rootfs ratio <= 0.70, oci ratio <= 1.00.
#
# It starts a private plain-HTTP docker-registry on 127.0.0.1, builds an image
# of LAYERS layers with FILES_PER_LAYER random files each (about SIZE_MB in
# all) with umoci, pushes it with skopeo, then runs each command RUNS times
# into fresh directories and prints the median wall time and the ratio.
# Needs: docker-registry, skopeo, umoci, python3; `cargo build --release`.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
SIZE_MB=${SIZE_MB:-300}
LAYERS=${LAYERS:-4}
FILES_PER_LAYER=${FILES_PER_LAYER:-1500}
BIN=${BIN:-target/release}

cargo build --release --bin in >&2
. benches/lib.sh

echo "building a ${SIZE_MB} MB image: $LAYERS layers x $FILES_PER_LAYER files" >&2
make_image "$work/layout" bench
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:bench" "docker://127.0.0.1:$port/bench/img:latest"
digest=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/bench/img:latest" | sha256sum | cut -d' ' -f1)
request() {
    printf '{"source":{"repository":"127.0.0.1:%s/bench/img"},"params":{"format":"%s"},"version":{"tag":"latest","digest":"sha256:%s"}}' "$port" "$1" "$digest"
}

IN="$PWD/$BIN/in"
S="skopeo copy -q --src-tls-verify=false docker://127.0.0.1:$port/bench/img:latest"
echo "image: ${SIZE_MB} MB, $LAYERS layers; median of $RUNS runs; $(nproc) cores" 
bench rootfs "request rootfs | TEST=true $IN ." "$S oci:layout:bench && umoci unpack --rootless --image layout:bench bundle"
bench oci "request oci | TEST=true $IN ." "$S docker-archive:image.tar:bench/img:latest"
bench oci-layout "request oci-layout | TEST=true $IN ." "$S oci:layout:bench"
