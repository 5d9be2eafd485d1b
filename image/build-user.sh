#!/bin/sh
# The resource image's non-root user, for running without `privileged: true`
# where the runtime lets the image pick its user
# (docs/running-without-privileged.md, case c): `out` run as `build` starts buildkitd under
# rootlesskit with these subordinate ranges. Concourse runs resources as
# root, so it is unused there. Run by the Dockerfile and, in the assembled
# image tree (chroot), by scripts/image-test.
set -eu
useradd --create-home --uid 1000 --user-group --shell /bin/sh build
for f in /etc/subuid /etc/subgid; do
    grep -q '^build:' "$f" 2>/dev/null || echo 'build:100000:65536' >>"$f"
done
