package dbus

import (
	"context"
	"os/user"
	"strconv"
	"sync"

	"github.com/netgrant/netgrant/polkit"
	"github.com/netgrant/netgrant/service"
)

// maxPendingChecksPerUID bounds the polkit checks one uid may have waiting
// (API.md, Authorization): a user whose agent never answers must not fill
// the daemon's connection to polkit for everyone else.
const maxPendingChecksPerUID = 4

type pendingChecks struct {
	mu     sync.Mutex
	perUID map[uint32]int
}

func (p *pendingChecks) acquire(uid uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.perUID[uid] >= maxPendingChecksPerUID {
		return false
	}
	p.perUID[uid]++
	return true
}

func (p *pendingChecks) release(uid uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.perUID[uid]--; p.perUID[uid] == 0 {
		delete(p.perUID, uid)
	}
}

// caller identifies the sender of c: its uid, primary gid and a polkit
// authorizer bound to its bus name and the call's interactive flag.
func (s *Server) caller(c *call) (service.Caller, error) {
	var uid uint32
	if err := s.busCall("GetConnectionUnixUser", &uid, c.sender); err != nil {
		return service.Caller{}, service.Wrap(service.Failed, err, "identifying the caller")
	}
	gid := uid
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		if g, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			gid = uint32(g)
		}
	}
	return service.Caller{UID: uid, GID: gid, Holder: s.holder(c.sender), Auth: &authorizer{srv: s, call: c, uid: uid}}, nil
}

type authorizer struct {
	srv  *Server
	call *call
	uid  uint32
}

var actionVerbs = map[string]string{
	service.ActionCreateTap:        "create a tap device",
	service.ActionUseNetwork:       "attach a tap to this network",
	service.ActionAttachBridge:     "attach a tap to this host bridge",
	service.ActionCreateNATNetwork: "create a NAT network",
	service.ActionPersist:          "make a network persistent",
	service.ActionManage:           "manage another user's objects",
}

// Authorize asks polkit as the caller's bus name.
func (a *authorizer) Authorize(ctx context.Context, check service.AuthCheck) error {
	if !a.srv.checks.acquire(a.uid) {
		return service.Errorf(service.QuotaExceeded, "user %d already has %d authorization checks waiting: answer or cancel those first", a.uid, maxPendingChecksPerUID)
	}
	defer a.srv.checks.release(a.uid)
	result, err := a.srv.polkit.Check(ctx, a.call.sender, polkit.Check{Action: check.Action, Details: check.Details}, a.call.interactive())
	if ctx.Err() != nil {
		// Abandoned, not refused: the manager says why.
		return ctx.Err()
	}
	what := actionVerbs[check.Action]
	switch {
	case result == polkit.Authorized:
		return nil
	case result == polkit.Challenge:
		return service.Errorf(service.InteractiveAuthorizationRequired,
			"authentication is required to %s (polkit %s): call again allowing interactive authorization, with a polkit agent running", what, check.Action)
	case err != nil:
		a.srv.log.Warn("polkit check failed: treating it as a denial", "caller", a.call.sender, "action", check.Action, "err", err)
		return service.Errorf(service.AccessDenied, "not authorized to %s: polkit could not be asked (%v)", what, err)
	case check.Action == service.ActionManage:
		return service.Errorf(service.NotOwner, "%s belongs to another user: acting on it needs polkit %s", check.Details["object"], service.ActionManage)
	}
	return service.Errorf(service.AccessDenied, "not authorized to %s (polkit %s)", what, check.Action)
}
