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
		Use:   "service install|uninstall|start|stop",
		Short: "Manage portbrokerd as a Windows service",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return serviceCommand(cmd.Context(), args[0])
		},
	}
}
