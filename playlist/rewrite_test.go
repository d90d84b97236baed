package playlist

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// testQuery is what the proxy builds for a viewer whose token needs escaping.
var testQuery = AppendQueryParam(nil, "token", "abc+def/=")

const testToken = "token=abc%2Bdef%2F%3D"

func mustRewriter(t testing.TB, opts Options) *Rewriter {
	t.Helper()
	r, err := NewRewriter(opts)
	if err != nil {
		t.Fatalf("NewRewriter: %v", err)
	}
	return r
}

func mustRead(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	attrURIRe = regexp.MustCompile(`(?:[:,]\s*)(?:SERVER-)?URI="([^"]*)"`)
	tagRe     = regexp.MustCompile(`^#EXT[A-Z0-9-]*`)
)

// uriPlaces lists the URIs of a playlist with a scanner that shares no code with the rewriter.
func uriPlaces(b []byte) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "\xEF\xBB\xBF"))
		switch {
		case line == "":
		case !strings.HasPrefix(line, "#"):
			out = append(out, line)
		default:
			switch tagRe.FindString(line) {
			case "#EXT-X-MEDIA", "#EXT-X-I-FRAME-STREAM-INF", "#EXT-X-KEY", "#EXT-X-SESSION-KEY", "#EXT-X-MAP",
				"#EXT-X-SESSION-DATA", "#EXT-X-PART", "#EXT-X-PRELOAD-HINT", "#EXT-X-RENDITION-REPORT",
				"#EXT-X-CONTENT-STEERING":
				for _, m := range attrURIRe.FindAllStringSubmatch(line, -1) {
					out = append(out, m[1])
				}
			}
		}
	}
	return out
}

// TestRealWorldShapes rewrites the committed playlists and checks every URI place, the foreign report and,
// through the golden files, every other byte.
func TestRealWorldShapes(t *testing.T) {
	r := mustRewriter(t, Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin.example.com"}})
	tk := testToken
	f := func(name string, wantURIs, wantForeign []string) {
		t.Helper()
		src := mustRead(t, name)
		tmpl, err := r.Parse(src)
		if err != nil {
			t.Fatalf("%s: Parse: %v", name, err)
		}
		got := tmpl.Append(nil, testQuery)
		if uris := uriPlaces(got); !slices.Equal(uris, wantURIs) {
			t.Errorf("%s: URIs\n got %q\nwant %q", name, uris, wantURIs)
		}
		if !slices.Equal(tmpl.Foreign(), wantForeign) {
			t.Errorf("%s: Foreign() = %q, want %q", name, tmpl.Foreign(), wantForeign)
		}
		if n := strings.Count(string(got), tk); n != tmpl.URICount() {
			t.Errorf("%s: %d tokens in output, URICount() = %d", name, n, tmpl.URICount())
		}
		if len(got) != tmpl.Size(len(testQuery)) {
			t.Errorf("%s: len = %d, Size() = %d", name, len(got), tmpl.Size(len(testQuery)))
		}
		golden := filepath.Join("testdata", "golden", name)
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%s: %v (run with -update to create)", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: output differs from %s:\n%s", name, golden, got)
		}
	}

	f("astra_live.m3u8", []string{
		"/play/a0g2/113900582_92b9.ts?" + tk, "/play/a0g2/113900583_92b9.ts?" + tk,
		"/play/a0g2/113900584_92b9.ts?" + tk, "/play/a0g2/113900585_92b9.ts?" + tk,
	}, nil)
	f("astra_master.m3u8", []string{"/play/a0g2/71545838.m3u8?" + tk, "/play/a0g2/71545839.m3u8?" + tk}, nil)
	f("ffmpeg_vod.m3u8", []string{
		"out0.ts?" + tk, "out1.ts?" + tk, "out2.ts?" + tk, "out3.ts?" + tk, "out4.ts?" + tk,
	}, nil)
	f("master_renditions.m3u8", []string{
		"lyrics.json?" + tk,
		"a1/prog_index.m3u8?" + tk, "a2/prog_index.m3u8?lang=fr&" + tk, "s1/en/prog_index.m3u8?" + tk,
		"v5/prog_index.m3u8?" + tk, "/content/v9/prog_index.m3u8?" + tk, "/content/v2/prog_index.m3u8?" + tk,
		"v5/iframe_index.m3u8?" + tk, "https://cdn.thirdparty.net/v9/iframe_index.m3u8?sig=SECRET",
	}, []string{"https://cdn.thirdparty.net/v9/iframe_index.m3u8"})
	f("aes_master.m3u8", []string{
		"/keys/ch1.key?kid=7&" + tk, "skd://fairplay.example.com/ch1", "low/index.m3u8?" + tk, "high/index.m3u8?" + tk,
	}, nil)
	f("aes_media.m3u8", []string{
		"/keys/ch1.key?kid=7&" + tk, "segment7794.ts?" + tk, "segment7795.ts?" + tk,
		"key8.bin?" + tk, "segment7796.ts?" + tk, "segment7797.ts?" + tk,
	}, nil)
	f("fmp4_byterange.m3u8", []string{
		"main.mp4?" + tk, "main.mp4?" + tk, "main.mp4?" + tk, "main.mp4?" + tk, "main.mp4?" + tk,
	}, nil)
	var ll []string
	ll = append(ll, "init.mp4?"+tk, "fileSequence269.mp4?"+tk, "fileSequence270.mp4?"+tk)
	for i := 0; i < 12; i++ {
		ll = append(ll, "filePart271."+itoa(i)+".mp4?"+tk)
	}
	ll = append(ll, "fileSequence271.mp4?"+tk)
	for _, c := range "abcdef" {
		ll = append(ll, "filePart272."+string(c)+".mp4?"+tk)
	}
	ll = append(ll, "filePart272.g.mp4?"+tk, "../1M/waitForMSN.php?"+tk,
		"../4M/waitForMSN.php?_HLS_msn=273&_HLS_part=1&"+tk)
	f("llhls.m3u8", ll, nil)
	f("steering.m3u8", []string{
		"data:application/json;base64,eyJWRVJTSU9OIjoxLCJUVEwiOjMwMCwiUEFUSFdBWS1QUklPUklUWSI6WyJDRE4tQSIsIkNETi1CIl19",
		"a/index.m3u8?" + tk, "https://cdn-b.example.net/b/index.m3u8",
	}, []string{"https://cdn-b.example.net/b/index.m3u8"})
	f("define.m3u8", []string{
		"{$keyuri}&" + tk, "{$seg}-1.ts?" + tk, "{$seg}-2.ts{$q}&" + tk, "{$seg}-3.ts?" + tk,
		"{$cdn}/{$seg}-4.ts", "{$unknown}/{$seg}-5.ts?" + tk + "#t=1",
	}, []string{"https://cdn.thirdparty.net/live/segment-4.ts"})
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + itoa(i%10)
}

// TestRewriteLine covers one URI place at a time and the bytes around it.
func TestRewriteLine(t *testing.T) {
	r := mustRewriter(t, Options{
		ParamNames:  []string{"md5", "expires"},
		OriginHosts: []string{"Origin.Example.com", "10.0.0.5:8000", "[::1]:80", "tls.example.com:443"},
	})
	const q = "md5=x&expires=1"
	f := func(in, want string) {
		t.Helper()
		tmpl, err := r.Parse([]byte(in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if got := string(tmpl.Append(nil, []byte(q))); got != want {
			t.Errorf("Parse(%q)\n got %q\nwant %q", in, got, want)
		}
	}
	h := "#EXTM3U\n"
	// separators, fragments and existing parameters
	f(h+"a.ts", h+"a.ts?"+q)
	f(h+"a.ts\n", h+"a.ts?"+q+"\n")
	f(h+"a.ts?x=1", h+"a.ts?x=1&"+q)
	f(h+"a.ts#t=10", h+"a.ts?"+q+"#t=10")
	f(h+"a.ts?x=1#f?g", h+"a.ts?x=1&"+q+"#f?g")
	f(h+"a.ts?", h+"a.ts?&"+q)
	f(h+"a.ts?x=1&", h+"a.ts?x=1&&"+q)
	f(h+"a.m3u8?_HLS_msn=5&_HLS_part=2&_HLS_skip=YES", h+"a.m3u8?_HLS_msn=5&_HLS_part=2&_HLS_skip=YES&"+q)
	// the edge's own parameters are replaced, not duplicated; similar names stay
	f(h+"a.ts?md5=old", h+"a.ts?"+q)
	f(h+"a.ts?md5=old&expires=0", h+"a.ts?"+q)
	f(h+"a.ts?md5=old&x=1&expires", h+"a.ts?x=1&"+q)
	f(h+"a.ts?x=1&md5=old#f", h+"a.ts?x=1&"+q+"#f")
	f(h+"a.ts?md5x=1&xmd5=2", h+"a.ts?md5x=1&xmd5=2&"+q)
	f(h+"a.ts?&md5=old&", h+"a.ts?"+q)
	// origin-absolute URIs become path-absolute; foreign and opaque ones are left alone
	f(h+"http://origin.example.com/play/a/1.ts", h+"/play/a/1.ts?"+q)
	f(h+"HTTPS://ORIGIN.EXAMPLE.COM:8443/play/a/1.ts", h+"/play/a/1.ts?"+q)
	f(h+"http://user:pw@origin.example.com/x.ts", h+"/x.ts?"+q)
	f(h+"//origin.example.com/x.ts", h+"/x.ts?"+q)
	f(h+"http://origin.example.com", h+"/?"+q)
	f(h+"http://origin.example.com?x=1", h+"/?x=1&"+q)
	f(h+"http://origin.example.com#f", h+"/?"+q+"#f")
	f(h+"http://10.0.0.5:8000/a.ts", h+"/a.ts?"+q)
	f(h+"http://10.0.0.5:8001/a.ts", h+"http://10.0.0.5:8001/a.ts")
	f(h+"http://10.0.0.5/a.ts", h+"http://10.0.0.5/a.ts")
	f(h+"http://[::1]/a.ts", h+"/a.ts?"+q)
	f(h+"https://[::1]/a.ts", h+"https://[::1]/a.ts")
	f(h+"https://tls.example.com/a.ts", h+"/a.ts?"+q)
	f(h+"http://origin.example.com.evil.net/a.ts", h+"http://origin.example.com.evil.net/a.ts")
	f(h+"http://evil.net/origin.example.com/a.ts", h+"http://evil.net/origin.example.com/a.ts")
	f(h+"http://evil.net@origin.example.com/a.ts", h+"/a.ts?"+q)
	f(h+"http://origin.example.com@evil.net/a.ts", h+"http://origin.example.com@evil.net/a.ts")
	f(h+"https://cdn.net/a.ts?md5=theirs", h+"https://cdn.net/a.ts?md5=theirs")
	f(h+`#EXT-X-KEY:METHOD=AES-128,URI="data:text/plain;base64,AAAA"`, h+`#EXT-X-KEY:METHOD=AES-128,URI="data:text/plain;base64,AAAA"`)
	f(h+`#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://key"`, h+`#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://key"`)
	f(h+"mailto:x", h+"mailto:x")
	f(h+"./seg:1.ts", h+"./seg:1.ts?"+q)
	// what a browser resolves to another host gets nothing; origin URIs rewritten to the edge stay on it
	f(h+`/\evil.net/a.ts`, h+`/\evil.net/a.ts`)
	f(h+`\\evil.net/a.ts`, h+`\\evil.net/a.ts`)
	f(h+"/\t/evil.net/a.ts", h+"/\t/evil.net/a.ts")
	f(h+"ht\ttp://evil.net/a.ts", h+"ht\ttp://evil.net/a.ts")
	f(h+"\x01//evil.net/a.ts", h+"\x01//evil.net/a.ts")
	f(h+`#EXT-X-MAP:URI=" //evil.net/init.mp4"`, h+`#EXT-X-MAP:URI=" //evil.net/init.mp4"`)
	f(h+"///evil.net/a.ts", h+"///evil.net/a.ts")
	f(h+"http:evil.net/a.ts", h+"http:evil.net/a.ts")
	f(h+"https:/evil.net/a.ts", h+"https:/evil.net/a.ts")
	f(h+`http:\\Origin.Example.com/a.ts`, h+"/a.ts?"+q)
	f(h+"http://origin.example.com//evil.net/a.ts", h+"/.//evil.net/a.ts?"+q)
	f(h+`http://origin.example.com/\evil.net/a.ts`, h+"/.//evil.net/a.ts?"+q)
	f(h+"http://origin.example.com/\t/evil.net/a.ts?md5=old&x=1", h+"/.//evil.net/a.ts?x=1&"+q)
	f(h+`http://origin.example.com\@evil.net/a.ts`, h+"/@evil.net/a.ts?"+q)
	f(h+`//evil.net\@origin.example.com/a.ts`, h+`//evil.net\@origin.example.com/a.ts`)
	f(h+"http:///origin.example.com/a.ts", h+"/a.ts?"+q)
	f(h+"http:origin.example.com/a.ts", h+"http:origin.example.com/a.ts")
	f(h+"//", h+"//")
	// ... and what stays on the edge's host keeps its token, byte for byte, before trailing controls
	f(h+`\a.ts`, h+`\a.ts?`+q)
	f(h+`seg\1.ts`, h+`seg\1.ts?`+q)
	f(h+"a\t.ts", h+"a\t.ts?"+q)
	f(h+"/\x01/a.ts", h+"/\x01/a.ts?"+q)
	f(h+"#EXT-X-MAP:URI=\"init.mp4 \x01\"", h+"#EXT-X-MAP:URI=\"init.mp4?"+q+" \x01\"")
	f(h+"#EXT-X-MAP:URI=\" \x01 \"", h+"#EXT-X-MAP:URI=\" \x01 \"")
	f(h+`a.ts?x=\\evil.net`, h+`a.ts?x=\\evil.net&`+q)
	// byte-for-byte surroundings: CRLF, BOM, spaces, comments, blank lines, no final newline
	f(h+"a.ts\r\nb.ts\r\n", h+"a.ts?"+q+"\r\nb.ts?"+q+"\r\n")
	f("#EXTM3U\r\na.ts\r\n", "#EXTM3U\r\na.ts?"+q+"\r\n")
	f("\xEF\xBB\xBF#EXTM3U\na.ts", "\xEF\xBB\xBF#EXTM3U\na.ts?"+q)
	f(h+"  a.ts \t\r\n", h+"  a.ts?"+q+" \t\r\n")
	f(h+"\n\n# a.ts\n#EXTINF:1.000,title, with comma\n\n", h+"\n\n# a.ts\n#EXTINF:1.000,title, with comma\n\n")
	f(h+"  #EXTINF:1,\n", h+"  #EXTINF:1,\n")
	f(h+"a.ts\rb.ts\n", h+"a.ts\rb.ts?"+q+"\n")
	// attributes: only the URI attribute of the listed tags, quoted or not, wherever it sits
	f(h+`#EXT-X-MAP:URI="init.mp4",BYTERANGE="720@0"`, h+`#EXT-X-MAP:URI="init.mp4?`+q+`",BYTERANGE="720@0"`)
	f(h+`#EXT-X-MAP:BYTERANGE="720@0",URI="init.mp4"`, h+`#EXT-X-MAP:BYTERANGE="720@0",URI="init.mp4?`+q+`"`)
	f(h+`#EXT-X-MAP: URI = "init.mp4" `, h+`#EXT-X-MAP: URI = "init.mp4?`+q+`" `)
	f(h+`#EXT-X-MAP:URI=init.mp4,BYTERANGE=720@0`, h+`#EXT-X-MAP:URI=init.mp4?`+q+`,BYTERANGE=720@0`)
	f(h+`#EXT-X-MAP:X-URI="a",URI="b"`, h+`#EXT-X-MAP:X-URI="a",URI="b?`+q+`"`)
	f(h+`#EXT-X-SESSION-DATA:DATA-ID="x",VALUE="a,URI=\"b\""`, h+`#EXT-X-SESSION-DATA:DATA-ID="x",VALUE="a,URI=\"b\""`)
	f(h+`#EXT-X-SESSION-DATA:DATA-ID="x",VALUE="a,URI=b",URI="c"`, h+`#EXT-X-SESSION-DATA:DATA-ID="x",VALUE="a,URI=b",URI="c?`+q+`"`)
	f(h+`#EXT-X-MAP:URI="init.mp4`, h+`#EXT-X-MAP:URI="init.mp4`)
	f(h+`#EXT-X-MAP:URI=""`, h+`#EXT-X-MAP:URI=""`)
	f(h+`#EXT-X-DATERANGE:ID="a",X-ASSET-URI="http://origin.example.com/ad.m3u8"`, h+`#EXT-X-DATERANGE:ID="a",X-ASSET-URI="http://origin.example.com/ad.m3u8"`)
	f(h+`#EXT-X-CUSTOM:URI="x"`, h+`#EXT-X-CUSTOM:URI="x"`)
	f(h+`#EXT-X-key:URI="x"`, h+`#EXT-X-key:URI="x"`)
	f(h+`#EXT-X-CONTENT-STEERING:SERVER-URI="/steer?video=1",PATHWAY-ID="A"`, h+`#EXT-X-CONTENT-STEERING:SERVER-URI="/steer?video=1&`+q+`",PATHWAY-ID="A"`)
	f(h+`#EXT-X-CONTENT-STEERING:SERVER-URI="DATA:,x"`, h+`#EXT-X-CONTENT-STEERING:SERVER-URI="DATA:,x"`)
	f(h+`#EXT-X-PRELOAD-HINT:TYPE=MAP,URI="init.mp4",BYTERANGE-START=0`, h+`#EXT-X-PRELOAD-HINT:TYPE=MAP,URI="init.mp4?`+q+`",BYTERANGE-START=0`)
	// variables: the separator follows the substituted URI; nothing lands inside a reference
	f(h+`#EXT-X-DEFINE:NAME="u",VALUE="a.ts?x=1"`+"\n{$u}", h+`#EXT-X-DEFINE:NAME="u",VALUE="a.ts?x=1"`+"\n{$u}&"+q)
	f(h+`#EXT-X-DEFINE:NAME="h",VALUE="http://origin.example.com"`+"\n{$h}/a.ts", h+`#EXT-X-DEFINE:NAME="h",VALUE="http://origin.example.com"`+"\n{$h}/a.ts")
	f(h+`#EXT-X-DEFINE:NAME="p",VALUE="live"`+"\nhttp://origin.example.com/{$p}/a.ts", h+`#EXT-X-DEFINE:NAME="p",VALUE="live"`+"\n/{$p}/a.ts?"+q)
	f(h+`#EXT-X-DEFINE:NAME="d",VALUE="data:,x"`+"\n{$d}", h+`#EXT-X-DEFINE:NAME="d",VALUE="data:,x"`+"\n{$d}")
	f(h+"{$nodefine}", h+"{$nodefine}?"+q)
	f(h+`#EXT-X-DEFINE:NAME="v",VALUE="a.ts#f"`+"\n{$v}", h+`#EXT-X-DEFINE:NAME="v",VALUE="a.ts#f"`+"\n{$v}")
	f(h+`#EXT-X-DEFINE:NAME="v",VALUE="/\evil.net"`+"\n{$v}/a.ts", h+`#EXT-X-DEFINE:NAME="v",VALUE="/\evil.net"`+"\n{$v}/a.ts")
	// a variable cannot move a rewritten origin URI to another host
	f(h+`#EXT-X-DEFINE:NAME="p",VALUE="/evil.net"`+"\nhttp://origin.example.com/{$p}/a.ts",
		h+`#EXT-X-DEFINE:NAME="p",VALUE="/evil.net"`+"\nhttp://origin.example.com/{$p}/a.ts")
	f(h+`#EXT-X-DEFINE:NAME="p",VALUE="\t\\evil.net"`+"\nhttp://origin.example.com/{$p}/a.ts",
		h+`#EXT-X-DEFINE:NAME="p",VALUE="\t\\evil.net"`+"\nhttp://origin.example.com/{$p}/a.ts")

	// An empty query leaves URIs as they are apart from the host rewriting and the edge's parameters.
	tmpl, err := r.Parse([]byte(h + "http://origin.example.com/a.ts?md5=old&x=1\nb.ts\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(tmpl.Append(nil, nil)), h+"/a.ts?x=1\nb.ts\n"; got != want {
		t.Errorf("empty query: got %q, want %q", got, want)
	}
	if got, want := string(tmpl.Append([]byte("prefix:"), []byte("&"+q))), "prefix:"+h+"/a.ts?x=1&"+q+"\nb.ts?"+q+"\n"; got != want {
		t.Errorf("leading '&' and non-empty dst: got %q, want %q", got, want)
	}
}

func TestPublicBase(t *testing.T) {
	r := mustRewriter(t, Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin"}, PublicBase: "https://edge.example.com/"})
	tmpl, err := r.Parse([]byte("#EXTM3U\nhttp://origin/play/a/1.ts\nhttp://origin\n2.ts\n/play/a/3.ts\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "#EXTM3U\nhttps://edge.example.com/play/a/1.ts?token=t\nhttps://edge.example.com/?token=t\n2.ts?token=t\n/play/a/3.ts?token=t\n"
	if got := string(tmpl.Append(nil, []byte("token=t"))); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestForeignReport(t *testing.T) {
	r := mustRewriter(t, Options{OriginHosts: []string{"origin"}})
	var b strings.Builder
	b.WriteString("#EXTM3U\n")
	b.WriteString("https://user:secret@cdn.net/a.ts?sig=SECRET#frag\n")
	b.WriteString("https://cdn.net/a.ts?sig=OTHER\n")
	for i := 0; i < 100; i++ {
		b.WriteString("http://cdn" + itoa(i) + ".net/x.ts\n")
	}
	tmpl, err := r.Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	fr := tmpl.Foreign()
	if len(fr) != maxForeign {
		t.Fatalf("len(Foreign()) = %d, want %d", len(fr), maxForeign)
	}
	if fr[0] != "https://cdn.net/a.ts" || fr[1] != "http://cdn0.net/x.ts" {
		t.Errorf("Foreign() = %q", fr[:2])
	}
	for _, s := range fr {
		if strings.Contains(s, "SECRET") || strings.Contains(s, "secret") {
			t.Errorf("Foreign() leaks credentials: %q", s)
		}
	}
	if tmpl.URICount() != 0 {
		t.Errorf("URICount() = %d, want 0", tmpl.URICount())
	}
	if got := tmpl.Append(nil, []byte("token=t")); string(got) != b.String() {
		t.Errorf("foreign URIs were changed")
	}
}

// TestDisguised checks what the proxy counts and logs about URIs whose spelling hides their host: they are
// foreign like any other, and listed apart in the form a browser resolves them, without credentials.
func TestDisguised(t *testing.T) {
	r := mustRewriter(t, Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin"}})
	src := "#EXTM3U\n" +
		"https://cdn.net/a.ts?sig=SECRET\n" +
		`/\user:SECRET@evil.net/b.ts?sig=SECRET#f` + "\n" +
		"ht\ttps://evil.net/c.ts\n" +
		"http:evil.net/d.ts\n" +
		"///evil.net/e.ts\n" +
		`#EXT-X-MAP:URI=" //evil.net/init.mp4"` + "\n" +
		"https://cd\tn.net/f.ts\n" +
		"https://cdn.net/g\\h.ts\n" +
		`#EXT-X-DEFINE:NAME="p",VALUE="/evil.net"` + "\nhttp://origin/{$p}/i.ts\n" +
		`/\evil.net/b.ts` + "\n"
	tmpl, err := r.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tmpl.Append(nil, []byte("token=t"))); got != src || tmpl.URICount() != 0 {
		t.Errorf("URIs that leave the edge were changed (%d tokens):\n%s", tmpl.URICount(), got)
	}
	wantForeign := []string{"https://cdn.net/a.ts", "//evil.net/b.ts", "https://evil.net/c.ts", "http://evil.net/d.ts",
		"//evil.net/e.ts", "//evil.net/init.mp4", "https://cdn.net/f.ts", "https://cdn.net/g/h.ts", "//evil.net/i.ts"}
	if !slices.Equal(tmpl.Foreign(), wantForeign) {
		t.Errorf("Foreign()\n got %q\nwant %q", tmpl.Foreign(), wantForeign)
	}
	wantDisguised := []string{"//evil.net/b.ts", "https://evil.net/c.ts", "http://evil.net/d.ts", "//evil.net/e.ts",
		"//evil.net/init.mp4", "https://cdn.net/f.ts", "//evil.net/i.ts"}
	if !slices.Equal(tmpl.Disguised(), wantDisguised) {
		t.Errorf("Disguised()\n got %q\nwant %q", tmpl.Disguised(), wantDisguised)
	}
	for _, s := range append(tmpl.Foreign(), tmpl.Disguised()...) {
		if strings.Contains(s, "SECRET") {
			t.Errorf("%q keeps credentials", s)
		}
	}
	// Both lists are bounded, apart from each other.
	var b strings.Builder
	b.WriteString("#EXTM3U\n")
	for i := 0; i < 40; i++ {
		b.WriteString("https://cdn" + itoa(i) + ".net/x.ts\n")
	}
	for i := 0; i < 40; i++ {
		b.WriteString(`/\evil` + itoa(i) + ".net/x.ts\n")
	}
	if tmpl, err = r.Parse([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	if len(tmpl.Foreign()) != maxForeign || len(tmpl.Disguised()) != maxForeign || tmpl.Disguised()[0] != "//evil0.net/x.ts" {
		t.Errorf("%d foreign, %d disguised: %q", len(tmpl.Foreign()), len(tmpl.Disguised()), tmpl.Disguised())
	}
}

func TestParseErrors(t *testing.T) {
	r := mustRewriter(t, Options{MaxSize: 64})
	f := func(in string, want error) {
		t.Helper()
		tmpl, err := r.Parse([]byte(in))
		if !errors.Is(err, want) || tmpl != nil {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, tmpl, err, want)
		}
		if err != nil && err.Error() != strings.ToLower(err.Error()[:1])+err.Error()[1:] {
			t.Errorf("error %q does not start in lower case", err)
		}
	}
	f("", ErrNotPlaylist)
	f("\xEF\xBB\xBF", ErrNotPlaylist)
	f("#EXTM3", ErrNotPlaylist)
	f("#EXTM3U8\na.ts", ErrNotPlaylist)
	f(" #EXTM3U\na.ts", ErrNotPlaylist)
	f("#EXTINF:1,\na.ts", ErrNotPlaylist)
	f("\x47\x40\x00\x10 a TS packet", ErrNotPlaylist)
	f("<html>#EXTM3U</html>", ErrNotPlaylist)
	f("#EXTM3U\n"+strings.Repeat("a", 60), ErrTooLarge)
	for _, ok := range []string{"#EXTM3U", "#EXTM3U\n", "#EXTM3U\r\n", "#EXTM3U \n", strings.Repeat("#EXTM3U\n", 8)} {
		if _, err := r.Parse([]byte(ok)); err != nil {
			t.Errorf("Parse(%q): %v", ok, err)
		}
	}
	if _, err := mustRewriter(t, Options{}).Parse(make([]byte, DefaultMaxSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("default MaxSize: %v", err)
	}
	var nilT *Template
	if got := nilT.Append([]byte("x"), []byte("q")); string(got) != "x" || nilT.URICount() != 0 || nilT.Foreign() != nil || nilT.Disguised() != nil || nilT.Size(3) != 0 {
		t.Errorf("nil Template misbehaves")
	}
}

func TestNewRewriterValidation(t *testing.T) {
	f := func(o Options, want string) {
		t.Helper()
		_, err := NewRewriter(o)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewRewriter(%+v) = %v, want error naming %s", o, err, want)
		}
	}
	f(Options{MaxSize: -1}, "'MaxSize'")
	f(Options{MaxSize: maxMaxSize + 1}, "'MaxSize'")
	f(Options{ParamNames: []string{""}}, "'ParamNames[0]'")
	f(Options{ParamNames: []string{"ok", "a=b"}}, "'ParamNames[1]'")
	f(Options{OriginHosts: []string{"http://origin"}}, "'OriginHosts[0]'")
	f(Options{OriginHosts: []string{"origin/play"}}, "'OriginHosts[0]'")
	f(Options{OriginHosts: []string{""}}, "'OriginHosts[0]'")
	f(Options{OriginHosts: []string{"origin:http"}}, "'OriginHosts[0]'")
	f(Options{OriginHosts: []string{"::1"}}, "'OriginHosts[0]'")
	f(Options{PublicBase: "edge.example.com"}, "'PublicBase'")
	f(Options{PublicBase: "ftp://edge.example.com"}, "'PublicBase'")
	f(Options{PublicBase: "https://edge.example.com/?x=1"}, "'PublicBase'")
	f(Options{PublicBase: "https://edge.example.com/#x"}, "'PublicBase'")
	if _, err := NewRewriter(Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin", "10.0.0.5:8000", "[::1]:8000"},
		PublicBase: "https://edge.example.com/hls", MaxSize: 1 << 20}); err != nil {
		t.Errorf("valid options: %v", err)
	}
}

func TestAppendQueryParam(t *testing.T) {
	f := func(got []byte, want string) {
		t.Helper()
		if string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	f(AppendQueryParam(nil, "token", "abc"), "token=abc")
	f(AppendQueryParam(nil, "token", []byte("eyJh.b-c_d~e")), "token=eyJh.b-c_d~e")
	f(AppendQueryParam(nil, "token", "a b+c/d=e&f#g\"h%i\r\n\xff"), "token=a%20b%2Bc%2Fd%3De%26f%23g%22h%25i%0D%0A%FF")
	f(AppendQueryParam(AppendQueryParam(nil, "md5", "x"), "expires", "1"), "md5=x&expires=1")
	f(AppendQueryParam([]byte("a=1&"), "b", ""), "a=1&b=")
	f(AppendQueryParam(nil, "n m", "v"), "n%20m=v")
	buf := make([]byte, 0, 64)
	tok := []byte("0123456789abcdef0123456789abcdef0123456789abcdef")
	if n := testing.AllocsPerRun(100, func() { buf = AppendQueryParam(buf[:0], "token", tok) }); n != 0 {
		t.Errorf("AppendQueryParam allocates %v times", n)
	}
}

// TestAppendZeroAllocs pins the fast path's promise: no allocation when dst has capacity.
func TestAppendZeroAllocs(t *testing.T) {
	r := mustRewriter(t, Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin.example.com"}})
	tmpl, err := r.Parse(liveN(10))
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 0, tmpl.Size(len(testQuery)))
	if n := testing.AllocsPerRun(100, func() { dst = tmpl.Append(dst[:0], testQuery) }); n != 0 {
		t.Errorf("Append allocates %v times", n)
	}
}

// A delta update's EXT-X-SKIP has no URI: it comes out byte for byte, RECENTLY-REMOVED-DATERANGES and odd
// spacing included, while the URIs around it get the query.
func TestDeltaUpdateSkipKept(t *testing.T) {
	r := mustRewriter(t, Options{ParamNames: []string{"token"}, OriginHosts: []string{"origin"}})
	f := func(skip string) {
		t.Helper()
		src := "#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:9\n" + skip + "\n#EXT-X-MAP:URI=\"init.mp4\"\n" +
			"#EXTINF:3,\nhttp://origin/a/1.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"2.0.m4s\"\n"
		tmpl, err := r.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		want := "#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:9\n" + skip + "\n#EXT-X-MAP:URI=\"init.mp4?token=T\"\n" +
			"#EXTINF:3,\n/a/1.m4s?token=T\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"2.0.m4s?token=T\"\n"
		if got := string(tmpl.Append(nil, []byte("token=T"))); got != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
	}
	f("#EXT-X-SKIP:SKIPPED-SEGMENTS=4")
	f(`#EXT-X-SKIP:SKIPPED-SEGMENTS=4,RECENTLY-REMOVED-DATERANGES=""`)
	f("#EXT-X-SKIP: SKIPPED-SEGMENTS = 12 ,RECENTLY-REMOVED-DATERANGES=\"a\tb?c=d\" \r")
}
