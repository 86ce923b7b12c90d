package broker

import "fmt"

// SharedPolicy is how a daemon shared by several users (a socket group)
// keeps them from crowding each other out.
type SharedPolicy struct {
	// Enabled turns the rules on (Limits.UserShare among them); a
	// per-user daemon has one user.
	Enabled bool
}

// userLimit is how many leases one user may hold: Limits.LeasesPerUser,
// and in shared mode no more than the user's share of the pool.
func (b *Broker) userLimit() (limit int, rule string) {
	limit, rule = b.cfg.Limits.LeasesPerUser, "the per-user limit (limits.leases_per_user)"
	if !b.cfg.Shared.Enabled {
		return limit, rule
	}
	share := b.cfg.Limits.UserShare
	shareRule := "the per-user share of the shared pool (limits.user_share)"
	if share <= 0 {
		share = max(1, b.pool.size/2)
		shareRule = fmt.Sprintf("the per-user share of the shared pool (half its %d ports; limits.user_share)", b.pool.size)
	}
	if share < limit {
		return share, shareRule
	}
	return limit, rule
}

// nameTaken says who holds a name another owner asked for; in shared mode
// it names the holder's user, so a user whose service name another user
// took can tell.
func (b *Broker) nameTaken(key NameKey, holder Lease, asker Process) error {
	if b.cfg.Shared.Enabled && holder.Owner.User != asker.User {
		return fmt.Errorf("name %s is leased by user %s (%s, port %d), not by you (user %s); pick another name or namespace: %w",
			key, holder.Owner.User, holder.Owner, holder.Port, asker.User, ErrNameTaken)
	}
	return fmt.Errorf("name %s is leased to %s on port %d: %w", key, holder.Owner, holder.Port, ErrNameTaken)
}

// sameUserAsCaller applies the owner rule to another PID of a request
// (launcher_pid): a caller that is not an administrator may only name its
// own user's processes.
func sameUserAsCaller(field string, c Caller, p Process) error {
	if c.User == "" || c.Admin || p.User == c.User {
		return nil
	}
	return fmt.Errorf("%s: pid %d belongs to user %s, not %s: %w", field, p.PID, p.User, c.User, ErrPermission)
}
