//go:build unix

package ipc

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

// testGroup returns a gid this process may give its files: as root any,
// so one that differs from root's own; else the primary group.
func testGroup() int {
	if os.Geteuid() == 0 {
		return 65534
	}
	return os.Getgid()
}

func TestListenWithGroup(t *testing.T) {
	gid := testGroup()
	opts := map[string]ListenOption{
		"WithGroup":              WithGroup(gid),
		"WithGroupName(decimal)": WithGroupName(strconv.Itoa(gid)),
	}
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		opts["WithGroupName(name)"] = WithGroupName(g.Name)
	}
	for name, opt := range opts {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "shared", "portbroker")
			sock := filepath.Join(dir, "portbroker.sock")
			addr := "unix://" + sock
			ln, err := ListenWith(addr, opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })

			checkMode(t, dir, fs.ModeDir|0o750, gid)
			checkMode(t, sock, fs.ModeSocket|0o660, gid)
			checkMode(t, sock+".lock", 0o600, -1)
			roundTrip(t, ln, addr)
		})
	}
}

func TestListenWithGroupExistingDir(t *testing.T) {
	gid := testGroup()
	tests := []struct {
		name        string
		mode        fs.FileMode
		group       bool // give the directory the socket's group
		errContains string
	}{
		{"private dir keeps the group out", 0o700, false, "keeps group"},
		{"dir of another group", 0o750, false, "keeps group"},
		{"dir of the group", 0o750, true, ""},
		{"dir open to all for search", 0o711, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sockdir")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			chmod(t, dir, tt.mode)
			wantGroup := -1
			if tt.group {
				if err := os.Chown(dir, -1, gid); err != nil {
					t.Fatal(err)
				}
				wantGroup = gid
			} else if gid == os.Getgid() && tt.errContains != "" && tt.mode&0o010 != 0 {
				t.Skip("needs a group other than this user's primary group (run as root)")
			}
			addr := "unix://" + filepath.Join(dir, "s.sock")
			ln, err := ListenWith(addr, WithGroup(gid))
			if tt.errContains != "" {
				if err == nil {
					ln.Close()
					t.Fatal("ListenWith succeeded; want the directory refused")
				}
				if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), tt.errContains) || !strings.Contains(err.Error(), "chmod 750") {
					t.Errorf("error = %q; want it to name %s, say %q and give the fix", err, dir, tt.errContains)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				ln.Close()
			}
			// An existing directory is never changed.
			checkMode(t, dir, fs.ModeDir|tt.mode, wantGroup)
		})
	}
}

func TestListenWithGroupInvalid(t *testing.T) {
	tests := []struct {
		opt         ListenOption
		errContains string
	}{
		{WithGroup(-1), "socket group -1: must be a gid of 0 or more"},
		{WithGroupName("portbroker-no-such-group"), `socket group "portbroker-no-such-group"`},
	}
	for _, tt := range tests {
		sock := filepath.Join(t.TempDir(), "g.sock")
		ln, err := ListenWith("unix://"+sock, tt.opt)
		if err == nil {
			ln.Close()
			t.Errorf("ListenWith succeeded; want %q", tt.errContains)
			continue
		}
		if !strings.Contains(err.Error(), tt.errContains) {
			t.Errorf("error = %q; want %q", err, tt.errContains)
		}
		if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	}
}

// checkMode checks path's type and permission bits and, when gid >= 0,
// its group.
func checkMode(t *testing.T, path string, want fs.FileMode, gid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (fs.ModeType | fs.ModePerm); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
	if got := fi.Sys().(*syscall.Stat_t).Gid; gid >= 0 && int(got) != gid {
		t.Errorf("%s: group %d, want %d", path, got, gid)
	}
}

func TestDialRefusesUntrustedSocketDir(t *testing.T) {
	const nobody = 65534
	asRoot := func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("changing a directory's owner needs root")
		}
	}
	mkdir := func(t *testing.T, path string, mode fs.FileMode) {
		t.Helper()
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		chmod(t, path, mode)
	}
	tests := []struct {
		name string
		// prepare returns the directory to put the socket in, under base.
		prepare     func(t *testing.T, base string) string
		errContains string // empty: the dial succeeds
	}{
		{"own private dir", func(t *testing.T, base string) string {
			dir := filepath.Join(base, "own")
			mkdir(t, dir, 0o700)
			return dir
		}, ""},
		{"own dir shared with a group for reading", func(t *testing.T, base string) string {
			dir := filepath.Join(base, "own")
			mkdir(t, dir, 0o750)
			return dir
		}, ""},
		{"group writable", func(t *testing.T, base string) string {
			dir := filepath.Join(base, "gw")
			mkdir(t, dir, 0o770)
			return dir
		}, "mode 0770: other users can write it"},
		{"world writable and sticky, like /tmp", func(t *testing.T, base string) string {
			dir := filepath.Join(base, "tmp")
			mkdir(t, dir, 0o1777)
			return dir
		}, "other users can write it"},
		{"another user's dir in a shared dir", func(t *testing.T, base string) string {
			asRoot(t)
			shared := filepath.Join(base, "tmp")
			mkdir(t, shared, 0o1777)
			dir := filepath.Join(shared, "portbroker-1000")
			mkdir(t, dir, 0o755)
			chown(t, dir, nobody)
			return dir
		}, "is owned by uid 65534, not you (uid 0) or root, and other users can write"},
		{"another user's world-writable dir in a shared dir", func(t *testing.T, base string) string {
			asRoot(t)
			shared := filepath.Join(base, "tmp")
			mkdir(t, shared, 0o1777)
			dir := filepath.Join(shared, "portbroker-1000")
			mkdir(t, dir, 0o777)
			chown(t, dir, nobody)
			return dir
		}, "is owned by uid 65534, not you (uid 0) or root"},
		{"another user's dir that root placed", func(t *testing.T, base string) string {
			asRoot(t)
			dir := filepath.Join(base, "service")
			mkdir(t, dir, 0o755)
			chown(t, dir, nobody)
			return dir
		}, ""},
		{"symlink another user planted", func(t *testing.T, base string) string {
			asRoot(t)
			real := filepath.Join(base, "real")
			mkdir(t, real, 0o700)
			shared := filepath.Join(base, "tmp")
			mkdir(t, shared, 0o1777)
			link := filepath.Join(shared, "portbroker-1000")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(link, nobody, -1); err != nil {
				t.Fatal(err)
			}
			return link
		}, "is a symlink owned by uid 65534"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.prepare(t, shortTempDir(t))
			sock := filepath.Join(dir, "s.sock")
			// A server that skips Listen's own checks, as a planted one would.
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()

			c, err := Dial(t.Context(), "unix://"+sock)
			if tt.errContains == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded; want the socket refused")
			}
			if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), tt.errContains) {
				t.Errorf("error = %q; want it to name %s and say %q", err, dir, tt.errContains)
			}
		})
	}
}

func TestDialMissingSocketDir(t *testing.T) {
	_, err := Dial(t.Context(), "unix://"+filepath.Join(t.TempDir(), "missing", "s.sock"))
	if !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "refusing") {
		t.Errorf("Dial into a missing directory: %v; want the plain no-such-file error", err)
	}
}

func chown(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.Chown(path, uid, -1); err != nil {
		t.Fatal(err)
	}
}

// shortTempDir is t.TempDir with a short path, for sockets nested deeper
// than the OS's socket path limit allows under t.TempDir.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	return dir
}
