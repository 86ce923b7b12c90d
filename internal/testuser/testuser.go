//go:build linux

package testuser

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// User is a throwaway system user with its own group.
type User struct {
	Name     string
	UID, GID uint32
}

// Skip skips t unless the process can create users.
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a second user with useradd; run as root (.ci/run does)")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skipf("needs useradd: %v", err)
	}
}

// Add creates a system user with its own group, removed when t ends.
func Add(t testing.TB) User {
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
	return User{Name: name, UID: uint32(uid), GID: uint32(gid)}
}

// SharedDir makes a 0755 temp dir any user can pass through, holding a
// copy of the running test binary (mode 0755) that they can run. It
// returns the dir and the binary's path.
func SharedDir(t testing.TB) (dir, exe string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "pbuser")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe = filepath.Join(dir, filepath.Base(self))
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out, err := os.OpenFile(exe, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
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
	if err := os.Chmod(exe, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, exe
}
