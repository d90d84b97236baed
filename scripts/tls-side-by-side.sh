#!/usr/bin/env bash
# Side-by-side HTTPS throughput, all on loopback: nginx as a TLS auth edge (secure_link + proxy_cache + sub_filter)
# against hlsedge with TLS (HS256 JWT, per-viewer rewritten playlist), on the same certificate, the same HLS files
# behind the same origin, and the same negotiated protocol and cipher (TLS 1.3, TLS_AES_128_GCM_SHA256, ECDSA
# P-256), measured with wrk on the cached segment and the authorized playlist. Prints medians and hlsedge/nginx.
#
#   scripts/tls-side-by-side.sh [--rounds N] [--seconds S] [--conns C] [--threads T] [--only playlist|segment]
#
# The approach is that of shared/bench-anchors/nginx-side-by-side.sh (same files, same nginx auth edge), with TLS
# on both edges. Needs: nginx, wrk, ffmpeg, openssl, curl, go (apt-get install nginx wrk ffmpeg openssl curl).
# Ports PORT_BASE (origin), +43 (nginx TLS), +90 and +91 (hlsedge public, admin) must be free; PORT_BASE defaults
# to 19400, away from the plain side-by-side's 18000s. The machine's cores are shared by wrk and the server under
# test, so compare ratios from one run rather than absolute numbers.
set -euo pipefail
base=${PORT_BASE:-19400}
p_origin=$base p_nginx=$((base + 43)) p_edge=$((base + 90)) p_admin=$((base + 91))
rounds=3 seconds=5 conns=64 threads=2 only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2;; --seconds) seconds=$2; shift 2;; --conns) conns=$2; shift 2;;
    --threads) threads=$2; shift 2;; --only) only=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
for t in nginx wrk ffmpeg openssl curl; do command -v $t >/dev/null || { echo "missing $t (apt-get install -y $t)" >&2; exit 2; }; done
cd "$(dirname "$0")/.."
. scripts/lib/bench-edge.sh
make -s build
WORKDIR=${WORKDIR:-/tmp/hlsedge-tls-bench}
mkdir -p "$WORKDIR"/{origin/play/a001,cache,logs}
if [ ! -f "$WORKDIR/origin/play/a001/seg003.ts" ]; then
  # The anchor's media: 20 s of 720p H.264 at 2 Mb/s and AAC, 2 s segments (about 500 KB each).
  (cd "$WORKDIR/origin/play/a001" && ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc=size=1280x720:rate=25 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t 20 -c:v libx264 -preset veryfast -b:v 2000k -g 50 \
    -keyint_min 50 -sc_threshold 0 -c:a aac -b:a 128k -f hls -hls_time 2 -hls_list_size 0 \
    -hls_segment_filename 'seg%03d.ts' index.m3u8)
fi
# One ECDSA P-256 certificate for both edges.
if [ ! -f "$WORKDIR/cert.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORKDIR/key.pem" \
    -out "$WORKDIR/cert.pem" -days 30 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
fi

cat > "$WORKDIR/nginx.conf" <<CONF
worker_processes 2;
error_log $WORKDIR/logs/error.log warn;
pid $WORKDIR/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nodelay on; keepalive_requests 1000000;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  proxy_cache_path $WORKDIR/cache levels=1:2 keys_zone=hls:10m max_size=1g inactive=10m use_temp_path=off;
  upstream origin { server 127.0.0.1:$p_origin; keepalive 64; }
  server { listen 127.0.0.1:$p_origin; root $WORKDIR/origin; }
  server {
    listen 127.0.0.1:$p_nginx ssl;
    ssl_certificate $WORKDIR/cert.pem; ssl_certificate_key $WORKDIR/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    # The suite Go's server picks on hardware with AES instructions; OpenSSL would follow the client's order
    # (AES-256 first) without this.
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
    ssl_session_cache shared:SSL:10m;
    location ~ ^/play/(?<stream>[^/]+)/ {
      secure_link \$arg_md5,\$arg_expires;
      secure_link_md5 "\$secure_link_expires\$stream secret";
      if (\$secure_link = "") { return 403; }
      if (\$secure_link = "0") { return 410; }
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Accept-Encoding "";
      proxy_cache hls; proxy_cache_key \$uri; proxy_cache_valid 200 10m; proxy_cache_lock on;
      sub_filter_types application/vnd.apple.mpegurl;
      sub_filter '.ts' '.ts?md5=\$arg_md5&expires=\$arg_expires'; sub_filter_once off;
    }
  }
}
CONF
[ -f "$WORKDIR/nginx.pid" ] && kill "$(cat "$WORKDIR/nginx.pid")" 2>/dev/null || true
nginx -c "$WORKDIR/nginx.conf"

secret=tls-side-by-side-secret-0123456789abcdef
bench_edge_config "127.0.0.1:$p_edge" "127.0.0.1:$p_admin" "http://127.0.0.1:$p_origin" "$secret" \
  "tls: {cert_file: \"$WORKDIR/cert.pem\", key_file: \"$WORKDIR/key.pem\"}" > "$WORKDIR/edge.yaml"
./bin/hlsedge serve --config "$WORKDIR/edge.yaml" 2>"$WORKDIR/logs/edge.log" &
edge_pid=$!
trap 'kill $edge_pid 2>/dev/null || true; kill "$(cat "$WORKDIR/nginx.pid")" 2>/dev/null || true' EXIT

exp=$(( $(date +%s) + 86400 ))
md5=$(printf '%s' "${exp}a001 secret" | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =)
tok=$(bench_token "$secret")
declare -A url=(
  [nginx-tls-playlist]="https://127.0.0.1:$p_nginx/play/a001/index.m3u8?md5=$md5&expires=$exp"
  [nginx-tls-segment]="https://127.0.0.1:$p_nginx/play/a001/seg003.ts?md5=$md5&expires=$exp"
  [hlsedge-tls-playlist]="https://127.0.0.1:$p_edge/play/a001/index.m3u8?token=$tok"
  [hlsedge-tls-segment]="https://127.0.0.1:$p_edge/play/a001/seg003.ts?token=$tok"
)
if [ -n "$only" ]; then
  for name in "${!url[@]}"; do [[ $name == *-$only ]] || unset "url[$name]"; done
fi
# Both edges up, authorizing, verified against the one certificate; each first request also fills the caches.
for name in "${!url[@]}"; do
  code=000
  for _ in $(seq 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$WORKDIR/cert.pem" "${url[$name]}" || true)
    [ "$code" = 200 ] && break
    sleep 0.2
  done
  [ "$code" = 200 ] || { echo "$name answered $code for ${url[$name]}" >&2; cat "$WORKDIR/logs/edge.log" >&2; exit 1; }
done
for port in $p_nginx $p_edge; do
  printf 'port %s negotiates: %s\n' $port "$(openssl s_client -connect 127.0.0.1:$port -servername localhost \
    </dev/null 2>/dev/null | awk '/^New,/ {print $2, $5}')"
done
for name in $(printf '%s\n' "${!url[@]}" | sort); do
  printf '%-22s %s bytes\n' "$name" "$(curl -s --cacert "$WORKDIR/cert.pem" "${url[$name]}" | wc -c)"
done

declare -A runs
for r in $(seq "$rounds"); do
  for name in $(printf '%s\n' "${!url[@]}" | sort); do
    out=$(wrk -t"$threads" -c"$conns" -d"${seconds}s" "${url[$name]}")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then echo "$name round $r: $(grep 'Non-2xx\|Socket errors' <<<"$out")" >&2; fi
    runs[$name]="${runs[$name]:-} $rps"
  done
done
declare -A med
for name in $(printf '%s\n' "${!url[@]}" | sort); do
  med[$name]=$(printf '%s\n' ${runs[$name]} | bench_median)
  printf '%-22s median %10.0f req/s   runs:%s\n' "$name" "${med[$name]}" "${runs[$name]}"
done
for kind in playlist segment; do
  h=${med[hlsedge-tls-$kind]:-} n=${med[nginx-tls-$kind]:-}
  [ -n "$h" ] && [ -n "$n" ] || continue
  awk -v h="$h" -v n="$n" -v k=$kind 'BEGIN {printf "ratio %s: hlsedge-tls/nginx-tls %.2f\n", k, h/n}'
done
