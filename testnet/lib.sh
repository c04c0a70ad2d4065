# Shared by the testnet scripts: compose, node names, JSON-RPC from the host.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NETWORK=baton-testnet
SUBNET_PREFIX=172.29.231.1 # node N is 172.29.231.1N, as in docker-compose.yml
ALL_NODES=(1 2 3)

die() {
  echo "error: $*" >&2
  exit 1
}

# `docker compose` where the plugin exists, `docker-compose` otherwise.
compose() {
  local project
  # A testnet started some other way (e.g. `docker compose up` in the repo root)
  # carries its own project name; keep to it so down.sh finds what up made.
  project=$(docker inspect -f '{{ index .Config.Labels "com.docker.compose.project" }}' baton-node1 2>/dev/null || echo baton)
  if docker compose version >/dev/null 2>&1; then
    docker compose -p "$project" -f "$ROOT/docker-compose.yml" "$@"
  elif command -v docker-compose >/dev/null 2>&1; then
    docker-compose -p "$project" -f "$ROOT/docker-compose.yml" "$@"
  else
    die "neither 'docker compose' nor 'docker-compose' is installed"
  fi
}

# node1, 1 or baton-node1 -> 1
node_id() {
  local n=${1#baton-}
  n=${n#node}
  [[ $n =~ ^[123]$ ]] || die "unknown node '$1': use node1, node2 or node3"
  echo "$n"
}

container() { echo "baton-node$1"; }

rpc_port() { echo $((8544 + $1)); }

# created, running, exited … or "absent".
container_state() {
  docker inspect -f '{{ .State.Status }}' "$(container "$1")" 2>/dev/null || echo absent
}

# rpc NODE METHOD [PARAMS_JSON] -> the raw JSON answer on stdout; fails if the
# node's published port does not answer.
rpc() {
  curl -sf -m 2 -H 'content-type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":${3:-[]}}" \
    "http://127.0.0.1:$(rpc_port "$1")"
}

# The "result" of a scalar answer: 0x1f, true, "0xab…" (quotes dropped).
result() { sed -n 's/.*"result":"\{0,1\}\([^",}]*\)"\{0,1\}.*/\1/p'; }

# Head block number of NODE as a decimal, or nothing if it does not answer.
head_of() {
  local hex
  hex=$(rpc "$1" eth_blockNumber | result) || return 0
  [ -n "$hex" ] && echo $((hex))
}

# NODE's own view as key=value pairs (id role term leader head applied committed
# hash), asked from inside its container so it works while it is partitioned.
node_view() {
  docker exec "$(container "$1")" /usr/local/bin/baton status --this-node \
    --rpc http://127.0.0.1:8545 2>/dev/null
}

# field KEY <<< "k=v k=v" -> v
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

now_ms() { date +%s%3N; }
