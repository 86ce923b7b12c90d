package windows

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
)

func bootTime(t *testing.T, id string) time.Time {
	t.Helper()
	s, ok := strings.CutPrefix(id, broker.BootTimePrefix)
	if !ok {
		t.Fatalf("BootID %q lacks the prefix %q", id, broker.BootTimePrefix)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("BootID %q: %v", id, err)
	}
	return time.Unix(v, 0)
}

// Two reads in one boot name one boot: the same boot time give or take
// the rounding of its second, in the past.
func TestBootID(t *testing.T) {
	h := New()
	a, err := h.BootID()
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.BootID()
	if err != nil {
		t.Fatal(err)
	}
	ta, tb := bootTime(t, a), bootTime(t, b)
	if d := ta.Sub(tb); d < -time.Second || d > time.Second {
		t.Errorf("BootID = %q then %q: boot times %v apart", a, b, d)
	}
	if !ta.Before(time.Now()) {
		t.Errorf("boot time %v is not in the past", ta)
	}
}
