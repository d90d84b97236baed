package signaling

import "sync"

// node is a server's registry of the sockets connected to it, by conference: the local half of the split
// described in hub.go. It is the server's Receiver, and routes each delivery to the sockets it addresses among
// its own, by the role the hub last gave each of them.
type node struct {
	mu    sync.RWMutex
	confs map[ConfKey]*localConf
}

// localConf is one conference run's sockets on this node.
type localConf struct {
	mu    sync.Mutex
	dead  bool // removed from node.confs: callers look it up again
	socks map[string]*conn
}

func newNode() *node { return &node{confs: map[ConfKey]*localConf{}} }

// add registers c before the hub learns of its session, so that no delivery for it can arrive first.
func (n *node) add(c *conn) {
	for {
		n.mu.Lock()
		lc := n.confs[c.key]
		if lc == nil {
			lc = &localConf{socks: map[string]*conn{}}
			n.confs[c.key] = lc
		}
		n.mu.Unlock()
		lc.mu.Lock()
		if !lc.dead {
			c.role = RoleNone
			lc.socks[c.sess.ID] = c
			lc.mu.Unlock()
			return
		}
		lc.mu.Unlock()
	}
}

// remove forgets c once the hub has forgotten its session.
func (n *node) remove(c *conn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	lc := n.confs[c.key]
	if lc == nil {
		return
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	delete(lc.socks, c.sess.ID)
	if len(lc.socks) == 0 {
		lc.dead = true
		delete(n.confs, c.key)
	}
}

// lock returns the conference's sockets locked, or nil when none is connected here.
func (n *node) lock(k ConfKey) *localConf {
	for {
		n.mu.RLock()
		lc := n.confs[k]
		n.mu.RUnlock()
		if lc == nil {
			return nil
		}
		lc.mu.Lock()
		if !lc.dead {
			return lc
		}
		lc.mu.Unlock()
	}
}

// Deliver implements Receiver. Sending only queues, so a fan-out to a large room holds the lock for a few
// hundred nanoseconds per socket.
func (n *node) Deliver(d *Delivery) {
	lc := n.lock(d.Conf)
	if lc == nil {
		return
	}
	defer lc.mu.Unlock()
	switch d.To {
	case ToSessions:
		for _, id := range d.Sessions {
			if c := lc.socks[id]; c != nil {
				apply(c, d)
			}
		}
	case ToModerators:
		for _, c := range lc.socks {
			if c.role == RoleModerator {
				apply(c, d)
			}
		}
	case ToChat:
		for _, c := range lc.socks {
			if c.role.chats() {
				apply(c, d)
			}
		}
	case ToAll:
		for _, c := range lc.socks {
			apply(c, d)
		}
	}
}

func apply(c *conn, d *Delivery) {
	if d.Role != 0 {
		c.role = d.Role
	}
	if d.Msg != nil {
		c.Send(d.Msg)
	}
	if d.End != "" {
		// Writes a close frame: not on the hub's fan-out.
		go c.closeAfterQueue(CloseConferenceEnded, d.End)
	}
}
