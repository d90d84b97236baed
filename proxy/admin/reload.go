package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/hlsedge/hlsedge/authz"
)

var errAuthRequired = errors.New("admin: an authorizer is required")

// live is what a config reload replaces on the admin listener.
type live struct {
	cfg  Config
	auth *authz.Authorizer
}

func (s *Server) conf() *Config                 { return &s.live.Load().cfg }
func (s *Server) authorizer() *authz.Authorizer { return s.live.Load().auth }

// Apply puts a reloaded 'admin' section and the reload's authorizer in force: the admin token, the ban prefix
// limits, and the authorizer /auth/astra and the API ask. Sessions, bans and kicks are the viewer state the
// authorizers share, so the API sees the same ones. The listener's address is the caller's to rebind. It fails,
// changing nothing, when the admin token cannot be read.
func (s *Server) Apply(cfg Config, auth *authz.Authorizer) error {
	if auth == nil {
		return errAuthRequired
	}
	if cfg.token == nil && cfg.HasToken() {
		// A config that did not go through Validate.
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	s.live.Store(&live{cfg: cfg, auth: auth})
	return nil
}

// Reloader re-reads the edge's config file; cmd/hlsedge implements it.
type Reloader interface {
	// Reload validates the file, builds what can fail and puts it in force, or keeps the running config and
	// says why.
	Reload() ReloadResult
	// LastReload is the outcome of the last reload (Result "" when there was none) with the time the config in
	// force was loaded.
	LastReload() ReloadResult
}

// ReloadResult is the outcome of one reload: the answer of POST /api/reload, and a line on the status page.
type ReloadResult struct {
	// Result is "ok" or "error".
	Result string `json:"result"`
	// Error says why the reload failed, naming the field; it never holds a secret.
	Error string `json:"error,omitempty"`
	// At is when the reload ran.
	At time.Time `json:"at,omitzero"`
	// LoadedAt is when the config in force was loaded: the reload's time when it succeeded, an earlier one when
	// it failed.
	LoadedAt time.Time `json:"loaded_at"`
	// Changed lists the sections whose settings changed.
	Changed []string `json:"changed,omitempty"`
	// Rebound lists the listeners that moved to a new address.
	Rebound []string `json:"rebound,omitempty"`
	// RestartRequired lists changed fields a running edge cannot apply; they take effect on the next restart.
	RestartRequired []string `json:"restart_required,omitempty"`
}

// reloadConfig is POST /api/reload: 200 with the result when the new config is in force, 422 with the error
// (naming the field) when the running config stays.
func (s *Server) reloadConfig(w http.ResponseWriter, r *http.Request) {
	res := s.reload.Reload()
	status := http.StatusOK
	if res.Result != "ok" {
		status = http.StatusUnprocessableEntity
	}
	s.writeJSON(w, r, status, res)
}
