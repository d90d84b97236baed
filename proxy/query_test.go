package proxy

import (
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"
)

// viaArgs are the answers of fasthttp's parsed QueryArgs, which the raw readers must give whenever they answer.
func viaArgs(q string, name string, isToken func([]byte) bool) (peek []byte, originQuery string) {
	var a fasthttp.Args
	a.Parse(q)
	return a.Peek(name), string(appendOriginQuery(nil, &a, isToken))
}

func isTokenOrMD5(k []byte) bool { return string(k) == "token" || string(k) == "md5" }

func TestRawQueryReadersAgreeWithQueryArgs(t *testing.T) {
	f := func(q, wantPeek string, peekOK, wantOnly bool) {
		t.Helper()
		argsPeek, argsOrigin := viaArgs(q, "token", isTokenOrMD5)
		v, ok := peekQueryArg([]byte(q), "token")
		if ok != peekOK || string(v) != wantPeek {
			t.Errorf("peekQueryArg(%q) = %q, %v; want %q, %v", q, v, ok, wantPeek, peekOK)
		}
		if ok && !bytes.Equal(v, argsPeek) {
			t.Errorf("peekQueryArg(%q) = %q, QueryArgs says %q", q, v, argsPeek)
		}
		only := onlyTokenArgs([]byte(q), isTokenOrMD5)
		if only != wantOnly {
			t.Errorf("onlyTokenArgs(%q) = %v, want %v", q, only, wantOnly)
		}
		if only && argsOrigin != "" {
			t.Errorf("onlyTokenArgs(%q): but QueryArgs leaves %q for the origin", q, argsOrigin)
		}
	}
	f("", "", true, true)
	f("token=abc", "abc", true, true)
	f("token=abc&md5=x", "abc", true, true)
	f("md5=x&token=abc&token=def", "abc", true, true)
	f("token=a.b-c_d~e", "a.b-c_d~e", true, true)
	f("token=abc&&", "abc", true, true)
	f("token", "", true, true)
	f("token=", "", true, true)
	f("tokens=abc", "", true, false)
	f("token=abc&_HLS_msn=5", "abc", true, false)
	f("_HLS_msn=5&token=abc", "abc", true, false)
	f("=x&token=abc", "abc", true, false)
	// Encoded values or names: only decoding tells, so QueryArgs answers.
	f("token=a%2Bb", "", false, true)
	f("token=a+b", "", false, true)
	f("tok%65n=abc", "", false, false)
	f("x+y=1&token=abc", "", false, false)
	// An encoded argument after the token does not matter to Peek, which stops at the first match.
	f("token=abc&x%20y=1", "abc", true, false)
}

// FuzzRawQueryReaders: whenever the raw readers answer, they answer what QueryArgs does.
func FuzzRawQueryReaders(f *testing.F) {
	for _, s := range []string{"token=abc", "token=abc&_HLS_msn=5", "tok%65n=a", "token=a+b&md5=x", "&&token&=", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		argsPeek, argsOrigin := viaArgs(q, "token", isTokenOrMD5)
		if v, ok := peekQueryArg([]byte(q), "token"); ok && !bytes.Equal(v, argsPeek) {
			t.Fatalf("peekQueryArg(%q) = %q, QueryArgs says %q", q, v, argsPeek)
		}
		if onlyTokenArgs([]byte(q), isTokenOrMD5) && argsOrigin != "" {
			t.Fatalf("onlyTokenArgs(%q): but QueryArgs leaves %q for the origin", q, argsOrigin)
		}
	})
}

// peekQueryArg is queryArgAt's answer as the value itself, as requestCarrier.QueryArg reads it.
func peekQueryArg(q []byte, name string) (v []byte, ok bool) {
	start, end, ok := queryArgAt(q, name)
	if !ok || start < 0 {
		return nil, ok
	}
	return q[start:end], true
}
