package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portbroker/portbroker/client"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

func (c *cli) whoCmd() *cobra.Command {
	var udp bool
	cmd := &cobra.Command{
		Use:   "who PORT|SERVICE...",
		Short: "Tell who holds a port, leased or not, and whether it binds",
		Long: `Tell who holds a port: its lease, if any, and every process with a socket on
it (pid, name, user, parent and whether that parent is gone, command line,
address, start time); whether the port binds now and, if not, why and how to
fix it; and where it sits against the OS ephemeral and reserved ranges.
Several ports are described one after another (with -o json, one JSON
document each). Inside a project, a service's name stands for the port
leased to it.`,
		Example: `  brokerctl who 8000
  brokerctl who 8000 3000 8081
  brokerctl who 5353 --udp -o json`,
		Args:              argsAtLeastOne("PORT"),
		ValidArgsFunction: c.completeLeases(completePorts, true),
	}
	out := newOutputFlag(cmd, "text", "json")
	cmd.Flags().BoolVar(&udp, "udp", false, "the UDP port rather than the TCP one")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		ns, inProject := c.projectNamespace()
		var names []string
		ports, err := parsePorts(args)
		if err != nil {
			if !inProject {
				return err
			}
			// Inside a project, a service's name stands for its port.
			ports, names = nil, args
		}
		return c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			for _, name := range names {
				port, err := parsePort(name)
				if err != nil {
					if port, err = leasePort(ctx, cl, ns, name); err != nil {
						return err
					}
				}
				ports = append(ports, port)
			}
			for i, port := range ports {
				resp, err := cl.RPC().InspectPort(ctx, &brokerpb.InspectPortRequest{Port: port, Protocol: protocolFlag(udp)})
				if err != nil {
					return fmt.Errorf("port %d: %w", port, err)
				}
				if out.value == "json" {
					if err := printJSON(c.stdout, resp, false); err != nil {
						return err
					}
					continue
				}
				if i > 0 {
					fmt.Fprintln(c.stdout)
				}
				c.describePort(c.stdout, resp)
			}
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

// parsePorts reads PORT arguments, all before any is used, and refuses a
// port given twice.
func parsePorts(args []string) ([]uint32, error) {
	ports := make([]uint32, 0, len(args))
	for _, a := range args {
		port, err := parsePort(a)
		if err != nil {
			return nil, err
		}
		if slices.Contains(ports, port) {
			return nil, usageErrorf("PORT: %d is given twice", port)
		}
		ports = append(ports, port)
	}
	return ports, nil
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
		Use:   "reclaim PORT...",
		Short: "Free a port: release its lease and, with --kill, stop its holders",
		Long: `Free a port. Its lease, if any, is released; with --kill the processes
holding it and their children are stopped, gracefully first and by force
after the grace period (at once with --force). The broker refuses to stop
system processes, another user's processes, brokerctl itself and its
ancestors. Several ports are reclaimed in the order given; exits 1 when
any is still not free afterwards.`,
		Example: `  brokerctl reclaim 8000 --kill
  brokerctl reclaim 8000 3000 --kill --grace 2s`,
		Args:              argsAtLeastOne("PORT"),
		ValidArgsFunction: c.completeLeases(completePorts, true),
	}
	out := newOutputFlag(cmd, "text", "json")
	f := cmd.Flags()
	f.BoolVar(&udp, "udp", false, "the UDP port rather than the TCP one")
	f.BoolVar(&kill, "kill", false, "stop the processes holding the port")
	f.BoolVar(&force, "force", false, "with --kill, skip the graceful step")
	f.Var(&grace, "grace", "with --kill, how long to wait after the graceful step (default: the daemon's reclaim.grace)")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		ports, err := parsePorts(args)
		if err != nil {
			return err
		}
		if (force || grace.set) && !kill {
			return usageErrorf("--force and --grace need --kill")
		}
		return c.callStopping(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			var busy []string
			for _, port := range ports {
				req := &brokerpb.ReclaimPortRequest{Port: port, Protocol: protocolFlag(udp), Kill: kill, Force: force, Grace: grace.proto()}
				resp, err := cl.RPC().ReclaimPort(ctx, req)
				if err != nil {
					return fmt.Errorf("port %d: %w", port, err)
				}
				if out.value == "json" {
					if err := printJSON(c.stdout, resp, false); err != nil {
						return err
					}
				} else {
					c.describeReclaim(resp)
				}
				if !resp.GetFree() {
					busy = append(busy, fmt.Sprintf("port %d is not free: %s", port, orDash(resp.GetDetail())))
					continue
				}
				if out.value != "json" {
					fmt.Fprintf(c.stdout, "port %d is free\n", port)
				}
			}
			if len(busy) > 0 {
				return errors.New(strings.Join(busy, "; "))
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
