package synthorigin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The LL loop is one fragmented MP4 file (media/ll.mp4, made by media/make.sh): ftyp+moov, then moof+mdat
// fragments of 0.2 s. The init segment, every part and every segment are byte ranges of it, so serving them is a
// copy of one slice plus a patch of the fragments' decode times.

// llLoopMedia is the media time one pass of the loop covers: 5 segments of 3 s, whatever the configured cadence.
const llLoopMedia = 5 * 3 * time.Second

// llMedia is the parsed LL loop.
type llMedia struct {
	file   []byte
	init   []byte       // ftyp+moov: the EXT-X-MAP resource
	frags  []llFragment // in play order; llFragments per segment
	codecs string       // CODECS attribute for the master playlist, from the init segment
	// loopTicks is llLoopMedia in each track's timescale, by track index (track ID - 1).
	loopTicks []uint64
}

// llFragment is one moof+mdat pair: file[start:end].
type llFragment struct {
	start, end int
	// tfdts are the baseMediaDecodeTime fields inside the fragment, one per track.
	tfdts []tfdtField
}

// tfdtField locates one 64-bit baseMediaDecodeTime: off is relative to the fragment's start.
type tfdtField struct {
	off   int
	track int // index into llMedia.loopTicks
	base  uint64
}

var errBadMP4 = errors.New("malformed fragmented MP4")

// mp4Box returns the type and the [start, end) of the box at b[i:], and where its payload starts.
func mp4Box(b []byte, i int) (typ string, payload, end int, err error) {
	if len(b)-i < 8 {
		return "", 0, 0, errBadMP4
	}
	size := uint64(binary.BigEndian.Uint32(b[i:]))
	typ = string(b[i+4 : i+8])
	payload = i + 8
	switch size {
	case 0: // to the end of the enclosing range
		size = uint64(len(b) - i)
	case 1: // 64-bit size follows
		if len(b)-i < 16 {
			return "", 0, 0, errBadMP4
		}
		size = binary.BigEndian.Uint64(b[i+8:])
		payload = i + 16
	}
	if size < uint64(payload-i) || size > uint64(len(b)-i) {
		return "", 0, 0, errBadMP4
	}
	return typ, payload, i + int(size), nil
}

// parseLLMedia cuts the loop into its init segment and fragments and checks the layout the origin relies on:
// segments*llFragments fragments, each with a version 1 tfdt per track of the init segment.
func parseLLMedia(file []byte, segments int) (*llMedia, error) {
	m := &llMedia{file: file}
	var timescales []uint32
	for i := 0; i < len(file); {
		typ, payload, end, err := mp4Box(file, i)
		if err != nil {
			return nil, fmt.Errorf("box at %d: %w", i, err)
		}
		switch typ {
		case "moov":
			m.init = file[:end]
			if timescales, err = trackTimescales(file[payload:end]); err != nil {
				return nil, err
			}
		case "moof":
			f := llFragment{start: i}
			if err := parseMoof(file[:end], payload, i, &f); err != nil {
				return nil, fmt.Errorf("fragment %d: %w", len(m.frags), err)
			}
			m.frags = append(m.frags, f)
		case "mdat":
			if n := len(m.frags); n > 0 && m.frags[n-1].end == 0 {
				m.frags[n-1].end = end
			}
		}
		i = end
	}
	if m.init == nil || len(timescales) == 0 {
		return nil, fmt.Errorf("no moov with tracks: %w", errBadMP4)
	}
	if len(m.frags) != segments*llFragments {
		return nil, fmt.Errorf("%d fragments, want %d: %w", len(m.frags), segments*llFragments, errBadMP4)
	}
	for i, f := range m.frags {
		if f.end == 0 || len(f.tfdts) != len(timescales) {
			return nil, fmt.Errorf("fragment %d: no mdat or not one tfdt per track: %w", i, errBadMP4)
		}
		for _, t := range f.tfdts {
			if t.track >= len(timescales) {
				return nil, fmt.Errorf("fragment %d: unknown track: %w", i, errBadMP4)
			}
		}
	}
	for _, ts := range timescales {
		m.loopTicks = append(m.loopTicks, uint64(ts)*uint64(llLoopMedia/time.Second))
	}
	// CODECS: avc1 from the avcC profile, compatibility and level bytes; the audio is AAC-LC.
	i := indexOf(m.init, "avcC")
	if i < 0 || i+8 > len(m.init) {
		return nil, fmt.Errorf("no avcC in the init segment: %w", errBadMP4)
	}
	const hexd = "0123456789abcdef"
	c := []byte("avc1.")
	for _, x := range m.init[i+5 : i+8] {
		c = append(c, hexd[x>>4], hexd[x&0xf])
	}
	if indexOf(m.init, "mp4a") >= 0 {
		c = append(c, ",mp4a.40.2"...)
	}
	m.codecs = string(c)
	return m, nil
}

// trackTimescales returns the mdhd timescale of each trak, indexed by track ID - 1.
func trackTimescales(moov []byte) ([]uint32, error) {
	var out []uint32
	for i := 0; i < len(moov); {
		typ, payload, end, err := mp4Box(moov, i)
		if err != nil {
			return nil, fmt.Errorf("moov: %w", err)
		}
		if typ == "trak" {
			id, ts, err := trakInfo(moov[:end], payload)
			if err != nil {
				return nil, err
			}
			if id == 0 || id > 16 {
				return nil, fmt.Errorf("track id %d: %w", id, errBadMP4)
			}
			for len(out) < int(id) {
				out = append(out, 0)
			}
			out[id-1] = ts
		}
		i = end
	}
	for id, ts := range out {
		if ts == 0 {
			return nil, fmt.Errorf("track %d has no timescale: %w", id+1, errBadMP4)
		}
	}
	return out, nil
}

// trakInfo reads the track ID (tkhd) and the timescale (mdia/mdhd) of one trak.
func trakInfo(b []byte, i int) (id, timescale uint32, err error) {
	for i < len(b) {
		typ, payload, end, err := mp4Box(b, i)
		if err != nil {
			return 0, 0, err
		}
		switch typ {
		case "tkhd", "mdhd":
			// version 0: 4 bytes of version+flags, two 32-bit times; version 1: two 64-bit times.
			off := payload + 4 + 8
			if payload < len(b) && b[payload] == 1 {
				off = payload + 4 + 16
			}
			if off+4 > end {
				return 0, 0, errBadMP4
			}
			if typ == "tkhd" {
				id = binary.BigEndian.Uint32(b[off:])
			} else {
				timescale = binary.BigEndian.Uint32(b[off:])
			}
		case "mdia":
			if _, timescale, err = trakInfo(b[:end], payload); err != nil {
				return 0, 0, err
			}
		}
		i = end
	}
	return id, timescale, nil
}

// parseMoof records the tfdt of every traf of the moof whose payload starts at b[i:]; start is the fragment's.
func parseMoof(b []byte, i, start int, f *llFragment) error {
	for i < len(b) {
		typ, payload, end, err := mp4Box(b, i)
		if err != nil {
			return err
		}
		if typ == "traf" {
			track, tfdt := -1, -1
			for j := payload; j < end; {
				t2, p2, e2, err := mp4Box(b[:end], j)
				if err != nil {
					return err
				}
				switch t2 {
				case "tfhd":
					if e2-p2 < 8 {
						return errBadMP4
					}
					track = int(binary.BigEndian.Uint32(b[p2+4:])) - 1
				case "tfdt":
					// Only version 1 (64 bits) can take the shifted times of a long-running loop.
					if e2-p2 < 12 || b[p2] != 1 {
						return fmt.Errorf("tfdt is not version 1: %w", errBadMP4)
					}
					tfdt = p2 + 4
				}
				j = e2
			}
			if track < 0 || tfdt < 0 {
				return fmt.Errorf("traf without tfhd or tfdt: %w", errBadMP4)
			}
			f.tfdts = append(f.tfdts, tfdtField{off: tfdt - start, track: track, base: binary.BigEndian.Uint64(b[tfdt:])})
		}
		i = end
	}
	return nil
}

// appendFragments appends fragments [from, to) of the loop, shifted in time by loop passes so that the media
// timeline runs on across the loop's wraps as a live encoder's would: no discontinuity, ever.
func (m *llMedia) appendFragments(b []byte, from, to int, loop int64) []byte {
	if from >= to {
		return b
	}
	at := len(b)
	b = append(b, m.file[m.frags[from].start:m.frags[to-1].end]...)
	base := m.frags[from].start
	for _, f := range m.frags[from:to] {
		for _, t := range f.tfdts {
			binary.BigEndian.PutUint64(b[at+f.start-base+t.off:], t.base+uint64(loop)*m.loopTicks[t.track])
		}
	}
	return b
}

// size is the byte length of fragments [from, to).
func (m *llMedia) size(from, to int) int {
	return m.frags[to-1].end - m.frags[from].start
}

func indexOf(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}
