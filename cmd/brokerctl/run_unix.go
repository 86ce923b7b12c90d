//go:build unix

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/portbroker/portbroker/client"
)

// On Unix, brokerctl run starts the child through an exec shim, because
// the lease must name the child as its owner while the child must know its
// port before it starts, and the daemon checks the owner exists:
//
//  1. brokerctl starts itself as "brokerctl __exec NAME -- CMD ARGS" in a
//     new process group, with one end of a socket pair as fd 3. The shim
//     says it is ready and waits.
//  2. brokerctl leases the port with owner = the shim's PID and launcher =
//     its own PID. (With --listen-fd it also binds the port.)
//  3. brokerctl sends the port (and the bound socket) over fd 3. The shim
//     sets PORT, replaces {port}, puts the socket on fd 3 with LISTEN_PID
//     set to its own PID, and execs CMD.
//
// exec keeps the PID and the process start time, so the lease's owner is
// the real service from the first moment, with no window in which the port
// is unleased or leased to someone else. That is also why systemd's
// LISTEN_PID protocol needs an exec: only the process itself knows its PID
// before it runs the service.

// shimArg is the hidden command the child runs as until it execs CMD.
const shimArg = "__exec"

// forwardedSignals are passed on to the child's process group.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

type unixChild struct{ cmd *exec.Cmd }

func (c *unixChild) signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("cannot pass on %v", sig)
	}
	err := syscall.Kill(-c.cmd.Process.Pid, s)
	if errors.Is(err, syscall.ESRCH) {
		// The group is gone; the child may have left it.
		err = c.cmd.Process.Signal(s)
	}
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// groupGrace bounds how long what is left of the child's group gets to
// stop after the child exits, before it is killed.
const groupGrace = 2 * time.Second

func (c *unixChild) wait() (int, error) {
	err := c.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, err
	}
	// Leave nothing behind: the child's own children, still in its group,
	// go with it.
	stopGroup(c.cmd.Process.Pid)
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return c.cmd.ProcessState.ExitCode(), nil
}

// stopGroup terminates what is left of process group pgid, then kills it
// after groupGrace.
func stopGroup(pgid int) {
	if syscall.Kill(-pgid, syscall.SIGTERM) != nil {
		return // empty
	}
	deadline := time.Now().Add(groupGrace)
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if syscall.Kill(-pgid, 0) != nil {
			return
		}
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
}

func (c *cli) startChild(ctx context.Context, cl *client.Client, spec *runSpec) (child, *client.Lease, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find brokerctl's own executable to start the child: %w", err)
	}
	ctl, shimEnd, err := socketPair()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(exe, append([]string{shimArg, spec.name, "--"}, spec.argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.stdout, c.stderr
	cmd.ExtraFiles = []*os.File{shimEnd}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	shimEnd.Close()
	if err != nil {
		ctl.Close()
		return nil, nil, fmt.Errorf("start %s: %w", spec.argv[0], err)
	}
	lease, err := handOff(ctx, cl, ctl, cmd.Process.Pid, spec)
	// Closing our end tells a waiting shim to give up.
	ctl.Close()
	if err != nil {
		cmd.Wait()
		if errors.Is(err, errShimFailed) && cmd.ProcessState.ExitCode() > 0 {
			// The shim said why (such as CMD not found) and chose the code.
			return nil, nil, &exitCode{code: cmd.ProcessState.ExitCode()}
		}
		return nil, nil, err
	}
	return &unixChild{cmd: cmd}, lease, nil
}

// errShimFailed is a shim that exited before it was ready.
var errShimFailed = errors.New("the child did not start")

// runAsShim runs the shim when brokerctl was started as one.
func runAsShim(args []string) (int, bool) {
	if len(args) > 0 && args[0] == upShimArg {
		return runUpShim(args[1:]), true
	}
	if len(args) == 0 || args[0] != shimArg {
		return 0, false
	}
	return runShim(args[1:]), true
}

// handOff leases the port for the shim and sends it over.
func handOff(ctx context.Context, cl *client.Client, ctl *net.UnixConn, pid int, spec *runSpec) (*client.Lease, error) {
	stop := context.AfterFunc(ctx, func() { ctl.SetDeadline(time.Now()) })
	defer stop()
	line, err := bufio.NewReader(ctl).ReadString('\n')
	if err != nil || line != shimReady {
		return nil, fmt.Errorf("%w: %v", errShimFailed, orEOF(err))
	}

	opts := spec.acquireOpts(pid, os.Getpid(), spec.port, spec.strict)
	var (
		lease  *client.Lease
		socket *os.File
	)
	if spec.listenFD {
		ln, err := cl.Listen(ctx, spec.name, opts...)
		if err != nil {
			return nil, err
		}
		l := ln.(*client.Listener)
		lease = l.Lease()
		socket, err = l.Listener.(*net.TCPListener).File()
		// The child holds the socket from here on; ours is a copy.
		l.Listener.Close()
		if err != nil {
			releaseQuietly(ctx, lease)
			return nil, fmt.Errorf("pass the socket on: %w", err)
		}
		defer socket.Close()
	} else {
		var err error
		if lease, err = cl.Acquire(ctx, spec.name, opts...); err != nil {
			return nil, err
		}
	}

	var rights []byte
	if socket != nil {
		rights = syscall.UnixRights(int(socket.Fd()))
	}
	if _, _, err := ctl.WriteMsgUnix([]byte(strconv.Itoa(lease.Port)+"\n"), rights, nil); err != nil {
		releaseQuietly(ctx, lease)
		return nil, fmt.Errorf("hand the port to the child: %w", err)
	}
	return lease, nil
}

func orEOF(err error) error {
	if err == nil {
		return errors.New("unexpected message")
	}
	return err
}

// socketPair returns a connected pair: ours as a UnixConn, the child's as
// a file to pass as fd 3.
func socketPair() (*net.UnixConn, *os.File, error) {
	// ForkLock keeps a concurrent fork from inheriting the fds before they
	// are marked close-on-exec.
	syscall.ForkLock.RLock()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "brokerctl-run")
	defer ours.Close()
	conn, err := net.FileConn(ours)
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return conn.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "brokerctl-run-child"), nil
}
