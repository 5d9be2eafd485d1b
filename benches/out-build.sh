#!/bin/bash
# Side-by-side benchmark of the main path, a `put` that builds and pushes,
# against `buildctl build` on one standalone buildkitd (CONTRIBUTING.md
# "Benchmarks"):
#   cold:  each run on a freshly started daemon with an empty root
#   warm:  a second run of the same build on that same daemon
# both building a ${SIZE_MB} MB / ${FILES}-file context with `FROM scratch` +
# `COPY . /` and pushing it to a plain-HTTP docker-registry on 127.0.0.1.
# Then, with `out` alone:
#   ready: the embedded daemon's start-to-ready time (no buildkit_host; `out`
#          logs "buildkitd ready after N s", measured from spawn to the first
#          answered gRPC probe)
#   cache: `cache: true` put on a fresh daemon, then the same put on another
#          fresh daemon, which imports the registry cache the first exported
# Target: out <= 1.03x buildctl. Needs: docker-registry, python3, curl, bc,
# runc, root, and buildkitd v0.32.2 with buildctl beside it ($BUILDKITD,
# default ../shared/buildkit/buildkitd).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-200}
FILES=${FILES:-5000}
BIN=${BIN:-target/release}
BUILDKITD=${BUILDKITD:-$(cd .. && pwd)/shared/buildkit/buildkitd}
BUILDCTL="$(dirname "$BUILDKITD")/buildctl"
[ -x "$BUILDKITD" ] && [ -x "$BUILDCTL" ] || {
    echo "needs buildkitd and buildctl: set BUILDKITD to a buildkitd with buildctl beside it" >&2
    exit 1
}

if [ "$BIN" = target/release ]; then cargo build --release --locked --bin out >&2; fi
. benches/lib.sh

bk_pid=""
stop_daemon() {
    if [ -n "$bk_pid" ]; then
        kill "$bk_pid" 2>/dev/null || true
        wait "$bk_pid" 2>/dev/null || true
        bk_pid=""
    fi
}
trap 'stop_daemon; cleanup' EXIT

SOCK="$work/bk/buildkitd.sock"
ADDR="unix://$SOCK"
# fresh_daemon: (re)starts buildkitd with an empty root, waits until it answers.
fresh_daemon() {
    stop_daemon
    rm -rf "$work/bk"
    mkdir -p "$work/bk"
    "$BUILDKITD" --root "$work/bk/state" --addr "$ADDR" \
        --oci-worker=true --containerd-worker=false >"$work/bk/log" 2>&1 &
    bk_pid=$!
    for _ in $(seq 300); do
        "$BUILDCTL" --addr "$ADDR" debug workers >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    cat "$work/bk/log" >&2
    exit 1
}

echo "building a ${SIZE_MB} MB context of $FILES files" >&2
CTX="$work/ctx"
python3 - "$CTX" "$FILES" $(( SIZE_MB * 1024 * 1024 / FILES )) <<'PY'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    sub = os.path.join(root, "data", f"d{i % 50}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i}"), "wb") as f:
        f.write(os.urandom(size // 2) + (b"context data " * (size // 26 + 1))[: size - size // 2])
with open(os.path.join(root, "Dockerfile"), "w") as f:
    f.write("FROM scratch\nCOPY . /\n")
PY

OUT="$PWD/$BIN/out"
R="127.0.0.1:$port"
# put REPO [PARAMS] [SOURCE]: one `out` request building $CTX into R/REPO
put() {
    printf '{"source":{"repository":"%s/%s","insecure":true%s},"params":{"context":"ctx"%s}}' \
        "$R" "$1" "${3-,\"buildkit_host\":\"$ADDR\"}" "${2:-}" |
        TEST=true "$OUT" "$work"
}
ctl() { # REPO
    "$BUILDCTL" --addr "$ADDR" build --progress=quiet --frontend dockerfile.v0 \
        --local "context=$CTX" --local "dockerfile=$CTX" \
        --output "type=image,name=$R/$1:latest,push=true,registry.insecure=true"
}
# time_cmd COMMAND: seconds for one run (stdout dropped, stderr kept for errors)
time_cmd() {
    local t0 t1
    t0=$(date +%s.%N)
    eval "$1" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
row() { # NAME OURS... -- PEER...
    local name=$1 mo mp
    shift
    local -a ours=() peer=()
    while [ "$1" != -- ]; do ours+=("$1"); shift; done
    shift
    peer=("$@")
    mo=$(printf '%s\n' "${ours[@]}" | median)
    mp=$(printf '%s\n' "${peer[@]}" | median)
    printf '| %s | %.2f s | %.2f s | %.3f |\n' "$name" "$mo" "$mp" "$(echo "$mo / $mp" | bc -l)"
}

# Alternate the tools run by run so that neither always follows the other.
cold_o=() cold_b=() warm_o=() warm_b=()
for i in $(seq "$RUNS"); do
    fresh_daemon
    cold_o+=("$(time_cmd "put o$i")")
    warm_o+=("$(time_cmd "put o$i")")
    fresh_daemon
    cold_b+=("$(time_cmd "ctl b$i")")
    warm_b+=("$(time_cmd "ctl b$i")")
    echo "run $i: out ${cold_o[-1]}/${warm_o[-1]} s, buildctl ${cold_b[-1]}/${warm_b[-1]} s (cold/warm)" >&2
done
stop_daemon

echo "context: ${SIZE_MB} MB, $FILES files; median of $RUNS runs; $(nproc) cores; $("$BUILDKITD" --version)"
echo
echo "| run | \`out\` | buildctl | ratio |"
echo "|---|---|---|---|"
row cold "${cold_o[@]}" -- "${cold_b[@]}"
row warm "${warm_o[@]}" -- "${warm_b[@]}"
echo

# The embedded daemon: no buildkit_host, buildkitd (and runc) found on PATH.
export PATH="$(dirname "$BUILDKITD"):$PATH"
ready=()
for i in $(seq "$RUNS"); do
    put "e$i" "" "" >/dev/null 2>"$work/embedded.err" ||
        { cat "$work/embedded.err" >&2; exit 1; }
    ready+=("$(sed -n 's/.*buildkitd ready after \([0-9.]*\)s.*/\1/p' "$work/embedded.err" | head -n1)")
done
printf 'embedded daemon start-to-ready (from out'"'"'s log, median of %s): %s s\n' "$RUNS" \
    "$(printf '%s\n' "${ready[@]}" | median)"

# cache: true, each put on a fresh daemon; the second imports the first's cache.
fresh_daemon
first=$(time_cmd "put cached ',\"cache\":true'")
fresh_daemon
second=$(time_cmd "put cached ',\"cache\":true'")
stop_daemon
printf 'cache: true on fresh daemons: first put %.2f s, second put %.2f s\n' "$first" "$second"
