package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/portbroker/portbroker/client"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

func (c *cli) statusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's version, address, config file, services, pool, ranges and lease counts",
		Args:  cobra.NoArgs,
	}
	out := newOutputFlag(cmd, "text", "json")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		return c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.RPC().GetStatus(ctx, &brokerpb.GetStatusRequest{})
			if err != nil {
				return err
			}
			if out.value == "json" {
				return printJSON(c.stdout, resp, false)
			}
			return c.printStatus(cl.Addr(), resp)
		})
	})
	return cmd
}

func (c *cli) printStatus(addr string, s *brokerpb.GetStatusResponse) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 1, ' ', 0)
	row := func(key, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t%s\n", key, fmt.Sprintf(format, args...))
	}
	row("daemon", "portbrokerd %s (%s), pid %d", orDash(s.GetVersion()), orDash(s.GetPlatform()), s.GetPid())
	row("address", "%s", addr)
	if s.GetStartedAt() != nil {
		row("started", "%s (up %s)", timeOrDash(s.GetStartedAt()), age(c.now(), s.GetStartedAt()))
	}
	row("state", "%s", orDash(s.GetStatePath()))
	config := s.GetConfigFile()
	if config == "" {
		config = "none"
	}
	row("config", "%s", config)
	for _, w := range s.GetWarnings() {
		row("WARNING", "%s", printable(w))
	}
	services := make([]string, 0, len(s.GetServices()))
	for _, svc := range s.GetServices() {
		services = append(services, fmt.Sprintf("%s %d/%s", svc.GetName(), svc.GetPort(), protocolName(svc.GetProtocol())))
	}
	if len(services) == 0 {
		services = append(services, "none")
	}
	row("services", "%s", strings.Join(services, ", "))
	row("pool", "%s (%d ports, %d free)", formatRange(s.GetPool()), s.GetPoolSize(), s.GetPoolFree())
	row("ephemeral", "%s", formatRange(s.GetEphemeralRange()))
	row("reserved", "%s", formatRanges(s.GetReservedRanges()))
	row("excluded", "%s", formatRanges(s.GetExcludedRanges()))
	byNS := s.GetLeasesByNamespace()
	counts := make([]string, 0, len(byNS))
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		counts = append(counts, fmt.Sprintf("%s %d", ns, byNS[ns]))
	}
	if len(counts) > 0 {
		row("leases", "%d (%s)", s.GetLeaseCount(), strings.Join(counts, ", "))
	} else {
		row("leases", "%d", s.GetLeaseCount())
	}
	return tw.Flush()
}

func formatRange(r *brokerpb.PortRange) string {
	if r == nil {
		return "-"
	}
	s := fmt.Sprintf("%d-%d", r.GetFirst(), r.GetLast())
	if r.GetFirst() == r.GetLast() {
		s = fmt.Sprint(r.GetFirst())
	}
	if r.GetSource() != "" {
		s += " (" + r.GetSource() + ")"
	}
	return s
}

func formatRanges(rs []*brokerpb.PortRange) string {
	if len(rs) == 0 {
		return "none"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = formatRange(r)
	}
	return strings.Join(parts, ", ")
}
