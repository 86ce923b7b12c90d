package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestUserShare: on a shared daemon one user holds at most its share of
// the pool (limits.user_share, else half the pool), refused with
// ErrUserLimit naming the rule; a per-user daemon is held only to
// limits.leases_per_user.
func TestUserShare(t *testing.T) {
	for _, tt := range []struct {
		name   string
		shared bool
		share  int
		want   int // leases one user gets from the 100-port pool
		rule   string
	}{
		{"shared, default half", true, 0, 50, "half its 100 ports"},
		{"shared, configured", true, 7, 7, "limits.user_share"},
		{"shared, above the per-user limit", true, 90, 60, "limits.leases_per_user"},
		{"per-user daemon ignores the share", false, 7, 60, "limits.leases_per_user"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, Config{Shared: SharedPolicy{Enabled: tt.shared}, Limits: Limits{UserShare: tt.share, LeasesPerUser: 60}})
			for i := range tt.want {
				r.acquire(AcquireRequest{Name: fmt.Sprintf("svc%d", i)})
			}
			_, err := r.b.Acquire(context.Background(), AcquireRequest{Name: "one-more", OwnerPID: 100})
			if !errors.Is(err, ErrUserLimit) || !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), tt.rule) {
				t.Fatalf("lease %d: err = %v; want ErrUserLimit naming %q", tt.want+1, err, tt.rule)
			}
		})
	}
}
