#!/usr/bin/env bash
# heal.sh NODE: reconnect a partitioned NODE at its own address; it converges on its own.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: testnet/heal.sh NODE   (node1, node2 or node3)"
n=$(node_id "$1")
docker network connect --ip "$SUBNET_PREFIX$n" "$NETWORK" "$(container "$n")" ||
  die "could not reconnect node$n (is it partitioned? see testnet/status.sh)"
echo "node$n is back on $NETWORK"
