package windows

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
)

func TestLookupSelf(t *testing.T) {
	h := New()
	p, err := h.Lookup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != os.Getpid() || !strings.EqualFold(p.Name, filepath.Base(exe)) {
		t.Errorf("Lookup(self) = %+v, want pid %d named %s", p, os.Getpid(), filepath.Base(exe))
	}
	if p.StartTime.IsZero() || p.StartTime.After(time.Now()) {
		t.Errorf("start time %v: want a time in the past", p.StartTime)
	}
	if !strings.HasPrefix(p.User, "S-1-") {
		t.Errorf("user %q: want a SID", p.User)
	}
	again, err := h.Lookup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !again.Same(p) || !again.StartTime.Equal(p.StartTime) {
		t.Errorf("second Lookup = %+v, want the same process as %+v", again, p)
	}
}

func TestLookupChild(t *testing.T) {
	h := New()
	self, err := h.Lookup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cmd := startChild(t)
	pid := cmd.Process.Pid
	p, err := h.Lookup(pid)
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != pid || !strings.EqualFold(p.Name, self.Name) || p.User != self.User {
		t.Errorf("Lookup(child) = %+v, want pid %d named %s run by %s", p, pid, self.Name, self.User)
	}
	if p.StartTime.Before(self.StartTime) {
		t.Errorf("child started %v, before its parent %v", p.StartTime, self.StartTime)
	}
	again, err := h.Lookup(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !again.StartTime.Equal(p.StartTime) {
		t.Errorf("child start time changed from %v to %v", p.StartTime, again.StartTime)
	}

	kill(t, cmd)
	if got, err := h.Lookup(pid); !errors.Is(err, broker.ErrNoProcess) {
		t.Errorf("Lookup(killed child) = %+v, %v; want ErrNoProcess", got, err)
	}
}

func TestLookupNoProcess(t *testing.T) {
	// Windows PIDs are multiples of 4, so an odd one is never in use.
	for _, pid := range []int{0, -1, 0x7ffffffd} {
		if got, err := New().Lookup(pid); !errors.Is(err, broker.ErrNoProcess) {
			t.Errorf("Lookup(%d) = %+v, %v; want ErrNoProcess", pid, got, err)
		}
	}
}
