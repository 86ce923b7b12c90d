//go:build unix && !darwin

package ipc

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestDefaultAddr(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	fallback := "unix://" + filepath.Join(tmp, "portbroker-"+strconv.Itoa(os.Getuid()), "portbroker.sock")
	tests := []struct {
		runtimeDir string
		want       string
	}{
		{"/run/user/1000", "unix:///run/user/1000/portbroker/portbroker.sock"},
		{"", fallback},
		{"relative/dir", fallback},
	}
	for _, tt := range tests {
		t.Setenv("XDG_RUNTIME_DIR", tt.runtimeDir)
		got, err := DefaultAddr()
		if err != nil || got != tt.want {
			t.Errorf("XDG_RUNTIME_DIR=%q: DefaultAddr() = %q, %v; want %q", tt.runtimeDir, got, err, tt.want)
		}
		if _, _, err := ParseAddr(got); err != nil {
			t.Errorf("DefaultAddr() = %q does not parse: %v", got, err)
		}
	}
}

func TestDefaultStateDir(t *testing.T) {
	t.Setenv("HOME", "/home/alice")
	tests := []struct {
		stateHome string
		want      string
	}{
		{"/data/state", "/data/state/portbroker"},
		{"", "/home/alice/.local/state/portbroker"},
		{"relative", "/home/alice/.local/state/portbroker"},
	}
	for _, tt := range tests {
		t.Setenv("XDG_STATE_HOME", tt.stateHome)
		got, err := DefaultStateDir()
		if err != nil || got != tt.want {
			t.Errorf("XDG_STATE_HOME=%q: DefaultStateDir() = %q, %v; want %q", tt.stateHome, got, err, tt.want)
		}
	}
}
