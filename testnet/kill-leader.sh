#!/usr/bin/env bash
# Finds the leader (the node whose conductor_leader is true), docker-kills it and
# reports the time from the kill to the next block, and the node that leads then.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

leader=""
for n in "${ALL_NODES[@]}"; do
  if [ "$(rpc "$n" conductor_leader 2>/dev/null | result)" = true ]; then leader=$n; fi
done
[ -n "$leader" ] || die "no node answers conductor_leader with true; see testnet/status.sh"
term=$(node_view "$leader" | field term)

survivors=()
for n in "${ALL_NODES[@]}"; do [ "$n" = "$leader" ] || survivors+=("$n"); done
highest() {
  local max=-1 h
  for n in "$@"; do
    h=$(head_of "$n" || true)
    if [ -n "$h" ] && [ "$h" -gt "$max" ]; then max=$h; fi
  done
  echo "$max"
}

before=$(highest "${ALL_NODES[@]}")
docker kill "$(container "$leader")" >/dev/null
killed_at=$(now_ms)
# A block the leader committed just before it died may still be reaching the others.
reached=$(highest "${survivors[@]}")
[ "$reached" -gt "$before" ] && before=$reached

while :; do
  for n in "${survivors[@]}"; do
    h=$(head_of "$n" || true)
    if [ -n "$h" ] && [ "$h" -gt "$before" ]; then
      gap=$(($(now_ms) - killed_at))
      view=$(node_view "$n")
      echo "killed node$leader (leader, term $term) at head $before;" \
        "block $h after $gap ms; leader now node$(field leader <<<"$view") (term $(field term <<<"$view"))"
      exit 0
    fi
  done
  if [ $(($(now_ms) - killed_at)) -gt 15000 ]; then
    die "killed node$leader at head $before, and no node produced a block within 15 s"
  fi
  sleep 0.01
done
