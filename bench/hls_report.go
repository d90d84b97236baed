package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// HLSReport is the result of RunHLS; it is what --json writes.
type HLSReport struct {
	// URL is the entry URL with its query (tokens) removed.
	URL string `json:"url"`
	// Mint is the kind of per-viewer token minted, if any.
	Mint    string `json:"mint,omitempty"`
	Variant string `json:"variant"`
	// LL says the viewers played low-latency HLS.
	LL          bool      `json:"ll,omitempty"`
	Started     time.Time `json:"started"`
	DurationSec float64   `json:"durationSec"`

	Viewers        int   `json:"viewers"`
	ViewersStarted int64 `json:"viewersStarted"`
	ViewersPeak    int64 `json:"viewersPeak"`
	// ViewersDenied counts viewers stopped by a 401, 403 or 410.
	ViewersDenied int64 `json:"viewersDenied"`
	// ViewersStalled counts viewers that stalled at least once.
	ViewersStalled int64 `json:"viewersStalled"`

	Requests         uint64 `json:"requests"`
	PlaylistRequests uint64 `json:"playlistRequests"`
	// BlockingRequests are the LL blocking playlist reloads among PlaylistRequests.
	BlockingRequests uint64  `json:"blockingRequests,omitempty"`
	SegmentRequests  uint64  `json:"segmentRequests"`
	PartRequests     uint64  `json:"partRequests,omitempty"`
	Bytes            uint64  `json:"bytes"`
	ReqPerSec        float64 `json:"reqPerSec"`
	MBPerSec         float64 `json:"mbPerSec"`

	// Startup is the time from a viewer's start to its first segment ready to play.
	Startup  LatencySummary `json:"startup"`
	Playlist LatencySummary `json:"playlist"`
	Segment  LatencySummary `json:"segment"`
	// PartDelivery is, for every LL part a viewer asked for (hinted part or blocking reload) before the origin
	// completed it, the time from that completion (its end on the playlist's EXT-X-PROGRAM-DATE-TIME timeline)
	// to its last byte at the viewer. Parts fetched while catching up are left out: they were complete before.
	PartDelivery LatencySummary `json:"partDelivery"`

	// Statuses counts responses by HTTP status and transport failures by name (timeout, conn_error, ...).
	Statuses map[string]uint64 `json:"statuses"`
	// Errors counts responses >= 400 and transport failures.
	Errors uint64 `json:"errors"`
	// Stalls counts segments that finished after the playback clock needed them, and windows the viewer fell
	// behind; StallSec is the total rebuffering.
	Stalls   uint64  `json:"stalls"`
	StallSec float64 `json:"stallSec"`
	// SkippedSegments were never played: failed, or gone from the window before the viewer got to them. In LL
	// mode they count failed parts too.
	SkippedSegments uint64 `json:"skippedSegments"`

	Origin *OriginOffload `json:"origin,omitempty"`
	// Edges is each edge's share, for a run over several.
	Edges  []EdgeReport `json:"edges,omitempty"`
	Series []HLSSample  `json:"series"`
}

// EdgeReport is one edge's share of a run over several: the viewers dealt to it and their traffic.
type EdgeReport struct {
	Edge     string `json:"edge"`
	Viewers  int64  `json:"viewers"`
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	Bytes    uint64 `json:"bytes"`
}

// OriginOffload is what the origin served during the run, from its /stats before and after.
type OriginOffload struct {
	SegmentFetches        uint64  `json:"segmentFetches"`
	DistinctSegments      int     `json:"distinctSegments"`
	FetchesPerSegment     float64 `json:"fetchesPerSegment"`
	PlaylistFetches       uint64  `json:"playlistFetches"`
	ViewerSegmentRequests uint64  `json:"viewerSegmentRequests"`
	// Offload is the share of the viewers' segment requests the origin did not see.
	Offload float64 `json:"offload"`
	// LL: PartFetches for DistinctParts is the origin's cost of a part (1 behind a coalescing edge);
	// BlockingFetches for PlaylistVersions, distinct (path, _HLS_msn, _HLS_part), that of a playlist version.
	PartFetches               uint64  `json:"partFetches,omitempty"`
	DistinctParts             int     `json:"distinctParts,omitempty"`
	FetchesPerPart            float64 `json:"fetchesPerPart,omitempty"`
	ViewerPartRequests        uint64  `json:"viewerPartRequests,omitempty"`
	BlockingFetches           uint64  `json:"blockingFetches,omitempty"`
	PlaylistVersions          int     `json:"playlistVersions,omitempty"`
	FetchesPerPlaylistVersion float64 `json:"fetchesPerPlaylistVersion,omitempty"`
	// StatsTruncated says the origin's per-URI counters were full, so the distinct counts are lower bounds.
	StatsTruncated bool `json:"statsTruncated,omitempty"`
}

// HLSSample is one interval of the time series.
type HLSSample struct {
	T             float64 `json:"t"`
	Viewers       int64   `json:"viewers"`
	ReqPerSec     float64 `json:"reqPerSec"`
	MBPerSec      float64 `json:"mbPerSec"`
	Errors        uint64  `json:"errors"`
	Stalls        uint64  `json:"stalls"`
	SegmentP50Ms  float64 `json:"segmentP50Ms"`
	SegmentP99Ms  float64 `json:"segmentP99Ms"`
	PlaylistP99Ms float64 `json:"playlistP99Ms"`
	// PartDeliveryP99Ms is the interval's part delivery p99 (LL).
	PartDeliveryP99Ms float64 `json:"partDeliveryP99Ms,omitempty"`
}

// WriteSummary prints the final summary table.
func (r *HLSReport) WriteSummary(w io.Writer) error {
	var b strings.Builder
	mint := ""
	if r.Mint != "" {
		mint = ", a " + r.Mint + " token minted per viewer"
	}
	ll := ""
	if r.LL {
		ll = ", low-latency"
	}
	fmt.Fprintf(&b, "hlsedge bench hls: %s (variant %s%s%s)\n", r.URL, r.Variant, mint, ll)
	fmt.Fprintf(&b, "viewers: %d asked, %d started, %d peak, %d denied, %d stalled at least once; %.1fs\n\n",
		r.Viewers, r.ViewersStarted, r.ViewersPeak, r.ViewersDenied, r.ViewersStalled, r.DurationSec)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tcount\tmean\tp50\tp90\tp99\tmax\t")
	for _, row := range []struct {
		name string
		s    LatencySummary
	}{{"startup", r.Startup}, {"playlist", r.Playlist}, {"segment", r.Segment}, {"part delivery", r.PartDelivery}} {
		s := row.s
		if row.name == "part delivery" && !r.LL {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", row.name, s.Count, fmtMs(s.MeanMs), fmtMs(s.P50Ms), fmtMs(s.P90Ms), fmtMs(s.P99Ms), fmtMs(s.MaxMs))
	}
	tw.Flush()
	if r.LL {
		fmt.Fprintf(&b, "\nthroughput: %.0f req/s, %.1f MB/s (%d requests: %d playlist of which %d blocking, %d part, %d segment; %.1f MB)\n",
			r.ReqPerSec, r.MBPerSec, r.Requests, r.PlaylistRequests, r.BlockingRequests, r.PartRequests, r.SegmentRequests, float64(r.Bytes)/1e6)
	} else {
		fmt.Fprintf(&b, "\nthroughput: %.0f req/s, %.1f MB/s (%d requests: %d playlist, %d segment; %.1f MB)\n",
			r.ReqPerSec, r.MBPerSec, r.Requests, r.PlaylistRequests, r.SegmentRequests, float64(r.Bytes)/1e6)
	}
	fmt.Fprintf(&b, "statuses:  ")
	for _, k := range sortedKeys(r.Statuses) {
		fmt.Fprintf(&b, " %s=%d", k, r.Statuses[k])
	}
	fmt.Fprintf(&b, "\nerrors: %d  stalls: %d (%.1fs rebuffering)  skipped segments: %d\n", r.Errors, r.Stalls, r.StallSec, r.SkippedSegments)
	if o := r.Origin; o != nil {
		trunc := ""
		if o.StatsTruncated {
			trunc = " (origin per-URI stats full: distinct count is a lower bound)"
		}
		fmt.Fprintf(&b, "origin: %d segment fetches for %d distinct segments = %.2f per segment; %d playlist fetches; offload %.2f%% of %d viewer segment requests%s\n",
			o.SegmentFetches, o.DistinctSegments, o.FetchesPerSegment, o.PlaylistFetches, 100*o.Offload, o.ViewerSegmentRequests, trunc)
		if r.LL {
			fmt.Fprintf(&b, "origin LL: %d part fetches for %d distinct parts = %.2f per part (viewers asked %d); %d blocking playlist fetches for %d versions = %.2f per version\n",
				o.PartFetches, o.DistinctParts, o.FetchesPerPart, o.ViewerPartRequests, o.BlockingFetches, o.PlaylistVersions, o.FetchesPerPlaylistVersion)
		}
	}
	for _, e := range r.Edges {
		fmt.Fprintf(&b, "edge %s: %d viewers, %d requests, %d errors, %.1f MB\n", e.Edge, e.Viewers, e.Requests, e.Errors, float64(e.Bytes)/1e6)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtMs(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2fs", v/1000)
	}
	return fmt.Sprintf("%.1fms", v)
}

// WriteJSON writes the report as indented JSON to path.
func (r *HLSReport) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing json report: %w", err)
	}
	return nil
}
