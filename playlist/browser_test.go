package playlist

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// oddURIs are spellings on which a plain RFC 3986 reading and a browser disagree about the host, with the plain
// ones they must not disturb. The origin is origin.example.com; every other host is a third party.
var oddURIs = []string{
	// plain references
	"a.ts", "/play/a001/b.ts", "../x/y.ts", "?x=1", "seg 1.ts", "https://cdn.example.net/a.ts", "//cdn.example.net/a.ts",
	"http://origin.example.com/play/a.ts", "HTTP://ORIGIN.EXAMPLE.COM:8000/a.ts", "data:,x", "skd://key", "ws://evil.example/x",
	// backslashes are slashes
	`/\evil.example/x.ts`, `\\evil.example/x.ts`, `\/evil.example/x.ts`, `\evil.example/x.ts`, `seg\1.ts`, `.\\x.ts`,
	`http:\\evil.example/x`, `https:\\evil.example/x`, `HTTP:/\evil.example/x`, `//evil.example\@origin.example.com/x`,
	`http://evil.example\origin.example.com/x`, `/x.ts?a=\\evil.example`,
	// tabs and CRs vanish, anywhere (an LF ends the line)
	"/\t/evil.example/x", "/\r/evil.example/x", "\t//evil.example/x", "ht\ttp://evil.example/x",
	"//ev\til.example/x", "/\\\t\\evil.example/x", "a\t.ts", "//origin.example.com\t@evil.example/x",
	// leading and trailing C0 controls and spaces are stripped
	" //evil.example/x", "\x01//evil.example/x", "\x00//evil.example/x", "\x1f/\\evil.example/x", "a.ts \x01",
	"//evil.example/x\x01", "/\x01/evil.example/x",
	// any number of slashes opens an authority; a scheme without them depends on the playlist's scheme
	"///evil.example/x", "////evil.example/x", `/\/evil.example/x`, "http:///evil.example/x", "http:/evil.example/x",
	"http:evil.example/x", "https:evil.example/x", "HTTPS:/evil.example/x", "http:a.ts",
	// origin URIs are rewritten to the edge, and must stay there
	"http://origin.example.com//evil.example/x", `http://origin.example.com/\evil.example/x`,
	`http://origin.example.com\\evil.example/x`, `http:\\origin.example.com\a.ts`, "//origin.example.com/\t/evil.example/x",
	"http://origin.example.com/\t\\evil.example/x", "http://origin.example.com", "http://origin.example.com?x=1",
	"http://user@origin.example.com//evil.example/x", "//origin.example.com@evil.example/x",
	"//evil.example@origin.example.com/x", "http://ORIGIN.example.com\t/a.ts", "http://origin.example.com/x\\y.ts",
	"http:////origin.example.com/a.ts",
	// hosts the parser refuses or spells its own way
	"//", "///", "http://", "//x@", "//[::1]/x", "//0x7f.1/x", "//evil%2Eexample/x", "http://origin.example.com:99999/a.ts",
}

// edgePlaylists are the URLs the corpus's playlist is served from: a player resolves against either.
var edgePlaylists = []string{"http://edge.example:8080/play/a001/index.m3u8", "https://edge.example:8080/play/a001/index.m3u8"}

const edgeHost = "edge.example:8080"

// uriPlaces is where a URI sits in the playlist uriPlaylist builds.
const (
	placeMap  = iota // a quoted attribute
	placeKey         // a quoted attribute holding a variable the player replaces with the URI
	placeLine        // a URI line
	numPlaces
)

// uriPlaylist puts u in every kind of URI place. u must not contain '"', '\n' or "{$".
func uriPlaylist(u string) string {
	return "#EXTM3U\n#EXT-X-DEFINE:NAME=\"v\",VALUE=\"" + u + "\"\n#EXT-X-MAP:URI=\"" + u +
		"\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"{$v}\"\n" + u + "\n"
}

// placedURIs extracts from the rewritten uriPlaylist(u) what the player resolves in each place, variables
// substituted; "" where there is no URI place.
func placedURIs(t testing.TB, out, u string) [numPlaces]string {
	t.Helper()
	lines := strings.Split(out, "\n")
	if len(lines) != 6 {
		t.Fatalf("uriPlaylist(%q) became %d lines: %q", u, len(lines), out)
	}
	quoted := func(line string) string {
		i, j := strings.Index(line, `URI="`), strings.LastIndexByte(line, '"')
		if i < 0 || j < i+5 {
			t.Fatalf("no URI attribute in %q", line)
		}
		return line[i+5 : j]
	}
	var got [numPlaces]string
	got[placeMap] = quoted(lines[2])
	got[placeKey] = strings.ReplaceAll(quoted(lines[3]), "{$v}", u)
	// A line that starts with '#' once trimmed is a tag or a comment, not a URI.
	if line := strings.TrimLeft(lines[4], " \t"); line != "" && line[0] != '#' {
		got[placeLine] = lines[4]
	}
	return got
}

// nodeResult is what Node's WHATWG URL made of a reference: the resolved URL's protocol and host, or an error.
type nodeResult struct {
	Protocol string `json:"protocol"`
	Host     string `json:"host"`
	Error    string `json:"error"`
}

// nodeResolve resolves every [reference, base] pair with Node's URL in one process.
func nodeResolve(t *testing.T, pairs [][2]string) []nodeResult {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is missing: `make test` installs Debian's nodejs (or apt-get install nodejs)")
	}
	const script = `let b = '';
process.stdin.on('data', c => b += c).on('end', () => {
  const out = JSON.parse(b).map(([ref, base]) => {
    try { const u = new URL(ref, base); return {protocol: u.protocol, host: u.host}; }
    catch (e) { return {error: String(e.code || e)}; }
  });
  process.stdout.write(JSON.stringify(out));
});`
	in, err := json.Marshal(pairs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "-e", script)
	cmd.Stdin = strings.NewReader(string(in))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v: %s", err, stderr.String())
	}
	var res []nodeResult
	if err := json.Unmarshal(outb, &res); err != nil || len(res) != len(pairs) {
		t.Fatalf("node answered %d results for %d pairs (%v): %s", len(res), len(pairs), err, outb)
	}
	return res
}

// TestBrowserCorpus rewrites each odd spelling in every kind of URI place and lets Node's WHATWG URL, which
// browsers, Smart TV engines and hls.js (through fetch) share, resolve input and output against the playlist's
// URL: a URI that carries the viewer's token must land on the edge's host, and a URI left without one must leave
// it (else the token was withheld for nothing). The same answers check the Go oracle the fuzz targets rely on.
func TestBrowserCorpus(t *testing.T) {
	const query = "token=T0K"
	r := mustRewriter(t, Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin.example.com"}})
	type place struct {
		u, out  string
		carries bool
	}
	var places []place
	for _, u := range oddURIs {
		tmpl, err := r.Parse([]byte(uriPlaylist(u)))
		if err != nil {
			t.Fatalf("Parse(%q): %v", u, err)
		}
		for _, out := range placedURIs(t, string(tmpl.Append(nil, []byte(query))), u) {
			if out != "" {
				places = append(places, place{u: u, out: out, carries: strings.Contains(out, query)})
			}
		}
	}
	var pairs [][2]string
	for _, p := range places {
		for _, base := range edgePlaylists {
			pairs = append(pairs, [2]string{p.u, base}, [2]string{p.out, base})
		}
	}
	res := nodeResolve(t, pairs)
	onEdge := func(n nodeResult) bool {
		return n.Error == "" && (n.Protocol == "http:" || n.Protocol == "https:") && n.Host == edgeHost
	}
	for i, p := range places {
		in := [2]nodeResult{res[4*i], res[4*i+2]}
		out := [2]nodeResult{res[4*i+1], res[4*i+3]}
		switch {
		case p.carries && (!onEdge(out[0]) || !onEdge(out[1])):
			t.Errorf("%q became %q: the token goes to %q (http page) and %q (https page)", p.u, p.out, out[0].Host, out[1].Host)
		case !p.carries && onEdge(in[0]) && onEdge(in[1]):
			t.Errorf("%q became %q: no token, though a browser fetches it from the edge", p.u, p.out)
		}
	}
	// The oracle agrees with Node on every input and output.
	for i, pair := range pairs {
		base := pair[1][:strings.IndexByte(pair[1], ':')]
		got, want := whatwgResolve(pair[0], base), res[i]
		var ok bool
		switch got.kind {
		case "relative":
			ok = onEdge(want) && want.Protocol == base+":"
		case "host":
			ok = want.Error == "" && want.Protocol == got.scheme+":" && (got.exotic || want.Host == got.host)
		case "fail":
			ok = want.Error != ""
		case "other":
			ok = want.Error != "" || want.Protocol != "http:" && want.Protocol != "https:"
		}
		if !ok {
			t.Errorf("oracle: %q against %s: got %+v, Node %+v", pair[0], base, got, want)
		}
	}
	for _, p := range places {
		t.Logf("%-50q -> %q", p.u, p.out)
	}
}
