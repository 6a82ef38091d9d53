# syntax=docker/dockerfile:1
# Keylease: the broker, the worker and stripe-sim in one small image.
# Build stage: the release binaries. .dockerignore keeps .env, docs and compose files out
# of the context, so editing them rebuilds nothing.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts (BuildKit, the default builder of `docker compose`) keep the crates.io
# download and the compiled dependencies between builds: a source edit recompiles only
# the workspace's crates, not the Temporal SDK and sqlx. The cache is not in the image,
# so the binaries are copied out of it in the same step.
RUN --mount=type=cache,id=keylease-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=keylease-target,target=/src/target \
    cargo build --release --locked -p keylease-broker -p keylease-worker -p stripe-sim \
    && mkdir -p /out \
    && cp target/release/keylease-broker target/release/keylease-worker target/release/stripe-sim /out/

# Runtime stage: Debian slim, CA certificates for Stripe's API, curl for health checks, no root.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/keylease --create-home keylease
COPY --from=build /out/ /usr/local/bin/
USER keylease
WORKDIR /var/lib/keylease
ENV KEYLEASE_LOG_FORMAT=json
CMD ["keylease-worker", "--help"]
