# syntax=docker/dockerfile:1
#
# The lattice-jwt image: the stock Envoy 1.40 image with envoy-gen, the
# jwt_scopes filter and an entrypoint that renders the configuration from
# environment variables, then runs Envoy as a non-root user. One image for
# the frontend and for sidecars (ENVOY_ROLE=frontend|sidecar); see the
# book, "Container image and docker compose" (docs/src/container.md).
#
#   docker build -t lattice-jwt .                            # the Envoy image
#   docker build --target tools -t lattice-jwt-tools .       # + dev-idp, lattice-sim, echo-app
#                                                            #   (the local stack: docker-compose.yml)
#
# The tags below are pinned to versions; pin them to digests too where you
# build for production (`docker buildx imagetools inspect <image>` shows the
# digest; write FROM <image>@sha256:...). They cannot be looked up where this
# file was written.

# The toolchain the workspace is built and tested with (rustc 1.95.0; the
# workspace's rust-version, 1.89, is the oldest it declares).
ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG ENVOY_IMAGE=envoyproxy/envoy:v1.40.0

# --- builder: envoy-gen, jwt_scopes.wasm (wasm32-wasip1) and the native
#     build of the filter (an Envoy 1.40 dynamic module, JWT_SCOPES_FILTER=native) ---
FROM ${RUST_IMAGE} AS builder
RUN rustup target add wasm32-wasip1 \
 && apt-get update -qq && apt-get install -y -qq --no-install-recommends binaryen \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p envoy-gen \
 && cargo build --release --locked --target wasm32-wasip1 -p jwt-scopes \
 && scripts/wasm-opt.sh target/wasm32-wasip1/release/jwt_scopes.wasm \
 && cargo build --profile native --locked -p jwt-scopes-native

# --- tools-builder: the local stack's programs (compose only) ---
FROM builder AS tools-builder
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p lattice-sim -p dev-idp -p echo-app --bin lattice-sim --bin dev-idp --bin echo-app

# --- runtime: stock Envoy + envoy-gen + the filter + the entrypoint ---
FROM ${ENVOY_IMAGE} AS runtime
COPY --from=builder /src/target/release/envoy-gen /usr/local/bin/envoy-gen
# envoy-gen's default --wasm path, so the rendered config needs no override.
COPY --from=builder /src/target/wasm32-wasip1/release/jwt_scopes.wasm /etc/envoy/jwt_scopes.wasm
# envoy-gen's default --native-module path (used with JWT_SCOPES_FILTER=native).
COPY --from=builder /src/target/native/libjwt_scopes_native.so /usr/local/lib/envoy/libjwt_scopes_native.so
# The image's Envoy is 1.40, the ABI the native build is made for, and the
# whole-path benchmark puts it ahead of the wasm build (bench/PATH.md: less
# CPU per request, ~40 MB less RSS per Envoy, no V8): it is the image's
# default. JWT_SCOPES_FILTER=wasm in a task selects the portable build; like
# every variable, it wins over the spec's `filter_build`.
ENV JWT_SCOPES_FILTER=native
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/lattice-jwt-entrypoint
COPY --chmod=0755 deploy/healthcheck.sh /usr/local/bin/lattice-jwt-healthcheck
# Fails the build, not the first start, if the base image's `envoy` user
# moved or if envoy-gen (built against Debian bookworm's glibc) cannot run
# on this base. The directories are where the local stack
# (docker-compose.yml) mounts the CA bundles its containers share: a new
# named volume takes the owner of the directory it is first mounted on,
# whichever container mounts it first.
RUN test "$(id -u envoy)" = 101 \
 && envoy-gen --version \
 && envoy --version \
 && mkdir -p /var/lib/lattice-jwt/lattice-ca /var/lib/lattice-jwt/idp-ca \
 && chown -R 101 /var/lib/lattice-jwt
# The stock image starts as root and switches users in its own entrypoint,
# which this image replaces: run as `envoy` (uid 101) from the start. A
# numeric USER lets Kubernetes' runAsNonRoot verify it.
USER 101
# The frontend's listener (LISTEN_ADDRESS, default 0.0.0.0:8080). Admin and
# sidecar listeners are on loopback and are not exposed.
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/lattice-jwt-healthcheck"]
ENTRYPOINT ["/usr/local/bin/lattice-jwt-entrypoint"]
CMD []

# --- tools: the runtime image plus the local stack's programs ---
FROM runtime AS tools
COPY --from=tools-builder /src/target/release/lattice-sim /src/target/release/dev-idp /src/target/release/echo-app /usr/local/bin/
RUN lattice-sim --version && dev-idp --version && echo-app --version
HEALTHCHECK NONE
ENTRYPOINT []
CMD ["lattice-sim", "--help"]

# The default target (`docker build .`) is the Envoy image.
FROM runtime
