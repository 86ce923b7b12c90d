package windows

import (
	"testing"

	"github.com/portbroker/portbroker/broker"
)

func TestEphemeralRange(t *testing.T) {
	r, err := New().EphemeralRange()
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() == 0 || r.First < 1025 {
		t.Errorf("ephemeral range %v (%s): want a non-empty range above the well-known ports", r, r.Source)
	}
	// Under Wine, netsh prints nothing and the default applies.
	if r.Source != "netsh" && (r.First != defaultDynamicRange.First || r.Last != defaultDynamicRange.Last) {
		t.Errorf("ephemeral range %v (%s): without netsh, want the default %v", r, r.Source, defaultDynamicRange)
	}
}

func TestReservedRanges(t *testing.T) {
	h := New()
	rs, err := h.ReservedRanges()
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.First < 1 || r.First > r.Last || i > 0 && rs[i-1].Last >= r.First {
			t.Errorf("ranges %s: not sorted, merged and valid", broker.FormatRanges(rs))
		}
	}
	if err := h.RefreshRanges(); err != nil {
		t.Errorf("RefreshRanges: %v", err)
	}
}
