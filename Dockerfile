# Multi-stage build: the SPA (wasm) and the server, then a slim runtime image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN rustup target add wasm32-unknown-unknown \
 && cargo install wasm-bindgen-cli --version 0.2.130
COPY . .
RUN bash scripts/build-frontend.sh --force \
 && cargo build --release -p fenpay

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* && useradd --system --home /app fenpay
WORKDIR /app
COPY --from=build /src/target/release/fenpay /usr/local/bin/fenpay
COPY --from=build /src/frontend/dist /app/frontend/dist
USER fenpay
ENV APP_ENV=production BIND_ADDR=0.0.0.0:8080 STATIC_DIR=/app/frontend/dist DATA_DIR=/app/data LOG_FORMAT=json \
    MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0
EXPOSE 8080
HEALTHCHECK CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["fenpay"]
CMD ["serve"]
