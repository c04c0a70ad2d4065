# baton from source, for a machine that can pull public images:
#   docker compose up --build
# With no registry, testnet/up.sh builds the same runtime image (same user, paths,
# entrypoint and ports) from the host's binary instead; see testnet/Dockerfile.local.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --locked --release --bin baton \
 && install -D target/release/baton /out/baton

FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 baton \
 && useradd --system --uid 10001 --gid baton --home-dir /data --no-create-home baton \
 && install -d -o baton -g baton /data
COPY --from=build /out/baton /usr/local/bin/baton
USER baton
WORKDIR /data
VOLUME /data
EXPOSE 8545 30301
ENTRYPOINT ["/usr/local/bin/baton"]
CMD ["--help"]
