#!/usr/bin/env bash
# Starts the three-node testnet of docker-compose.yml with no image registry: the
# image baton:local is built FROM scratch out of the host-built baton binary and the
# shared libraries it loads (testnet/Dockerfile.local), then compose starts it.
#
#   BATON_BIN=/path/to/baton   use this binary instead of building one with cargo
set -euo pipefail
source "$(dirname "$0")/lib.sh"

for n in "${ALL_NODES[@]}"; do
  [ "$(container_state "$n")" = running ] && die "the testnet is already up (testnet/status.sh; testnet/down.sh stops it)"
done
for n in "${ALL_NODES[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$(rpc_port "$n")") 2>/dev/null; then
    die "port $(rpc_port "$n") is in use (a 'scripts/devnet' running?); the testnet publishes 8545-8547"
  fi
done

bin=${BATON_BIN:-}
if [ -z "$bin" ]; then
  echo "building baton (cargo build)…"
  (cd "$ROOT" && cargo build --quiet --workspace --bins)
  bin=${CARGO_TARGET_DIR:-$ROOT/target}/debug/baton
fi
[ -x "$bin" ] || die "no baton binary at $bin"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc" "$ctx/data"
cp "$bin" "$ctx/rootfs/usr/local/bin/baton"
# Line tables are half the dev binary's size; symbols stay for backtraces.
if command -v strip >/dev/null; then strip --strip-debug "$ctx/rootfs/usr/local/bin/baton"; fi
# Every library the dynamic loader resolves, and the loader itself, at the same path.
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  while read -r lib; do cp -L --parents "$lib" "$ctx/rootfs/"; done
echo 'baton:x:10001:10001:baton:/data:/usr/sbin/nologin' >"$ctx/rootfs/etc/passwd"
echo 'baton:x:10001:' >"$ctx/rootfs/etc/group"
cp "$ROOT/testnet/Dockerfile.local" "$ctx/Dockerfile"

echo "building image baton:local from local parts…"
started=$(date +%s)
# The legacy builder needs nothing beyond the engine (BuildKit's buildx may be absent).
DOCKER_BUILDKIT=0 docker build --quiet --tag baton:local "$ctx" >/dev/null 2>"$ctx/build.log" ||
  die "docker build failed: $(cat "$ctx/build.log")"
echo "image baton:local: $(docker image inspect -f '{{ .Size }}' baton:local | awk '{ printf "%.1f MB", $1 / 1e6 }'), built in $(($(date +%s) - started)) s"

# Prometheus, scraping every node, from Debian's package in the same way (skipped,
# with a note, on a host without it).
profile=()
monitoring=""
if command -v prometheus >/dev/null; then
  prom=$(mktemp -d)
  trap 'rm -rf "$ctx" "$prom"' EXIT
  mkdir -p "$prom/rootfs/usr/bin" "$prom/rootfs/etc/prometheus" "$prom/rootfs/usr/share/prometheus" "$prom/data"
  cp "$(command -v prometheus)" "$prom/rootfs/usr/bin/prometheus"
  ldd "$(command -v prometheus)" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
    while read -r lib; do cp -L --parents "$lib" "$prom/rootfs/"; done
  [ -d /usr/share/prometheus/web ] && cp -r /usr/share/prometheus/web "$prom/rootfs/usr/share/prometheus/"
  echo 'prometheus:x:10001:10001:prometheus:/prometheus:/usr/sbin/nologin' >"$prom/rootfs/etc/passwd"
  echo 'prometheus:x:10001:' >"$prom/rootfs/etc/group"
  cp "$ROOT/testnet/Dockerfile.prometheus" "$prom/Dockerfile"
  DOCKER_BUILDKIT=0 docker build --quiet --tag baton-prometheus:local "$prom" >/dev/null 2>"$prom/build.log" ||
    die "docker build of baton-prometheus:local failed: $(cat "$prom/build.log")"
  profile=(--profile prometheus)
  monitoring="; Prometheus: http://127.0.0.1:9090"
else
  echo "no prometheus on this host (Debian: apt-get install prometheus): starting without it"
fi

compose "${profile[@]}" up --detach --no-build

echo "waiting for a leader and its first block…"
for _ in $(seq 300); do
  for n in "${ALL_NODES[@]}"; do
    if [ "$(rpc "$n" conductor_leader 2>/dev/null | result)" = true ] && [ "$(head_of "$n")" -ge 1 ]; then
      "$ROOT/testnet/status.sh"
      cat <<INFO

Status page: http://127.0.0.1:8545/status (any node's /status); metrics: /metrics$monitoring
RPC: http://127.0.0.1:8545 (node1), :8546 (node2), :8547 (node3); chain id 7331, currency ETH
Funded key (public knowledge, testnet only): 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
Admin: baton ctl --rpc http://127.0.0.1:8545 --token-file testnet/config/admin.token status|transfer-leader|pause|…
Next: testnet/kill-leader.sh, testnet/status.sh, testnet/down.sh
INFO
      exit 0
    fi
  done
  running=0
  for n in "${ALL_NODES[@]}"; do [ "$(container_state "$n")" = running ] && running=$((running + 1)); done
  [ "$running" -gt 0 ] || die "every node exited; see: docker logs baton-node1"
  sleep 0.2
done
"$ROOT/testnet/status.sh" || true
die "no leader with a block within 60 s; see: docker logs baton-node1"
