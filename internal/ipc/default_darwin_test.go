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
	want := "unix://" + filepath.Join(tmp, "portbroker-"+strconv.Itoa(os.Getuid()), "portbroker.sock")
	if got, err := DefaultAddr(); err != nil || got != want {
		t.Errorf("DefaultAddr() = %q, %v; want %q", got, err, want)
	}
}

func TestDefaultStateDir(t *testing.T) {
	t.Setenv("HOME", "/Users/alice")
	want := "/Users/alice/Library/Application Support/portbroker"
	if got, err := DefaultStateDir(); err != nil || got != want {
		t.Errorf("DefaultStateDir() = %q, %v; want %q", got, err, want)
	}
}
