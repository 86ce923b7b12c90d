package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/internal/version"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// versionString is brokerctl's own version in one line.
func versionString() string { return version.Get().String() }

// versionReport is version -o json: brokerctl's build, and the daemon's
// version or why it could not be asked.
type versionReport struct {
	Brokerctl   version.Info   `json:"brokerctl"`
	Portbrokerd *daemonVersion `json:"portbrokerd,omitempty"`
	Error       string         `json:"portbrokerd_error,omitempty"`
}

type daemonVersion struct {
	Version  string `json:"version"`
	Platform string `json:"platform"`
	Addr     string `json:"addr"`
}

func (c *cli) versionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print brokerctl's version and, when it answers, the daemon's",
		Long: `Print brokerctl's version (the release version, else the module version,
else the VCS revision it was built from, with ", modified" for a checkout
with changes) and the version of the daemon that answers.`,
		Args: cobra.NoArgs,
	}
	out := newOutputFlag(cmd, "text", "json")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		report := versionReport{Brokerctl: version.Get()}
		err := c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			s, err := cl.RPC().GetStatus(ctx, &brokerpb.GetStatusRequest{})
			if err != nil {
				return err
			}
			report.Portbrokerd = &daemonVersion{Version: s.GetVersion(), Platform: s.GetPlatform(), Addr: cl.Addr()}
			return nil
		})
		if u := (*usageError)(nil); errors.As(err, &u) {
			return err
		}
		if err != nil {
			// The client's own version is still an answer.
			report.Error = strings.Join(strings.Fields(err.Error()), " ")
		}
		err = nil
		if out.value == "json" {
			enc := json.NewEncoder(c.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(report)
		}
		fmt.Fprintf(c.stdout, "brokerctl:   %s\n", report.Brokerctl)
		if d := report.Portbrokerd; d != nil {
			_, err = fmt.Fprintf(c.stdout, "portbrokerd: %s (%s) at %s\n", orDash(d.Version), orDash(d.Platform), d.Addr)
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "portbrokerd: unreachable: %s\n", report.Error)
		return err
	})
	return cmd
}
