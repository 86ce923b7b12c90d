package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portbroker/portbroker/client"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

func (c *cli) leasesCmd() *cobra.Command {
	var (
		namespace string
		watch     bool
	)
	cmd := &cobra.Command{
		Use:   "leases",
		Short: "List leased ports, or watch them change",
		Example: `  brokerctl leases
  brokerctl leases -o wide --namespace ci
  brokerctl leases --watch -o json`,
		Args: cobra.NoArgs,
	}
	out := newOutputFlag(cmd, "table", "wide", "json")
	cmd.Flags().StringVar(&namespace, "namespace", "", "only this namespace (default: all)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "stream lease events, one line each, until interrupted or the daemon ends the stream")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if watch {
			return c.watchLeases(cmd.Context(), namespace, out.value == "json")
		}
		return c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			leases, err := cl.ListProto(ctx, namespace)
			if err != nil {
				return err
			}
			if out.value == "json" {
				return printJSON(c.stdout, &brokerpb.ListLeasesResponse{Leases: leases}, false)
			}
			return c.printLeases(c.stdout, leases, out.value == "wide")
		})
	})
	return cmd
}

func (c *cli) printLeases(w io.Writer, leases []*brokerpb.Lease, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := []string{"ID", "NAME", "NAMESPACE", "PORT", "PROTO", "PID", "OWNER", "AGE", "EXPIRES"}
	if wide {
		header = append(header, "LAUNCHER", "OWNER-STARTED", "CREATED")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	now := c.now()
	for _, l := range leases {
		expires := "-"
		if l.GetExpiresAt() != nil {
			expires = shortDuration(l.GetExpiresAt().AsTime().Sub(now))
		}
		row := []string{
			l.GetId(),
			orDash(l.GetName()),
			orDash(l.GetNamespace()),
			strconv.FormatUint(uint64(l.GetPort()), 10),
			protocolName(l.GetProtocol()),
			pidOrDash(l.GetOwnerPid()),
			orDash(l.GetOwnerName()),
			age(now, l.GetCreatedAt()),
			expires,
		}
		if wide {
			row = append(row, pidOrDash(l.GetLauncherPid()), timeOrDash(l.GetOwnerStartTime()), timeOrDash(l.GetCreatedAt()))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// watchLeases prints one line per lease event. The --timeout bounds the
// connection, not the stream.
func (c *cli) watchLeases(ctx context.Context, namespace string, asJSON bool) error {
	timeout, err := c.timeout()
	if err != nil {
		return err
	}
	dialCtx, cancel := context.WithTimeout(ctx, timeout)
	cl, err := c.connect(dialCtx)
	cancel()
	if err != nil {
		return err
	}
	defer cl.Close()

	stream, err := cl.RPC().WatchLeases(ctx, &brokerpb.WatchLeasesRequest{Namespace: namespace})
	if err != nil {
		return err
	}
	for {
		ev, err := stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil && ctx.Err() != nil:
			return nil // interrupted: the watch was meant to run until then
		case err != nil:
			return err
		}
		if asJSON {
			err = printJSON(c.stdout, ev, true)
		} else {
			err = c.printEvent(c.stdout, ev)
		}
		if err != nil {
			return err
		}
		if ev.GetType() == brokerpb.LeaseEventType_LEASE_EVENT_TYPE_OVERFLOW {
			return client.ErrWatchOverflow
		}
	}
}

func (c *cli) printEvent(w io.Writer, ev *brokerpb.WatchLeasesResponse) error {
	at := c.now()
	if ev.GetTime() != nil {
		at = ev.GetTime().AsTime()
	}
	line := at.Local().Format(time.RFC3339) + " " + enumName(ev.GetType().String(), "LEASE_EVENT_TYPE_")
	if l := ev.GetLease(); l != nil {
		line += fmt.Sprintf(" %s/%s port=%d pid=%d", l.GetNamespace(), l.GetName(), l.GetPort(), l.GetOwnerPid())
	}
	if r := ev.GetReason(); r != brokerpb.ReclaimReason_RECLAIM_REASON_UNSPECIFIED {
		line += " reason=" + enumName(r.String(), "RECLAIM_REASON_")
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// enumName turns LEASE_EVENT_TYPE_ACQUIRED into acquired and
// RECLAIM_REASON_OWNER_EXITED into owner-exited.
func enumName(s, prefix string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s, prefix)), "_", "-")
}

func protocolName(p brokerpb.Protocol) string {
	switch p {
	case brokerpb.Protocol_PROTOCOL_TCP:
		return "tcp"
	case brokerpb.Protocol_PROTOCOL_UDP:
		return "udp"
	case brokerpb.Protocol_PROTOCOL_TCP_UDP:
		return "tcp+udp"
	}
	return "-"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pidOrDash(pid int32) string {
	if pid == 0 {
		return "-"
	}
	return strconv.Itoa(int(pid))
}

func timeOrDash(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().Local().Format(time.RFC3339)
}

func age(now time.Time, since *timestamppb.Timestamp) string {
	if since == nil {
		return "-"
	}
	return shortDuration(now.Sub(since.AsTime()))
}

// shortDuration rounds d down to one unit, as in 42s, 17m, 5h, 3d.
func shortDuration(d time.Duration) string {
	switch {
	case d < 0:
		d = 0
		fallthrough
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}
