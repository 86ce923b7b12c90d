//go:build unix

package ipc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
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
//     not a socket is never removed;
//   - with a group, the socket is 0660 and a directory created here 0750,
//     both with that group, opened only once the socket has its final
//     mode.
func listenUnix(addr, path string, cfg listenConfig) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("listen %s: socket path is %d bytes; the OS allows at most %d", addr, len(path), maxSocketPath)
	}
	gid := -1
	if cfg.hasGroup() {
		var err error
		if gid, err = lookupGroup(cfg); err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
	}
	dir := filepath.Dir(path)
	created, err := ensureSocketDir(dir, gid)
	if err != nil {
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

	ln, err := bindUnix(addr, path, gid)
	if err != nil {
		lock.Close()
		return nil, err
	}
	if created && gid >= 0 {
		err := os.Chown(dir, -1, gid)
		if err == nil {
			err = os.Chmod(dir, 0o750)
		}
		if err != nil {
			ln.Close()
			lock.Close()
			return nil, fmt.Errorf("listen %s: share socket directory with group %d: %w", addr, gid, err)
		}
	}
	return &unixListener{ln: ln, lock: lock}, nil
}

// lookupGroup resolves the configured socket group to a gid.
func lookupGroup(cfg listenConfig) (int, error) {
	if cfg.group != nil {
		if *cfg.group < 0 {
			return 0, fmt.Errorf("socket group %d: must be a gid of 0 or more", *cfg.group)
		}
		return *cfg.group, nil
	}
	g, err := user.LookupGroup(cfg.groupName)
	if err != nil {
		if n, nerr := strconv.Atoi(cfg.groupName); nerr == nil && n >= 0 {
			return n, nil
		}
		return 0, fmt.Errorf("socket group %q: %w", cfg.groupName, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("socket group %q: gid %q is not a number", cfg.groupName, g.Gid)
	}
	return gid, nil
}

// bindUnix clears a stale socket at path and listens there, with mode 0600
// or, given a group (gid >= 0), 0660 with that group. The caller holds the
// path's lock.
func bindUnix(addr, path string, gid int) (*net.UnixListener, error) {
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
	err = os.Chmod(path, 0o600)
	if err == nil && gid >= 0 {
		if err = os.Chown(path, -1, gid); err != nil {
			err = fmt.Errorf("socket group %d: %w (the daemon's user must belong to the group)", gid, err)
		} else {
			err = os.Chmod(path, 0o660)
		}
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// ensureSocketDir creates dir 0700 when missing (and reports that it did),
// else checks that it is a directory owned by this user and writable by
// nobody else and, given a group (gid >= 0), that the group may pass
// through it.
func ensureSocketDir(dir string, gid int) (created bool, err error) {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		// Parents made here must let the group pass through too.
		parentMode := fs.FileMode(0o700)
		if gid >= 0 {
			parentMode = 0o755
		}
		if err := os.MkdirAll(filepath.Dir(dir), parentMode); err != nil {
			return false, fmt.Errorf("create socket directory: %w", err)
		}
		switch err := os.Mkdir(dir, 0o700); {
		case err == nil:
			// Mkdir honours the umask; make it exactly 0700.
			if err := os.Chmod(dir, 0o700); err != nil {
				return false, fmt.Errorf("socket directory %s: %w", dir, err)
			}
			created = true
		case !errors.Is(err, fs.ErrExist):
			return false, fmt.Errorf("create socket directory: %w", err)
		}
	}
	// Lstat for who owns the entry (a symlink someone else planted),
	// Stat for what it leads to.
	for _, stat := range []func(string) (fs.FileInfo, error){os.Lstat, os.Stat} {
		fi, err := stat(dir)
		if err != nil {
			return false, fmt.Errorf("socket directory: %w", err)
		}
		if uid := fileOwner(fi); int(uid) != os.Geteuid() {
			return false, fmt.Errorf("socket directory %s is owned by uid %d, not %d; refusing to use it", dir, uid, os.Geteuid())
		}
		if fi.Mode().Type() == fs.ModeSymlink {
			continue
		}
		if !fi.IsDir() {
			return false, fmt.Errorf("socket directory %s is not a directory", dir)
		}
		perm := fi.Mode().Perm()
		if perm&0o022 != 0 {
			return false, fmt.Errorf("socket directory %s has mode %04o: it must not be group or world writable", dir, perm)
		}
		if gid >= 0 && !created && perm&0o001 == 0 && (perm&0o010 == 0 || int(fi.Sys().(*syscall.Stat_t).Gid) != gid) {
			return false, fmt.Errorf("socket directory %s (mode %04o, group %d) keeps group %d from the socket: run chgrp %d %s && chmod 750 %s, or use a directory Listen creates",
				dir, perm, fi.Sys().(*syscall.Stat_t).Gid, gid, gid, dir, dir)
		}
	}
	return created, nil
}

func fileOwner(fi fs.FileInfo) uint32 { return fi.Sys().(*syscall.Stat_t).Uid }

// unixListener owns the socket and its lock. Accept returns the
// *net.UnixConn itself, from which ServerCredentials reads the peer's
// credentials.
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
	if err := checkServerDir(path); err != nil {
		return nil, fmt.Errorf("dial unix://%s: %w", path, err)
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

// checkServerDir refuses a socket another user could have put in place,
// as by creating the default directory under the shared temp dir before
// the daemon first ran. The socket's directory must not be group or world
// writable, and must belong to this user or root, or else sit in a
// directory only this user or root can write: then one of them placed it
// there, as systemd does for a service's RuntimeDirectory. A missing
// directory is left for the dial to report.
func checkServerDir(path string) error {
	dir := filepath.Dir(path)
	me := os.Geteuid()
	trusted := func(fi fs.FileInfo) bool { uid := fileOwner(fi); return int(uid) == me || uid == 0 }

	lfi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if lfi.Mode().Type() == fs.ModeSymlink && !trusted(lfi) {
		return fmt.Errorf("socket directory %s is a symlink owned by uid %d, not you (uid %d) or root: another user may have planted it; refusing to dial", dir, fileOwner(lfi), me)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("socket directory %s is not a directory", dir)
	}
	// Ownership first: a directory another user owns is that user's to
	// fill, whatever its mode, and the error should say so.
	if !trusted(fi) {
		parent := filepath.Dir(real)
		pfi, err := os.Stat(parent)
		if err != nil || !trusted(pfi) || pfi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("socket directory %s is owned by uid %d, not you (uid %d) or root, and other users can write %s: another user may have planted it; refusing to dial (remove it, or use an address you trust)", dir, fileOwner(fi), me, parent)
		}
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("socket directory %s has mode %04o: other users can write it, so the socket may not be portbrokerd's; refusing to dial", dir, perm)
	}
	return nil
}

func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

func listenPipe(addr, _ string) (net.Listener, error) {
	return nil, fmt.Errorf("listen %s: named pipes need Windows: %w", addr, errors.ErrUnsupported)
}

func dialPipe(_ context.Context, path string) (net.Conn, error) {
	return nil, fmt.Errorf("dial %s: named pipes need Windows: %w", path, errors.ErrUnsupported)
}
