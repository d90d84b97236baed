package authz

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// astraBackend speaks Astra's "HTTP Request" middleware protocol: GET the backend URL with the viewer's whole
// query string appended and the session described in X-Real-* headers.
type astraBackend struct {
	url    string
	client *http.Client
}

func (b *astraBackend) check(ctx context.Context, q *backendQuery) (backendAnswer, error) {
	u := b.url
	if q.rawQuery != "" {
		sep := "?"
		if strings.IndexByte(u, '?') >= 0 {
			sep = "&"
		}
		u += sep + q.rawQuery
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		// The viewer's query made the URL unparsable; that is a refusal, not a broken backend.
		return backendAnswer{status: http.StatusForbidden}, nil
	}
	h := req.Header
	h.Set("X-Session-ID", strconv.FormatUint(q.sessionID, 10))
	h.Set("X-Channel-ID", q.channel)
	if q.ip.IsValid() {
		h.Set("X-Real-IP", q.ip.Unmap().String())
	}
	h.Set("X-Real-Path", q.path)
	h.Set("X-Real-UA", q.userAgent)
	h.Set("X-Real-Host", q.host)
	h.Set("User-Agent", "hlsedge")
	resp, err := b.client.Do(req)
	if err != nil {
		return backendAnswer{}, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxBackendBody))
	switch resp.StatusCode {
	case http.StatusOK:
		return backendAnswer{allow: true, status: http.StatusOK, userID: resp.Header.Get("X-Session-Name")}, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return backendAnswer{status: resp.StatusCode}, nil
	}
	return backendAnswer{}, fmt.Errorf("astra backend answered %d: %w", resp.StatusCode, ErrBackendDown)
}
