#!/usr/bin/env bash
# The standard `make bench` scenario: the synthetic Astra-like origin and the edge (configs/demo.yaml, JWT auth)
# on loopback, then simulated viewers with a JWT minted per viewer over two channels, with origin offload from
# the origin's /stats. Prints the summary; writes bench-report.json and bench-report.html in the current directory.
#   bench/scenario.sh            VIEWERS=1000 DURATION=30s RAMP=5s by default
#   VIEWERS=5000 DURATION=60s CHANNELS=a001 bench/scenario.sh
#   LL=1 bench/scenario.sh       low-latency HLS: the origin serves parts, viewers follow blocking reload, and the
#                                summary adds part delivery latency and origin fetches per part and per playlist version
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${VIEWERS:-1000}
DURATION=${DURATION:-30s}
RAMP=${RAMP:-5s}
CHANNELS=${CHANNELS:-a001,a002}
OUT=${OUT:-.}
LL=${LL:-}
ll=()
if [ -n "$LL" ]; then ll=(--ll); fi
BIN=${BIN:-bin/hlsedge}
ORIGIN=127.0.0.1:${ORIGIN_PORT:-18281}
EDGE=127.0.0.1:${EDGE_PORT:-18280}
ADMIN=127.0.0.1:${ADMIN_PORT:-18290}
# The demo config's JWT secret (configs/demo.yaml): loopback only.
SECRET=demo-jwt-secret-change-me-0123456789abcdef

[ -x "$BIN" ] || go build -o "$BIN" ./cmd/hlsedge
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" origin --listen "$ORIGIN" --channels "$CHANNELS" --variants 2 "${ll[@]}" >"$WORK/origin.log" 2>&1 &
pids+=($!)
"$BIN" serve --config configs/demo.yaml --listen "$EDGE" --origin "http://$ORIGIN" --admin "$ADMIN" >"$WORK/edge.log" 2>&1 &
pids+=($!)
# Wait (bounded) until both accept connections; bash's /dev/tcp needs no curl on a fresh machine.
up() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
for i in $(seq 1 50); do
  if up "$ORIGIN" && up "$EDGE"; then break; fi
  if [ "$i" = 50 ]; then echo "origin or edge did not start:"; cat "$WORK/origin.log" "$WORK/edge.log"; exit 1; fi
  sleep 0.1
done
echo "bench: $VIEWERS viewers for $DURATION (ramp $RAMP) through the edge http://$EDGE in front of the origin http://$ORIGIN"
"$BIN" bench hls --url "http://$EDGE/play/{channel}/index.m3u8" --mint jwt --secret "$SECRET" --channels "$CHANNELS" \
  --viewers "$VIEWERS" --ramp "$RAMP" --duration "$DURATION" --variant random "${ll[@]}" \
  --origin-stats "http://$ORIGIN/stats" --json "$OUT/bench-report.json" --report "$OUT/bench-report.html"
echo "reports: $OUT/bench-report.json $OUT/bench-report.html"
