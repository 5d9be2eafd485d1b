# syntax=docker/dockerfile:1.7
#
# The resource image: check, in and out at /opt/resource (Concourse's
# contract), plus buildkitd so that `out` can start its embedded daemon when
# neither source.buildkit_host nor BUILDKIT_HOST is set. The embedded daemon
# needs the resource type to be `privileged: true`, as oci-build-task does.
#
#   docker buildx build -t oci-build-resource \
#     --build-arg BUILDKIT_IMAGE=moby/buildkit:v0.23.2 .
#
# BuildKit is copied from the upstream release image (static binaries), so
# its version is chosen here and nothing of it is built from source.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG BUILDKIT_IMAGE=moby/buildkit:v0.23.2
ARG BASE_IMAGE=debian:bookworm-slim

# --- build the three binaries ---------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# build.rs compiles proto/ with protox (pure Rust), so no protoc is needed.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY src src
COPY tests tests
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bins \
 && install -D -m 0755 -t /out/opt/resource \
      target/release/check target/release/in target/release/out

# --- BuildKit, from the image named by BUILDKIT_IMAGE ----------------------
FROM ${BUILDKIT_IMAGE} AS buildkitd

# --- the resource image ----------------------------------------------------
FROM ${BASE_IMAGE}
ARG BUILDKIT_IMAGE
# ca-certificates: registry TLS for us and for buildkitd; git and
# openssh-client: git build contexts and `ssh` forwarding; pigz: buildkitd's
# parallel gzip when it finds it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git openssh-client pigz \
 && rm -rf /var/lib/apt/lists/*
# buildkitd runs containers with `buildkit-runc` (upstream's name for its
# bundled runc); the qemu helpers let RUN steps of foreign platforms work.
COPY --from=buildkitd /usr/bin/buildkitd /usr/bin/buildctl /usr/bin/buildkit-runc /usr/local/bin/
COPY --from=buildkitd /usr/bin/buildkit-qemu-* /usr/local/bin/
COPY --from=build /out/ /
LABEL org.opencontainers.image.title="oci-build-resource" \
      org.opencontainers.image.description="Concourse resource: build with BuildKit on put, fetch on get" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.concourse.oci-build-resource.buildkit-image="${BUILDKIT_IMAGE}"
# /scratch, when Concourse mounts one, becomes buildkitd's root (see
# src/put/embedded.rs); otherwise it lives under TMPDIR.
ENV TMPDIR=/tmp
