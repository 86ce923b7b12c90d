package broker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzAcquireRequest throws arbitrary requests at a broker: it must never
// panic, a refusal must name one of the request's fields and leave the
// store as it was, and a grant must satisfy the rules it was checked for.
func FuzzAcquireRequest(f *testing.F) {
	f.Add("backend", "", 8000, uint8(1), 100, 0, int64(0), false)
	f.Add("", "ns", 70000, uint8(9), -1, 1, int64(-1), true)
	f.Add("a\xffb", "x y", 0, uint8(0), 1, 99999, int64(500*time.Millisecond), false)
	f.Add(" lead", "trail ", 65535, uint8(3), 101, 100, int64(time.Hour), true)
	fields := []string{"name", "namespace", "port", "protocol", "owner_pid", "launcher_pid", "ttl"}
	f.Fuzz(func(t *testing.T, name, ns string, port int, proto uint8, owner, launcher int, ttl int64, strict bool) {
		r := newRig(t, Config{})
		before := r.store.snapshot()
		res, err := r.b.Acquire(context.Background(), AcquireRequest{
			Name: name, Namespace: ns, Port: port, Protocol: Protocol(proto),
			OwnerPID: owner, LauncherPID: launcher, TTL: time.Duration(ttl), Strict: strict,
		})
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) && !slices.Contains(fields, fe.Field) {
				t.Fatalf("refusal names unknown field %q: %v", fe.Field, err)
			}
			if errors.Is(err, ErrInvalid) && fe == nil {
				t.Fatalf("invalid-argument error without a field: %v", err)
			}
			if len(r.store.snapshot()) != len(before) {
				t.Fatalf("refused request changed the store: %v", err)
			}
			return
		}
		l := res.Lease
		if l.Name != name || !utf8.ValidString(l.Name) || len(l.Name) == 0 || len(l.Name) > MaxNameLen {
			t.Fatalf("granted a lease with name %q", l.Name)
		}
		if l.Port == 0 || !l.Protocol.Valid() || l.Owner.PID <= 1 || (ttl > 0 && l.TTL < MinTTL) {
			t.Fatalf("granted lease %+v", l)
		}
		if _, ok := r.store.snapshot()[l.ID]; !ok {
			t.Fatal("granted lease not stored")
		}
	})
}
