//go:build unix

package daemon

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	manager, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer manager.Close()

	t.Setenv(EnvNotifySocket, "")
	if err := Notify("READY=1"); err != nil {
		t.Errorf("Notify without %s: %v; want nothing done", EnvNotifySocket, err)
	}
	t.Setenv(EnvNotifySocket, path)
	for _, state := range []string{"READY=1\nSTATUS=serving", "STOPPING=1"} {
		if err := Notify(state); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		n, err := manager.Read(buf)
		if err != nil || string(buf[:n]) != state {
			t.Errorf("manager read %q, %v; want %q", buf[:n], err, state)
		}
	}
	t.Setenv(EnvNotifySocket, "relative.sock")
	if err := Notify("READY=1"); err == nil || !strings.Contains(err.Error(), EnvNotifySocket) {
		t.Errorf("Notify to a relative path: %v; want an error naming %s", err, EnvNotifySocket)
	}
	t.Setenv(EnvNotifySocket, filepath.Join(t.TempDir(), "gone.sock"))
	if err := Notify("READY=1"); err == nil {
		t.Error("Notify to a missing socket: no error")
	}
}
