//go:build unix && !darwin

package ipc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

func defaultAddr() (string, error) {
	// The XDG spec says to ignore relative paths.
	if dir := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(dir) {
		return "unix://" + filepath.Join(dir, "portbroker", "portbroker.sock"), nil
	}
	dir := filepath.Join(os.TempDir(), "portbroker-"+strconv.Itoa(os.Getuid()))
	return "unix://" + filepath.Join(dir, "portbroker.sock"), nil
}

func defaultStateDir() (string, error) {
	if dir := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "portbroker"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("default state dir: %w", err)
	}
	return filepath.Join(home, ".local", "state", "portbroker"), nil
}
