# syntax=docker/dockerfile:1.7
#
# The resource image: one multi-call binary at
# /opt/resource/oci-build-resource with check, in and out as links to it
# (Concourse's contract; the link's name picks the step, see
# src/bin/oci-build-resource.rs), plus buildkitd so that `out` can start its
# embedded daemon when neither source.buildkit_host nor BUILDKIT_HOST is set.
# The embedded daemon needs the resource type to be `privileged: true`, as
# oci-build-task does.
#
#   docker buildx build -t oci-build-resource .
#
# Every base image is pinned by digest, with its tag beside it for people;
# bump a pin with `docker buildx imagetools inspect <tag>`. BuildKit is copied
# from the upstream release image (static binaries): BUILDKIT_VERSION is the
# version the tests run (scripts/test uses ../shared/buildkit, v0.32.2), and
# the last stage fails if the copied buildkitd reports another one.
#
# scripts/image-test assembles this image's last stage without Docker Hub
# (mmdebstrap + image/runtime-packages.txt + the same paths) and runs
# check/out/check/in in it: keep the two in step.

ARG RUST_IMAGE=rust:1.95-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082
ARG BUILDKIT_VERSION=v0.32.2
ARG BUILDKIT_IMAGE=moby/buildkit:v0.32.2@sha256:28a898719c18a33f4e8000685287fa36fd0dd9560c6440227d3a732d79bb41d8
ARG BASE_IMAGE=debian:bookworm-slim@sha256:d5d3f9c23164ea16f31852f95bd5959aad1c5e854332fe00f7b3a20fcc9f635c

# --- build the multi-call binary --------------------------------------------
FROM ${RUST_IMAGE} AS build
# What `--version` prints (build.rs): the BuildKit this image bundles, and
# the commit (the build context has no .git; a release passes GIT_COMMIT).
ARG BUILDKIT_VERSION
ARG GIT_COMMIT=unknown
ENV OCI_BUILD_RESOURCE_BUILDKIT_VERSION=${BUILDKIT_VERSION} \
    OCI_BUILD_RESOURCE_GIT_COMMIT=${GIT_COMMIT}
WORKDIR /src
# build.rs compiles proto/ with protox (pure Rust), so no protoc is needed.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY tests tests
# The workspace's other member (the test harness, a dev-dependency only):
# cargo reads its manifest even for this build.
COPY crates crates
# [profile.release] in Cargo.toml strips it and uses thin LTO.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin oci-build-resource \
 && install -D -m 0755 target/release/oci-build-resource \
      /out/opt/resource/oci-build-resource \
 && for step in check in out; do \
      ln -s oci-build-resource "/out/opt/resource/$step"; \
    done

# --- BuildKit, from the image named by BUILDKIT_IMAGE ------------------------
FROM ${BUILDKIT_IMAGE} AS buildkitd

# --- the resource image ------------------------------------------------------
FROM ${BASE_IMAGE}
ARG BUILDKIT_IMAGE
ARG BUILDKIT_VERSION
# One list for this stage and scripts/image-test; what each package is for is
# said in the file.
COPY image/runtime-packages.txt /tmp/runtime-packages.txt
COPY image/dpkg-excludes /etc/dpkg/dpkg.cfg.d/oci-build-resource-excludes
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      $(grep -v '^#' /tmp/runtime-packages.txt) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
# buildkitd runs containers with `buildkit-runc` (upstream's name for its
# bundled runc, tried before `runc`); the qemu helpers let RUN steps of
# foreign platforms work.
# buildctl is left out: nothing in the image runs it (an ssh:// build host
# needs it on that host, not here).
COPY --from=buildkitd /usr/bin/buildkitd /usr/bin/buildkit-runc /usr/local/bin/
COPY --from=buildkitd /usr/bin/buildkit-qemu-* /usr/local/bin/
COPY --from=build /out/ /
# Smoke test: every copied binary starts here, BuildKit is the pinned
# version, and the three links reach the multi-call binary.
RUN buildkitd --version \
 && buildkitd --version | grep -F " ${BUILDKIT_VERSION} " \
 && buildkit-runc --version \
 && /opt/resource/out --help \
 && /opt/resource/in --version \
 && /opt/resource/check --version
LABEL org.opencontainers.image.title="oci-build-resource" \
      org.opencontainers.image.description="Concourse resource: build with BuildKit on put, fetch on get" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.concourse.oci-build-resource.buildkit-image="${BUILDKIT_IMAGE}"
# The non-root user `build` (uid 1000, subordinate ranges) for case (c) of
# docs/running-without-privileged.md; scripts/image-test runs the same
# script and a put as that user.
COPY image/build-user.sh /tmp/build-user.sh
RUN sh /tmp/build-user.sh && rm /tmp/build-user.sh
# /scratch, when Concourse mounts one, becomes buildkitd's root (see
# src/daemon/root.rs); otherwise it lives under TMPDIR.
ENV TMPDIR=/tmp
