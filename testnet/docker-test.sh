#!/usr/bin/env bash
# The Docker testnet end to end (run by .ci/run): build the image with no registry,
# start three nodes, then testnet/docker_test.py drives a wallet client through a
# leader kill, a restart, a partition and a heal. Leaves nothing behind, pass or fail.
#
#   BATON_BIN=/path/to/baton   the binary to put in the image (else cargo builds one)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if ! docker info >/dev/null 2>&1; then
  echo "docker-test: skipped: no Docker engine answers ('docker info' failed)"
  exit 0
fi

# Prometheus from Debian's package, for the testnet's prometheus service.
if ! command -v prometheus >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# web3.py, the wallet client, in a venv kept beside the cargo cache.
venv=${BATON_VENV:-$HOME/.cache/baton/venv}
if ! "$venv/bin/python" -c 'import web3' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'web3>=7,<9'
fi

leftovers() {
  docker ps -a --filter name=baton- --format '{{ .Names }}'
  docker network ls --filter name="$NETWORK" --format '{{ .Name }}'
  docker volume ls --filter label=com.docker.compose.project=baton --format '{{ .Name }}'
}
cleanup() {
  local status=$?
  if [ $status -ne 0 ]; then
    for n in "${ALL_NODES[@]}"; do
      echo "--- last log lines of node$n:"
      docker logs --tail 30 "$(container "$n")" 2>&1 || true
    done
  fi
  "$ROOT/testnet/down.sh" >/dev/null 2>&1 || true
  if [ -n "$(leftovers)" ]; then
    echo "docker-test: FAILED to clean up: $(leftovers | tr '\n' ' ')"
    status=1
  fi
  exit $status
}
if [ -n "$(docker ps -a --filter name=baton-node --format '{{ .Names }}')" ]; then
  die "a testnet is already there (testnet/status.sh); this test would remove it, so run testnet/down.sh first"
fi
trap cleanup EXIT
"$ROOT/testnet/up.sh"
# The same binary drives `baton ctl` from the host.
BATON_BIN=${BATON_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/baton} \
  "$venv/bin/python" "$ROOT/testnet/docker_test.py"
echo "docker-test: passed"
