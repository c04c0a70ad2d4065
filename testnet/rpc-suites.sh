#!/usr/bin/env bash
# JSON-RPC and the status page as users meet them, against one fresh 5-node devnet,
# through a follower's HTTP and WebSocket endpoint (one port): first
# testnet/conformance.py (every method of the Ethereum execution API spec, results
# checked against its schemas), then testnet/status_page.py (the follower's
# /status in headless Chromium while the leader is SIGKILLed; a screenshot is
# saved), then testnet/clients.py (a dapp with web3.py: contracts, custom errors,
# old balances, log paging, subscriptions, MetaMask's calls, and another leader
# SIGKILLed mid-stream). Arguments go to conformance.py (--only METHOD, --report;
# with either, the other two are skipped). Leaves nothing behind, pass or fail.
#
#   BATON_BIN=/path/to/baton   the binary to run (default: the debug build)
#   BATON_VENV=/path/to/venv   where the Python dependencies live
#   BATON_ARTIFACTS=/some/dir  where the status page's screenshot goes (default: /tmp)
# Needs Chromium (Debian: apt-get install chromium; .ci/run installs it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bin=${BATON_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/baton/target}/debug/baton}
[ -x "$bin" ] || die "no baton binary at $bin: run 'cargo build --bin baton' or set BATON_BIN"

# PyYAML, jsonschema, websockets and web3.py (for eth_account) in a venv kept
# beside the cargo cache.
venv=${BATON_VENV:-$HOME/.cache/baton/venv}
if ! "$venv/bin/python" -c 'import web3, yaml, jsonschema, websockets' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'web3>=7,<9' pyyaml jsonschema websockets
fi

# Whether this process could listen on 127.0.0.1:PORT now.
port_free() {
  python3 -c 'import socket, sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
# The first base port from $1 (stepping by 10) with $2 free ports after it. Both
# bases lie below Linux's ephemeral range (32768-60999), where outgoing
# connections take ports at random.
free_ports() {
  local base=$1
  while true; do
    local p ok=1
    for ((p = base; p < base + $2; p++)); do port_free "$p" || ok=0; done
    [ $ok = 1 ] && echo "$base" && return
    base=$((base + 10))
    [ "$base" -lt $(($1 + 1000)) ] || die "no $2 free ports from $1 on"
  done
}

# rpc_at PORT METHOD -> the raw JSON answer, or nothing if the node does not answer.
rpc_at() {
  curl -sf -m 2 -H 'content-type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$2\",\"params\":[]}" \
    "http://127.0.0.1:$1" || true
}

nodes=5
rpc_port=$(free_ports 18545 $nodes)
p2p_port=$(free_ports 28301 $nodes)
tmp=$(mktemp -d /tmp/baton-conformance-XXXX)
devnet_pid=

cleanup() {
  local status=$?
  if [ -n "$devnet_pid" ] && kill -0 "$devnet_pid" 2>/dev/null; then
    kill -TERM "$devnet_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$devnet_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$devnet_pid" 2>/dev/null || true
  fi
  if [ $status -ne 0 ]; then
    echo "--- last lines of the devnet's output:"
    tail -n 30 "$tmp/devnet.log" 2>/dev/null || true
    for ((i = 1; i <= nodes; i++)); do
      echo "--- last lines of node$i's log:"
      tail -n 30 "$tmp/data/node$i/node.log" 2>/dev/null || true
    done
  fi
  rm -rf "$tmp"
  exit $status
}
trap cleanup EXIT

"$bin" devnet --nodes $nodes --data-dir "$tmp/data" --rpc-port "$rpc_port" --p2p-port "$p2p_port" \
  >"$tmp/devnet.log" 2>&1 &
devnet_pid=$!

# The port of a node that leads now, or nothing (dead nodes do not answer).
leader_port() {
  local i
  for ((i = 0; i < nodes; i++)); do
    if [ "$(rpc_at $((rpc_port + i)) conductor_leader | result)" = true ]; then
      echo $((rpc_port + i))
      return
    fi
  done
}

# The port of a live follower of a leader that exists, waiting up to 60 s.
follower_port() {
  local leader i
  for _ in $(seq 300); do
    kill -0 "$devnet_pid" 2>/dev/null || die "the devnet exited"
    leader=$(leader_port)
    if [ -n "$leader" ]; then
      for ((i = 0; i < nodes; i++)); do
        local port=$((rpc_port + i))
        [ "$port" != "$leader" ] && [ "$(rpc_at "$port" conductor_leader | result)" = false ] &&
          echo "$port" && return
      done
    fi
    sleep 0.2
  done
  die "no leader with a live follower within 60 s"
}

# Ready: node 1's head has advanced past block 1.
for _ in $(seq 300); do
  kill -0 "$devnet_pid" 2>/dev/null || die "the devnet exited"
  head=$(rpc_at "$rpc_port" eth_blockNumber | result)
  [ -n "$head" ] && [ $((head)) -ge 2 ] && break
  sleep 0.2
done

port=$(follower_port)
echo "rpc suites: testing a follower at port $port"
"$venv/bin/python" "$ROOT/testnet/conformance.py" --http "http://127.0.0.1:$port" --ws "ws://127.0.0.1:$port" "$@"
[ $# -eq 0 ] || exit 0
nodes_urls=$(for ((i = 0; i < nodes; i++)); do printf 'http://127.0.0.1:%s,' $((rpc_port + i)); done)
nodes_urls=${nodes_urls%,}
# Both suites below SIGKILL a leader: five nodes keep a quorum through two kills.
"$venv/bin/python" "$ROOT/testnet/status_page.py" --page "http://127.0.0.1:$port/status" \
  --nodes "$nodes_urls" --screenshot "${BATON_ARTIFACTS:-${TMPDIR:-/tmp}}/baton-status.png"
port=$(follower_port)
# (an `if`, not `&&`: with the last node dead, `&&` would end the loop, and under
# `set -e` the script, with status 1)
live=$(for ((i = 0; i < nodes; i++)); do
  if [ -n "$(rpc_at $((rpc_port + i)) eth_chainId)" ]; then
    printf 'http://127.0.0.1:%s,' $((rpc_port + i))
  fi
done)
"$venv/bin/python" "$ROOT/testnet/clients.py" --http "http://127.0.0.1:$port" --ws "ws://127.0.0.1:$port" \
  --nodes "${live%,}"
