package authz

import (
	"hash/maphash"
	"sync"

	"github.com/dgraph-io/ristretto/v2"

	"github.com/hlsedge/hlsedge/authz/token"
)

// A config reload builds a new Authorizer and swaps it in. What viewers already earned carries over: sessions,
// bans and kicks live in the ViewerState handed to both (WithState), and the decision cache's entries are shared
// through WithPrevious. An entry made under the previous config is served only after adopt has checked that its
// group and the keys it was verified and minted with still exist; otherwise it is dropped and decided anew.

// WithPrevious builds the Authorizer of a reload: it shares prev's decision cache (entries, hash seed) instead of
// starting an empty one, and adopts prev's entries as they are hit. prev may be closed once the new Authorizer
// is in use; the cache lives until the last Authorizer sharing it is closed. Pass WithState too, with prev's
// viewer state.
func WithPrevious(prev *Authorizer) Option { return func(o *options) { o.prev = prev } }

// decisionStore is the decision cache's storage, shared by the Authorizers of successive reloads. It is closed
// when the last one lets go: ristretto must not be closed while a request of an older Authorizer may still
// write to it.
type decisionStore struct {
	c       *ristretto.Cache[uint64, *entry]
	front   *front
	seed    maphash.Seed
	auxSeed maphash.Seed

	mu   sync.Mutex
	refs int
}

func (s *decisionStore) acquire() *decisionStore {
	s.mu.Lock()
	s.refs++
	s.mu.Unlock()
	return s
}

func (s *decisionStore) release() {
	s.mu.Lock()
	s.refs--
	last := s.refs == 0
	s.mu.Unlock()
	if last {
		s.c.Close()
	}
}

// takeCache sets up the decision cache: prev's store when there is one (resized to this config's
// max_entries), a new one otherwise. With the cache disabled the Authorizer still holds prev's store, so that a
// later reload that enables it again finds the entries.
func (a *Authorizer) takeCache(cfg CacheConfig, prev *Authorizer) error {
	if prev != nil {
		a.epoch = prev.epoch + 1
		if prev.store != nil {
			a.store = prev.store.acquire()
		}
	}
	if cfg.Disabled {
		return nil
	}
	if a.store == nil {
		c, err := newRistretto(cfg.MaxEntries)
		if err != nil {
			return err
		}
		a.store = &decisionStore{c: c, front: newFront(cfg.MaxEntries), seed: maphash.MakeSeed(), auxSeed: maphash.MakeSeed(), refs: 1}
	} else if a.store.c.MaxCost() != cfg.MaxEntries {
		a.store.c.UpdateMaxCost(cfg.MaxEntries)
	}
	a.cache = &decisionCache{c: a.store.c, front: a.store.front, seed: a.store.seed, auxSeed: a.store.auxSeed, maxTTL: cfg.MaxTTL, denyTTL: cfg.DenyTTL, epoch: a.epoch}
	return nil
}

// adopt decides whether an entry another Authorizer cached may be served under this one's config: an allow made
// in the same group (by name), for a token kind the group still accepts, verified with a key the group still has
// and with a child token minted the way the group now mints, with the key it now mints with (so that moving a
// new edge key first switches minting at once). Anything else, refusals included, is decided again. An adopted
// entry is marked so the check runs once.
func (a *Authorizer) adopt(e *entry, g *group) bool {
	d := &e.d
	if !d.Allowed() || d.Group != g.name || d.Kind != token.KindNone && !g.accept[d.Kind] {
		return false
	}
	if d.key != 0 && !g.hasKey(d.Kind, d.key, a.edge) {
		return false
	}
	// (A viewer a middleware let in without a token in a `child_token: same` group is simply decided again.)
	if d.mint == g.same || (d.mintKey != 0) != (!g.same && d.Kind != token.KindEdge) ||
		d.mintKey != 0 && d.mintKey != a.edge.MintKey() {
		return false
	}
	e.epoch.Store(a.epoch)
	return true
}

// hasKey reports whether the group's verifier for kind still has the key ref names.
func (g *group) hasKey(kind token.Kind, ref token.KeyRef, edge *token.EdgeSigner) bool {
	switch kind {
	case token.KindJWT:
		return g.jwt != nil && g.jwt.HasKey(ref)
	case token.KindSecureToken:
		return g.st != nil && g.st.HasKey(ref)
	case token.KindEdge:
		return edge.HasKey(ref)
	}
	return false
}
