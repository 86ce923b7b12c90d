package daemon

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// prlimitNOFILE sets another process's descriptor limit.
func prlimitNOFILE(pid int, lim *syscall.Rlimit) error {
	return unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: lim.Cur, Max: lim.Max}, nil)
}
