#!/usr/bin/env bash
# What membership of a fleet costs on the cached request path: one edge in front of the demo origin, one
# viewer's segment fetched over and over by wrk (decision cache, session with a limit, edge cache), first
# without a `redis:` section, then with one, alternating RUNS times. Prints req/s per run and the medians.
#   bench/fleet.sh                 RUNS=3 DURATION=10s CONNS=32 THREADS=2
# Needs wrk and redis-server (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
BIN=${BIN:-bin/hlsedge}
ORIGIN=127.0.0.1:${ORIGIN_PORT:-18381}
EDGE=127.0.0.1:${EDGE_PORT:-18380}
REDIS_PORT=${REDIS_PORT:-18379}
SECRET=bench-jwt-secret-0123456789abcdef0123

[ -x "$BIN" ] || go build -o "$BIN" ./cmd/hlsedge
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
up() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
waitup() { for i in $(seq 1 100); do up "$1" && return 0; sleep 0.05; done; echo "$1 did not start"; exit 1; }

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
pids+=($!)
"$BIN" origin --listen "$ORIGIN" --channels a001 >"$WORK/origin.log" 2>&1 &
pids+=($!)
waitup "127.0.0.1:$REDIS_PORT"
waitup "$ORIGIN"

cat >"$WORK/off.yaml" <<YAML
listen: $EDGE
admin: {listen: ""}
origins: [{url: "http://$ORIGIN"}]
log: {level: warn}
auth:
  jwt: {algorithms: [HS256], secret: $SECRET}
  edge: {secret: bench-edge-secret-0123456789abcdef0123}
  sessions: {max_per_user: 2}
YAML
cp "$WORK/off.yaml" "$WORK/on.yaml"
printf 'node: bench\nredis: {address: "127.0.0.1:%s"}\n' "$REDIS_PORT" >>"$WORK/on.yaml"
TOKEN=$("$BIN" token --kind jwt --secret "$SECRET" --stream a001 --ttl 2h --sub bench-viewer)

# run MODE: start the edge, take the first segment URL of the rewritten playlist, and hammer it.
run() {
  "$BIN" serve --config "$WORK/$1.yaml" >"$WORK/edge-$1.log" 2>&1 &
  local pid=$!
  waitup "$EDGE"
  local seg
  seg=$(curl -fsS "http://$EDGE/play/a001/index.m3u8?token=$TOKEN" | grep -v '^#' | head -1)
  case "$seg" in
    http*) ;;
    /*) seg="http://$EDGE$seg" ;;
    *) seg="http://$EDGE/play/a001/$seg" ;;
  esac
  curl -fsS -o /dev/null "$seg" || { echo "the segment $seg does not play" >&2; kill "$pid"; exit 1; }
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "$seg" >"$WORK/wrk-$1.txt"
  if grep -q 'Non-2xx' "$WORK/wrk-$1.txt"; then echo "refused responses:" >&2; cat "$WORK/wrk-$1.txt" >&2; kill "$pid"; exit 1; fi
  awk '/Requests\/sec/ {print $2}' "$WORK/wrk-$1.txt"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$WORK/off.txt"; : >"$WORK/on.txt"
for i in $(seq 1 "$RUNS"); do
  off=$(run off); echo "run $i without redis: $off req/s"; echo "$off" >>"$WORK/off.txt"
  on=$(run on); echo "run $i with redis:    $on req/s"; echo "$on" >>"$WORK/on.txt"
done
moff=$(median <"$WORK/off.txt"); mon=$(median <"$WORK/on.txt")
awk -v off="$moff" -v on="$mon" 'BEGIN { printf "median: without %.0f req/s, with %.0f req/s: %+.1f%%\n", off, on, (on-off)/off*100 }'
