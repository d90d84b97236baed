package synthorigin

import (
	"embed"
	"fmt"
)

// The committed loop: real MPEG-TS (H.264 + AAC) made once by media/make.sh, so players and ffprobe accept it.
//
//go:embed media/seg0.ts media/seg1.ts media/seg2.ts media/seg3.ts media/seg4.ts
var mediaFS embed.FS

// mediaSegments returns the loop's segments in play order. They are read-only and shared by every origin.
func mediaSegments() ([][]byte, error) {
	segs := make([][]byte, 0, 5)
	for i := range 5 {
		b, err := mediaFS.ReadFile(fmt.Sprintf("media/seg%d.ts", i))
		if err != nil {
			return nil, fmt.Errorf("reading embedded segment %d: %w", i, err)
		}
		segs = append(segs, b)
	}
	return segs, nil
}
