#!/usr/bin/env bash
# Stops the testnet and removes its containers, network and volumes (the chain).
# The image baton:local stays; remove it with: docker image rm baton:local
set -euo pipefail
source "$(dirname "$0")/lib.sh"

compose down --volumes --remove-orphans --timeout 5
