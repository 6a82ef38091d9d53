# Keylease: the broker, the worker and stripe-sim in one small image.
# Build stage: the release binaries.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p keylease-broker -p keylease-worker -p stripe-sim

# Runtime stage: Debian slim, CA certificates for Stripe's API, curl for health checks, no root.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/keylease --create-home keylease
COPY --from=build /src/target/release/keylease-broker /src/target/release/keylease-worker /src/target/release/stripe-sim /usr/local/bin/
USER keylease
WORKDIR /var/lib/keylease
ENV KEYLEASE_LOG_FORMAT=json
CMD ["keylease-worker", "--help"]
