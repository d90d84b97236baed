#!/usr/bin/env bash
# Runs ../shared/bench-anchors/nginx-side-by-side.sh with hlsedge as the candidate, all on loopback.
# The anchor starts nginx as the origin on 127.0.0.1:18000; the edge is started here in front of it.
#   scripts/side-by-side.sh [--auth] [--limit [--same-stack] [--calibrate]] [--runs N] [anchor args...]
# --auth protects the edge with an HS256 JWT and measures the authorized, per-viewer rewritten playlist.
# --limit also runs the anchor's ceiling server (../shared/bench-anchors/limit) holding the edge's own response
# bytes, so the edge is measured against this machine's HTTP capacity in the same run.
# --same-stack builds that ceiling with the edge's fasthttp version instead of the one the anchor pins, so that
# edge and ceiling run the same HTTP server code and only the edge's own work differs.
# --calibrate (with --limit) measures the ceiling against itself: a second copy of it, holding the same bytes,
# takes the edge's place as the candidate. Its candidate/limit ratio shows how far one run moves on this machine
# when nothing differs (an A/A run); it should be read beside the edge's ratios.
# --runs N runs the anchor N times against the same edge (and ceiling), then prints each run's ratios and their
# medians: one run of two identical servers moves by 0.1 or more on a 2-core machine, a median of N far less.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/bench-edge.sh
anchor=${ANCHOR:-../shared/bench-anchors/nginx-side-by-side.sh}
auth=0 limit=0 same=0 calibrate=0 runs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --auth) auth=1; shift;; --limit) limit=1; shift;; --same-stack) same=1; shift;;
    --calibrate) calibrate=1; shift;; --runs) runs=${2:-}; shift $(( $# > 1 ? 2 : 1 ));; *) break;;
  esac
done
case "$runs" in ''|*[!0-9]*|0) echo "side-by-side: --runs takes a positive number, not '$runs'" >&2; exit 2;; esac
make -s build
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
cfg=$WORK/edge.yaml
q="" secret=""
if [ "$auth" = 1 ]; then
  secret=side-by-side-secret-0123456789abcdef
  q="?token=$(bench_token "$secret")"
fi
bench_edge_config 127.0.0.1:18090 127.0.0.1:18091 http://127.0.0.1:18000 "$secret" > "$cfg"
./bin/hlsedge serve --config "$cfg" 2>"$WORK/edge.log" &
sleep 1
pl="http://127.0.0.1:18090/play/a001/index.m3u8$q" seg="http://127.0.0.1:18090/play/a001/seg003.ts$q"
if [ "$limit" = 1 ]; then
  # The ceiling copies the edge's answers on its first request for each, which the anchor's URL check makes.
  if [ "$same" = 1 ]; then
    v=$(go list -m -f '{{.Version}}' github.com/valyala/fasthttp)
    cp -r "$(dirname "$anchor")/limit" "$WORK/limit-src"
    (cd "$WORK/limit-src" && go get "github.com/valyala/fasthttp@$v" >/dev/null && go build -o "$WORK/limit" .) ||
      { echo "side-by-side: cannot build the ceiling with fasthttp $v" >&2; exit 1; }
    echo "ceiling built with fasthttp $v (the edge's)"
  else
    (cd "$(dirname "$anchor")/limit" && go build -o "$WORK/limit" .)
  fi
  "$WORK/limit" --playlist "$pl" --segment "$seg" --listen 127.0.0.1:18095 2>"$WORK/limit.log" &
  set -- --limit http://127.0.0.1:18095 "$@"
  if [ "$calibrate" = 1 ]; then
    "$WORK/limit" --playlist "$pl" --segment "$seg" --listen 127.0.0.1:18096 2>"$WORK/limit-a.log" &
    pl=http://127.0.0.1:18096/playlist seg=http://127.0.0.1:18096/segment
    echo "calibration: the candidate is a second copy of the ceiling (127.0.0.1:18096), not hlsedge"
  fi
elif [ "$calibrate" = 1 ]; then
  echo "side-by-side: --calibrate needs --limit" >&2; exit 2
fi
# The anchor writes its origin files on first run; the candidate URLs are checked with curl after nginx starts.
if [ "$runs" = 1 ]; then
  "$anchor" --playlist "$pl" --segment "$seg" "$@"
  exit
fi
for i in $(seq "$runs"); do
  echo "== run $i of $runs, $(date +%T)"
  "$anchor" --playlist "$pl" --segment "$seg" "$@" | tee "$WORK/run$i.out"
done
# The ratio lines: "ceiling playlist: candidate/limit 0.91" and "ratio playlist: candidate/nginx-auth 8.38 ...".
echo "== $runs runs"
for kind in playlist segment; do
  for ratio in "ceiling $kind: candidate/limit" "ratio $kind: candidate/nginx-auth"; do
    vals=$(for i in $(seq "$runs"); do grep -F "$ratio " "$WORK/run$i.out" | awk -v k="${ratio##* }" '{for (f = 1; f < NF; f++) if ($f == k) print $(f + 1)}'; done)
    [ -n "$vals" ] || continue
    echo "$ratio: runs $(echo $vals) median $(echo "$vals" | bench_median)"
  done
done
