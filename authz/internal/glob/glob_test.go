package glob

import (
	"regexp"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	f := func(p, s string, want bool) {
		t.Helper()
		if got := Match(p, []byte(s)); got != want {
			t.Errorf("Match(%q, %q) = %v", p, s, got)
		}
	}
	f("*", "", true)
	f("*", "a/b", true)
	f("a001", "a001", true)
	f("a001", "a0011", false)
	f("sport/*", "sport/f1", true)
	f("sport/*", "sport", false)
	f("a?c", "abc", true)
	f("a?c", "ac", false)
	f("*x*y*", "aaxbbyc", true)
	f("*x*y", "aaxbbyc", false)
	f(strings.Repeat("*a", 30)+"b", strings.Repeat("a", 200), false)
}

// Seeds beyond f.Add live in testdata/fuzz/FuzzGlob/ and are committed.
func FuzzGlob(f *testing.F) {
	f.Add("sport/*", "sport/f1")
	f.Add("*a*b?", "xxaybz")
	f.Add("?", "")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(pattern) > 64 || len(name) > 64 {
			return
		}
		var re strings.Builder
		re.WriteString(`(?s)\A`)
		for _, c := range []byte(pattern) {
			switch c {
			case '*':
				re.WriteString(`.*`)
			case '?':
				re.WriteString(`.`)
			default:
				re.WriteString(regexp.QuoteMeta(string([]byte{c})))
			}
		}
		re.WriteString(`\z`)
		// Compare on bytes: regexp works on UTF-8, so map every byte to one rune first.
		oracle := regexp.MustCompile(latin1(re.String()))
		if got, want := Match(pattern, []byte(name)), oracle.MatchString(latin1(name)); got != want {
			t.Fatalf("Match(%q, %q) = %v, oracle %v", pattern, name, got, want)
		}
	})
}

// latin1 maps each byte to the rune of the same value, so byte-wise and rune-wise matching agree.
func latin1(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}
