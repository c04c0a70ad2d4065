#!/usr/bin/env bash
# restart.sh NODE: start a killed or stopped node again; it catches up on its own.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: testnet/restart.sh NODE   (node1, node2 or node3)"
n=$(node_id "$1")
case $(container_state "$n") in
  absent) die "node$n has no container; start the testnet with testnet/up.sh" ;;
  running) echo "node$n is already running"; exit 0 ;;
esac
docker start "$(container "$n")" >/dev/null
for _ in $(seq 150); do
  if view=$(node_view "$n") && [ -n "$view" ]; then
    echo "node$n restarted: $view"
    exit 0
  fi
  sleep 0.2
done
die "node$n was started but its RPC did not answer within 30 s; see: docker logs $(container "$n")"
