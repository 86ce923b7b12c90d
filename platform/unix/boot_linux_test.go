package unix

import (
	"os"
	"strings"
	"testing"
)

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
	raw, err := os.ReadFile(bootIDFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := "linux:" + strings.TrimSpace(string(raw)); a != want || b != want {
		t.Errorf("BootID = %q then %q, want %q both times", a, b, want)
	}
	// The kernel's UUID: 36 characters, no spaces, so a store accepts it.
	if id := strings.TrimPrefix(a, "linux:"); len(id) != 36 || strings.ContainsAny(id, " \n") {
		t.Errorf("BootID %q is not a UUID", a)
	}
}
