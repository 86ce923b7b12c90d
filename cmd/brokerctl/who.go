package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/portbroker/portbroker/client"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

func (c *cli) whoCmd() *cobra.Command {
	var udp bool
	cmd := &cobra.Command{
		Use:   "who PORT|SERVICE",
		Short: "Tell who holds a port, leased or not, and whether it binds",
		Long: `Tell who holds a port: its lease, if any, and every process with a socket on
it (pid, name, user, parent and whether that parent is gone, command line,
address, start time); whether the port binds now and, if not, why and how to
fix it; and where it sits against the OS ephemeral and reserved ranges.
Inside a project, a service's name stands for the port leased to it.`,
		Example: `  brokerctl who 8000
  brokerctl who 5353 --udp -o json`,
		Args: cobra.ExactArgs(1),
	}
	out := newOutputFlag(cmd, "text", "json")
	cmd.Flags().BoolVar(&udp, "udp", false, "the UDP port rather than the TCP one")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		port, err := parsePort(args[0])
		ns, inProject := c.projectNamespace()
		if err != nil && !inProject {
			return err
		}
		return c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			if port == 0 {
				// Inside a project, a service's name stands for its port.
				if port, err = leasePort(ctx, cl, ns, args[0]); err != nil {
					return err
				}
			}
			resp, err := cl.RPC().InspectPort(ctx, &brokerpb.InspectPortRequest{Port: port, Protocol: protocolFlag(udp)})
			if err != nil {
				return err
			}
			if out.value == "json" {
				return printJSON(c.stdout, resp, false)
			}
			c.describePort(c.stdout, resp)
			return nil
		})
	})
	return cmd
}

// parsePort reads a PORT argument.
func parsePort(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, usageErrorf("PORT: must be a number from 1 to 65535, not %q", s)
	}
	return uint32(n), nil
}

func protocolFlag(udp bool) brokerpb.Protocol {
	if udp {
		return brokerpb.Protocol_PROTOCOL_UDP
	}
	return brokerpb.Protocol_PROTOCOL_TCP
}

func (c *cli) reclaimCmd() *cobra.Command {
	var (
		udp, kill, force bool
		grace            durationFlag
	)
	cmd := &cobra.Command{
		Use:   "reclaim PORT",
		Short: "Free a port: release its lease and, with --kill, stop its holders",
		Long: `Free a port. Its lease, if any, is released; with --kill the processes
holding it and their children are stopped, gracefully first and by force
after the grace period (at once with --force). The broker refuses to stop
system processes, another user's processes, brokerctl itself and its
ancestors. Exits 1 when the port is still not free afterwards.`,
		Example: `  brokerctl reclaim 8000 --kill
  brokerctl reclaim 8000 --kill --grace 2s`,
		Args: cobra.ExactArgs(1),
	}
	out := newOutputFlag(cmd, "text", "json")
	f := cmd.Flags()
	f.BoolVar(&udp, "udp", false, "the UDP port rather than the TCP one")
	f.BoolVar(&kill, "kill", false, "stop the processes holding the port")
	f.BoolVar(&force, "force", false, "with --kill, skip the graceful step")
	f.Var(&grace, "grace", "with --kill, how long to wait after the graceful step (default: the daemon's reclaim.grace)")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		port, err := parsePort(args[0])
		if err != nil {
			return err
		}
		if (force || grace.set) && !kill {
			return usageErrorf("--force and --grace need --kill")
		}
		req := &brokerpb.ReclaimPortRequest{Port: port, Protocol: protocolFlag(udp), Kill: kill, Force: force, Grace: grace.proto()}
		return c.callStopping(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.RPC().ReclaimPort(ctx, req)
			if err != nil {
				return err
			}
			if out.value == "json" {
				if err := printJSON(c.stdout, resp, false); err != nil {
					return err
				}
			} else {
				c.describeReclaim(resp)
			}
			if !resp.GetFree() {
				return fmt.Errorf("port %d is not free: %s", port, orDash(resp.GetDetail()))
			}
			if out.value != "json" {
				fmt.Fprintf(c.stdout, "port %d is free\n", port)
			}
			return nil
		})
	})
	return cmd
}

func (c *cli) describeReclaim(r *brokerpb.ReclaimPortResponse) {
	if l := r.GetReleased(); l != nil {
		fmt.Fprintf(c.stdout, "released lease %s (%s/%s, port %d, owner %s)\n", l.GetId(), l.GetNamespace(), l.GetName(), l.GetPort(), procName(l.GetOwnerPid(), l.GetOwnerName()))
	}
	for _, s := range r.GetStopped() {
		p := s.GetProcess()
		fmt.Fprintf(c.stdout, "%s %s\n", procName(p.GetPid(), p.GetName()), stopWords(s.GetMethod()))
	}
}
