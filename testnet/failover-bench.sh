#!/usr/bin/env bash
# failover-bench.sh [ROUNDS]: kill the leader ROUNDS times (default 10), restarting
# each victim, and report the kill-to-next-block gaps: p50 and max.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

rounds=${1:-10}
gaps=()
for round in $(seq "$rounds"); do
  out=$("$ROOT/testnet/kill-leader.sh")
  echo "round $round: $out"
  gaps+=("$(sed -n 's/.* after \([0-9]*\) ms.*/\1/p' <<<"$out")")
  "$ROOT/testnet/restart.sh" "$(sed -n 's/^killed \(node[0-9]\).*/\1/p' <<<"$out")" >/dev/null
  sleep 3 # let the restarted node catch up before the next kill
done
sorted=$(printf '%s\n' "${gaps[@]}" | sort -n)
p50=$(sed -n "$(((rounds + 1) / 2))p" <<<"$sorted")
echo "failover gap over $rounds container kills: p50 $p50 ms, max $(tail -1 <<<"$sorted") ms, min $(head -1 <<<"$sorted") ms"
