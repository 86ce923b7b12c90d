package unix

import (
	"testing"
	"time"

	xunix "golang.org/x/sys/unix"
)

// waitZombie blocks until process pid has exited, without reaping it.
func waitZombie(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		kp, err := xunix.SysctlKinfoProc("kern.proc.pid", pid)
		if err != nil {
			t.Fatalf("sysctl kern.proc.pid %d: %v", pid, err)
		}
		if kp.Proc.P_stat == zombie {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not exit", pid)
		}
		time.Sleep(time.Millisecond)
	}
}
