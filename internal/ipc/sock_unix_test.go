//go:build unix

package ipc

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnixCreatesPrivateDirAndSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "portbroker")
	sock := filepath.Join(dir, "portbroker.sock")
	addr := "unix://" + sock
	ln := listen(t, addr)

	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("socket dir mode = %04o, want 0700", got)
	}
	fi, err = os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("%s is %v, want a socket", sock, fi.Mode())
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("socket mode = %04o, want 0600", got)
	}

	roundTrip(t, ln, addr)

	if err := ln.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Close, Lstat(%s) = %v; want the socket removed", sock, err)
	}
	// The path is free again.
	roundTrip(t, listen(t, addr), addr)
}

func TestListenUnixReplacesStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "b.sock")
	addr := "unix://" + sock
	// A listener that dies without unlinking, as a crashed daemon does.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("stale socket should remain: %v", err)
	}

	roundTrip(t, listen(t, addr), addr)
}

func TestListenUnixLiveSocketInUse(t *testing.T) {
	tests := []struct {
		name  string
		serve func(t *testing.T, addr, sock string)
	}{
		{"another Listen", func(t *testing.T, addr, _ string) { listen(t, addr) }},
		{"a server without the lock", func(t *testing.T, _, sock string) {
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "c.sock")
			addr := "unix://" + sock
			tt.serve(t, addr, sock)

			ln, err := Listen(addr)
			if err == nil {
				ln.Close()
				t.Fatal("second Listen succeeded; want ErrAddrInUse")
			}
			if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), addr) {
				t.Errorf("second Listen error = %q; want ErrAddrInUse naming %s", err, addr)
			}
			if _, err := os.Lstat(sock); err != nil {
				t.Errorf("live socket was touched: %v", err)
			}
		})
	}
}

func TestListenUnixRefusesNonSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "d.sock")
	if err := os.WriteFile(sock, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("unix://" + sock)
	if err == nil {
		ln.Close()
		t.Fatal("Listen over a regular file succeeded")
	}
	if !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("error = %q; want it to say the path is not a socket", err)
	}
	if got, err := os.ReadFile(sock); err != nil || string(got) != "keep me" {
		t.Errorf("regular file changed: %q, %v", got, err)
	}
}

func TestListenUnixRefusesUnsafeDir(t *testing.T) {
	tests := []struct {
		name        string
		prepare     func(t *testing.T, dir string)
		errContains string
	}{
		{"group writable", func(t *testing.T, dir string) { chmod(t, dir, 0o770) }, "must not be group or world writable"},
		{"world writable", func(t *testing.T, dir string) { chmod(t, dir, 0o1777) }, "must not be group or world writable"},
		{"not a directory", nil, "not a directory"},
		{"another owner", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("changing a directory's owner needs root")
			}
			if err := os.Chown(dir, 65534, -1); err != nil {
				t.Fatal(err)
			}
		}, "is owned by uid 65534"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sockdir")
			if tt.prepare == nil {
				if err := os.WriteFile(dir, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				tt.prepare(t, dir)
			}
			ln, err := Listen("unix://" + filepath.Join(dir, "e.sock"))
			if err == nil {
				ln.Close()
				t.Fatal("Listen succeeded; want the directory refused")
			}
			if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), tt.errContains) {
				t.Errorf("error = %q; want it to name %s and say %q", err, dir, tt.errContains)
			}
		})
	}
}

func chmod(t *testing.T, path string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestListenUnixPathTooLong(t *testing.T) {
	sock := "/" + strings.Repeat("x", maxSocketPath) + ".sock"
	if _, err := Listen("unix://" + sock); err == nil || !strings.Contains(err.Error(), "the OS allows at most") {
		t.Errorf("Listen(long path) error = %v; want the length limit named", err)
	}
}

func TestPipeUnsupported(t *testing.T) {
	if _, err := Listen("npipe:////./pipe/x"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Listen(npipe) error = %v; want ErrUnsupported", err)
	}
	if _, err := Dial(context.Background(), "npipe:////./pipe/x"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Dial(npipe) error = %v; want ErrUnsupported", err)
	}
}
