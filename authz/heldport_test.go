package authz

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hlsedge/hlsedge/internal/testkit"
)

// newHeldServer is httptest.NewServer on a testkit.HeldListener: a test that closes it to take the backend down
// gets connections refused, never another server that took the port.
func newHeldServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = testkit.HeldListener(t)
	s.Start()
	return s
}
