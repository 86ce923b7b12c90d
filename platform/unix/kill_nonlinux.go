//go:build unix && !linux

package unix

import (
	"fmt"
	"syscall"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// signalProcess checks that p's PID still names p and then calls kill(2).
// Without pidfds a PID reused between the two would get the signal; the
// window is one system call wide, and PIDs are reused only after the PID
// space wraps.
func (h *Host) signalProcess(p broker.Process, sig syscall.Signal) error {
	if err := h.checkSame(p, sig); err != nil {
		return err
	}
	return signalError(p, sig, xunix.Kill(p.PID, sig))
}

// signalGroup checks that p's PID still names p and leads its group, then
// signals the group with kill(2).
func (h *Host) signalGroup(p broker.Process, sig syscall.Signal) error {
	if err := h.checkSame(p, sig); err != nil {
		return err
	}
	pgid, err := xunix.Getpgid(p.PID)
	if err != nil {
		return signalError(p, sig, err)
	}
	if pgid != p.PID {
		return fmt.Errorf("%s group of %v: it belongs to group %d: %w", signalName(sig), p, pgid, ErrNotGroupLeader)
	}
	return signalError(p, sig, xunix.Kill(-p.PID, sig))
}
