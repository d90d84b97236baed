package playlist

import "errors"

// Sentinel errors of Parse; the proxy answers both with 502 and the wrapped reason.
var (
	// ErrNotPlaylist means the body does not start with #EXTM3U (after an optional UTF-8 BOM).
	ErrNotPlaylist = errors.New("not an m3u8 playlist")
	// ErrTooLarge means the body is bigger than Options.MaxSize.
	ErrTooLarge = errors.New("playlist too large")
)
