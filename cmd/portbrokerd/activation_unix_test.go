//go:build unix

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/client/clienttest"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// envExecActivated makes the test binary a stand-in for systemd's last
// step: it sets LISTEN_PID to its own pid and execs the daemon named by
// the variable, which keeps that pid and the fds handed over.
const envExecActivated = "PORTBROKERD_TEST_EXEC_ACTIVATED"

func TestMain(m *testing.M) {
	if bin := os.Getenv(envExecActivated); bin != "" {
		os.Unsetenv(envExecActivated)
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		err := syscall.Exec(bin, append([]string{bin}, os.Args[1:]...), os.Environ())
		fmt.Fprintf(os.Stderr, "exec %s: %v\n", bin, err)
		os.Exit(127)
	}
	os.Exit(clienttest.CheckLeftovers(m.Run()))
}

// failAfter bounds waits for the daemon; it only matters when a test fails.
const failAfter = 30 * time.Second

// Under systemd: the socket handed over as fd 3 is served (not the
// configured address), READY=1 arrives on NOTIFY_SOCKET once it serves,
// and STOPPING=1 when it is told to stop.
func TestSocketActivationAndNotify(t *testing.T) {
	bin := clienttest.Binary(t)
	dir, err := os.MkdirTemp("", "pbact") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sockPath := filepath.Join(dir, "activated.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sockPath, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	sock, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	// The manager keeps the socket file; only the daemon accepts on it.
	ln.SetUnlinkOnClose(false)
	ln.Close()
	defer sock.Close()

	notifyPath := filepath.Join(dir, "notify.sock")
	manager, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer manager.Close()

	configured := filepath.Join(dir, "configured.sock")
	var logs bytes.Buffer
	cmd := exec.Command(os.Args[0], "--addr", "unix://"+configured, "--state-dir", filepath.Join(dir, "state"), "--range", "26000-26099")
	cmd.ExtraFiles = []*os.File{sock} // fd 3
	cmd.Env = append(os.Environ(), envExecActivated+"="+bin, "LISTEN_FDS=1", "LISTEN_FDNAMES=portbroker",
		"NOTIFY_SOCKET="+notifyPath, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "PORTBROKER_CONFIG=")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("portbrokerd log:\n%s", logs.String())
		}
	}()

	read := func() string {
		t.Helper()
		manager.SetReadDeadline(time.Now().Add(failAfter))
		buf := make([]byte, 4096)
		n, err := manager.Read(buf)
		if err != nil {
			t.Fatalf("read the notify socket: %v", err)
		}
		return string(buf[:n])
	}
	ready := read()
	if !strings.Contains(ready, "READY=1") || !strings.Contains(ready, fmt.Sprintf("MAINPID=%d", cmd.Process.Pid)) ||
		!strings.Contains(ready, "unix://"+sockPath) {
		t.Errorf("first notification %q; want READY=1, MAINPID=%d and the activated address", ready, cmd.Process.Pid)
	}

	c, err := client.New(t.Context(), client.WithAddr("unix://"+sockPath), client.WithAutoStart(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.RPC().GetStatus(t.Context(), &brokerpb.GetStatusRequest{})
	if err != nil || st.GetPid() != int32(cmd.Process.Pid) {
		t.Fatalf("GetStatus over the activated socket: pid %d, %v; want the daemon, pid %d", st.GetPid(), err, cmd.Process.Pid)
	}
	if _, err := os.Stat(configured); !os.IsNotExist(err) {
		t.Errorf("the configured address %s was bound too (%v); want only the socket handed over served", configured, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "STOPPING=1" {
		t.Errorf("notification at SIGTERM %q; want STOPPING=1", got)
	}
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Errorf("daemon exit: %v", err)
	}
	if _, err := os.Stat(sockPath); err != nil {
		t.Errorf("the daemon removed the manager's socket: %v", err)
	}
}

// A second daemon on the same state dir exits 3, which the systemd unit
// does not restart, and says what to do.
func TestSecondDaemonExitsAlreadyRunning(t *testing.T) {
	bin := clienttest.Binary(t)
	d := clienttest.Start(t, bin)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--addr", "unix://"+filepath.Join(d.Dir, "second.sock"), "--state-dir", d.StateDir, "--range", d.Range)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(d.Dir, "config"), "PORTBROKER_CONFIG=")
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitAlreadyRunning {
		t.Fatalf("second daemon: %v, stderr %q; want exit %d", err, stderr.String(), exitAlreadyRunning)
	}
	if msg := stderr.String(); !strings.Contains(msg, "another portbrokerd is running") || !strings.Contains(msg, strconv.Itoa(d.PID)) || !strings.Contains(msg, "not starting a second one") {
		t.Errorf("second daemon said %q; want it to name the running one (pid %d) and what to do", msg, d.PID)
	}
}
