package windows

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"unsafe"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

// ErrJobClosed is returned by a Job's methods after Close.
var ErrJobClosed = errors.New("job object closed")

// Job runs processes in a Windows job object that kills them, and every
// process they start, when it is closed or when this process exits: the
// tree of a service that the broker or `brokerctl run` starts dies with its
// launcher, with no orphan left to squat on the port. Its methods are safe
// for concurrent use.
type Job struct {
	mu sync.Mutex
	h  xwin.Handle // zero once closed
	// leaders are the processes Start started, or StartSuspended started
	// and resumed, each leading a console process group.
	leaders []broker.Process
	// suspended are the processes StartSuspended started and that were not
	// resumed yet.
	suspended map[*suspendedStart]bool
}

// NewJob creates a job object with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE. Its
// handle is not inheritable, so only this process holds it.
func NewJob() (*Job, error) {
	h, err := xwin.CreateJobObject(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("create job object: %w", err)
	}
	info := xwin.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: xwin.JOBOBJECT_BASIC_LIMIT_INFORMATION{LimitFlags: xwin.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE},
	}
	if _, err := xwin.SetInformationJobObject(h, xwin.JobObjectExtendedLimitInformation, uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		xwin.CloseHandle(h)
		return nil, fmt.Errorf("set kill-on-close on job object: %w", err)
	}
	return &Job{h: h}, nil
}

// Start starts cmd inside the job, in a new console process group, so that
// it and every process it starts belong to the job from their first
// instruction: it is StartSuspended followed by its resume. A process
// assigned after it ran could have started children outside the job.
//
// cmd's own SysProcAttr, if any, is kept, with CREATE_SUSPENDED and
// CREATE_NEW_PROCESS_GROUP added; the caller's value is not modified. If the
// process cannot be put in the job or resumed it is killed and waited for,
// and Start returns the error.
func (j *Job) Start(cmd *exec.Cmd) error {
	resume, err := j.StartSuspended(cmd)
	if err != nil {
		return err
	}
	if err := resume(); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return err
	}
	return nil
}

// StartSuspended starts cmd inside the job, in a new console process group,
// and leaves it suspended: its PID, start time, command line and
// environment are fixed, but it runs no instruction of its own, and so
// starts nothing and binds nothing, until resume is called. That is the
// moment to record the process elsewhere, such as naming it the owner of a
// lease, before it can act.
//
// Go's os/exec closes the new process's thread handle, so its initial
// thread, the only one a suspended new process has, is found with a
// Toolhelp thread snapshot right after creation and held until resume
// calls ResumeThread on it. NtResumeProcess would resume the process in one
// call, but it is undocumented.
//
// resume acts once; later calls return its first result. After Close it
// returns an error matching ErrJobClosed, as Close killed the process. If
// it fails otherwise it kills the process. Either way the caller still
// waits for cmd. A process never resumed stays suspended until Terminate,
// Close or cmd.Process.Kill ends it.
//
// cmd's SysProcAttr is treated as by Start. If the process cannot be put in
// the job it is killed and waited for, and StartSuspended returns the
// error.
func (j *Job) StartSuspended(cmd *exec.Cmd) (resume func() error, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.h == 0 {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, ErrJobClosed)
	}
	attr := syscall.SysProcAttr{}
	if cmd.SysProcAttr != nil {
		attr = *cmd.SysProcAttr
	}
	attr.CreationFlags |= xwin.CREATE_SUSPENDED | xwin.CREATE_NEW_PROCESS_GROUP
	cmd.SysProcAttr = &attr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	s, err := j.adopt(cmd.Process.Pid)
	if err != nil {
		// Still suspended: it has run no code and started nothing.
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("start %s in job: %w", cmd.Path, err)
	}
	if j.suspended == nil {
		j.suspended = make(map[*suspendedStart]bool)
	}
	j.suspended[s] = true
	var (
		once      sync.Once
		resumeErr error
	)
	return func() error {
		once.Do(func() {
			if resumeErr = j.resume(s); resumeErr != nil {
				resumeErr = fmt.Errorf("resume %s: %w", cmd.Path, resumeErr)
				if !errors.Is(resumeErr, ErrJobClosed) {
					cmd.Process.Kill()
				}
			}
		})
		return resumeErr
	}, nil
}

// suspendedStart is a process StartSuspended started and that was not
// resumed yet.
type suspendedStart struct {
	proc broker.Process
	// threads are its initial threads (one, in practice), open with
	// THREAD_SUSPEND_RESUME. Holding them rather than looking them up at
	// resume keeps a reused thread ID, or a thread injected later (such
	// as a console control handler), from being mistaken for them.
	threads []xwin.Handle
}

func (s *suspendedStart) close() {
	closeHandles(s.threads)
	s.threads = nil
}

func closeHandles(hs []xwin.Handle) {
	for _, h := range hs {
		xwin.CloseHandle(h)
	}
}

// adopt assigns the suspended process pid to the job and opens its
// initial threads.
func (j *Job) adopt(pid int) (*suspendedStart, error) {
	// exec.Cmd holds a handle to the process, so pid cannot be reused.
	hp, err := xwin.OpenProcess(xwin.PROCESS_SET_QUOTA|xwin.PROCESS_TERMINATE|xwin.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return nil, fmt.Errorf("open process %d: %w", pid, err)
	}
	defer xwin.CloseHandle(hp)
	start, err := startTime(hp)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	if err := xwin.AssignProcessToJobObject(j.h, hp); err != nil {
		return nil, fmt.Errorf("assign process %d to job object: %w", pid, err)
	}
	threads, err := openThreads(pid)
	if err != nil {
		return nil, err
	}
	return &suspendedStart{proc: broker.Process{PID: pid, StartTime: start}, threads: threads}, nil
}

// openThreads opens the threads of the suspended new process pid for
// ResumeThread.
func openThreads(pid int) ([]xwin.Handle, error) {
	snap, err := xwin.CreateToolhelp32Snapshot(xwin.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return nil, fmt.Errorf("threads of process %d: snapshot: %w", pid, err)
	}
	defer xwin.CloseHandle(snap)
	var (
		te      xwin.ThreadEntry32
		threads []xwin.Handle
	)
	te.Size = uint32(unsafe.Sizeof(te))
	for err = xwin.Thread32First(snap, &te); err == nil; err = xwin.Thread32Next(snap, &te) {
		if te.OwnerProcessID != uint32(pid) {
			continue
		}
		th, err := xwin.OpenThread(xwin.THREAD_SUSPEND_RESUME, false, te.ThreadID)
		if err != nil {
			closeHandles(threads)
			return nil, fmt.Errorf("threads of process %d: open thread %d: %w", pid, te.ThreadID, err)
		}
		threads = append(threads, th)
	}
	if !errors.Is(err, xwin.ERROR_NO_MORE_FILES) {
		closeHandles(threads)
		return nil, fmt.Errorf("threads of process %d: snapshot: %w", pid, err)
	}
	if len(threads) == 0 {
		return nil, fmt.Errorf("process %d has no thread", pid)
	}
	return threads, nil
}

// resume resumes s and makes it a leader of the job.
func (j *Job) resume(s *suspendedStart) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.h == 0 || !j.suspended[s] {
		// Close killed it and closed its threads.
		return ErrJobClosed
	}
	delete(j.suspended, s)
	defer s.close()
	for _, th := range s.threads {
		if _, err := xwin.ResumeThread(th); err != nil {
			return fmt.Errorf("process %d: ResumeThread: %w", s.proc.PID, err)
		}
	}
	j.leaders = append(j.leaders, s.proc)
	consoleGroups.add(s.proc)
	return nil
}

// Interrupt sends CTRL_BREAK_EVENT to the console process group of each
// process Start started (or StartSuspended started and resumed) that still
// runs and shares this process's console: the graceful stop a console
// program expects. It returns an error matching broker.ErrUnsupported when
// no group could be reached that way.
func (j *Job) Interrupt() error {
	j.mu.Lock()
	leaders := append([]broker.Process(nil), j.leaders...)
	closed := j.h == 0
	j.mu.Unlock()
	if closed {
		return fmt.Errorf("interrupt: %w", ErrJobClosed)
	}
	sent := 0
	var errs []error
	for _, p := range leaders {
		hp, err := openSame(p, 0)
		if err != nil {
			continue
		}
		// The handle keeps the leader's PID, so the group ID, from being
		// reused while the event is sent.
		if onOurConsole(p.PID) {
			if err := xwin.GenerateConsoleCtrlEvent(xwin.CTRL_BREAK_EVENT, uint32(p.PID)); err != nil {
				errs = append(errs, fmt.Errorf("CTRL_BREAK to process group %d: %w", p.PID, err))
			} else {
				sent++
			}
		}
		xwin.CloseHandle(hp)
	}
	if sent > 0 {
		return nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("interrupt: %w", err)
	}
	return fmt.Errorf("interrupt: %w: no process group of the job runs on this console", broker.ErrUnsupported)
}

// Terminate kills every process in the job now, with exit code code. The
// job stays open, and Start may add processes again.
func (j *Job) Terminate(code uint32) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.h == 0 {
		return fmt.Errorf("terminate job: %w", ErrJobClosed)
	}
	if err := xwin.TerminateJobObject(j.h, code); err != nil {
		return fmt.Errorf("terminate job: %w", err)
	}
	return nil
}

// Close closes the job object, which kills every process still in it. A
// second Close does nothing.
func (j *Job) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.h == 0 {
		return nil
	}
	for _, p := range j.leaders {
		consoleGroups.remove(p)
	}
	j.leaders = nil
	for s := range j.suspended {
		s.close()
	}
	j.suspended = nil
	err := xwin.CloseHandle(j.h)
	j.h = 0
	if err != nil {
		return fmt.Errorf("close job object: %w", err)
	}
	return nil
}
