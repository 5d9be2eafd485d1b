# Shared by the benchmark scripts: a private plain-HTTP docker-registry on
# 127.0.0.1 ($port, $work), and side-by-side timing (median of $RUNS runs,
# each in a fresh directory $work/out, ratio ours/peer).
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

# make_image LAYOUT TAG: an image of $LAYERS layers with $FILES_PER_LAYER files
# each, about $SIZE_MB MB in all, half random and half text.
make_image() {
    umoci init --layout "$1" >/dev/null
    umoci new --image "$1:$2" >/dev/null
    local per_file=$(( SIZE_MB * 1024 * 1024 / LAYERS / FILES_PER_LAYER ))
    for l in $(seq "$LAYERS"); do
        local d="$work/layer$l"
        python3 - "$d" "$FILES_PER_LAYER" "$per_file" <<'PY'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    sub = os.path.join(root, "data", f"d{i % 50}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i}"), "wb") as f:
        f.write(os.urandom(size // 2) + (b"layer data " * (size // 22 + 1))[: size - size // 2])
PY
        umoci insert --image "$1:$2" "$d" "/l$l" >/dev/null
        rm -rf "$d"
    done
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

