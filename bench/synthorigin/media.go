package synthorigin

import (
	"embed"
	"fmt"
)

// The committed loop, made once by media/make.sh so players and ffprobe accept it: real MPEG-TS (H.264 + AAC)
// segments, and the same 15 s as one fragmented MP4 for LL mode.
//
//go:embed media/seg0.ts media/seg1.ts media/seg2.ts media/seg3.ts media/seg4.ts media/ll.mp4
var mediaFS embed.FS

// loopSegments is the number of segments in the loop, in both forms.
const loopSegments = 5

// mediaSegments returns the loop's segments in play order. They are read-only and shared by every origin.
func mediaSegments() ([][]byte, error) {
	segs := make([][]byte, 0, loopSegments)
	for i := range loopSegments {
		b, err := mediaFS.ReadFile(fmt.Sprintf("media/seg%d.ts", i))
		if err != nil {
			return nil, fmt.Errorf("reading embedded segment %d: %w", i, err)
		}
		segs = append(segs, b)
	}
	return segs, nil
}

// mediaLL returns the parsed LL loop; its bytes are read-only and shared.
func mediaLL() (*llMedia, error) {
	b, err := mediaFS.ReadFile("media/ll.mp4")
	if err != nil {
		return nil, fmt.Errorf("reading embedded LL media: %w", err)
	}
	m, err := parseLLMedia(b, loopSegments)
	if err != nil {
		return nil, fmt.Errorf("parsing embedded LL media: %w", err)
	}
	return m, nil
}
