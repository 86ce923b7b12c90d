package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/portbroker/portbroker/client"
	pbwin "github.com/portbroker/portbroker/platform/windows"
)

// On Windows a service is held by up's own lease on its port; at launch
// it is created suspended in a kill-on-close job object, the port is
// handed over to it as brokerctl run does (see run_windows.go), and it is
// resumed. The job kills the service's tree when up stops it or dies.

// stopSignal is unused on Windows: a service is asked to stop with
// CTRL_BREAK.
var stopSignal os.Signal = os.Interrupt

type ownHeld struct {
	s  *stackService
	ns string
	l  *client.Lease
	// out is the write end of the service's output pipe.
	out *os.File
}

func (c *cli) holdService(ctx context.Context, cl *client.Client, s *stackService, out *os.File, opts func(owner, launcher int) []client.AcquireOption) (heldService, error) {
	l, err := cl.Acquire(ctx, s.Name, opts(os.Getpid(), 0)...)
	if err != nil {
		return nil, err
	}
	return &ownHeld{s: s, ns: l.Namespace, l: l, out: out}, nil
}

func (h *ownHeld) lease() *client.Lease { return h.l }

func (h *ownHeld) launch(ctx context.Context, cl *client.Client, spec *launchSpec) (upProc, *client.Lease, error) {
	job, err := pbwin.NewJob()
	if err != nil {
		releaseQuietly(ctx, h.l)
		return nil, nil, err
	}
	shell := os.Getenv("ComSpec")
	if shell == "" {
		shell = "cmd.exe"
	}
	cmd := exec.Command(shell)
	// cmd.exe parses its own command line: /s /c "LINE" runs LINE as is.
	cmd.SysProcAttr = &syscall.SysProcAttr{CmdLine: fmt.Sprintf(`%s /d /s /c "%s"`, syscall.EscapeArg(shell), spec.command)}
	cmd.Env, cmd.Dir = spec.env, spec.dir
	cmd.Stdout, cmd.Stderr = h.out, h.out
	resume, err := job.StartSuspended(cmd)
	if err != nil {
		job.Close()
		releaseQuietly(ctx, h.l)
		return nil, nil, err
	}
	rs := &runSpec{name: spec.name, namespace: h.ns, strict: true, argv: []string{shell}, protocol: h.l.Protocol}
	lease, err := handOver(ctx, h.l, cmd.Process.Pid, rs)
	if err != nil {
		// up's own lease is still up's. The daemon's refusal names the
		// owner_pid field, which up's user never gave: kept as text, it
		// is not read as a bad --pid.
		releaseQuietly(ctx, h.l)
		err = fmt.Errorf("%v", err)
	} else if err = resume(); err != nil {
		releaseQuietly(ctx, lease)
	}
	if err != nil {
		job.Close()
		cmd.Wait()
		return nil, nil, err
	}
	return &windowsUpProc{windowsChild{cmd: cmd, job: job}}, lease, nil
}

func (h *ownHeld) abort(ctx context.Context) { releaseQuietly(ctx, h.l) }

type windowsUpProc struct{ windowsChild }

// kill ends the job's processes; a job closed because the service
// exited has nothing left to kill.
func (p *windowsUpProc) kill() error {
	if err := p.job.Terminate(1); err != nil && !errors.Is(err, pbwin.ErrJobClosed) {
		return err
	}
	return nil
}
