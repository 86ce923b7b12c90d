package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"
)

// listenPipe creates the named pipe with a DACL that grants the current
// user, and nobody else, access. Creating the first instance fails when the
// pipe exists, so a second daemon cannot share it.
//
// The listener is winio's; ServerCredentials identifies each client from
// the pipe handle its connections expose.
func listenPipe(addr, path string) (net.Listener, error) {
	sid, err := currentUserSID()
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	ln, err := winio.ListenPipe(path, &winio.PipeConfig{
		// Protected DACL (P): no inherited entries; one entry allowing
		// generic all (GA) to the user's SID.
		SecurityDescriptor: "D:P(A;;GA;;;" + sid + ")",
	})
	if err != nil {
		if errors.Is(err, windows.ERROR_ALREADY_EXISTS) || errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_PIPE_BUSY) {
			return nil, fmt.Errorf("%w: another process is serving %s", ErrAddrInUse, addr)
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

func dialPipe(ctx context.Context, path string) (net.Conn, error) {
	return winio.DialPipeContext(ctx, path)
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
