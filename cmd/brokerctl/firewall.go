package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/portbroker/portbroker/client"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// firewallCmd manages the broker's own inbound allow rules. Only the
// Windows daemon has a firewall to manage; elsewhere it answers that
// plainly and the command exits 1.
func (c *cli) firewallCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "firewall open|close|list",
		Short: "Manage the broker's inbound firewall rules (Windows)",
		Long: `Manage inbound allow rules for leased ports. The daemon names its rules
"portbroker:<port>/<protocol>" and only ever touches those; a rule opened
for a lease is removed when the lease ends. Needs a daemon running as
administrator on Windows; other systems answer that their firewall is
managed with their own tools.`,
	}
	cmd.AddCommand(c.firewallOpenCmd(), c.firewallCloseCmd(), c.firewallListCmd())
	return cmd
}

func (c *cli) firewallOpenCmd() *cobra.Command {
	var (
		udp              bool
		program, leaseID string
	)
	cmd := &cobra.Command{
		Use:     "open PORT",
		Short:   "Allow inbound connections to a port",
		Example: "  brokerctl firewall open 8000 --program C:\\Python312\\python.exe --lease 639db732996ea4db",
		Args:    argsNamed("PORT"),
	}
	out := newOutputFlag(cmd, "text", "json")
	cmd.Flags().BoolVar(&udp, "udp", false, "the UDP port rather than the TCP one")
	cmd.Flags().StringVar(&program, "program", "", "scope the rule to this program")
	cmd.Flags().StringVar(&leaseID, "lease", "", "remove the rule when this lease ends")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		port, err := parsePort(args[0])
		if err != nil {
			return err
		}
		return c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.RPC().OpenFirewall(ctx, &brokerpb.OpenFirewallRequest{Port: port, Protocol: protocolFlag(udp), Program: program, LeaseId: leaseID})
			if err != nil {
				return err
			}
			if out.value == "json" {
				return printJSON(c.stdout, resp, false)
			}
			fmt.Fprintf(c.stdout, "opened %s\n", resp.GetRule().GetName())
			return nil
		})
	})
	return cmd
}

func (c *cli) firewallCloseCmd() *cobra.Command {
	var udp bool
	cmd := &cobra.Command{
		Use:   "close PORT",
		Short: "Remove the broker's rules for a port",
		Args:  argsNamed("PORT"),
	}
	out := newOutputFlag(cmd, "text", "json")
	cmd.Flags().BoolVar(&udp, "udp", false, "the UDP port rather than the TCP one")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		port, err := parsePort(args[0])
		if err != nil {
			return err
		}
		return c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.RPC().CloseFirewall(ctx, &brokerpb.CloseFirewallRequest{Port: port, Protocol: protocolFlag(udp)})
			if err != nil {
				return err
			}
			if out.value == "json" {
				return printJSON(c.stdout, resp, false)
			}
			if len(resp.GetRemoved()) == 0 {
				fmt.Fprintf(c.stdout, "no broker rule for port %d\n", port)
			}
			for _, r := range resp.GetRemoved() {
				fmt.Fprintf(c.stdout, "closed %s\n", r.GetName())
			}
			return nil
		})
	})
	return cmd
}

func (c *cli) firewallListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the broker's rules",
		Args:  cobra.NoArgs,
	}
	out := newOutputFlag(cmd, "table", "json")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		return c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.RPC().ListFirewallRules(ctx, &brokerpb.ListFirewallRulesRequest{})
			if err != nil {
				return err
			}
			if out.value == "json" {
				return printJSON(c.stdout, resp, false)
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPORT\tPROTO\tPROGRAM\tLEASE")
			for _, r := range resp.GetRules() {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.GetName(), r.GetPort(), protocolName(r.GetProtocol()), orDash(r.GetProgram()), orDash(r.GetLeaseId()))
			}
			return tw.Flush()
		})
	})
	return cmd
}
