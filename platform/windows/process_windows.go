package windows

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

// stillActive is the exit code GetExitCodeProcess reports for a running
// process (STILL_ACTIVE).
const stillActive = 259

// Lookup returns the live process with this PID: its start time, image base
// name and, when the token may be read, its user's SID. It returns an error
// matching broker.ErrNoProcess when there is no such process (or it has
// exited and only handles keep it), and one matching broker.ErrPermission
// when Windows will not even say when it started.
func (h *Host) Lookup(pid int) (broker.Process, error) {
	hp, canWait, err := openProcess(pid)
	if err != nil {
		return broker.Process{}, err
	}
	defer xwin.CloseHandle(hp)
	if err := checkRunning(hp, canWait); err != nil {
		return broker.Process{}, fmt.Errorf("process %d: %w", pid, err)
	}
	start, err := startTime(hp)
	if err != nil {
		return broker.Process{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return broker.Process{PID: pid, StartTime: start, Name: imageName(hp), User: userSID(hp)}, nil
}

// openProcess opens pid for querying and, when allowed, for waiting on it;
// canWait says which. Protected and other users' processes often grant
// PROCESS_QUERY_LIMITED_INFORMATION but not SYNCHRONIZE.
func openProcess(pid int) (h xwin.Handle, canWait bool, err error) {
	if pid <= 0 || uint64(pid) > math.MaxUint32 {
		return 0, false, fmt.Errorf("process %d: %w", pid, broker.ErrNoProcess)
	}
	const query = xwin.PROCESS_QUERY_LIMITED_INFORMATION
	h, err = xwin.OpenProcess(query|xwin.SYNCHRONIZE, false, uint32(pid))
	if err == nil {
		return h, true, nil
	}
	if errors.Is(err, xwin.ERROR_ACCESS_DENIED) {
		h, err = xwin.OpenProcess(query, false, uint32(pid))
		if err == nil {
			return h, false, nil
		}
	}
	return 0, false, openError(pid, err)
}

func openError(pid int, err error) error {
	switch {
	case errors.Is(err, xwin.ERROR_INVALID_PARAMETER):
		// OpenProcess's answer for a PID that names no process.
		return fmt.Errorf("process %d: %w", pid, broker.ErrNoProcess)
	case errors.Is(err, xwin.ERROR_ACCESS_DENIED):
		return fmt.Errorf("open process %d: %w: %w", pid, broker.ErrPermission, err)
	}
	return fmt.Errorf("open process %d: %w", pid, err)
}

// checkRunning returns broker.ErrNoProcess when the process has exited. A
// process may exit with code 259 itself, so the wait state decides when the
// handle allows waiting.
func checkRunning(h xwin.Handle, canWait bool) error {
	if canWait {
		ev, err := xwin.WaitForSingleObject(h, 0)
		switch {
		case err != nil:
			return fmt.Errorf("wait: %w", err)
		case ev == xwin.WAIT_OBJECT_0:
			return broker.ErrNoProcess
		}
		return nil
	}
	var code uint32
	if err := xwin.GetExitCodeProcess(h, &code); err != nil {
		return fmt.Errorf("exit code: %w", err)
	}
	if code != stillActive {
		return broker.ErrNoProcess
	}
	return nil
}

// startTime returns when the process was created.
func startTime(h xwin.Handle) (time.Time, error) {
	var created, exited, kernel, user xwin.Filetime
	if err := xwin.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return time.Time{}, fmt.Errorf("process times: %w", err)
	}
	return time.Unix(0, created.Nanoseconds()), nil
}

// imageName returns the base name of the process's executable, or "" when
// Windows will not say (the System process has no image file).
func imageName(h xwin.Handle) string {
	if p := imagePath(h); p != "" {
		return filepath.Base(p)
	}
	return ""
}

// userSID returns the SID of the process's user, or "" when its token may
// not be read.
func userSID(h xwin.Handle) string {
	var tok xwin.Token
	if err := xwin.OpenProcessToken(h, xwin.TOKEN_QUERY, &tok); err != nil {
		return ""
	}
	defer tok.Close()
	u, err := tok.GetTokenUser()
	if err != nil {
		return ""
	}
	return u.User.Sid.String()
}
