#!/usr/bin/env bash
# Stops the testnet and removes its containers, network and volumes (the chain).
# The images stay; remove them with: docker image rm baton:local baton-prometheus:local
set -euo pipefail
source "$(dirname "$0")/lib.sh"

compose --profile prometheus down --volumes --remove-orphans --timeout 5
