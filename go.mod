module github.com/hlsedge/hlsedge

go 1.26

require (
	github.com/VictoriaMetrics/metrics v1.35.1
	github.com/dgraph-io/ristretto/v2 v2.4.2
	github.com/fasthttp/websocket v1.5.12
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/grafov/m3u8 v0.12.1
	github.com/valyala/fasthttp v1.68.0
	gopkg.in/yaml.v3 v3.0.1
)
