#!/usr/bin/env bash
# The standard `make bench` scenario: the synthetic Astra-like origin and the edge (configs/demo.yaml, JWT auth)
# on loopback, then simulated viewers with a JWT minted per viewer over two channels, with origin offload from
# the origin's /stats. Prints the summary; writes bench-report.json and bench-report.html in the current directory.
#   bench/scenario.sh            VIEWERS=1000 DURATION=30s RAMP=5s by default
#   VIEWERS=5000 DURATION=60s CHANNELS=a001 bench/scenario.sh
#   LL=1 bench/scenario.sh       low-latency HLS: the origin serves parts, viewers follow blocking reload, and the
#                                summary adds part delivery latency and origin fetches per part and per playlist version
#   TIERS=1 bench/scenario.sh    two edges behind one shield (tier: {role: shield}) in front of the origin, viewers
#                                dealt over both edges: the origin's counts are the whole fleet's (combines with LL=1)
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${VIEWERS:-1000}
DURATION=${DURATION:-30s}
RAMP=${RAMP:-5s}
CHANNELS=${CHANNELS:-a001,a002}
OUT=${OUT:-.}
LL=${LL:-}
TIERS=${TIERS:-}
ll=()
if [ -n "$LL" ]; then ll=(--ll); fi
BIN=${BIN:-bin/hlsedge}
ORIGIN=127.0.0.1:${ORIGIN_PORT:-18281}
EDGE=127.0.0.1:${EDGE_PORT:-18280}
ADMIN=127.0.0.1:${ADMIN_PORT:-18290}
# With TIERS=1: the second edge and the shield, next to the first edge's ports.
EDGE2=127.0.0.1:${EDGE2_PORT:-18283}
ADMIN2=127.0.0.1:${ADMIN2_PORT:-18293}
SHIELD=127.0.0.1:${SHIELD_PORT:-18282}
SHIELD_ADMIN=127.0.0.1:${SHIELD_ADMIN_PORT:-18292}
# The demo config's JWT secret (configs/demo.yaml): loopback only.
SECRET=demo-jwt-secret-change-me-0123456789abcdef
# A tier key for loopback only; in production use tier.key_file.
TIER_KEY=demo-tier-key-change-me-0123456789abcdef

[ -x "$BIN" ] || go build -o "$BIN" ./cmd/hlsedge
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" origin --listen "$ORIGIN" --channels "$CHANNELS" --variants 2 "${ll[@]}" >"$WORK/origin.log" 2>&1 &
pids+=($!)
listening=("$ORIGIN" "$EDGE")
edges=(--edge "http://$EDGE")
if [ -z "$TIERS" ]; then
  "$BIN" serve --config configs/demo.yaml --listen "$EDGE" --origin "http://$ORIGIN" --admin "$ADMIN" >"$WORK/edge.log" 2>&1 &
  pids+=($!)
else
  # The shield: the demo's auth for viewers who come straight to it, and the tier key for the edges.
  tier_config() { # $1 listen, $2 admin, $3 origins, $4 tier section
    cat <<YAML
listen: $1
admin: {listen: $2}
origins: $3
routes: [{prefix: /play/}]
auth:
  jwt: {algorithms: [HS256], secret: "$SECRET"}
  edge: {secret: "demo-edge-secret-change-me-0123456789abcdef"}
player: {disabled: true}
tier: $4
YAML
  }
  tier_config "$SHIELD" "$SHIELD_ADMIN" "[{url: http://$ORIGIN}]" "{role: shield, key: $TIER_KEY}" >"$WORK/shield.yaml"
  tier_config "$EDGE" "$ADMIN" "[{url: http://$SHIELD, shield: true}]" "{key: $TIER_KEY}" >"$WORK/edge1.yaml"
  tier_config "$EDGE2" "$ADMIN2" "[{url: http://$SHIELD, shield: true}]" "{key: $TIER_KEY}" >"$WORK/edge2.yaml"
  for n in shield edge1 edge2; do
    "$BIN" serve --config "$WORK/$n.yaml" >"$WORK/$n.log" 2>&1 &
    pids+=($!)
  done
  listening+=("$SHIELD" "$EDGE2")
  edges+=(--edge "http://$EDGE2")
fi
# Wait (bounded) until all accept connections; bash's /dev/tcp needs no curl on a fresh machine.
up() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
for i in $(seq 1 50); do
  all=1
  for a in "${listening[@]}"; do up "$a" || all=; done
  if [ -n "$all" ]; then break; fi
  if [ "$i" = 50 ]; then echo "origin or edge did not start:"; cat "$WORK"/*.log; exit 1; fi
  sleep 0.1
done
if [ -z "$TIERS" ]; then
  echo "bench: $VIEWERS viewers for $DURATION (ramp $RAMP) through the edge http://$EDGE in front of the origin http://$ORIGIN"
else
  echo "bench: $VIEWERS viewers for $DURATION (ramp $RAMP) over the edges http://$EDGE and http://$EDGE2, behind the shield http://$SHIELD in front of the origin http://$ORIGIN"
fi
"$BIN" bench hls --url "http://$EDGE/play/{channel}/index.m3u8" "${edges[@]}" --mint jwt --secret "$SECRET" --channels "$CHANNELS" \
  --viewers "$VIEWERS" --ramp "$RAMP" --duration "$DURATION" --variant random "${ll[@]}" \
  --origin-stats "http://$ORIGIN/stats" --json "$OUT/bench-report.json" --report "$OUT/bench-report.html"
echo "reports: $OUT/bench-report.json $OUT/bench-report.html"
