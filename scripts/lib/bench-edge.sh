# Sourced by the measurement scripts: the edge they all measure, so that they measure the same one.
#
# bench_edge_config LISTEN ADMIN ORIGIN_URL SECRET [EXTRA_YAML]
#   prints the edge's config: one /play/ route to ORIGIN_URL, segments cached 10 minutes, playlists 1 second,
#   warnings only in the log; with SECRET, HS256 JWTs under SECRET and edge child tokens under SECRET-edge,
#   without it authorization disabled. EXTRA_YAML (a tls: line, say) is added as it is.
bench_edge_config() {
  local listen=$1 admin=$2 origin=$3 secret=$4 extra=${5:-}
  cat <<CONF
listen: $listen
admin: {listen: $admin}
origins: [{url: "$origin"}]
routes: [{prefix: /play/}]
cache: {segment_ttl: 10m, playlist_ttl: 1s}
log: {level: warn}
CONF
  if [ -n "$secret" ]; then
    cat <<CONF
auth:
  jwt: {algorithms: [HS256], secret: "$secret"}
  edge: {secret: "$secret-edge"}
CONF
  else
    echo "auth: {disabled: true}"
  fi
  if [ -n "$extra" ]; then echo "$extra"; fi
}

# bench_token SECRET: a day-long JWT for channel a001 under SECRET, as the viewer of bench_edge_config carries.
bench_token() { ./bin/hlsedge token --kind jwt --secret "$1" --stream a001 --ttl 24h; }

# bench_median: the median of the numbers on stdin, one per line (the mean of the middle two for an even count).
bench_median() {
  sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
