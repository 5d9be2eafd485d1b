#!/bin/bash
# The build-time cost of running without privileges
# (docs/running-without-privileged.md; figures in CONTRIBUTING.md
# "Benchmarks"): the same `put` (embedded buildkitd, no buildkit_host) in the
# three modes `out` detects, each on a fresh daemon, median of $RUNS runs:
#   privileged: `out` as root with every privilege (case a)
#   userns:     `out` as uid 0 of `unshare --user --map-users=... --mount
#               --pid --fork --mount-proc` (case b, rootless worker)
#   rootlesskit: `out` as the user oci-build-test, through rootlesskit (case c)
# Each put builds a busybox base plus a ${SIZE_MB} MB / ${FILES}-file context
# (COPY, then RUN steps that read and copy it) and pushes to a plain-HTTP
# docker-registry on 127.0.0.1, a new repository per run. Reported as ratios
# against privileged; the times include the daemon's start and stop.
# Needs: root, docker-registry, skopeo, umoci, busybox-static, python3, bc,
# runc, unshare and setpriv (util-linux), rootlesskit, uidmap, and buildkitd
# ($BUILDKITD, default ../shared/buildkit/buildkitd). Adds subordinate id
# ranges for root and oci-build-test, and that user, when missing.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-50}
FILES=${FILES:-1000}
BIN=${BIN:-target/debug}
BUILDKITD=${BUILDKITD:-$(cd .. && pwd)/shared/buildkit/buildkitd}
USER_C=oci-build-test
[ "$(id -u)" -eq 0 ] || { echo "run as root (it sets up the unprivileged worlds)" >&2; exit 1; }
[ -x "$BUILDKITD" ] || { echo "needs buildkitd: set BUILDKITD" >&2; exit 1; }
case "$BIN" in
target/release) cargo build --release --locked --bin out >&2 ;;
target/debug) cargo build --locked --bin out >&2 ;;
esac
OUT="$PWD/$BIN/out"
. benches/lib.sh
chmod 0755 "$work"

# Subordinate ranges, appended after every range there when missing.
add_range() { # USER
    for f in /etc/subuid /etc/subgid; do
        touch "$f"
        grep -q "^$1:" "$f" && continue
        start=$(awk -F: 'BEGIN { m = 100000 } NF >= 3 && $2 + $3 > m { m = $2 + $3 } END { print m }' "$f")
        echo "$1:$start:65536" >>"$f"
    done
}
id -u "$USER_C" >/dev/null 2>&1 ||
    useradd --no-create-home --user-group --shell /usr/sbin/nologin "$USER_C"
add_range root
add_range "$USER_C"
root_start=$(awk -F: '$1 == "root" { print $2; exit }' /etc/subuid)
root_count=$(awk -F: '$1 == "root" { print $3; exit }' /etc/subuid)
uid_c=$(id -u "$USER_C")
gid_c=$(id -g "$USER_C")

# The base: static busybox with its applet links, pushed with skopeo.
R="127.0.0.1:$port"
rootfs="$work/base"
mkdir -p "$rootfs/bin" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
done
umoci init --layout "$work/layout" >/dev/null
umoci new --image "$work/layout:base" >/dev/null
umoci insert --image "$work/layout:base" "$rootfs" / >/dev/null
umoci config --image "$work/layout:base" --config.env PATH=/bin >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:base" "docker://$R/base:latest"

echo "building a ${SIZE_MB} MB context of $FILES files" >&2
CTX="$work/ctx"
python3 - "$CTX/data" "$FILES" $(( SIZE_MB * 1024 * 1024 / FILES )) <<'PY'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    sub = os.path.join(root, f"d{i % 20}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i}"), "wb") as f:
        f.write(os.urandom(size // 2) + (b"context data " * (size // 26 + 1))[: size - size // 2])
PY
cat >"$CTX/Dockerfile" <<DOCKERFILE
FROM $R/base:latest
COPY data /data
RUN find /data -type f | wc -l > /count && cat /data/d0/* | sha256sum > /d0.sum
RUN cp -a /data /data-copy && chown -R 1:1 /data-copy/d1
RUN rm -rf /data-copy/d2 && echo done > /done
DOCKERFILE

PATH_ENV="$(dirname "$BUILDKITD"):$PATH"
# put MODE REPO: one `out` in MODE, in a fresh working directory.
put() {
    local dir="$work/put-$2"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -a "$CTX" "$dir/ctx"
    local request
    request=$(printf '{"source":{"repository":"%s/%s","insecure":true},"params":{"context":"ctx"}}' "$R" "$2")
    case "$1" in
    privileged)
        echo "$request" | env -i TEST=true PATH="$PATH_ENV" "$OUT" "$dir" ;;
    userns)
        chown -R "$root_start:$root_start" "$dir"
        echo "$request" | env -i TEST=true PATH="$PATH_ENV" unshare --user \
            --map-users="$root_start,0,$root_count" --map-groups="$root_start,0,$root_count" \
            --setuid 0 --setgid 0 --mount --pid --fork --mount-proc -- "$OUT" "$dir" ;;
    rootlesskit)
        chown -R "$uid_c:$gid_c" "$dir"
        echo "$request" | env -i TEST=true PATH="$PATH_ENV" setpriv --reuid="$uid_c" \
            --regid="$gid_c" --clear-groups -- "$OUT" "$dir" ;;
    esac
    rm -rf "$dir"
}
# time_put MODE REPO: seconds; the mode line of out's log goes to $work/MODE.mode
time_put() {
    local t0 t1
    t0=$(date +%s.%N)
    put "$1" "$2" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; exit 1; }
    t1=$(date +%s.%N)
    grep -o 'embedded buildkitd mode: .*' "$work/last.err" | head -n1 >"$work/$1.mode"
    echo "$t1 - $t0" | bc -l
}

modes=(privileged userns rootlesskit)
declare -A times
for i in $(seq "$RUNS"); do
    # Rotate the order run by run so that no mode always goes first.
    for k in 0 1 2; do
        m=${modes[$(( (k + i) % 3 ))]}
        times[$m]+="$(time_put "$m" "$m-$i") "
    done
    echo "run $i: privileged ${times[privileged]}| userns ${times[userns]}| rootlesskit ${times[rootlesskit]}" >&2
done

base=$(printf '%s\n' ${times[privileged]} | median)
echo "context: ${SIZE_MB} MB, $FILES files, busybox base, 3 RUN steps; median of $RUNS runs;" \
    "$(nproc) cores; $(uname -r); $("$BUILDKITD" --version); out from $BIN"
echo
echo "| mode | median | ratio vs privileged | runs (s) |"
echo "|---|---|---|---|"
for m in "${modes[@]}"; do
    med=$(printf '%s\n' ${times[$m]} | median)
    printf '| %s | %.2f s | %.2f | %s|\n' "$m" "$med" "$(echo "$med / $base" | bc -l)" \
        "$(printf '%.1f ' ${times[$m]})"
done
echo
for m in "${modes[@]}"; do
    echo "$m: $(cat "$work/$m.mode")"
done
