//go:build unix

package unix

import (
	"errors"
	"fmt"
	"syscall"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// ErrNotGroupLeader is returned by SignalGroup for a process that does not
// lead its process group.
var ErrNotGroupLeader = errors.New("not a process group leader")

// Terminate sends SIGTERM to p if p is still the same process (PID and
// start time). It returns an error matching broker.ErrNoProcess if p has
// exited or its PID names another process, and broker.ErrPermission if
// this user may not signal p. It refuses PID 1 with broker.ErrPermission.
func (h *Host) Terminate(p broker.Process) error { return h.signal(p, xunix.SIGTERM) }

// Kill sends SIGKILL to p, as Terminate sends SIGTERM.
func (h *Host) Kill(p broker.Process) error { return h.signal(p, xunix.SIGKILL) }

// SignalGroup sends sig to the process group p leads, if p is still the
// same process and leads its group (its PID is the group's ID, as it is
// for a process started with Setpgid or Setsid); otherwise it returns
// ErrNotGroupLeader, since the group p merely belongs to may hold its
// parent and the caller. The group may also hold processes that are not
// p's descendants, and descendants may have left it: it complements
// stopping the tree from Descendants, not replaces it. Errors are as for
// Terminate.
func (h *Host) SignalGroup(p broker.Process, sig syscall.Signal) error {
	if err := checkSignalable(p, sig); err != nil {
		return err
	}
	return h.signalGroup(p, sig)
}

// checkSignalable refuses what no signal may target: PIDs below 1, which
// kill(2) reads as process groups or every process, and init.
func checkSignalable(p broker.Process, sig syscall.Signal) error {
	if p.PID <= 0 {
		return &broker.FieldError{Field: "pid", Rule: fmt.Sprintf("%d: must be positive", p.PID)}
	}
	if p.PID == 1 {
		return fmt.Errorf("%s %v: pid 1 is init: %w", signalName(sig), p, broker.ErrPermission)
	}
	return nil
}

func (h *Host) signal(p broker.Process, sig syscall.Signal) error {
	if err := checkSignalable(p, sig); err != nil {
		return err
	}
	return h.signalProcess(p, sig)
}

// checkSame returns an error matching broker.ErrNoProcess unless p's PID
// still names p.
func (h *Host) checkSame(p broker.Process, sig syscall.Signal) error {
	cur, err := h.Lookup(p.PID)
	if errors.Is(err, broker.ErrNoProcess) {
		return fmt.Errorf("%s %v: %w", signalName(sig), p, broker.ErrNoProcess)
	}
	if err != nil {
		return fmt.Errorf("%s %v: %w", signalName(sig), p, err)
	}
	if !cur.Same(p) {
		return fmt.Errorf("%s %v: pid %d now names a process started at %v: %w",
			signalName(sig), p, p.PID, cur.StartTime.Format("2006-01-02T15:04:05.000Z07:00"), broker.ErrNoProcess)
	}
	return nil
}

// signalError maps the error of sending sig to p.
func signalError(p broker.Process, sig syscall.Signal, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, xunix.ESRCH):
		return fmt.Errorf("%s %v: %w", signalName(sig), p, broker.ErrNoProcess)
	case errors.Is(err, xunix.EPERM):
		return fmt.Errorf("%s %v: %w", signalName(sig), p, broker.ErrPermission)
	}
	return fmt.Errorf("%s %v: %w", signalName(sig), p, err)
}

// signalName names sig for an error message.
func signalName(sig syscall.Signal) string {
	if name := xunix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

var _ broker.Killer = (*Host)(nil)
