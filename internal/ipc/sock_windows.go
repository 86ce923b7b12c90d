package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

// listenPipe creates the named pipe with the security descriptor pipeSDDL
// gives its path: the service pipe (ServiceAddr) for SYSTEM,
// Administrators and interactive users, any other pipe for the current
// user alone. Creating the first instance fails when the pipe exists, so
// a second daemon cannot share it.
//
// The listener is winio's; ServerCredentials identifies each client from
// the pipe handle its connections expose.
func listenPipe(addr, path string) (net.Listener, error) {
	sid, err := currentUserSID()
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return listenPipeSDDL(addr, path, pipeSDDL(path, sid))
}

func listenPipeSDDL(addr, path, sddl string) (net.Listener, error) {
	ln, err := winio.ListenPipe(path, &winio.PipeConfig{SecurityDescriptor: sddl})
	if err != nil {
		switch {
		case errors.Is(err, windows.ERROR_ALREADY_EXISTS) || errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_PIPE_BUSY):
			return nil, fmt.Errorf("%w: another process is serving %s", ErrAddrInUse, addr)
		case errors.Is(err, windows.ERROR_INVALID_OWNER):
			// Only the service pipe names an owner other than the user.
			return nil, fmt.Errorf("listen %s: only the portbrokerd service or an elevated administrator may serve it: %w", addr, err)
		}
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

func currentUserSID() (string, error) {
	// A pseudo-handle: nothing to close.
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("token user: %w", err)
	}
	return u.User.Sid.String(), nil
}

// dialPipe dials the pipe at path or, when that is the user's default
// pipe and it does not exist, the service pipe; either must pass
// checkPipeOwner.
func dialPipe(ctx context.Context, path string) (net.Conn, error) {
	userPipe, err := defaultPipe()
	if err != nil {
		userPipe = "" // no default, so no fallback either
	}
	return dialPipeOr(ctx, path, fallbackPipe(path, userPipe))
}

// dialPipeOr dials path, else, when path does not exist and alt is not
// empty, alt.
func dialPipeOr(ctx context.Context, path, alt string) (net.Conn, error) {
	c, err := dialTrustedPipe(ctx, path)
	if alt == "" || !errors.Is(err, windows.ERROR_FILE_NOT_FOUND) {
		return c, err
	}
	c, altErr := dialTrustedPipe(ctx, alt)
	if errors.Is(altErr, windows.ERROR_FILE_NOT_FOUND) {
		return nil, fmt.Errorf("%w (nor does anything serve %s)", err, formatAddr(NetworkPipe, alt))
	}
	return c, altErr
}

// pipeAccess is what a client asks of a pipe: GENERIC_READ and
// FILE_WRITE_DATA, not GENERIC_WRITE, whose FILE_APPEND_DATA (here
// FILE_CREATE_PIPE_INSTANCE) the service pipe does not grant users.
// GENERIC_READ includes READ_CONTROL, for checkPipeOwner.
const pipeAccess = windows.GENERIC_READ | windows.FILE_WRITE_DATA

// dialTrustedPipe connects to the pipe at path and keeps the connection
// only if the pipe's owner passes checkPipeOwner. A pipe's owner is set
// when its first instance is made and no process can name another user,
// SYSTEM or Administrators as owner without being (or, for Administrators,
// elevated into) it; unlike the server's process token, which users may
// not open for a SYSTEM service, the owner is readable by every client.
// The connection stays anonymous (SECURITY_ANONYMOUS), so the server
// cannot act as the client.
func dialTrustedPipe(ctx context.Context, path string) (net.Conn, error) {
	c, err := winio.DialPipeAccess(ctx, path, pipeAccess)
	if err != nil {
		return nil, err
	}
	user, err := currentUserSID()
	if err == nil {
		err = checkPipeServer(c, path, user)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// checkPipeServer reads the owner of c's pipe and checks it for user.
func checkPipeServer(c net.Conn, path, user string) error {
	fc, ok := c.(interface{ Fd() uintptr })
	if !ok {
		return fmt.Errorf("pipe %s: the connection exposes no handle", path)
	}
	h := windows.Handle(fc.Fd())
	sd, err := windows.GetSecurityInfo(h, windows.SE_KERNEL_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("pipe %s: read its owner: %w", path, err)
	}
	owner, _, err := sd.Owner()
	if err != nil || owner == nil {
		return fmt.Errorf("pipe %s: it has no owner (%v); refusing to dial", path, err)
	}
	var pid uint32
	_ = windows.GetNamedPipeServerProcessId(h, &pid) // for the message; 0 if unknown
	return checkPipeOwner(path, owner.String(), user, pid)
}

func isAddrInUse(err error) bool { return errors.Is(err, windows.WSAEADDRINUSE) }

// Windows has AF_UNIX sockets but neither file modes nor peer credentials
// for them; the broker uses named pipes (or loopback TCP) there.
func listenUnix(addr, _ string, _ listenConfig) (net.Listener, error) {
	return nil, fmt.Errorf("listen %s: unix sockets are not supported on Windows, use npipe:// or tcp://: %w", addr, errors.ErrUnsupported)
}

func dialUnix(_ context.Context, path string) (net.Conn, error) {
	return nil, fmt.Errorf("dial %s: unix sockets are not supported on Windows, use npipe:// or tcp://: %w", path, errors.ErrUnsupported)
}
