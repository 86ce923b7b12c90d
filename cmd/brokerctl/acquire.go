package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portbroker/portbroker/client"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

func (c *cli) acquireCmd() *cobra.Command {
	var (
		port, pid, launcherPID int
		ttl                    time.Duration
		udp, tcpUDP            bool
		namespace              string
		strict, reclaim        bool
	)
	cmd := &cobra.Command{
		Use:   "acquire NAME",
		Short: "Lease a port for NAME and print it",
		Long: `Lease a port for NAME and print it. The lease belongs to --pid, by default
the shell that ran brokerctl, and ends when that process exits.`,
		Example: `  PORT=$(brokerctl acquire web --port 8000)
  brokerctl acquire dns --udp --ttl 5m -o json`,
		Args:              argsNamed("NAME"),
		ValidArgsFunction: c.completeLeases(completeNames, false),
	}
	out := newOutputFlag(cmd, "port", "json")
	f := cmd.Flags()
	f.IntVar(&port, "port", 0, "preferred port (default: any free port in the pool)")
	f.IntVar(&pid, "pid", 0, "owner process (default: brokerctl's parent, the shell that ran it)")
	f.IntVar(&launcherPID, "launcher-pid", 0, "launcher that asks on the owner's behalf; its exit reclaims an orphaned owner's port")
	f.DurationVar(&ttl, "ttl", 0, "expire the lease unless renewed within this long (default: live as long as the owner)")
	f.BoolVar(&udp, "udp", false, "lease the port for UDP instead of TCP")
	f.BoolVar(&tcpUDP, "tcp-udp", false, "lease the port for both TCP and UDP")
	f.StringVar(&namespace, "namespace", "default", "namespace of the lease name")
	f.BoolVar(&strict, "strict", false, "fail instead of falling back to another port when --port is not free")
	f.BoolVar(&reclaim, "reclaim", false, "stop an orphan of an earlier lease of NAME that still holds --port")
	cmd.MarkFlagsMutuallyExclusive("udp", "tcp-udp")

	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		switch {
		case port < 0 || port > math.MaxUint16:
			return usageErrorf("--port: must be from 0 to 65535, not %d", port)
		case cmd.Flags().Changed("pid") && (pid <= 0 || pid > math.MaxInt32):
			return usageErrorf("--pid: must be a process id, not %d", pid)
		case launcherPID < 0 || launcherPID > math.MaxInt32:
			return usageErrorf("--launcher-pid: must be a process id, not %d", launcherPID)
		case ttl < 0:
			return usageErrorf("--ttl: must not be negative, not %v", ttl)
		case strict && port == 0:
			return usageErrorf("--strict needs --port")
		}
		// By default the owner is brokerctl's parent (your shell), which
		// the daemon finds from the caller the transport names: a PID sent
		// from here could be another PID namespace's.
		byParent := !cmd.Flags().Changed("pid")
		req := &brokerpb.AcquireLeaseRequest{
			Name:              args[0],
			Namespace:         namespace,
			Port:              uint32(port),
			Protocol:          brokerpb.Protocol_PROTOCOL_TCP,
			OwnerPid:          int32(pid),
			OwnerCallerParent: byParent,
			LauncherPid:       int32(launcherPID),
			Strict:            strict,
			Reclaim:           reclaim,
		}
		switch {
		case udp:
			req.Protocol = brokerpb.Protocol_PROTOCOL_UDP
		case tcpUDP:
			req.Protocol = brokerpb.Protocol_PROTOCOL_TCP_UDP
		}
		if ttl > 0 {
			req.Ttl = durationpb.New(ttl)
		}
		return c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			resp, err := cl.RPC().AcquireLease(ctx, req)
			var bad *client.InvalidArgumentError
			if byParent && errors.As(err, &bad) && bad.Field == "owner_caller_parent" {
				// The transport could not name brokerctl (loopback TCP on
				// macOS): say who the parent is here.
				if req.OwnerPid = int32(os.Getppid()); req.OwnerPid <= 1 {
					return errors.New("cannot tell which process ran brokerctl to make it the owner; pass --pid")
				}
				req.OwnerCallerParent = false
				resp, err = cl.RPC().AcquireLease(ctx, req)
			}
			var held *client.PortHeldError
			if errors.As(err, &held) && held.HolderPID == 0 {
				// The daemon knew only that the port does not bind; the
				// holder may still be a process who can name.
				if who := holdersOf(ctx, cl, uint32(port), req.Protocol); who != "" {
					return fmt.Errorf("%w; held by %s", err, who)
				}
			}
			if err != nil {
				return err
			}
			if out.value == "json" {
				return printJSON(c.stdout, resp, false)
			}
			if reason := resp.GetFallbackReason(); reason != "" {
				if who := holdersOf(ctx, cl, uint32(port), req.Protocol); who != "" && !strings.Contains(reason, "pid ") {
					reason += "; held by " + who
				}
				fmt.Fprintf(c.stderr, "brokerctl: port %d not granted (%s); leased %d instead\n", port, reason, resp.GetLease().GetPort())
			}
			_, err = fmt.Fprintln(c.stdout, resp.GetLease().GetPort())
			return err
		})
	})
	return cmd
}

// holdersOf names the processes holding port, as who shows them, or ""
// when none is known (or the daemon cannot tell).
func holdersOf(ctx context.Context, cl *client.Client, port uint32, proto brokerpb.Protocol) string {
	if proto == brokerpb.Protocol_PROTOCOL_TCP_UDP {
		proto = brokerpb.Protocol_PROTOCOL_TCP
	}
	resp, err := cl.RPC().InspectPort(ctx, &brokerpb.InspectPortRequest{Port: port, Protocol: proto})
	if err != nil {
		return ""
	}
	var names []string
	for _, h := range resp.GetHolders() {
		names = append(names, procName(h.GetPid(), h.GetName()))
	}
	return strings.Join(names, ", ")
}
