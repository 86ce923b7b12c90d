package windows

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

func newTestJob(t *testing.T) *Job {
	t.Helper()
	job, err := NewJob()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { job.Close() })
	return job
}

func TestJobCloseKillsTree(t *testing.T) {
	job := newTestJob(t)
	c := startHelper(t, "tree", job.Start)
	// The child printed its grandchild's PID, so it was resumed and ran.
	gc := c.grandchild(t)
	child := lookup(t, c.cmd.Process.Pid)

	if err := job.Close(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, child)
	waitGone(t, gc)
	if err := job.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := job.Start(exec.Command(os.Args[0])); !errors.Is(err, ErrJobClosed) {
		t.Errorf("Start after Close = %v, want ErrJobClosed", err)
	}
	if err := job.Terminate(1); !errors.Is(err, ErrJobClosed) {
		t.Errorf("Terminate after Close = %v, want ErrJobClosed", err)
	}
	if err := job.Interrupt(); !errors.Is(err, ErrJobClosed) {
		t.Errorf("Interrupt after Close = %v, want ErrJobClosed", err)
	}
}

func TestJobTerminate(t *testing.T) {
	job := newTestJob(t)
	c := startHelper(t, "tree", job.Start)
	gc := c.grandchild(t)

	if err := job.Terminate(7); err != nil {
		t.Fatal(err)
	}
	if code := c.waitExit(t); code != 7 {
		t.Errorf("child exit code %d, want 7", code)
	}
	waitGone(t, gc)

	// The job stays usable.
	c2 := startHelper(t, "block", job.Start)
	p := lookup(t, c2.cmd.Process.Pid)
	if err := job.Close(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, p)
}

func TestJobKeepsSysProcAttr(t *testing.T) {
	job := newTestJob(t)
	attr := &syscall.SysProcAttr{CreationFlags: xwin.CREATE_NO_WINDOW}
	c := startHelper(t, "tree", func(cmd *exec.Cmd) error {
		cmd.SysProcAttr = attr
		return job.Start(cmd)
	})
	// It printed its grandchild's PID: it was resumed.
	c.grandchild(t)
	if want := uint32(xwin.CREATE_NO_WINDOW | xwin.CREATE_SUSPENDED | xwin.CREATE_NEW_PROCESS_GROUP); c.cmd.SysProcAttr.CreationFlags != want {
		t.Errorf("creation flags %#x, want %#x", c.cmd.SysProcAttr.CreationFlags, want)
	}
	if attr.CreationFlags != xwin.CREATE_NO_WINDOW {
		t.Errorf("the caller's SysProcAttr changed to flags %#x", attr.CreationFlags)
	}
}

func TestJobStartFails(t *testing.T) {
	job := newTestJob(t)
	cmd := exec.Command(`C:\does\not\exist.exe`)
	if err := job.Start(cmd); err == nil {
		t.Fatal("Start of a missing program succeeded")
	}
}

func TestJobInterruptWithoutConsole(t *testing.T) {
	if onOurConsole(os.Getpid()) {
		t.Skip("this process has a console; TestTerminateConsoleGroup covers it")
	}
	job := newTestJob(t)
	startHelper(t, "block", job.Start)
	if err := job.Interrupt(); !errors.Is(err, broker.ErrUnsupported) {
		t.Errorf("Interrupt without a console = %v, want ErrUnsupported", err)
	}
}
