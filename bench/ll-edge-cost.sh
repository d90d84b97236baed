#!/usr/bin/env bash
# What the edge adds to LL-HLS part delivery: the same LL viewers against the synthetic origin directly, then
# through the edge (configs/demo.yaml, JWT auth), alternating PAIRS times, each run on a fresh origin and edge.
# Part delivery is from a part's completion at the origin to its last byte at the viewer (`bench hls --ll`).
# Prints p50 and p99 per run, and per pair the edge's p99 minus the origin's.
#   bench/ll-edge-cost.sh        VIEWERS=100 PAIRS=3 DURATION=20s
# Needs jq (Debian package).
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${VIEWERS:-100}
PAIRS=${PAIRS:-3}
DURATION=${DURATION:-20s}
CHANNELS=${CHANNELS:-a001,a002}
BIN=${BIN:-bin/hlsedge}
ORIGIN=127.0.0.1:${ORIGIN_PORT:-18381}
EDGE=127.0.0.1:${EDGE_PORT:-18380}
ADMIN=127.0.0.1:${ADMIN_PORT:-18390}
SECRET=demo-jwt-secret-change-me-0123456789abcdef # configs/demo.yaml's; loopback only
[ -x "$BIN" ] || make -s build
WORK=$(mktemp -d)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'stop; rm -rf "$WORK"' EXIT
up() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
wait_up() {
  for i in $(seq 1 100); do
    all=1
    for a in "$@"; do up "$a" || all=; done
    if [ -n "$all" ]; then return 0; fi
    sleep 0.1
  done
  echo "did not start:"; cat "$WORK"/*.log; exit 1
}
run() { # $1: direct or edge; prints "p50 p99"
  "$BIN" origin --listen "$ORIGIN" --channels "$CHANNELS" --variants 2 --ll >"$WORK/origin.log" 2>&1 &
  pids+=($!)
  target=$ORIGIN
  if [ "$1" = edge ]; then
    "$BIN" serve --config configs/demo.yaml --listen "$EDGE" --origin "http://$ORIGIN" --admin "$ADMIN" >"$WORK/edge.log" 2>&1 &
    pids+=($!)
    target=$EDGE
    wait_up "$ORIGIN" "$EDGE"
  else
    wait_up "$ORIGIN"
  fi
  "$BIN" bench hls --ll --url "http://$target/play/{channel}/index.m3u8" --mint jwt --secret "$SECRET" \
    --channels "$CHANNELS" --viewers "$VIEWERS" --ramp 2s --duration "$DURATION" --variant random \
    --origin-stats "http://$ORIGIN/stats" --json "$WORK/$1.json" >"$WORK/$1.out" 2>&1
  stop
  jq -r '"\(.partDelivery.p50Ms) \(.partDelivery.p99Ms)"' "$WORK/$1.json"
}
echo "LL part delivery, $VIEWERS viewers, $DURATION per run, origin-direct then through the edge, $PAIRS pairs"
for i in $(seq 1 "$PAIRS"); do
  read -r d50 d99 < <(run direct)
  read -r e50 e99 < <(run edge)
  printf 'pair %d: direct p50 %.1f p99 %.1f ms | edge p50 %.1f p99 %.1f ms | edge adds p50 %+.1f p99 %+.1f ms\n' \
    "$i" "$d50" "$d99" "$e50" "$e99" "$(echo "$e50 - $d50" | bc -l)" "$(echo "$e99 - $d99" | bc -l)"
done
