// Package web holds the embeddable player's static files, compiled into the binary so the player works offline.
package web

import (
	"embed"
	"io/fs"
)

// HLSJS is the file name of the hls.js build in FS. It is not committed: `make build` copies it from the version
// pinned in package-lock.json (node_modules/hls.js/dist/hls.min.js). The directory embed below still compiles
// without it, so `go build` and `go vet` work on a fresh clone; the player then serves only browsers with native
// HLS and the proxy tests fail, naming the make target to run.
const HLSJS = "hls.min.js"

//go:embed assets
var assets embed.FS

// FS returns the player's files: embed.html, player.js, player.css and, when built with make, hls.min.js.
func FS() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		// fs.Sub fails only for an invalid directory name, and "assets" is a constant.
		panic(err)
	}
	return sub
}
