#!/usr/bin/env bash
# Runs ../shared/bench-anchors/nginx-side-by-side.sh with hlsedge as the candidate, all on loopback.
# The anchor starts nginx as the origin on 127.0.0.1:18000; the edge is started here in front of it.
#   scripts/side-by-side.sh [--auth] [anchor args...]
# --auth protects the edge with an HS256 JWT and measures the authorized, per-viewer rewritten playlist.
set -euo pipefail
cd "$(dirname "$0")/.."
anchor=${ANCHOR:-../shared/bench-anchors/nginx-side-by-side.sh}
auth=0
if [ "${1:-}" = "--auth" ]; then auth=1; shift; fi
make -s build
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cfg=$WORK/edge.yaml
cat > "$cfg" <<CONF
listen: 127.0.0.1:18090
admin: {listen: 127.0.0.1:18091}
origins: [{url: "http://127.0.0.1:18000"}]
routes: [{prefix: /play/}]
cache: {segment_ttl: 10m, playlist_ttl: 1s}
log: {level: warn}
CONF
q=""
secret=side-by-side-secret-0123456789abcdef
if [ "$auth" = 1 ]; then
  cat >> "$cfg" <<CONF
auth:
  jwt: {algorithms: [HS256], secret: "$secret"}
  edge: {secret: "$secret-edge"}
CONF
  tok=$(./bin/hlsedge token --kind jwt --secret "$secret" --stream a001 --ttl 24h)
  q="?token=$tok"
else
  echo "auth: {disabled: true}" >> "$cfg"
fi
./bin/hlsedge serve --config "$cfg" 2>"$WORK/edge.log" &
sleep 1
# The anchor writes its origin files on first run; the candidate URLs are checked with curl after nginx starts.
"$anchor" --playlist "http://127.0.0.1:18090/play/a001/index.m3u8$q" --segment "http://127.0.0.1:18090/play/a001/seg003.ts$q" "$@"
