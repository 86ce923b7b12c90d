package unix

import (
	"errors"
	"os"
	"testing"
	"time"

	xunix "golang.org/x/sys/unix"
)

// Where the kernel has pidfd_open, the host watches exits through pidfds.
func TestNewExitWatcherUsesPidfd(t *testing.T) {
	fd, err := xunix.PidfdOpen(os.Getpid(), 0)
	if errors.Is(err, xunix.ENOSYS) || errors.Is(err, xunix.EPERM) {
		t.Skipf("pidfd_open: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	xunix.Close(fd)

	w, err := New().NewExitWatcher(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, ok := w.(*pidfdWatcher); !ok {
		t.Errorf("NewExitWatcher = %T; want *pidfdWatcher", w)
	}
}
