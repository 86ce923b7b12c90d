package unix

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
)

// zombie is SZOMB, the p_stat of a process that exited and is not reaped.
const zombie = 5

// procTable reads processes with sysctl kern.proc.pid.
type procTable struct{}

func newProcTable() procTable { return procTable{} }

func (procTable) lookup(pid int) (broker.Process, error) {
	kp, err := kinfo(pid)
	if err != nil {
		return broker.Process{}, err
	}
	return processOf(kp), nil
}

// kinfo returns the kinfo_proc of the live process pid, or an error
// matching broker.ErrNoProcess.
func kinfo(pid int) (*xunix.KinfoProc, error) {
	if pid <= 0 || pid > math.MaxInt32 {
		return nil, fmt.Errorf("pid %d: %w", pid, broker.ErrNoProcess)
	}
	kp, err := xunix.SysctlKinfoProc("kern.proc.pid", pid)
	// For a missing PID the sysctl returns no record, which x/sys reports as
	// EIO.
	if errors.Is(err, xunix.EIO) || errors.Is(err, xunix.ESRCH) || err == nil && kp.Proc.P_pid != int32(pid) {
		return nil, fmt.Errorf("pid %d: %w", pid, broker.ErrNoProcess)
	}
	if err != nil {
		return nil, fmt.Errorf("pid %d: sysctl kern.proc.pid: %w", pid, err)
	}
	if kp.Proc.P_stat == zombie {
		return nil, fmt.Errorf("pid %d: exited: %w", pid, broker.ErrNoProcess)
	}
	return kp, nil
}

// processOf returns the process kp describes. Every reader of kinfo_proc
// uses it, so that their processes compare Same.
func processOf(kp *xunix.KinfoProc) broker.Process {
	comm := kp.Proc.P_comm[:]
	if i := bytes.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	tv := kp.Proc.P_starttime
	return broker.Process{
		PID:       int(kp.Proc.P_pid),
		StartTime: time.Unix(int64(tv.Sec), int64(tv.Usec)*int64(time.Microsecond)),
		Name:      string(comm),
		// The real uid, as on Linux.
		User: strconv.FormatUint(uint64(kp.Eproc.Pcred.P_ruid), 10),
	}
}

// close releases nothing: lookups keep no state here.
func (procTable) close() {}
