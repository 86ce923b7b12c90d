package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"
)

// runFunc is the daemon's whole program, as main runs it.
type runFunc func(ctx context.Context, args []string, stderr io.Writer) int

// newServiceCmd manages the daemon as an OS service. On Linux a systemd
// user unit ships in the repository instead.
func newServiceCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "service install [-- DAEMON-FLAGS...]|uninstall|start|stop",
		Short: "Manage portbrokerd as a Windows service",
		Long: `Manage portbrokerd as a Windows service. The service serves the machine-wide
pipe \\.\pipe\portbroker, which brokerctl falls back to when the user's own
daemon is not running, and keeps its leases in %ProgramData%\portbroker.
Flags after -- on install are stored for the service, such as
"portbrokerd service install -- --log-level debug". Installed with
"-- --addr tcp://127.0.0.1:PORT", it serves that address instead, and
writes its token, certificate and address where users' clients find them.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return serviceCommand(cmd.Context(), args[0], args[1:]...)
		},
	}
}

// serviceKey marks the context of a daemon the Windows service runs.
type serviceKey struct{}

// isService reports whether the Windows service runs the daemon of ctx.
func isService(ctx context.Context) bool {
	on, _ := ctx.Value(serviceKey{}).(bool)
	return on
}
