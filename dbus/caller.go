package dbus

import (
	"context"
	"os/user"
	"slices"
	"strconv"
	"sync"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/polkit"
	"github.com/netgrant/netgrant/service"
)

// A uid's polkit checks are bounded so that a user whose agent never
// answers cannot fill the daemon's connection to polkit for everyone else
// (API.md, Authorization): at most maxChecksInFlight are with polkit at
// once; later ones wait their turn, in order, so one user whose VM manager
// starts 20 VMs at once gets 20 taps; a uid with maxChecksWaiting already
// waiting is refused.
const (
	maxChecksInFlight = 4
	maxChecksWaiting  = 32
)

type checkQueue struct {
	mu     sync.Mutex
	perUID map[uint32]*uidChecks
}

// uidChecks are one uid's checks: how many are with polkit, and the turns
// of those waiting, oldest first; a turn is closed when it comes.
type uidChecks struct {
	inFlight int
	waiting  []chan struct{}
}

// acquire returns once uid may ask polkit, nil, or why it may not: too
// many waiting (QuotaExceeded) or ctx ended while it waited. A nil return
// must be paired with release.
func (q *checkQueue) acquire(ctx context.Context, uid uint32) error {
	q.mu.Lock()
	u := q.perUID[uid]
	if u == nil {
		u = &uidChecks{}
		q.perUID[uid] = u
	}
	if u.inFlight < maxChecksInFlight {
		u.inFlight++
		q.mu.Unlock()
		return nil
	}
	if len(u.waiting) >= maxChecksWaiting {
		q.mu.Unlock()
		return service.Errorf(service.QuotaExceeded, "user %d already has %d calls waiting for authorization behind %d being checked: answer or cancel those first", uid, maxChecksWaiting, maxChecksInFlight)
	}
	turn := make(chan struct{})
	u.waiting = append(u.waiting, turn)
	q.mu.Unlock()
	select {
	case <-turn:
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if i := slices.Index(u.waiting, turn); i >= 0 {
		u.waiting = slices.Delete(u.waiting, i, i+1)
	} else {
		// The turn came as the caller left: it goes to the next.
		q.releaseLocked(uid)
	}
	return ctx.Err()
}

func (q *checkQueue) release(uid uint32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.releaseLocked(uid)
}

// releaseLocked ends one of uid's checks: the oldest waiting takes its
// place with polkit.
func (q *checkQueue) releaseLocked(uid uint32) {
	u := q.perUID[uid]
	if len(u.waiting) > 0 {
		close(u.waiting[0])
		u.waiting = u.waiting[1:]
		return
	}
	if u.inFlight--; u.inFlight == 0 {
		delete(q.perUID, uid)
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

// Authorize asks polkit as the caller's bus name.
func (a *authorizer) Authorize(ctx context.Context, check service.AuthCheck) error {
	if err := a.srv.checks.acquire(ctx, a.uid); err != nil {
		// Abandoned while waiting, not refused: the manager says why.
		return err
	}
	defer a.srv.checks.release(a.uid)
	result, err := a.srv.polkit.Check(ctx, a.call.sender, polkit.Check{Action: check.Action, Details: check.Details}, a.call.interactive())
	if ctx.Err() != nil {
		// Abandoned, not refused: the manager says why.
		return ctx.Err()
	}
	what := names.ActionDoes(check.Action)
	switch {
	case result == polkit.Authorized:
		return nil
	case result == polkit.Challenge:
		return service.Errorf(service.InteractiveAuthorizationRequired,
			"authentication is required to %s (polkit %s): call again allowing interactive authorization, with a polkit agent running", what, check.Action)
	case err != nil:
		a.srv.log.Warn("polkit check failed: treating it as a denial", "caller", a.call.sender, "action", check.Action, "err", err)
		return service.Errorf(service.AccessDenied, "not authorized to %s: polkit could not be asked (%v)", what, err)
	case check.Action == names.ActionManage:
		return service.Errorf(service.NotOwner, "%s belongs to another user: acting on it needs polkit %s", check.Details["object"], names.ActionManage)
	}
	return service.Errorf(service.AccessDenied, "not authorized to %s (polkit %s)", what, check.Action)
}
