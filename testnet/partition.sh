#!/usr/bin/env bash
# partition.sh NODE: cut NODE off the testnet network (it keeps running, alone).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: testnet/partition.sh NODE   (node1, node2 or node3)"
n=$(node_id "$1")
[ "$(container_state "$n")" = running ] || die "node$n is not running"
docker network disconnect "$NETWORK" "$(container "$n")" ||
  die "could not disconnect node$n (already partitioned?)"
echo "node$n is cut off from $NETWORK; heal with: testnet/heal.sh node$n"
