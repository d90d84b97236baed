package bench

import (
	"fmt"
	"html"
	"math"
	"os"
	"strconv"
	"strings"
)

// The HTML report is one self-contained, well-formed XHTML page: inline CSS and plain SVG charts, no script and
// no network, so it opens anywhere and can be checked by an XML parser.

type chartSeries struct {
	name, color string
	ys          []float64
}

const (
	chartW, chartH                     = 760, 260
	padL, padR, padT, padB             = 64, 16, 34, 40
	plotW, plotH                       = chartW - padL - padR, chartH - padT - padB
	colorA, colorB, colorC, colorError = "#1f77b4", "#d62728", "#2ca02c", "#9467bd"
)

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for axis maxima.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func lineChart(title, unit string, xs []float64, series []chartSeries) string {
	var b strings.Builder
	xMax, yMax := 1.0, 0.0
	for _, x := range xs {
		xMax = max(xMax, x)
	}
	for _, s := range series {
		for _, y := range s.ys {
			yMax = max(yMax, y)
		}
	}
	yMax = niceCeil(yMax)
	px := func(x float64) float64 { return padL + x/xMax*plotW }
	py := func(y float64) float64 { return padT + plotH - y/yMax*plotH }
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="20" class="t">%s</text>`, padL, html.EscapeString(title+" ("+unit+")"))
	for i := 0; i <= 4; i++ {
		y := yMax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="g"/>`, padL, py(y), padL+plotW, py(y))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="yl">%s</text>`, padL-6, py(y)+4, fmtNum(y))
	}
	for i := 0; i <= 5; i++ {
		x := xMax * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="xl">%ss</text>`, px(x), padT+plotH+18, fmtNum(x))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" class="f"/>`, padL, padT, plotW, plotH)
	for si, s := range series {
		var pts strings.Builder
		for i, y := range s.ys {
			if i < len(xs) {
				fmt.Fprintf(&pts, "%.1f,%.1f ", px(xs[i]), py(y))
			}
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8"/>`, strings.TrimSpace(pts.String()), s.color)
		lx := padL + 10 + si*170
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="4" fill="%s"/>`, lx, chartH-10, s.color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="lg">%s</text>`, lx+16, chartH-5, html.EscapeString(s.name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func barChart(title string, labels []string, values []uint64) string {
	var b strings.Builder
	rowH := 24
	h := padT + rowH*max(len(labels), 1) + 10
	vMax := 1.0
	for _, v := range values {
		vMax = max(vMax, float64(v))
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, chartW, h, chartW, h)
	fmt.Fprintf(&b, `<title>%s</title><text x="%d" y="20" class="t">%s</text>`, html.EscapeString(title), padL, html.EscapeString(title))
	const labelW = 110
	barMax := float64(chartW - labelW - 120)
	for i, l := range labels {
		y := padT + i*rowH
		color := colorC
		if n, err := strconv.Atoi(l); err != nil || n >= 400 {
			color = colorB
		}
		w := float64(values[i]) / vMax * barMax
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="yl">%s</text>`, labelW-8, y+15, html.EscapeString(l))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, labelW, y+3, max(w, 1), rowH-8, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="lg">%d</text>`, float64(labelW)+max(w, 1)+6, y+15, values[i])
	}
	b.WriteString(`</svg>`)
	return b.String()
}

const reportCSS = `body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:820px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}
svg{display:block;margin:8px 0}svg .t{font-size:13px;font-weight:600}
svg .g{stroke:#e5e5e5}svg .f{fill:none;stroke:#999}
svg .yl{font-size:11px;text-anchor:end}svg .xl{font-size:11px;text-anchor:middle}svg .lg{font-size:11px}
.note{color:#666}`

// HTML renders the self-contained report page.
func (r *HLSReport) HTML() string {
	e := html.EscapeString
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta charset=\"utf-8\"/>")
	b.WriteString("<title>hlsedge bench hls report</title><style>" + reportCSS + "</style></head><body>")
	fmt.Fprintf(&b, "<h1>hlsedge bench hls</h1><p>%s, variant %s", e(r.URL), e(r.Variant))
	if r.Mint != "" {
		fmt.Fprintf(&b, ", a %s token minted per viewer", e(r.Mint))
	}
	if r.LL {
		b.WriteString(", low-latency")
	}
	fmt.Fprintf(&b, "<br/>started %s, ran %.1f s</p>", e(r.Started.Format("2006-01-02 15:04:05 MST")), r.DurationSec)

	b.WriteString("<h2>Summary</h2><table>")
	row := func(k, v string) { fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td></tr>", e(k), e(v)) }
	row("viewers asked / started / peak", fmt.Sprintf("%d / %d / %d", r.Viewers, r.ViewersStarted, r.ViewersPeak))
	row("viewers denied (401/403/410)", strconv.FormatInt(r.ViewersDenied, 10))
	row("viewers that stalled", strconv.FormatInt(r.ViewersStalled, 10))
	row("stalls / rebuffering", fmt.Sprintf("%d / %.1f s", r.Stalls, r.StallSec))
	row("skipped segments", strconv.FormatUint(r.SkippedSegments, 10))
	row("requests (playlist / segment)", fmt.Sprintf("%d (%d / %d)", r.Requests, r.PlaylistRequests, r.SegmentRequests))
	if r.LL {
		row("LL requests (blocking playlist / part)", fmt.Sprintf("%d / %d", r.BlockingRequests, r.PartRequests))
	}
	row("throughput", fmt.Sprintf("%.0f req/s, %.1f MB/s", r.ReqPerSec, r.MBPerSec))
	row("errors", strconv.FormatUint(r.Errors, 10))
	if o := r.Origin; o != nil {
		row("origin segment fetches / distinct segments", fmt.Sprintf("%d / %d = %.2f per segment", o.SegmentFetches, o.DistinctSegments, o.FetchesPerSegment))
		row("origin offload", fmt.Sprintf("%.2f%% of %d viewer segment requests", 100*o.Offload, o.ViewerSegmentRequests))
		if r.LL {
			row("origin part fetches / distinct parts", fmt.Sprintf("%d / %d = %.2f per part", o.PartFetches, o.DistinctParts, o.FetchesPerPart))
			row("origin blocking playlist fetches / versions", fmt.Sprintf("%d / %d = %.2f per version", o.BlockingFetches, o.PlaylistVersions, o.FetchesPerPlaylistVersion))
		}
	}
	for _, ed := range r.Edges {
		row("edge "+ed.Edge, fmt.Sprintf("%d viewers, %d requests, %d errors, %.1f MB", ed.Viewers, ed.Requests, ed.Errors, float64(ed.Bytes)/1e6))
	}
	b.WriteString("</table><h2>Latency</h2><table><tr><th></th><th>count</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>")
	for _, l := range []struct {
		n string
		s LatencySummary
	}{{"startup", r.Startup}, {"playlist", r.Playlist}, {"segment", r.Segment}, {"part delivery", r.PartDelivery}} {
		if l.n == "part delivery" && !r.LL {
			continue
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>",
			l.n, l.s.Count, fmtMs(l.s.MeanMs), fmtMs(l.s.P50Ms), fmtMs(l.s.P90Ms), fmtMs(l.s.P99Ms), fmtMs(l.s.MaxMs))
	}
	b.WriteString("</table><h2>Over time</h2>")
	xs := make([]float64, len(r.Series))
	pick := func(f func(HLSSample) float64) []float64 {
		ys := make([]float64, len(r.Series))
		for i, s := range r.Series {
			ys[i] = f(s)
		}
		return ys
	}
	for i, s := range r.Series {
		xs[i] = s.T
	}
	lat := []chartSeries{
		{"segment p50", colorA, pick(func(s HLSSample) float64 { return s.SegmentP50Ms })},
		{"segment p99", colorB, pick(func(s HLSSample) float64 { return s.SegmentP99Ms })},
		{"playlist p99", colorC, pick(func(s HLSSample) float64 { return s.PlaylistP99Ms })},
	}
	if r.LL {
		lat = append(lat, chartSeries{"part delivery p99", colorError, pick(func(s HLSSample) float64 { return s.PartDeliveryP99Ms })})
	}
	b.WriteString(lineChart("Latency", "ms", xs, lat))
	b.WriteString(lineChart("Requests", "per second", xs, []chartSeries{
		{"req/s", colorA, pick(func(s HLSSample) float64 { return s.ReqPerSec })},
	}))
	b.WriteString(lineChart("Throughput", "MB/s", xs, []chartSeries{
		{"MB/s", colorC, pick(func(s HLSSample) float64 { return s.MBPerSec })},
	}))
	b.WriteString(lineChart("Viewers, errors and stalls", "count", xs, []chartSeries{
		{"viewers", colorA, pick(func(s HLSSample) float64 { return float64(s.Viewers) })},
		{"errors per interval", colorB, pick(func(s HLSSample) float64 { return float64(s.Errors) })},
		{"stalls per interval", colorError, pick(func(s HLSSample) float64 { return float64(s.Stalls) })},
	}))
	b.WriteString("<h2>Statuses</h2>")
	keys := sortedKeys(r.Statuses)
	vals := make([]uint64, len(keys))
	for i, k := range keys {
		vals[i] = r.Statuses[k]
	}
	b.WriteString(barChart("Responses by status", keys, vals))
	b.WriteString(`<p class="note">Latencies come from a log-linear histogram (within 6.25%). A stall is a segment that finished after the playback clock needed it; the clock starts at the first segment and waits out each stall.</p>`)
	b.WriteString("</body></html>\n")
	return b.String()
}

// WriteHTML writes the self-contained HTML report to path.
func (r *HLSReport) WriteHTML(path string) error {
	if err := os.WriteFile(path, []byte(r.HTML()), 0o644); err != nil {
		return fmt.Errorf("writing html report: %w", err)
	}
	return nil
}
