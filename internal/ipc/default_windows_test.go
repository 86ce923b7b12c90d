package ipc

import (
	"strings"
	"testing"
)

func TestDefaultAddr(t *testing.T) {
	got, err := DefaultAddr()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "npipe:////./pipe/portbroker-") {
		t.Errorf("DefaultAddr() = %q; want npipe:////./pipe/portbroker-<user>", got)
	}
	network, address, err := ParseAddr(got)
	if err != nil || network != NetworkPipe || strings.Count(address, `\`) != 4 {
		t.Errorf("ParseAddr(%q) = %q, %q, %v; want one pipe name without backslashes", got, network, address, err)
	}
}

func TestDefaultStateDir(t *testing.T) {
	t.Setenv("LOCALAPPDATA", `C:\Users\alice\AppData\Local`)
	want := `C:\Users\alice\AppData\Local\portbroker`
	if got, err := DefaultStateDir(); err != nil || got != want {
		t.Errorf("DefaultStateDir() = %q, %v; want %q", got, err, want)
	}
}
