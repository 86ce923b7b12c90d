package unix

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	xunix "golang.org/x/sys/unix"

	"github.com/portbroker/portbroker/broker"
	"github.com/portbroker/portbroker/internal/exitwatchtest"
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

// At the descriptor limit the pidfd watcher polls the processes it cannot
// open, and keeps the whole contract doing so.
func TestWatchContractAtFdLimit(t *testing.T) {
	h := New()
	exitwatchtest.Run(t, exitwatchtest.Harness{
		New: func(t *testing.T) broker.ExitWatcher {
			emfile := func(int, int) (int, error) { return -1, xunix.EMFILE }
			w, err := newPidfdWatcher(h.Lookup, 10*time.Millisecond, emfile)
			if err != nil {
				t.Fatal(err)
			}
			return w
		},
		Start: func(t *testing.T) (broker.Process, func()) {
			c := runChild(t)
			return c.lookup(t, h), func() { c.killAndReap(t) }
		},
	})
}

// A thread id that is not its process's id is refused with a clear error
// by every watcher: its exit says nothing of the process's.
func TestWatchRefusesThreadID(t *testing.T) {
	// Any of this process's threads but the main one: the Go runtime
	// keeps several for the life of the process.
	id := 0
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if n, err := strconv.Atoi(task.Name()); err == nil && n != os.Getpid() {
			id = n
			break
		}
	}
	if id == 0 {
		t.Fatal("no thread but the main one")
	}
	h := New()
	forEachWatcher(t, func(t *testing.T, _ *Host, w broker.ExitWatcher) {
		p := broker.Process{PID: id, StartTime: time.Now()}
		if self, err := h.Lookup(os.Getpid()); err == nil {
			p.StartTime = self.StartTime
		}
		err := w.Add(p)
		if !errors.Is(err, broker.ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("thread of process %d", os.Getpid())) {
			t.Errorf("Add(thread %d) = %v; want ErrInvalid naming process %d", id, err, os.Getpid())
		}
	})
}
