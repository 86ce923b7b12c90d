package ipc

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
)

func defaultAddr() (string, error) {
	u, err := user.Current()
	if err != nil {
		return "", fmt.Errorf("default address: %w", err)
	}
	// Username is DOMAIN\name; a pipe name may not hold a backslash.
	name := u.Username
	if i := strings.LastIndexByte(name, '\\'); i >= 0 {
		name = name[i+1:]
	}
	return "npipe:////./pipe/portbroker-" + name, nil
}

// defaultPipe is DefaultAddr's pipe path.
func defaultPipe() (string, error) {
	addr, err := defaultAddr()
	if err != nil {
		return "", err
	}
	_, path, err := ParseAddr(addr)
	return path, err
}

func defaultStateDir() (string, error) {
	dir, err := os.UserCacheDir() // %LOCALAPPDATA%
	if err != nil {
		return "", fmt.Errorf("default state dir: %w", err)
	}
	return filepath.Join(dir, "portbroker"), nil
}

// ServiceStateDir returns the state dir of portbrokerd running as the
// Windows service: %ProgramData%\portbroker. Every user may create
// directories in %ProgramData%, so whoever runs the service must make
// sure that SYSTEM or Administrators own this one before using it.
func ServiceStateDir() (string, error) {
	dir := os.Getenv("ProgramData")
	if dir == "" {
		return "", errors.New("service state dir: %ProgramData% is not set")
	}
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("service state dir: %%ProgramData%% is %q, not an absolute path", dir)
	}
	return filepath.Join(dir, "portbroker"), nil
}
