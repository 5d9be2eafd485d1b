#!/bin/bash
# Side-by-side benchmark of `in` against its peers on the same machine and
# image (README "Benchmarks"):
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
work=$(mktemp -d /tmp/oci-bench.XXXXXX)
reg_pid=""
cleanup() {
    if [ -n "$reg_pid" ]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done

echo "building a ${SIZE_MB} MB image: $LAYERS layers x $FILES_PER_LAYER files" >&2
umoci init --layout "$work/layout" >/dev/null
umoci new --image "$work/layout:bench" >/dev/null
per_file=$(( SIZE_MB * 1024 * 1024 / LAYERS / FILES_PER_LAYER ))
for l in $(seq "$LAYERS"); do
    d="$work/layer$l"
    python3 - "$d" "$FILES_PER_LAYER" "$per_file" <<'PY'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    sub = os.path.join(root, "data", f"d{i % 50}")
    os.makedirs(sub, exist_ok=True)
    # half random (incompressible), half text: realistic gzip work
    with open(os.path.join(sub, f"f{i}"), "wb") as f:
        f.write(os.urandom(size // 2) + (b"layer data " * (size // 22 + 1))[: size - size // 2])
PY
    umoci insert --image "$work/layout:bench" "$d" "/l$l" >/dev/null
done
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:bench" "docker://127.0.0.1:$port/bench/img:latest"
digest=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/bench/img:latest" | sha256sum | cut -d' ' -f1)
request() {
    printf '{"source":{"repository":"127.0.0.1:%s/bench/img"},"params":{"format":"%s"},"version":{"tag":"latest","digest":"sha256:%s"}}' "$port" "$1" "$digest"
}

# time_one NAME COMMAND... : one run in a fresh dir, prints seconds
time_one() {
    local out="$work/out"; rm -rf "$out"; mkdir -p "$out"
    local t0 t1
    t0=$(date +%s.%N)
    ( cd "$out" && eval "$1" ) >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
bench() { # NAME OURS PEER
    local ours=() peer=()
    for _ in $(seq "$RUNS"); do
        ours+=("$(time_one "$2")")
        peer+=("$(time_one "$3")")
    done
    local mo mp
    mo=$(printf '%s\n' "${ours[@]}" | median)
    mp=$(printf '%s\n' "${peer[@]}" | median)
    printf '%-11s in: %7.2fs   peer: %7.2fs   ratio: %.2f\n' "$1" "$mo" "$mp" "$(echo "$mo / $mp" | bc -l)"
}

IN="$PWD/$BIN/in"
S="skopeo copy -q --src-tls-verify=false docker://127.0.0.1:$port/bench/img:latest"
echo "image: ${SIZE_MB} MB, $LAYERS layers; median of $RUNS runs; $(nproc) cores" 
bench rootfs "request rootfs | TEST=true $IN ." "$S oci:layout:bench && umoci unpack --rootless --image layout:bench bundle"
bench oci "request oci | TEST=true $IN ." "$S docker-archive:image.tar:bench/img:latest"
bench oci-layout "request oci-layout | TEST=true $IN ." "$S oci:layout:bench"
