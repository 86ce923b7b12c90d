package broker

import (
	"errors"
	"fmt"
	"strings"
)

// KillPolicy holds what the kill-safety rules need to know about the
// daemon itself.
type KillPolicy struct {
	// SelfPID is the daemon's PID.
	SelfPID int
	// User is the daemon's user; Admin is true when it runs as root or an
	// elevated administrator.
	User  string
	Admin bool
	// Protected names processes never stopped (compared case-insensitively,
	// with or without ".exe"; a trailing "*" matches any suffix).
	Protected []string
}

// KillRefusedError says why the broker will not stop a process.
type KillRefusedError struct {
	PID    int
	Name   string
	Reason string
}

func (e *KillRefusedError) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("will not stop pid %d (%s): %s", e.PID, e.Name, e.Reason)
	}
	return fmt.Sprintf("will not stop pid %d: %s", e.PID, e.Reason)
}

// Unwrap makes a KillRefusedError match ErrPermission.
func (e *KillRefusedError) Unwrap() error { return ErrPermission }

// mayKill applies the kill-safety rules shared by every platform. ancestors
// are the caller's ancestors' PIDs.
func (p KillPolicy) mayKill(caller Caller, ancestors map[int]bool, t ProcessInfo) error {
	refuse := func(format string, args ...any) error {
		return &KillRefusedError{PID: t.PID, Name: t.Name, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case caller.PID == 0 && !caller.Broker:
		// Without the caller's PID neither it nor its ancestors can be
		// told apart from the target.
		return refuse("the caller could not be identified (its PID is unknown), so it cannot be kept from stopping itself or its shell; call over the unix socket or named pipe")
	case t.PID <= 1:
		return refuse("PID %d belongs to the kernel or init", t.PID)
	case t.KernelThread:
		return refuse("it is a kernel thread")
	case t.PID == p.SelfPID:
		return refuse("it is portbrokerd itself")
	case caller.PID != 0 && t.PID == caller.PID:
		return refuse("it is the caller")
	case ancestors[t.PID]:
		return refuse("it is an ancestor of the caller (pid %d)", caller.PID)
	case t.System || p.protected(t.Name):
		return refuse("it is a system process")
	case t.SessionLeader:
		return refuse("it leads a login session")
	}
	if p.Admin && caller.Admin {
		return nil
	}
	user := caller.User
	if user == "" {
		// A caller whose user the transport could not tell reached a
		// per-user endpoint: it acts as the daemon's user.
		user = p.User
	}
	switch {
	case t.User == "":
		return refuse("its user cannot be determined")
	case t.User != user:
		return refuse("it belongs to user %s, not %s; only an administrator calling an administrator daemon may stop it", t.User, user)
	}
	return nil
}

func (p KillPolicy) protected(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".exe")
	for _, n := range p.Protected {
		n = strings.TrimSuffix(strings.ToLower(n), ".exe")
		if prefix, ok := strings.CutSuffix(n, "*"); ok && strings.HasPrefix(name, prefix) || n == name {
			return true
		}
	}
	return false
}

// stopFix is the fix InspectPort suggests for a port holder: stopping it,
// only when the kill-safety rules would let the daemon's own user stop
// it; otherwise another port, with the reason, so the advice never
// points at init, a kernel thread, a system process or another user's.
func (p KillPolicy) stopFix(h ProcessInfo, port uint16) string {
	err := p.mayKill(Caller{Broker: true, User: p.User, Admin: p.Admin}, nil, h)
	var refused *KillRefusedError
	if !errors.As(err, &refused) {
		return fmt.Sprintf("stop %s, or run: brokerctl reclaim %d --kill", h.Process, port)
	}
	return fmt.Sprintf("use another port: %s holds %d and is not to be stopped (%s)", h.Process, port, refused.Reason)
}
