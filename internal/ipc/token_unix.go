//go:build unix

package ipc

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func openTokenFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("token file %s is a symlink; remove it and restart portbrokerd to make a new one", path)
	}
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	return f, nil
}

// checkTokenFile refuses a token file that anyone but its owner, this
// user, may read or change.
func checkTokenFile(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("token file %s is not a regular file; remove it and restart portbrokerd to make a new one", path)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
		return fmt.Errorf("token file %s is owned by uid %d, not %d; remove it and restart portbrokerd to make a new one", path, uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("token file %s has mode %04o: group or others may read or change it; run chmod 600 %s, or remove it and restart portbrokerd to make a new token", path, perm, path)
	}
	return nil
}

// createPrivateTemp creates a new file readable and writable by its owner
// only (os.CreateTemp's mode is 0600).
func createPrivateTemp(dir, pattern string) (*os.File, error) {
	return os.CreateTemp(dir, pattern)
}

// createServiceTemp fails: only Windows runs portbrokerd as a service
// whose users read its files.
func createServiceTemp(dir, _ string) (*os.File, error) {
	return nil, fmt.Errorf("create a file in %s for the service's users: %w", dir, errors.ErrUnsupported)
}
