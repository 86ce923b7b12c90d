//go:build unix

package unix

import (
	"fmt"
	"strings"

	"github.com/portbroker/portbroker/broker"
)

// ProtectedNames are the process names the host reports as System, so that
// the broker never stops them, whoever owns them: a user's own
// "systemd --user" or dbus-daemon is as vital to their session as root's
// are to the machine. A name ending in "*" matches every name with that
// prefix. Names are matched against the kernel's command name (Linux keeps
// its first 15 bytes, macOS its first 16), not the command line, which a
// process may rewrite.
//
// Ownership by root and the lack of a terminal alone do not make a process
// System: in containers and CI everything runs so, including the dev
// servers the broker exists to stop.
var ProtectedNames = []string{
	// Init and service managers, and the session plumbing they run.
	"init", "systemd", "systemd-*", "launchd", "dbus-*", "polkitd", "cron", "crond",
	// Logins: killing these ends someone's session.
	"login", "getty", "agetty", "sshd", "sshd-session", "sshd-auth",
	// Container runtimes: their ports belong to containers, which should be
	// stopped through the runtime instead.
	"containerd", "dockerd", "docker-proxy",
	// macOS: the kernel, the login window and display server, and daemons
	// the OS owns and restarts that hold ports users often want
	// (ControlCenter is the AirPlay receiver on 5000 and 7000).
	"kernel_task", "loginwindow", "WindowServer", "ControlCenter", "mDNSResponder", "configd",
}

// protectedName reports whether name matches ProtectedNames.
func protectedName(name string) bool {
	for _, p := range ProtectedNames {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if name == p {
			return true
		}
	}
	return false
}

// isSystem reports whether info is a process the OS runs for itself: PID 1
// (init, whatever its name: in a container it is often the container's
// entry point), kernel threads, and ProtectedNames.
func isSystem(info broker.ProcessInfo) bool {
	return info.PID == 1 || info.KernelThread || protectedName(info.Name)
}

// Inspect returns the facts of a live process, or an error matching
// broker.ErrNoProcess. Its Process is Same as Lookup's for the same process.
//
// PPID is the current parent. ParentAlive is false when the process has
// been orphaned: its PPID is 0 or 1 (init adopted it), or the parent has
// exited or its PID now names a process younger than this one. A child
// subreaper (such as "systemd --user") adopts orphans in init's place, and
// since Unix keeps no record of the original parent, an orphan it adopted
// shows ParentAlive true.
//
// SessionLeader is true for a process that leads its session (PID equals
// its session ID) and whose session has a controlling terminal: a login
// shell, or the sshd or login process above it. A daemon that called
// setsid has no terminal and is not a session leader in this sense.
//
// System is true for PID 1, kernel threads and ProtectedNames.
func (h *Host) Inspect(pid int) (broker.ProcessInfo, error) {
	if pid <= 0 {
		return broker.ProcessInfo{}, fmt.Errorf("pid %d: %w", pid, broker.ErrNoProcess)
	}
	return h.procs.inspect(pid)
}

// Descendants returns the live descendants of p, children before
// grandchildren, each with the facts Inspect gives. A process counts as a
// child only if it started no earlier than its parent, so a reused PID is
// not followed. It returns an error matching broker.ErrNoProcess if p has
// exited or its PID names another process.
func (h *Host) Descendants(p broker.Process) ([]broker.ProcessInfo, error) {
	if p.PID <= 0 {
		return nil, fmt.Errorf("%v: %w", p, broker.ErrNoProcess)
	}
	return h.procs.descendants(p)
}

// Holders returns the processes with a socket bound to port: TCP listeners
// and UDP sockets, IPv4 and IPv6. A process appears once per protocol,
// with the address of its first such socket (IPv4 before IPv6, then the
// one opened first), however many it holds; processes sharing one socket
// (a preforking server's workers) each appear. Sockets whose process this
// user may not see are left out. Connected TCP sockets are not holders:
// they share the port of the listener that accepted them, and a server
// binding with SO_REUSEADDR binds beside them.
//
// On Linux it reads the socket tables through sock_diag (from /proc/net
// where that is missing) and then every process's descriptors, once per
// call; on macOS it runs lsof.
func (h *Host) Holders(port uint16, proto broker.Protocol) ([]broker.ProcessInfo, error) {
	if port == 0 {
		return nil, &broker.FieldError{Field: "port", Rule: "must be from 1 to 65535"}
	}
	if !proto.Valid() {
		return nil, &broker.FieldError{Field: "protocol", Rule: fmt.Sprintf("%v is not tcp, udp or tcp+udp", proto)}
	}
	return h.procs.holders(port, proto)
}

// clip shortens b for an error message.
func clip(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

var (
	_ broker.ProcessInspector = (*Host)(nil)
	_ broker.PortHolders      = (*Host)(nil)
)
