package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The edge speaks HTTP/1.1 to origins itself, over fasthttp's connection pool (HostClient.AcquireConn and
// friends, which exist for custom transports). fasthttp's own client cannot be used for the request: its
// streamed body takes a connection closed between two chunks for the end of the body and one closed short of
// Content-Length for a complete body, puts such a dead connection back in the pool, and retries failed
// requests on its own. Here an origin is asked once, a body is complete only when its framing says so, and a
// connection goes back to the pool only after a body was read to its proper end.

// errIncomplete is a body that ended before its framing said it would: short of Content-Length, or a chunked
// body without its terminating chunk.
var errIncomplete = errors.New("origin response incomplete")

// originResponse is one origin answer: the header, read in full, and the body, read as it arrives.
type originResponse struct {
	header fasthttp.ResponseHeader
	body   originBody
}

// exchange sends req on a connection to hc's origin and reads the response header, all before deadline, which
// also bounds the body reads until the body is switched to streaming. The caller must Close the body.
//
// A request is sent once. The one exception is a pooled keep-alive connection that the origin had already
// closed (the origin answered nothing and the connection ended at once, not by a timeout): the request is then
// sent again on a new connection, as browsers and net/http do, because the origin never saw it.
func exchange(hc *fasthttp.HostClient, req *fasthttp.Request, deadline time.Time) (*originResponse, error) {
	resp, reused, err := exchangeOnce(hc, req, deadline)
	if err != nil && reused && closedBeforeAnswer(err) {
		resp, _, err = exchangeOnce(hc, req, deadline)
	}
	return resp, err
}

func exchangeOnce(hc *fasthttp.HostClient, req *fasthttp.Request, deadline time.Time) (_ *originResponse, reused bool, _ error) {
	wait := time.Until(deadline)
	if wait <= 0 {
		return nil, false, fasthttp.ErrTimeout
	}
	cc, err := hc.AcquireConn(wait, false)
	if err != nil {
		return nil, false, err
	}
	// fasthttp stamps a connection when it returns to the pool; a new one has never been used.
	reused = !cc.LastUseTime().IsZero()
	conn := cc.Conn()
	if err := conn.SetDeadline(deadline); err != nil {
		hc.CloseConn(cc)
		return nil, reused, err
	}
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	hc.ReleaseWriter(bw)
	if err != nil {
		hc.CloseConn(cc)
		return nil, reused, err
	}
	br := hc.AcquireReader(conn)
	resp := &originResponse{}
	for informational := 0; ; informational++ {
		err = resp.header.Read(br)
		// 1xx answers (100 Continue, 103 Early Hints) precede the real one.
		if err != nil || resp.header.StatusCode() >= 200 || informational == 4 {
			break
		}
	}
	if err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return nil, reused, err
	}
	b := &resp.body
	b.conn, b.br = conn, br
	b.done = func(reuse bool) {
		hc.ReleaseReader(br)
		if reuse {
			hc.ReleaseConn(cc)
		} else {
			hc.CloseConn(cc)
		}
	}
	b.keepAlive = !resp.header.ConnectionClose()
	switch cl := resp.header.ContentLength(); {
	case resp.header.StatusCode() == fasthttp.StatusNoContent || resp.header.StatusCode() == fasthttp.StatusNotModified:
		b.ended = true
	case cl >= 0:
		b.left = int64(cl)
		b.ended = cl == 0
	case cl == -1:
		b.chunked = httputil.NewChunkedReader(br)
	default:
		// No length and not chunked: the body ends when the origin closes the connection (HTTP/1.0 style), so
		// truncation cannot be told from the end, and the connection cannot be reused.
		b.toClose = true
		b.keepAlive = false
	}
	return resp, reused, nil
}

// closedBeforeAnswer is an error that means the connection was dead before the origin sent a byte.
func closedBeforeAnswer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// originBody reads an origin body and never takes a cut-off body for a whole one: Read returns errIncomplete
// when the connection ends before the body's framing does.
type originBody struct {
	conn net.Conn
	br   *bufio.Reader
	// done hands the connection back: to the pool when reuse, closed otherwise. Called once, by Close.
	done func(reuse bool)

	left      int64     // bytes still due under Content-Length
	chunked   io.Reader // the chunked decoder, when the body is chunked
	toClose   bool      // the body runs until the connection closes
	keepAlive bool      // the origin did not ask to close the connection
	n         int64     // bytes read so far

	// idle, once the body is streamed, is how long one read may wait; the read deadline moves with each read.
	idle time.Duration

	ended  bool  // the body was read to its proper end
	err    error // the first read error
	closed bool
}

// stream switches the body from the exchange's deadline to a per-read idle timeout: a large object may take
// longer than upstream.timeout in all, but must never stall for that long.
func (b *originBody) stream(idle time.Duration) { b.idle = idle }

func (b *originBody) Read(p []byte) (int, error) {
	if b.ended {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.idle > 0 {
		if err := b.conn.SetReadDeadline(time.Now().Add(b.idle)); err != nil {
			b.err = err
			return 0, err
		}
	}
	var n int
	var err error
	switch {
	case b.chunked != nil:
		n, err = b.chunked.Read(p)
		if err == io.EOF {
			err = b.readTrailer()
		}
	case b.toClose:
		n, err = b.br.Read(p)
	default:
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err = b.br.Read(p)
		b.left -= int64(n)
		if b.left == 0 {
			err = io.EOF
		}
	}
	b.n += int64(n)
	switch {
	case err == io.EOF:
		if b.left > 0 {
			b.err = fmt.Errorf("%w: connection closed after %d bytes, %d short of Content-Length", errIncomplete, b.n, b.left)
			return n, b.err
		}
		b.ended = true
	case err != nil:
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: connection closed after %d bytes, before the chunked body's end", errIncomplete, b.n)
		}
		b.err = err
	}
	return n, err
}

// readTrailer consumes what follows the terminating chunk: trailer fields, if any, and the empty line.
func (b *originBody) readTrailer() error {
	for i := 0; i < 64; i++ {
		line, err := b.br.ReadSlice('\n')
		if err != nil {
			// The body itself was complete; only the message's end is missing, so the connection cannot be
			// reused, but the body stands.
			b.keepAlive = false
			return io.EOF
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return io.EOF
		}
	}
	b.keepAlive = false
	return io.EOF
}

// Close hands the connection back: to the pool only if the body was read to its proper end and the origin
// keeps connections alive; a half-read or cut-off body closes it, so that no later request reads leftovers or
// finds a dead connection.
func (b *originBody) Close() error {
	if b.closed || b.done == nil {
		return nil
	}
	b.closed = true
	b.done(b.ended && b.keepAlive)
	return nil
}

// discard reads and drops up to max bytes, so that the connection of a small error answer can be reused, then
// closes the body.
func (b *originBody) discard(max int64) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, max))
	_ = b.Close()
}
