package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"

	"github.com/portbroker/portbroker/client"
	pbwin "github.com/portbroker/portbroker/platform/windows"
)

// On Windows there is no exec: a process cannot become the service while
// keeping its PID, and the child's environment (its PORT) is fixed when it
// is created. The child is therefore started after the lease, inside a job
// object that kills it and everything it starts when closed or when
// brokerctl run exits. The lease is owned by brokerctl run itself: if it
// dies, the job takes the child's tree down with it and the daemon
// reclaims the lease of its exited owner, so nothing is left behind either
// way. (Making the child the owner, as on Unix, needs a lease between a
// suspended start and the resume, which Job.Start does in one step.)

// forwardedSignals are Ctrl-C and Ctrl-Break (os.Interrupt) and console
// close, logoff and shutdown (SIGTERM).
var forwardedSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// runAsShim is Unix only: see run_unix.go.
func runAsShim([]string) (int, bool) { return 0, false }

type windowsChild struct {
	cmd *exec.Cmd
	job *pbwin.Job
}

// signal sends CTRL_BREAK to the child's console process group, the
// graceful stop console programs expect.
func (c *windowsChild) signal(os.Signal) error { return c.job.Interrupt() }

func (c *windowsChild) wait() (int, error) {
	err := c.cmd.Wait()
	// What the child started goes with it.
	c.job.Close()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, err
	}
	return c.cmd.ProcessState.ExitCode(), nil
}

func (c *cli) startChild(ctx context.Context, cl *client.Client, spec *runSpec) (child, *client.Lease, error) {
	lease, err := cl.Acquire(ctx, spec.name, spec.acquireOpts(os.Getpid(), 0, spec.port, spec.strict)...)
	if err != nil {
		return nil, nil, err
	}
	job, err := pbwin.NewJob()
	if err != nil {
		releaseQuietly(ctx, lease)
		return nil, nil, err
	}
	argv := childArgv(spec.argv, lease.Port)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = portEnv(os.Environ(), lease.Port)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.stdout, c.stderr
	if err := job.Start(cmd); err != nil {
		job.Close()
		releaseQuietly(ctx, lease)
		return nil, nil, err
	}
	return &windowsChild{cmd: cmd, job: job}, lease, nil
}
