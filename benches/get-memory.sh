#!/bin/bash
# Peak memory of `in` for a large image, in every format (CONTRIBUTING.md
# "Benchmarks"). Target (get-side issue): under 100 MB for a 1 GB image.
# Builds an image of SIZE_MB (default 1024) in 2 layers of 16 files with umoci,
# pushes it to a private loopback docker-registry with skopeo, runs the
# release `in` once per format and prints wall time and peak RSS.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=1
SIZE_MB=${SIZE_MB:-1024}
LAYERS=2
FILES_PER_LAYER=16
cargo build --release --bin in >&2
. benches/lib.sh
make_image "$work/layout" big
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:big" "docker://127.0.0.1:$port/big/img:latest"
d=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/big/img:latest" | sha256sum | cut -d' ' -f1)
for f in rootfs oci oci-layout; do
  rm -rf "$work/o"; mkdir "$work/o"
  printf '{"source":{"repository":"127.0.0.1:%s/big/img"},"params":{"format":"%s"},"version":{"tag":"latest","digest":"sha256:%s"}}' "$port" "$f" "$d" > "$work/req.json"
  python3 - "$work" <<'PY'
import resource, subprocess, sys, time
w = sys.argv[1]
t = time.time()
subprocess.run(["target/release/in", w + "/o"], stdin=open(w + "/req.json"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env={"TEST": "true"})
print(f"{time.time()-t:.1f}s peak RSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024:.0f} MB")
PY
  echo "  ^ format $f, $(du -sh "$work/o" | cut -f1) written"
done
