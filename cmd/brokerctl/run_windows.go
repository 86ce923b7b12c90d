package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/portbroker/portbroker/client"
	pbwin "github.com/portbroker/portbroker/platform/windows"
)

// On Windows there is no exec: a process cannot become the service while
// keeping its PID, and the child's environment (its PORT) and command line
// are fixed when it is created. Yet the lease must name the child as its
// owner, and the daemon leases only to an owner that exists. So the port is
// learned first and the lease handed over while the child cannot act:
//
//  1. brokerctl leases NAME for itself (owner = its own PID), which picks
//     the port as any run does: --port or NAME's usual port, a fallback
//     unless --strict, --ttl, --reclaim.
//  2. It creates the child with that port in its environment and
//     arguments, suspended, in a job object that kills the child's tree
//     when brokerctl run exits or closes it (Job.StartSuspended).
//  3. It transfers its lease to the child (owner = the child, launcher =
//     brokerctl) in one TransferLease call: the lease keeps its ID, name and
//     port, and nobody can take the port in between. Should the transfer
//     fail, the child is killed unrun and the run fails saying so.
//  4. It resumes the child.
//
// From then on the lease is the child's, as on Unix: `brokerctl leases`
// names it, the daemon reclaims the lease when it exits, and if brokerctl
// run dies, the job takes the child's tree down and the orphan rule stops
// whatever got out of the job.

// forwardedSignals are Ctrl-C and Ctrl-Break (os.Interrupt) and console
// close, logoff and shutdown (SIGTERM).
var forwardedSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// runAsShim is Unix only: see run_unix.go.
func runAsShim([]string) (int, bool) { return 0, false }

// testHookHandOver, when set, runs just before brokerctl's lease is
// transferred to the child.
var testHookHandOver func(port int)

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
	// A command that cannot be found fails before any lease, with the
	// shell's code, as on Unix.
	if !strings.Contains(spec.argv[0], "{port}") {
		if _, err := exec.LookPath(spec.argv[0]); err != nil {
			fmt.Fprintf(c.stderr, "brokerctl: run %s: %v\n", spec.name, err)
			return nil, nil, &exitCode{code: 127}
		}
	}
	own, err := cl.Acquire(ctx, spec.name, spec.acquireOpts(os.Getpid(), 0, spec.port, spec.strict)...)
	if err != nil {
		return nil, nil, err
	}
	job, err := pbwin.NewJob()
	if err != nil {
		releaseQuietly(ctx, own)
		return nil, nil, err
	}
	argv := childArgv(spec.argv, own.Port)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = portEnv(os.Environ(), own.Port)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.stdout, c.stderr
	resume, err := job.StartSuspended(cmd)
	if err != nil {
		job.Close()
		releaseQuietly(ctx, own)
		return nil, nil, err
	}
	lease, err := handOver(ctx, own, cmd.Process.Pid, spec)
	if err == nil {
		if err = resume(); err != nil {
			releaseQuietly(ctx, lease)
		}
	}
	if err != nil {
		// Closing the job kills the child, which has run no instruction.
		job.Close()
		cmd.Wait()
		releaseQuietly(ctx, own)
		return nil, nil, err
	}
	return &windowsChild{cmd: cmd, job: job}, lease, nil
}

// handOver transfers own, brokerctl's lease, to the suspended child pid:
// see the top of this file.
func handOver(ctx context.Context, own *client.Lease, pid int, spec *runSpec) (*client.Lease, error) {
	if testHookHandOver != nil {
		testHookHandOver(own.Port)
	}
	lease, err := own.Transfer(ctx, pid, os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("hand the lease of port %d to %s, which was stopped before it ran: %w", own.Port, spec.argv[0], err)
	}
	return lease, nil
}
