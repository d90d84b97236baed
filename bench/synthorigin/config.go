package synthorigin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hlsedge/hlsedge/internal/clocks"
)

// ErrInvalidConfig is wrapped by every configuration validation error of this package.
var ErrInvalidConfig = errors.New("invalid config")

// URI styles an origin writes into its playlists, as Astra offers them.
const (
	URIsAbsolute = "absolute" // http://<Host header>/play/ch/name: Astra's default, the one an edge must rewrite
	URIsPath     = "path"     // /play/ch/name
	URIsRelative = "relative" // name
)

// maxVariants bounds Variants: the variant index is kept in the low nibble of generated segment names.
const maxVariants = 8

// llFragments is how many fMP4 fragments the committed LL media hold per segment (0.2 s each of a 3 s segment):
// a part is a run of whole fragments, so Parts must divide it.
const llFragments = 15

// Config configures the synthetic Astra-like live origin. Zero values mean the documented defaults.
type Config struct {
	// Channels are the channel ids served under /play/{channel}/ (letters, digits, '-', '_'). Required.
	Channels []string
	// URIs is the style of segment and variant URIs in playlists: absolute (default, like Astra), path or relative.
	URIs string
	// Variants is the number of variants per channel, 1 to 8 (default 1). Above 1, index.m3u8 is a master
	// playlist whose variants are media playlists with generated names; the same segments back every variant.
	Variants int
	// SegmentDuration is the live cadence: the media sequence advances once per SegmentDuration of wall clock.
	// Default 3s, Astra's. The committed media last 3 s whatever this says; shorter values make fast tests.
	SegmentDuration time.Duration
	// WindowSize is the number of segments in each media playlist, 1 to 64. Default 4, Astra's; in LL mode, the
	// segments within CAN-SKIP-UNTIL (six target durations) plus four, so that a delta update skips some (10 at
	// the default 3 s cadence, at most 64). A shorter window answers _HLS_skip with the whole playlist.
	WindowSize int
	// Delay is an artificial latency added before every MPEG-TS segment response, for tests of timeouts and
	// coalescing; Origin.WaitHeld tells when requests are inside it. LL responses follow the clock instead.
	Delay time.Duration
	// MaxStatsURIs bounds the per-URI counters of /stats so a scan cannot grow it without limit (default 10000).
	MaxStatsURIs int
	// Now is the clock the live window follows; nil means time.Now. Tests inject one.
	Now func() time.Time

	// LL turns on low-latency HLS (draft-pantos-hls-rfc8216bis): fMP4 segments behind an EXT-X-MAP init segment,
	// EXT-X-PART parts, an EXT-X-PRELOAD-HINT for the next part, blocking playlist reload (_HLS_msn, _HLS_part),
	// playlist delta updates (_HLS_skip, EXT-X-SKIP), program date-times, and rendition reports between variants. Off (default), the origin serves MPEG-TS as
	// Astra does and ignores delivery directives.
	LL bool
	// Parts is the number of parts per segment in LL mode: 1, 3, 5 or 15 (default 5: 0.6 s parts at the default
	// 3 s cadence). The committed media hold 15 fragments per segment, and a part is 15/Parts of them.
	Parts int
	// SleepUntil waits until Now reaches t, or until ctx is done, and reports whether t came first. Requests held
	// by LL mode (blocking reloads, hinted parts) wait on it. nil means a timer on the wall clock; a test that
	// injects Now in LL mode must inject this too, so that held requests follow its clock.
	SleepUntil func(ctx context.Context, t time.Time) bool
}

// Validate reports the first invalid field, by its name.
func (c *Config) Validate() error {
	if len(c.Channels) == 0 {
		return fmt.Errorf("%w: 'channels' must not be empty", ErrInvalidConfig)
	}
	seen := make(map[string]struct{}, len(c.Channels))
	for i, ch := range c.Channels {
		if !ValidChannelID(ch) {
			return fmt.Errorf("%w: 'channels[%d]' %q must be 1-64 letters, digits, '-' or '_'", ErrInvalidConfig, i, ch)
		}
		if _, dup := seen[ch]; dup {
			return fmt.Errorf("%w: 'channels[%d]' %q is listed twice", ErrInvalidConfig, i, ch)
		}
		seen[ch] = struct{}{}
	}
	switch c.URIs {
	case "", URIsAbsolute, URIsPath, URIsRelative:
	default:
		return fmt.Errorf("%w: 'uris' must be one of absolute, path, relative (got %q)", ErrInvalidConfig, c.URIs)
	}
	if c.Variants < 0 || c.Variants > maxVariants {
		return fmt.Errorf("%w: 'variants' must be between 1 and %d", ErrInvalidConfig, maxVariants)
	}
	if c.SegmentDuration < 0 {
		return fmt.Errorf("%w: 'segmentDuration' must be greater than zero", ErrInvalidConfig)
	}
	if c.SegmentDuration > 0 && c.SegmentDuration < 10*time.Millisecond {
		return fmt.Errorf("%w: 'segmentDuration' must be at least 10ms", ErrInvalidConfig)
	}
	if c.WindowSize < 0 || c.WindowSize > 64 {
		return fmt.Errorf("%w: 'windowSize' must be between 1 and 64", ErrInvalidConfig)
	}
	if c.Delay < 0 {
		return fmt.Errorf("%w: 'delay' must not be negative", ErrInvalidConfig)
	}
	if c.MaxStatsURIs < 0 {
		return fmt.Errorf("%w: 'maxStatsURIs' must not be negative", ErrInvalidConfig)
	}
	if !c.LL {
		if c.Parts != 0 {
			return fmt.Errorf("%w: 'parts' is only used with 'll'", ErrInvalidConfig)
		}
		return nil
	}
	if c.Parts < 0 || c.Parts > 0 && llFragments%c.Parts != 0 {
		return fmt.Errorf("%w: 'parts' must be 1, 3, 5 or 15", ErrInvalidConfig)
	}
	// Part durations are written with millisecond precision, so that their sum is the segment's exactly.
	parts := time.Duration(defaultParts)
	if c.Parts > 0 {
		parts = time.Duration(c.Parts)
	}
	if sd := c.SegmentDuration; sd > 0 && sd%(parts*time.Millisecond) != 0 {
		return fmt.Errorf("%w: 'segmentDuration' must split into %d parts of whole milliseconds in LL mode", ErrInvalidConfig, parts)
	}
	if c.Now != nil && c.SleepUntil == nil {
		return fmt.Errorf("%w: 'sleepUntil' is required with 'now' in LL mode: held requests must follow the same clock", ErrInvalidConfig)
	}
	return nil
}

// defaultParts is Parts' default: 0.6 s parts of a 3 s segment, well inside the spec's advice for part targets.
const defaultParts = 5

// withDefaults returns a copy with zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.URIs == "" {
		c.URIs = URIsAbsolute
	}
	if c.Variants == 0 {
		c.Variants = 1
	}
	if c.SegmentDuration == 0 {
		c.SegmentDuration = 3 * time.Second
	}
	if c.WindowSize == 0 {
		c.WindowSize = 4
		if c.LL {
			c.WindowSize = min(int(skipKeep(c.SegmentDuration))+4, 64)
		}
	}
	if c.MaxStatsURIs == 0 {
		c.MaxStatsURIs = 10000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SleepUntil == nil {
		// Only LL mode sleeps, and there Validate made sure that Now is the wall clock too.
		c.SleepUntil = clocks.Wall{}.SleepUntil
	}
	if c.LL && c.Parts == 0 {
		c.Parts = defaultParts
	}
	c.Channels = append([]string(nil), c.Channels...)
	return c
}

// ValidChannelID reports whether s can name a channel: 1 to 64 letters, digits, '-' or '_', so that it is one
// plain path segment wherever it is put.
func ValidChannelID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}
