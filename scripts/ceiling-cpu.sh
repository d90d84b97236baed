#!/usr/bin/env bash
# CPU per request of the edge against the machine's ceiling, on the authorized, per-viewer rewritten playlist.
#   scripts/ceiling-cpu.sh [ROUNDS] [SECONDS]
# side-by-side.sh compares req/s, which on a 2-core machine moves by 10% or more between rounds because wrk shares
# the machine with the server. This measures what each server process spends per request instead: its CPU ticks
# (/proc/PID/task/*/stat) over one wrk run, the ceiling (../shared/bench-anchors/limit, holding the edge's own
# response bytes) and the edge alternating in ABBA order, and prints the medians of the per-round ratios. The
# origin is the synthetic one with hour-long segments, so the playlist does not change during a run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench-edge.sh
rounds=${1:-3} seconds=${2:-5}
limitsrc=${LIMIT:-../shared/bench-anchors/limit}
for t in wrk curl bc; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 2; }; done
make -s build
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
secret=ceiling-cpu-secret-0123456789abcdef
bench_edge_config 127.0.0.1:18190 127.0.0.1:18191 http://127.0.0.1:18100 "$secret" > "$WORK/edge.yaml"
./bin/hlsedge origin --listen 127.0.0.1:18100 --channels a001 --segment-duration 1h --window 10 2>"$WORK/origin.log" &
./bin/hlsedge serve --config "$WORK/edge.yaml" 2>"$WORK/edge.log" &
edge=$!
tok=$(bench_token "$secret")
pl="http://127.0.0.1:18190/play/a001/index.m3u8?token=$tok"
for i in $(seq 100); do curl -sf -o /dev/null "$pl" && break; sleep 0.1; done
(cd "$limitsrc" && go build -o "$WORK/limit" .)
"$WORK/limit" --playlist "$pl" --segment "$pl" --listen 127.0.0.1:18195 2>"$WORK/limit.log" &
limit=$!
for i in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18195/playlist && break; sleep 0.1; done
ticks() { awk '{s += $14 + $15} END {print s}' /proc/"$1"/task/*/stat; }
hz=$(getconf CLK_TCK)
run() { # pid url: prints "req/s us-per-request"
  local a b r
  a=$(ticks "$1")
  r=$(wrk -t2 -c64 -d"${seconds}s" "$2" | awk '/Requests\/sec/ {print $2}')
  b=$(ticks "$1")
  echo "$r $(echo "($b - $a) * 1000000 / $hz / ($r * $seconds)" | bc -l)"
}
wrk -t2 -c64 -d1s "$pl" >/dev/null
rates="" cpus=""
for r in $(seq "$rounds"); do
  # ABBA: odd rounds measure the ceiling first, even rounds the edge, so that a machine speeding up or slowing down
  # within a round does not favour one side.
  if [ $((r % 2)) = 1 ]; then
    read -r lr lu < <(run $limit http://127.0.0.1:18195/playlist)
    read -r er eu < <(run $edge "$pl")
  else
    read -r er eu < <(run $edge "$pl")
    read -r lr lu < <(run $limit http://127.0.0.1:18195/playlist)
  fi
  rr=$(echo "$er / $lr" | bc -l) cr=$(echo "$eu / $lu" | bc -l)
  rates="$rates $rr" cpus="$cpus $cr"
  printf 'round %d: ceiling %6.0f req/s %5.2f us/req   edge %6.0f req/s %5.2f us/req   edge/ceiling req/s %.2f, CPU per request %.2fx\n' \
    "$r" "$lr" "$lu" "$er" "$eu" "$rr" "$cr"
done
printf 'medians of %d rounds: edge/ceiling req/s %.3f, CPU per request %.3fx\n' "$rounds" \
  "$(printf '%s\n' $rates | bench_median)" "$(printf '%s\n' $cpus | bench_median)"
