package proxy

import (
	"errors"
	"io"
	"log/slog"
	"sync"
)

// A large object (above cache.max_object_size) is not cached, but it is still fetched once: one origin body
// feeds every viewer who asks for it while it streams. The bytes are kept in memory as they arrive, at most
// cache.stream_buffer of them: the fastest viewer pulls the origin body (so a lone slow viewer slows the origin
// down through TCP, as a plain proxy would, and is never cut), and a viewer who falls more than stream_buffer
// behind the fastest is cut: its connection is aborted, so its player sees an error and asks again, rather than
// holding every other viewer, or the edge's memory, hostage. Viewers who arrive while the first byte is still
// in memory join from the start; once it has been dropped, the next viewer starts a new origin fetch.

// errTooSlow ends the stream of a viewer that fell further behind the fastest one than cache.stream_buffer.
var errTooSlow = errors.New("viewer fell behind the shared origin stream")

// errAbandoned ends an origin body that no viewer reads any more.
var errAbandoned = errors.New("every viewer left")

// pullSize is the most bytes one pull reads from the origin body.
const pullSize = 64 << 10

// sharedStream is one origin body passed to several viewers as it arrives.
type sharedStream struct {
	key string
	// path is the origin path without query, for logs.
	path string
	// size is the origin's Content-Length, -1 when the body is chunked.
	size   int
	window int64
	// g registers the stream while it can be joined, and holds its counters.
	g   *fetchGroup
	log *slog.Logger

	mu   sync.Mutex
	cond sync.Cond
	// body is the origin's, nil once it ended; only the pulling reader reads it, outside mu.
	body    *originBody
	pulling bool
	// chunks hold the bytes in [base, end); dropped chunks went before them.
	chunks  [][]byte
	dropped int
	base    int64
	end     int64
	// err is nil while the origin sends, io.EOF once the body arrived whole, or why it did not.
	err error
	// readers counts viewers reading now plus those promised a reader (see reserve).
	readers  int
	reserved int
	// gone is set when the last reader left: the bytes are released and nobody may join any more.
	gone  bool
	spare []byte
	// fill, when set, gets the whole body once it arrived whole with none of it dropped: LL-HLS parts are streamed
	// whatever their size and cached as they end (see streamPart).
	fill func(body []byte)
}

// newSharedStream starts passing on body, of which prefix was read already. size is the Content-Length, -1 when
// unknown; window is cache.stream_buffer.
func newSharedStream(g *fetchGroup, key, path string, size int, prefix []byte, body *originBody, window int64,
	log *slog.Logger) *sharedStream {
	st := &sharedStream{key: key, path: path, size: size, window: window, g: g, log: log, body: body}
	st.cond.L = &st.mu
	if len(prefix) > 0 {
		st.chunks = append(st.chunks, prefix)
		st.end = int64(len(prefix))
	}
	return st
}

// reserve promises n readers before the flight hands the stream out: the leader's viewer may read the whole
// object and leave before the flight's waiters are scheduled, and the stream must not be dropped in between.
func (st *sharedStream) reserve(n int) {
	st.mu.Lock()
	st.readers += n
	st.reserved += n
	st.mu.Unlock()
}

// reader returns a reader from the first byte, or nil when the stream can no longer serve one (its start was
// dropped, or the origin body failed): the caller then fetches anew.
func (st *sharedStream) reader() *streamReader {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.reserved > 0 {
		st.reserved--
	} else {
		st.readers++
	}
	if st.gone {
		st.readers--
		return nil
	}
	if st.dropped > 0 || st.err != nil && st.err != io.EOF {
		st.leaveLocked()
		return nil
	}
	return &streamReader{st: st}
}

// leaveLocked drops one reader. The last one out abandons an origin body still arriving and unregisters the
// stream, whose bytes then go to the garbage collector.
func (st *sharedStream) leaveLocked() {
	st.readers--
	if st.readers > 0 {
		return
	}
	if st.err == nil {
		st.finishLocked(errAbandoned)
	}
	st.gone = true
	st.chunks, st.spare = nil, nil
	st.g.unregister(st)
}

// pull reads the next piece of the origin body. It is called with mu held and pulling false, and returns with
// mu held; mu is released for the read, so other viewers keep copying what is already here.
func (st *sharedStream) pull() {
	st.pulling = true
	buf := st.spare
	st.spare = nil
	if buf == nil {
		buf = make([]byte, pullSize)
	}
	body := st.body
	st.mu.Unlock()
	n, err := body.Read(buf)
	st.mu.Lock()
	st.pulling = false
	if n > 0 {
		chunk := buf[:n]
		if n < len(buf)/2 {
			// A short read keeps only what it needs; the buffer serves the next pull.
			chunk = append([]byte(nil), buf[:n]...)
			st.spare = buf
		}
		st.chunks = append(st.chunks, chunk)
		st.end += int64(n)
		for st.end-st.base > st.window && len(st.chunks) > 1 {
			st.base += int64(len(st.chunks[0]))
			st.chunks[0] = nil
			st.chunks = st.chunks[1:]
			st.dropped++
		}
		if st.dropped > 0 {
			// The first byte is gone: later viewers cannot join from the start.
			st.g.unregister(st)
		}
	}
	if err != nil {
		st.finishLocked(err)
	}
	st.cond.Broadcast()
}

// finishLocked ends the origin body: io.EOF when it arrived whole, anything else when it did not, in which case
// every viewer's connection is aborted once it has what did arrive.
func (st *sharedStream) finishLocked(err error) {
	st.err = err
	if st.body != nil {
		_ = st.body.Close()
		st.body = nil
	}
	if err == io.EOF {
		if st.fill != nil && st.dropped == 0 {
			st.fill(st.joinLocked())
		}
		return
	}
	st.g.unregister(st)
	if err != errAbandoned {
		st.g.failed.Inc()
		st.log.Warn("origin stream ended early; viewers' connections aborted", "path", st.path, "bytes", st.end,
			"err", err.Error())
	}
}

// joinLocked copies the body's chunks into one slice that owns its memory.
func (st *sharedStream) joinLocked() []byte {
	body := make([]byte, 0, st.end)
	for _, c := range st.chunks {
		body = append(body, c...)
	}
	return body
}

// streamReader is one viewer's position in a sharedStream; fasthttp reads it and closes it when the response
// is written or dropped.
type streamReader struct {
	st *sharedStream
	// chunk is the absolute index of the chunk being read (dropped ones included), off the position in it.
	chunk  int
	off    int
	closed bool
}

func (r *streamReader) Read(p []byte) (int, error) {
	st := r.st
	st.mu.Lock()
	for {
		if r.chunk < st.dropped {
			st.mu.Unlock()
			st.g.cut.Inc()
			st.log.Warn("viewer too slow for a shared large object; its connection is cut", "path", st.path,
				"behind_bytes", st.window)
			return 0, errTooSlow
		}
		if i := r.chunk - st.dropped; i < len(st.chunks) {
			c := st.chunks[i]
			from := r.off
			n := min(len(p), len(c)-from)
			r.off += n
			if r.off == len(c) {
				r.chunk++
				r.off = 0
			}
			st.mu.Unlock()
			// Chunks never change once appended, so the copy runs outside the lock: a thousand viewers woken by
			// one pull copy at once instead of in turn.
			copy(p, c[from:from+n])
			return n, nil
		}
		if st.err != nil {
			err := st.err
			st.mu.Unlock()
			return 0, err
		}
		if !st.pulling {
			st.pull()
			continue
		}
		st.cond.Wait()
	}
}

func (r *streamReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.st.mu.Lock()
	r.st.leaveLocked()
	r.st.mu.Unlock()
	return nil
}
