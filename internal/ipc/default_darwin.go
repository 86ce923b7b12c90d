package ipc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

func defaultAddr() (string, error) {
	// $TMPDIR is already per user on macOS; the uid keeps users apart when
	// it is unset and os.TempDir falls back to /tmp.
	dir := filepath.Join(os.TempDir(), "portbroker-"+strconv.Itoa(os.Getuid()))
	return "unix://" + filepath.Join(dir, "portbroker.sock"), nil
}

func defaultStateDir() (string, error) {
	dir, err := os.UserConfigDir() // ~/Library/Application Support
	if err != nil {
		return "", fmt.Errorf("default state dir: %w", err)
	}
	return filepath.Join(dir, "portbroker"), nil
}
