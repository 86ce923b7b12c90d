//go:build unix

package ipc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxSocketPath is the longest socket path the OS takes, less the NUL.
const maxSocketPath = len(unix.RawSockaddrUnix{}.Path) - 1

// probeTimeout bounds the dial that tells a live socket from a stale one.
const probeTimeout = 2 * time.Second

// listenUnix listens on a socket at path in a private directory:
//
//   - the directory is created 0700 when missing; an existing one must be
//     ours and not group or world writable, else another user could swap
//     the socket under us;
//   - a lock file beside the socket, held for the listener's life, lets
//     exactly one Listen own the path, so two daemons starting at once
//     cannot each remove the other's socket;
//   - a socket left by a crash (nothing answers) is removed; one that
//     answers is left alone and reported as ErrAddrInUse; anything that is
//     not a socket is never removed.
func listenUnix(addr, path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("listen %s: socket path is %d bytes; the OS allows at most %d", addr, len(path), maxSocketPath)
	}
	dir := filepath.Dir(path)
	if err := ensurePrivateDir(dir); err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}

	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: another portbrokerd is serving %s", ErrAddrInUse, addr)
		}
		return nil, fmt.Errorf("listen %s: lock %s: %w", addr, lock.Name(), err)
	}

	ln, err := bindUnix(addr, path)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &unixListener{ln: ln, lock: lock}, nil
}

// bindUnix clears a stale socket at path and listens there. The caller
// holds the path's lock.
func bindUnix(addr, path string) (*net.UnixListener, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return nil, fmt.Errorf("listen %s: %s exists and is not a socket; not removing it", addr, path)
	default:
		// The lock was free, so no portbrokerd owns the socket; still,
		// something that does not take the lock may be serving it.
		c, err := net.DialTimeout("unix", path, probeTimeout)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: another process is serving %s", ErrAddrInUse, addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("listen %s: probe existing socket: %w", addr, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen %s: remove stale socket: %w", addr, err)
		}
	}

	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		if isAddrInUse(err) {
			return nil, fmt.Errorf("%w: another process is serving %s", ErrAddrInUse, addr)
		}
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	// The socket is created with the umask's mode and narrowed here. That
	// window is closed by the directory: ours, 0700 when we made it, and
	// never writable by others, so no other user can reach or replace the
	// socket meanwhile. (Changing the umask instead would race with every
	// other goroutine creating files.)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// ensurePrivateDir creates dir 0700 when missing, else checks that it is a
// directory owned by this user and writable by nobody else.
func ensurePrivateDir(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create socket directory: %w", err)
		}
		// MkdirAll honours the umask; make the leaf exactly 0700.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("socket directory %s: %w", dir, err)
		}
	}
	// Lstat for who owns the entry (a symlink someone else planted),
	// Stat for what it leads to.
	for _, stat := range []func(string) (fs.FileInfo, error){os.Lstat, os.Stat} {
		fi, err := stat(dir)
		if err != nil {
			return fmt.Errorf("socket directory: %w", err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
			return fmt.Errorf("socket directory %s is owned by uid %d, not %d; refusing to use it", dir, uid, os.Geteuid())
		}
		if fi.Mode().Type() == fs.ModeSymlink {
			continue
		}
		if !fi.IsDir() {
			return fmt.Errorf("socket directory %s is not a directory", dir)
		}
		if perm := fi.Mode().Perm(); perm&0o022 != 0 {
			return fmt.Errorf("socket directory %s has mode %04o: it must not be group or world writable", dir, perm)
		}
	}
	return nil
}

// unixListener owns the socket and its lock. Accept is where the peer's
// credentials (SO_PEERCRED, LOCAL_PEERCRED) will be attached to each
// connection.
type unixListener struct {
	ln   *net.UnixListener
	lock *os.File

	closeOnce sync.Once
	closeErr  error
}

func (l *unixListener) Accept() (net.Conn, error) { return l.ln.Accept() }

func (l *unixListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops listening and removes the socket (net.UnixListener unlinks
// the path it created), then releases the lock: in that order, so that the
// next owner never finds our socket.
func (l *unixListener) Close() error {
	l.closeOnce.Do(func() {
		l.closeErr = l.ln.Close()
		if err := l.lock.Close(); l.closeErr == nil {
			l.closeErr = err
		}
	})
	return l.closeErr
}

func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

func listenPipe(addr, _ string) (net.Listener, error) {
	return nil, fmt.Errorf("listen %s: named pipes need Windows: %w", addr, errors.ErrUnsupported)
}

func dialPipe(_ context.Context, path string) (net.Conn, error) {
	return nil, fmt.Errorf("dial %s: named pipes need Windows: %w", path, errors.ErrUnsupported)
}
