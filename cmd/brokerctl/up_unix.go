//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/portbroker/portbroker/client"
)

// On Unix each service of brokerctl up starts as brokerctl run's children
// do (see run_unix.go): brokerctl started as a shim in a new process
// group, which says it is ready and waits on fd 3. Its port is leased with
// the shim as owner and up as launcher; once every port of the stack is
// known and the service's after: services are ready, up sends the shim
// its command line, environment and directory, and the shim execs the
// shell in place, so the lease's owner is the service from the start.

// upShimArg is the hidden command a service runs as until it execs.
const upShimArg = "__up"

// stopSignal is the graceful stop up sends a service it stops itself.
var stopSignal os.Signal = syscall.SIGTERM

// shimHeld is a shim waiting for its command.
type shimHeld struct {
	cmd *exec.Cmd
	ctl *net.UnixConn
	l   *client.Lease
}

func (c *cli) holdService(ctx context.Context, cl *client.Client, s *stackService, out *os.File, opts func(owner, launcher int) []client.AcquireOption) (heldService, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find brokerctl's own executable to start the service: %w", err)
	}
	ctl, shimEnd, err := socketPair()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, upShimArg, s.Name, commandName(s.Run))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = []*os.File{shimEnd}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	shimEnd.Close()
	if err != nil {
		ctl.Close()
		return nil, fmt.Errorf("start the shim: %w", err)
	}
	h := &shimHeld{cmd: cmd, ctl: ctl}
	fail := func(err error) (heldService, error) {
		ctl.Close()
		cmd.Wait()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { ctl.SetDeadline(time.Now()) })
	line, err := bufio.NewReader(ctl).ReadString('\n')
	stop()
	if err != nil || line != shimReady {
		return fail(fmt.Errorf("%w: %v", errShimFailed, orEOF(err)))
	}
	if h.l, err = cl.Acquire(ctx, s.Name, opts(cmd.Process.Pid, os.Getpid())...); err != nil {
		return fail(err)
	}
	return h, nil
}

// commandName is what the shim calls itself until it execs: the command's
// first word, so that the lease names the service's program.
func commandName(run string) string {
	f := strings.Fields(run)
	for _, w := range f {
		if !strings.Contains(w, "=") {
			return filepath.Base(w)
		}
	}
	return "sh"
}

func (h *shimHeld) lease() *client.Lease { return h.l }

// upLaunch is the message a shim execs from.
type upLaunch struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
}

func (h *shimHeld) launch(ctx context.Context, _ *client.Client, spec *launchSpec) (upProc, *client.Lease, error) {
	msg, err := json.Marshal(upLaunch{Argv: []string{"/bin/sh", "-c", execSimple(spec.command)}, Env: spec.env, Dir: spec.dir})
	if err == nil {
		_, err = h.ctl.Write(msg)
	}
	// Closing our end marks the end of the message.
	h.ctl.Close()
	if err != nil {
		h.cmd.Wait()
		releaseQuietly(ctx, h.l)
		return nil, nil, fmt.Errorf("hand %s its command: %w", spec.name, err)
	}
	return &unixUpProc{unixChild{cmd: h.cmd}}, h.l, nil
}

// execSimple prefixes a simple command line with exec, so that the shell
// becomes the program (and the lease's owner is the service itself, as
// with brokerctl run); anything else stays for the shell to run.
func execSimple(command string) string {
	if strings.ContainsAny(command, ";&|<>()`\n#{}*?[~") {
		return command
	}
	f := strings.Fields(command)
	if len(f) == 0 || strings.Contains(f[0], "=") || strings.Trim(f[0], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+") != "" {
		return command
	}
	switch f[0] {
	case "!", "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
		"exec", "exit", "trap", "cd", "export", "set", "unset", "eval", ".", "source", "wait", "read", "ulimit", "umask", "alias", "command", "builtin", "time":
		return command
	}
	return "exec " + command
}

func (h *shimHeld) abort(ctx context.Context) {
	releaseQuietly(ctx, h.l)
	// With nothing received, the shim exits.
	h.ctl.Close()
	h.cmd.Wait()
}

type unixUpProc struct{ unixChild }

func (p *unixUpProc) kill() error {
	err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	if err == syscall.ESRCH {
		return nil
	}
	return err
}
