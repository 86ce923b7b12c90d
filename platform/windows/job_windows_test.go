package windows

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// startResumed starts cmd in job with StartSuspended and resumes it.
func startResumed(job *Job) func(*exec.Cmd) error {
	return func(cmd *exec.Cmd) error {
		resume, err := job.StartSuspended(cmd)
		if err != nil {
			return err
		}
		return resume()
	}
}

func TestJobCloseKillsTree(t *testing.T) {
	tests := []struct {
		name  string
		start func(*Job) func(*exec.Cmd) error
	}{
		{"Start", func(j *Job) func(*exec.Cmd) error { return j.Start }},
		{"StartSuspended", startResumed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := newTestJob(t)
			c := startHelper(t, "tree", tt.start(job))
			// The child printed its grandchild's PID, so it was resumed
			// and ran.
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
			if _, err := job.StartSuspended(exec.Command(os.Args[0])); !errors.Is(err, ErrJobClosed) {
				t.Errorf("StartSuspended after Close = %v, want ErrJobClosed", err)
			}
			if err := job.Terminate(1); !errors.Is(err, ErrJobClosed) {
				t.Errorf("Terminate after Close = %v, want ErrJobClosed", err)
			}
			if err := job.Interrupt(); !errors.Is(err, ErrJobClosed) {
				t.Errorf("Interrupt after Close = %v, want ErrJobClosed", err)
			}
		})
	}
}

// touchEnv makes the test binary a child that creates the file it names
// and exits 0. It is checked in init, before TestMain's helper modes.
const touchEnv = "PORTBROKER_JOB_TEST_TOUCH"

func init() {
	if path := os.Getenv(touchEnv); path != "" {
		if err := os.WriteFile(path, []byte("ran\n"), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
}

// startTouch starts, suspended in job, a child that creates a file once it
// runs, and returns it, the file's path and its resume. The test's cleanup
// kills and reaps it unless the test did.
func startTouch(t *testing.T, job *Job) (*exec.Cmd, string, func() error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ran")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), touchEnv+"="+path)
	cmd.Stderr = os.Stderr
	resume, err := job.StartSuspended(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, path, resume
}

// exists reports whether path exists.
func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

var procSuspendThread = xwin.NewLazySystemDLL("kernel32.dll").NewProc("SuspendThread")

// suspendCounts returns the suspend count of each initial thread of the
// processes job holds suspended, by PID.
func suspendCounts(t *testing.T, job *Job) map[int][]uint32 {
	t.Helper()
	job.mu.Lock()
	defer job.mu.Unlock()
	counts := make(map[int][]uint32)
	for s := range job.suspended {
		for _, th := range s.threads {
			// SuspendThread returns the count before it; the ResumeThread
			// right after puts it back.
			n, _, err := procSuspendThread.Call(uintptr(th))
			if uint32(n) == ^uint32(0) {
				t.Fatalf("SuspendThread: %v", err)
			}
			if _, err := xwin.ResumeThread(th); err != nil {
				t.Fatalf("ResumeThread: %v", err)
			}
			counts[s.proc.PID] = append(counts[s.proc.PID], uint32(n))
		}
	}
	return counts
}

func TestJobStartSuspended(t *testing.T) {
	job := newTestJob(t)
	cmd, path, resume := startTouch(t, job)

	// Its one thread is suspended, as created: it has run nothing.
	if got, want := suspendCounts(t, job), map[int][]uint32{cmd.Process.Pid: {1}}; !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("suspend counts by PID %v, want %v", got, want)
	}
	if exists(t, path) {
		t.Fatal("the suspended child created its file")
	}

	if err := resume(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("resumed child: %v", err)
	}
	if !exists(t, path) {
		t.Error("the resumed child exited 0 without creating its file")
	}
	if err := resume(); err != nil {
		t.Errorf("second resume = %v, want the first result, nil", err)
	}
	if n := len(suspendCounts(t, job)); n != 0 {
		t.Errorf("%d processes still held suspended after resume", n)
	}
}

// A suspended child is in the job already: Close and Terminate end it
// before it runs.
func TestJobEndsSuspended(t *testing.T) {
	tests := []struct {
		name     string
		end      func(*Job) error
		wantCode int // -1: any
		resume   error
	}{
		{name: "Close", end: (*Job).Close, wantCode: -1, resume: ErrJobClosed},
		{name: "Terminate", end: func(j *Job) error { return j.Terminate(7) }, wantCode: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := newTestJob(t)
			cmd, path, resume := startTouch(t, job)
			p := lookup(t, cmd.Process.Pid)
			if err := tt.end(job); err != nil {
				t.Fatal(err)
			}
			waitGone(t, p)
			if tt.resume != nil {
				if err := resume(); !errors.Is(err, tt.resume) {
					t.Errorf("resume = %v, want %v", err, tt.resume)
				}
			}
			var ee *exec.ExitError
			if err := cmd.Wait(); err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			if code := cmd.ProcessState.ExitCode(); tt.wantCode >= 0 && code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if exists(t, path) {
				t.Error("the child ran before it was ended")
			}
		})
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
