#!/usr/bin/env bash
# Each node's container state and its own view: role, term, leader, head.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

printf '%-6s %-22s %-9s %-10s %5s %7s %7s  %s\n' node rpc state role term leader head "head hash"
for n in "${ALL_NODES[@]}"; do
  state=$(container_state "$n")
  view=""
  [ "$state" = running ] && view=$(node_view "$n" || true)
  if [ -n "$view" ]; then
    printf '%-6s %-22s %-9s %-10s %5s %7s %7s  %s\n' "node$n" "http://127.0.0.1:$(rpc_port "$n")" "$state" \
      "$(field role <<<"$view")" "$(field term <<<"$view")" "$(field leader <<<"$view")" \
      "$(field head <<<"$view")" "$(field hash <<<"$view")"
  else
    printf '%-6s %-22s %-9s %s\n' "node$n" "http://127.0.0.1:$(rpc_port "$n")" "$state" "-"
  fi
done
