//go:build unix

package ipc

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// handOver places the listeners' sockets at consecutive fds from first, as
// a service manager would from 3, and closes those fds at the end.
func handOver(t *testing.T, first int, lns ...net.Listener) {
	t.Helper()
	for i, ln := range lns {
		f, err := ln.(interface {
			File() (*os.File, error)
		}).File()
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Dup2(int(f.Fd()), first+i); err != nil {
			t.Fatal(err)
		}
		f.Close()
		fd := first + i
		t.Cleanup(func() { syscall.Close(fd) })
	}
}

func TestActivated(t *testing.T) {
	const first = 200 // far above what the test binary has open
	dir := t.TempDir()
	unixLn := func(name string) net.Listener {
		ln, err := net.Listen("unix", filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	tests := []struct {
		name    string
		env     map[string]string
		lns     func() []net.Listener
		want    string // the address served, "" for none
		wantErr string
	}{
		{name: "nothing handed over", env: map[string]string{}},
		{name: "for another process", env: map[string]string{"LISTEN_PID": "1", "LISTEN_FDS": "1"}, lns: func() []net.Listener { return []net.Listener{unixLn("a.sock")} }},
		{name: "one socket", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "1"},
			lns: func() []net.Listener { return []net.Listener{unixLn("one.sock")} }, want: "one.sock"},
		{name: "the named one of two", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "other:portbroker"},
			lns: func() []net.Listener { return []net.Listener{unixLn("other.sock"), unixLn("broker.sock")} }, want: "broker.sock"},
		{name: "two without our name", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "x:y"},
			lns: func() []net.Listener { return []net.Listener{unixLn("x.sock"), unixLn("y.sock")} }, wantErr: "FileDescriptorName=portbroker"},
		{name: "bad count", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "many"}, wantErr: `LISTEN_FDS="many"`},
		{name: "TCP", env: map[string]string{"LISTEN_PID": "42", "LISTEN_FDS": "1"},
			lns: func() []net.Listener {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				return []net.Listener{ln}
			}, wantErr: "unix stream socket only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.lns != nil {
				handOver(t, first, tt.lns()...)
			}
			unset := map[string]bool{}
			ln, addr, err := activated(func(k string) string { return tt.env[k] }, func(k string) error { unset[k] = true; return nil }, 42, first)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.env) > 0 && (!unset["LISTEN_PID"] || !unset["LISTEN_FDS"] || !unset["LISTEN_FDNAMES"]) {
				t.Errorf("unset %v; want the three LISTEN_ variables unset for children", unset)
			}
			if tt.want == "" {
				if ln != nil {
					t.Fatalf("listener %v for %s", ln.Addr(), tt.name)
				}
				return
			}
			defer ln.Close()
			if wantAddr := "unix://" + filepath.Join(dir, tt.want); addr != wantAddr {
				t.Errorf("addr = %q, want %q", addr, wantAddr)
			}
			// The socket handed over is the one served: a dial to its path
			// is accepted here.
			accepted := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					c.Close()
				}
				accepted <- err
			}()
			c, err := net.Dial("unix", filepath.Join(dir, tt.want))
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if err := <-accepted; err != nil {
				t.Errorf("Accept: %v", err)
			}
		})
	}
}
