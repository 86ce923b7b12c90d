package ipc

import (
	"bytes"
	"github.com/portbroker/portbroker/internal/testuser"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestSecondUser runs a real second user against the daemon's sockets: it
// cannot reach a private (0600) socket, nor a group (0660) socket unless
// it is in the group, and when it can, the server sees its uid and pid.
func TestSecondUser(t *testing.T) {
	testuser.Skip(t)
	other := testuser.Add(t)
	// A directory the other user can pass through, holding a copy of this
	// test binary it can run.
	base, exe := testuser.SharedDir(t)

	const nogroup = 65534
	tests := []struct {
		name    string
		group   bool   // listen with the other user's group
		gid     uint32 // the child's only group
		wantErr string // in the child's error; empty: the call succeeds
	}{
		{"private socket", false, other.GID, "connect: permission denied"},
		{"group socket, member", true, other.GID, ""},
		{"group socket, not a member", true, nogroup, "connect: permission denied"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := "unix://" + filepath.Join(base, strconv.Itoa(i), "s.sock")
			var opts []ListenOption
			if tt.group {
				opts = append(opts, WithGroup(int(other.GID)))
			}
			ln, err := ListenWith(addr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			rec := serve(t, ln, "", "/state/token")

			cmd := helperCommandAt(exe, addr)
			cmd.Dir = base
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other.UID, Gid: tt.gid, Groups: []uint32{}}}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err = cmd.Run()

			calls := rec.all()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(stderr.String(), tt.wantErr) {
					t.Errorf("child as uid %d gid %d: %v: %s; want it refused with %q", other.UID, tt.gid, err, stderr.Bytes(), tt.wantErr)
				}
				if len(calls) != 0 {
					t.Errorf("server saw %d calls from a refused user", len(calls))
				}
				return
			}
			if err != nil {
				t.Fatalf("child as uid %d gid %d: %v: %s", other.UID, tt.gid, err, stderr.Bytes())
			}
			want := Identity{PID: cmd.Process.Pid, UID: strconv.Itoa(int(other.UID)), Admin: false, Known: true, PIDNamespace: pidNamespace(os.Getpid())}
			if len(calls) != 1 || !calls[0].ok || calls[0].id != want {
				t.Errorf("server saw %+v; want one call from %+v", calls, want)
			}
		})
	}
}
