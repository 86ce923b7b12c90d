package main

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portbroker/portbroker/client"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// version is set at build time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/brokerctl
var version = "dev"

// versionString adds what the build recorded: the module version when
// installed with go install, and the VCS revision.
func versionString() string {
	v := version
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return v
	}
	rev = rev[:min(len(rev), 12)]
	if modified == "true" {
		rev += ", modified"
	}
	return v + " (" + rev + ")"
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print brokerctl's version and, when it answers, the daemon's",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(c.stdout, "brokerctl:   %s\n", versionString())
			err := c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
				s, err := cl.RPC().GetStatus(ctx, &brokerpb.GetStatusRequest{})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(c.stdout, "portbrokerd: %s (%s) at %s\n", orDash(s.GetVersion()), orDash(s.GetPlatform()), cl.Addr())
				return err
			})
			if u := (*usageError)(nil); errors.As(err, &u) {
				return err
			}
			if err != nil {
				// The client's own version is still an answer.
				_, err = fmt.Fprintf(c.stdout, "portbrokerd: unreachable: %s\n", strings.Join(strings.Fields(err.Error()), " "))
			}
			return err
		}),
	}
}
