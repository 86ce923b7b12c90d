//go:build unix

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// shimFD is the fd the shim gets its control socket on and the child gets
// its listening socket on (SD_LISTEN_FDS_START).
const shimFD = 3

// shimReady is the shim's first message: it runs and is named for CMD.
const shimReady = "ready\n"

// runShim is the child side of brokerctl run (see run_unix.go): args are
// NAME -- CMD ARGS. It waits for the port, then execs CMD in place, so it
// returns only on failure, with the exit code to use.
func runShim(args []string) int {
	if len(args) < 3 || args[1] != "--" {
		fmt.Fprintf(os.Stderr, "brokerctl: %s is brokerctl run's own helper, not a command\n", shimArg)
		return 2
	}
	name, argv := args[0], args[2:]
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "brokerctl: run %s: %s\n", name, fmt.Sprintf(format, a...))
		return code
	}
	// Look CMD up before the lease is taken, so a typo fails fast.
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fail(127, "%v", err)
	}
	setProcessName(filepath.Base(path))
	if _, err := syscall.Write(shimFD, []byte(shimReady)); err != nil {
		return fail(1, "tell brokerctl the child is ready: %v", err)
	}
	port, fds, err := receivePort()
	if errors.Is(err, io.EOF) {
		return 1 // brokerctl gave up and says why
	}
	if err != nil {
		return fail(1, "%v", err)
	}

	env := portEnv(withoutEnv(os.Environ(), "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"), port)
	switch len(fds) {
	case 0:
		syscall.CloseOnExec(shimFD)
	case 1:
		// dup2 replaces the control socket with the listening socket and
		// leaves the new fd 3 open across exec.
		if err := unix.Dup2(fds[0], shimFD); err != nil {
			return fail(1, "put the socket on fd %d: %v", shimFD, err)
		}
		syscall.Close(fds[0])
		if _, err := unix.FcntlInt(shimFD, unix.F_SETFD, 0); err != nil {
			return fail(1, "keep fd %d open for %s: %v", shimFD, argv[0], err)
		}
		env = append(env, "LISTEN_FDS=1", "LISTEN_PID="+strconv.Itoa(os.Getpid()), "LISTEN_FDNAMES="+name)
	default:
		return fail(1, "brokerctl sent %d sockets, want at most one", len(fds))
	}
	err = syscall.Exec(path, childArgv(argv, port), env)
	return fail(126, "exec %s: %v", path, err)
}

// receivePort reads the port line and the socket brokerctl may send with
// it. It returns io.EOF when brokerctl closed the socket without one.
func receivePort() (int, []int, error) {
	buf := make([]byte, 16)
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := syscall.Recvmsg(shimFD, buf, oob, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("receive the port: %w", err)
	}
	if n == 0 {
		return 0, nil, io.EOF
	}
	var fds []int
	if oobn > 0 {
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return 0, nil, fmt.Errorf("receive the socket: %w", err)
		}
		for _, m := range msgs {
			got, err := syscall.ParseUnixRights(&m)
			if err != nil {
				return 0, nil, fmt.Errorf("receive the socket: %w", err)
			}
			fds = append(fds, got...)
		}
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || port < 1 || port > 65535 {
		return 0, nil, fmt.Errorf("brokerctl sent %q, not a port", buf[:n])
	}
	return port, fds, nil
}
