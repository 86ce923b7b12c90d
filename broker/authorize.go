package broker

import "fmt"

// daemonCaller is the identity the broker acts under on its own behalf.
func (b *Broker) daemonCaller() Caller {
	return Caller{User: b.cfg.Kill.User, Admin: b.cfg.Kill.Admin, Broker: true}
}

// mayChange applies the lease rule: a lease may be released, renewed or
// reclaimed by its owner's user or an administrator. A caller the
// transport could not identify reached a per-user endpoint, so it is
// treated as that user.
func (b *Broker) mayChange(caller Caller, l Lease) error {
	if caller.User == "" || caller.Admin || caller.User == l.Owner.User {
		return nil
	}
	err := fmt.Errorf("lease %s belongs to user %s, not %s: %w", l.ID, l.Owner.User, caller.User, ErrPermission)
	b.log.Warn("lease change refused", "lease", l.ID, "caller_pid", caller.PID, "caller_user", caller.User, "owner_user", l.Owner.User)
	return err
}
