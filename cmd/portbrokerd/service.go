package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// newServiceCmd manages the daemon as an OS service. The Windows service
// manager integration lives with the Windows backend; on Linux a systemd
// user unit ships in the repository instead.
func newServiceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "service install|uninstall|start|stop",
		Short: "Manage portbrokerd as a Windows service",
		Args:  cobra.ExactArgs(1),
		RunE: func(*cobra.Command, []string) error {
			if runtime.GOOS != "windows" {
				return fmt.Errorf("service commands manage a Windows service; on Linux use the systemd user unit (see README), on macOS a launchd agent")
			}
			return fmt.Errorf("the Windows service is not available in this build yet")
		},
	}
}
