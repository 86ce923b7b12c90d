//go:build !windows

package main

import (
	"context"
	"fmt"
	"runtime"
)

// runAsService reports false: only Windows has a service manager to run under.
func runAsService(runFunc) (int, bool) { return 0, false }

func serviceCommand(context.Context, string, ...string) error {
	if runtime.GOOS == "linux" {
		return fmt.Errorf("service commands manage a Windows service; on Linux install the systemd user unit (see README)")
	}
	return fmt.Errorf("service commands manage a Windows service; not available on %s", runtime.GOOS)
}
