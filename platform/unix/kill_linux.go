package unix

import (
	"errors"
	"fmt"
	"syscall"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// signalProcess signals p through a pidfd, which cannot reach another
// process even if p exits and its PID is reused after the check. Without
// pidfds (Linux before 5.3, or a seccomp policy that refuses them) it
// checks and then calls kill(2), leaving the reuse window that pidfds close.
func (h *Host) signalProcess(p broker.Process, sig syscall.Signal) error {
	return h.withPidfd(p, sig, func(pidfd int) error {
		if err := h.checkSame(p, sig); err != nil {
			return err
		}
		if pidfd < 0 {
			return signalError(p, sig, xunix.Kill(p.PID, sig))
		}
		return signalError(p, sig, xunix.PidfdSendSignal(pidfd, sig, nil, 0))
	})
}

// signalGroup signals the group p leads, through a pidfd with
// PIDFD_SIGNAL_PROCESS_GROUP where the kernel has it (6.9 on); before
// that, with kill(2) on the group. A group ID cannot be given to a new
// process while the group has members, so the check still holds when the
// call comes.
func (h *Host) signalGroup(p broker.Process, sig syscall.Signal) error {
	return h.withPidfd(p, sig, func(pidfd int) error {
		if err := h.checkGroupLeader(p, sig); err != nil {
			return err
		}
		if pidfd >= 0 {
			err := xunix.PidfdSendSignal(pidfd, sig, nil, xunix.PIDFD_SIGNAL_PROCESS_GROUP)
			if !errors.Is(err, xunix.EINVAL) {
				return signalError(p, sig, err)
			}
		}
		return signalError(p, sig, xunix.Kill(-p.PID, sig))
	})
}

// withPidfd calls f with a pidfd for p's PID, opened before f checks that
// the PID names p: since p held its PID from before the call until that
// check, the pidfd is p's. Where pidfds are unavailable f gets -1 and must
// use kill(2).
func (h *Host) withPidfd(p broker.Process, sig syscall.Signal, f func(pidfd int) error) error {
	pidfd, err := xunix.PidfdOpen(p.PID, 0)
	switch {
	case err == nil:
		defer xunix.Close(pidfd)
		return f(pidfd)
	case errors.Is(err, xunix.ESRCH):
		return fmt.Errorf("%s %v: %w", signalName(sig), p, broker.ErrNoProcess)
	case errors.Is(err, xunix.ENOSYS), errors.Is(err, xunix.EPERM):
		return f(-1)
	}
	return fmt.Errorf("%s %v: pidfd_open: %w", signalName(sig), p, err)
}

// checkGroupLeader returns an error matching broker.ErrNoProcess unless
// p's PID still names p, and ErrNotGroupLeader unless p leads its group.
// It reads both from one read of /proc/PID/stat, so they describe one
// process.
func (h *Host) checkGroupLeader(p broker.Process, sig syscall.Signal) error {
	boot, err := h.procs.bootTime()
	if err != nil {
		return fmt.Errorf("%s group of %v: %w", signalName(sig), p, err)
	}
	st, err := readStat(p.PID)
	if err == nil && (st.state == 'Z' || st.state == 'X') {
		err = broker.ErrNoProcess
	}
	if err != nil {
		return fmt.Errorf("%s group of %v: %w", signalName(sig), p, err)
	}
	if cur := (broker.Process{PID: p.PID, StartTime: startTime(boot, st.startTicks)}); !cur.Same(p) {
		return fmt.Errorf("%s group of %v: pid %d now names another process: %w", signalName(sig), p, p.PID, broker.ErrNoProcess)
	}
	if st.pgrp != p.PID {
		return fmt.Errorf("%s group of %v: it belongs to group %d: %w", signalName(sig), p, st.pgrp, ErrNotGroupLeader)
	}
	return nil
}
