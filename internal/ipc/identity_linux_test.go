package ipc

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecondUser runs a real second user against the daemon's sockets: it
// cannot reach a private (0600) socket, nor a group (0660) socket unless
// it is in the group, and when it can, the server sees its uid and pid.
func TestSecondUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a second user with useradd; run as root (.ci/run does)")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skipf("needs useradd: %v", err)
	}
	other := addUser(t)

	// A directory the other user can pass through, holding a copy of this
	// test binary it can run.
	base, err := os.MkdirTemp("", "pbuser")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	chmod(t, base, 0o755)
	exe := filepath.Join(base, "ipc.test")
	copyExecutable(t, exe)

	const nogroup = 65534
	tests := []struct {
		name    string
		group   bool   // listen with the other user's group
		gid     uint32 // the child's only group
		wantErr string // in the child's error; empty: the call succeeds
	}{
		{"private socket", false, other.gid, "connect: permission denied"},
		{"group socket, member", true, other.gid, ""},
		{"group socket, not a member", true, nogroup, "connect: permission denied"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := "unix://" + filepath.Join(base, strconv.Itoa(i), "s.sock")
			var opts []ListenOption
			if tt.group {
				opts = append(opts, WithGroup(int(other.gid)))
			}
			ln, err := ListenWith(addr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			rec := serve(t, ln, "", "/state/token")

			cmd := helperCommandAt(exe, addr)
			cmd.Dir = base
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other.uid, Gid: tt.gid, Groups: []uint32{}}}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err = cmd.Run()

			calls := rec.all()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(stderr.String(), tt.wantErr) {
					t.Errorf("child as uid %d gid %d: %v: %s; want it refused with %q", other.uid, tt.gid, err, stderr.Bytes(), tt.wantErr)
				}
				if len(calls) != 0 {
					t.Errorf("server saw %d calls from a refused user", len(calls))
				}
				return
			}
			if err != nil {
				t.Fatalf("child as uid %d gid %d: %v: %s", other.uid, tt.gid, err, stderr.Bytes())
			}
			want := Identity{PID: cmd.Process.Pid, UID: strconv.Itoa(int(other.uid)), Admin: false, Known: true}
			if len(calls) != 1 || !calls[0].ok || calls[0].id != want {
				t.Errorf("server saw %+v; want one call from %+v", calls, want)
			}
		})
	}
}

type testUser struct {
	name     string
	uid, gid uint32
}

// addUser creates a system user with its own group, removed when the test
// ends.
func addUser(t *testing.T) testUser {
	t.Helper()
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	name := "pbtest" + hex.EncodeToString(r[:])
	args := []string{"--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name}
	// Other tests may be adding users too; useradd then fails (exit 10)
	// on the passwd lock rather than waiting for it.
	for attempt := 0; ; attempt++ {
		out, err := exec.Command("useradd", args...).CombinedOutput()
		if err == nil {
			break
		}
		var ee *exec.ExitError
		if attempt < 10 && errors.As(err, &ee) && ee.ExitCode() == 10 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
		// userdel drops the user's own group where USERGROUPS_ENAB is set.
		if _, err := user.LookupGroup(name); err == nil {
			if out, err := exec.Command("groupdel", name).CombinedOutput(); err != nil {
				t.Errorf("groupdel %s: %v: %s", name, err, out)
			}
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return testUser{name: name, uid: uint32(uid), gid: uint32(gid)}
}

// copyExecutable copies this test binary to dst, mode 0755.
func copyExecutable(t *testing.T, dst string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(out, src)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	chmod(t, dst, 0o755)
}
