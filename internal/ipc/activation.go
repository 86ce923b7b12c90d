package ipc

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Environment of systemd's socket-activation protocol (sd_listen_fds(3)).
const (
	envListenPID     = "LISTEN_PID"
	envListenFDs     = "LISTEN_FDS"
	envListenFDNames = "LISTEN_FDNAMES"
	// listenFDsStart is the first fd a service manager hands over.
	listenFDsStart = 3
)

// ActivatedName is the FileDescriptorName the .socket unit gives the
// broker's socket; with several sockets handed over, that one is served.
const ActivatedName = "portbroker"

// Activated returns the unix stream socket a service manager (systemd)
// handed to this process, and its broker
// address, or a nil listener when none was handed over. It unsets the
// protocol's environment so that children do not take the socket for
// theirs. The socket is served as it is: the manager chose its path and
// mode.
func Activated() (net.Listener, string, error) {
	return activated(os.Getenv, os.Unsetenv, os.Getpid(), listenFDsStart)
}

// activated is Activated with the environment, pid and first fd as
// arguments.
func activated(getenv func(string) string, unsetenv func(string) error, pid, firstFD int) (net.Listener, string, error) {
	pidStr, nStr, names := getenv(envListenPID), getenv(envListenFDs), getenv(envListenFDNames)
	if nStr == "" {
		return nil, "", nil
	}
	// The variables are for this process alone: a child must not see them,
	// whatever happens next.
	for _, k := range []string{envListenPID, envListenFDs, envListenFDNames} {
		_ = unsetenv(k)
	}
	if got, err := strconv.Atoi(pidStr); err != nil || got != pid {
		// Meant for a parent that exec'd us without clearing them.
		return nil, "", nil
	}
	n, err := strconv.Atoi(nStr)
	if err != nil || n < 1 {
		return nil, "", fmt.Errorf("%s=%q: want the number of sockets handed over, at least 1", envListenFDs, nStr)
	}
	fd := firstFD
	if n > 1 {
		list := strings.Split(names, ":")
		i := 0
		for i < len(list) && list[i] != ActivatedName {
			i++
		}
		if i >= n {
			return nil, "", fmt.Errorf("%s=%d but none of %s=%q is %q: name the broker's socket FileDescriptorName=%s", envListenFDs, n, envListenFDNames, names, ActivatedName, ActivatedName)
		}
		fd += i
	}
	return listenerFromFD(fd)
}

// listenerFromFD takes over fd as a listening stream socket.
func listenerFromFD(fd int) (net.Listener, string, error) {
	f := os.NewFile(uintptr(fd), "activated socket")
	if f == nil {
		return nil, "", fmt.Errorf("activated socket fd %d: not open", fd)
	}
	ln, err := net.FileListener(f)
	// FileListener dups the fd; the original is ours to close either way.
	f.Close()
	if err != nil {
		return nil, "", fmt.Errorf("activated socket fd %d: want a listening stream socket: %w", fd, err)
	}
	// Only a unix socket names its callers; loopback TCP would need the
	// token, which a socket made by someone else cannot promise.
	a, ok := ln.Addr().(*net.UnixAddr)
	if !ok || a.Net != "unix" {
		ln.Close()
		return nil, "", fmt.Errorf("activated socket fd %d: a %s socket at %s; portbrokerd serves a unix stream socket only (ListenStream=%%t/portbroker/portbroker.sock)", fd, ln.Addr().Network(), ln.Addr())
	}
	return ln, formatAddr(NetworkUnix, a.Name), nil
}
