package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
)

// ownerEnv marks a brokerbench re-executed as a lease owner.
const ownerEnv = "BROKERBENCH_OWNER_HELPER"

func isOwnerHelper() bool { return os.Getenv(ownerEnv) == "1" }

// ownerMain is an owner's whole life: it holds no port and waits until
// its parent closes its stdin (or kills it, which is what the reclaim
// figure measures). A parent that dies closes the pipe too, so an owner
// never outlives the run.
func ownerMain() {
	io.Copy(io.Discard, os.Stdin)
}

// owner is a started owner helper.
type owner struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  bool
}

func startOwner() (*owner, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("owner helper: find brokerbench's own binary: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), ownerEnv+"=1")
	cmd.SysProcAttr = ownerAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("owner helper: %w", err)
	}
	if err := cmd.Start(); err != nil {
		stdin.Close()
		return nil, fmt.Errorf("owner helper: start %s: %w", self, err)
	}
	return &owner{cmd: cmd, stdin: stdin}, nil
}

func (o *owner) pid() int { return o.cmd.Process.Pid }

// kill sends SIGKILL (TerminateProcess on Windows) and reaps the owner,
// as a shell would. It is safe to call more than once.
func (o *owner) kill() error {
	if o.done {
		return nil
	}
	o.done = true
	err := o.cmd.Process.Kill()
	o.cmd.Wait()
	o.stdin.Close()
	if err != nil {
		return fmt.Errorf("kill owner pid %d: %w", o.pid(), err)
	}
	return nil
}
