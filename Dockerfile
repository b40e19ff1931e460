# Aura in a container: built from this checkout (the dashboard's dist is
# committed, so the build needs no Node), run as a non-root user from a
# slim image, data in the /data volume, healthy once /api/health answers.
#
#   docker build -t aura .
#   docker run -p 8090:8090 -v aura-data:/data aura
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p aura \
    && cp target/release/aura /usr/local/bin/aura

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin aura \
    && mkdir -p /data && chown aura:aura /data
COPY --from=build /usr/local/bin/aura /usr/local/bin/aura
USER aura
VOLUME /data
ENV AURA_DATA_DIR=/data \
    AURA_ADDR=0.0.0.0:8090 \
    AURA_S3_ADDR=0.0.0.0:8091
EXPOSE 8090 8091
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8090/api/health || exit 1
ENTRYPOINT ["aura"]
CMD ["serve", "--sign-in-link", "never"]
