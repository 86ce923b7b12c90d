package ipc

import (
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

func defaultStateDir() (string, error) {
	dir, err := os.UserCacheDir() // %LOCALAPPDATA%
	if err != nil {
		return "", fmt.Errorf("default state dir: %w", err)
	}
	return filepath.Join(dir, "portbroker"), nil
}
