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
	cmd.Flags().StringVar(&namespace, "namespace", "", "only this namespace (default: the project's inside a project, else all; \"\" for all)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "stream lease events, one line each, until interrupted or the daemon ends the stream")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		namespace = c.defaultNamespace(cmd, "namespace", namespace)
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

// watchLeases prints one line per lease event until interrupted. When the
// daemon goes away (a restart, say) it says so in one line and watches
// again once a daemon answers; what changed meanwhile is printed as it
// would have been. The --timeout bounds the first connection, not the
// stream.
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
	w := &leaseWatch{c: c, namespace: namespace, asJSON: asJSON, known: map[string]*brokerpb.Lease{}, shownEnded: map[string]bool{}}
	for {
		err = w.watch(ctx, cl)
		cl.Close()
		switch {
		case ctx.Err() != nil:
			return nil // interrupted: the watch was meant to run until then
		case err == nil:
			return nil // the daemon ended the stream
		case !errors.Is(err, client.ErrUnavailable):
			return err
		}
		fmt.Fprintf(c.stderr, "brokerctl: lost portbrokerd (%s); watching again when it is back\n", strings.Join(strings.Fields(err.Error()), " "))
		if cl, err = c.reconnect(ctx); err != nil {
			return nil // interrupted while waiting
		}
	}
}

// reconnect waits until a daemon answers at the same address, without
// starting one: a daemon someone stopped stays stopped.
func (c *cli) reconnect(ctx context.Context) (*client.Client, error) {
	opts := []client.Option{client.WithAutoStart(false), client.WithDialTimeout(time.Second)}
	if addr := c.v.GetString("addr"); addr != "" {
		opts = append(opts, client.WithAddr(addr))
	}
	delay := 100 * time.Millisecond
	for {
		cl, err := client.New(ctx, opts...)
		if err == nil {
			return cl, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
			delay = min(2*delay, 2*time.Second)
		}
	}
}

// leaseWatch is one leases --watch across reconnections.
type leaseWatch struct {
	c         *cli
	namespace string
	asJSON    bool
	// known are the live leases as last seen, by id.
	known map[string]*brokerpb.Lease
	// shownEnded are leases whose end was printed from a list, not an
	// event, so that the event, if it comes, is not printed again.
	shownEnded map[string]bool
	watched    bool
}

// watch streams events over cl until the stream ends. After the first
// time, the stream opens with the live leases, and a list tells which
// leases ended while no daemon answered.
func (w *leaseWatch) watch(ctx context.Context, cl *client.Client) error {
	again := w.watched
	w.watched = true
	stream, err := cl.RPC().WatchLeases(ctx, &brokerpb.WatchLeasesRequest{Namespace: w.namespace, IncludeExisting: again})
	if err != nil {
		return err
	}
	list, err := cl.RPC().ListLeases(ctx, &brokerpb.ListLeasesRequest{Namespace: w.namespace})
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, l := range list.GetLeases() {
		live[l.GetId()] = true
		if !again {
			w.known[l.GetId()] = l
		}
	}
	if again {
		for id, l := range w.known {
			if !live[id] {
				// Ended while the daemon was away (its end event went
				// with it), or just now (its event follows, not printed).
				delete(w.known, id)
				w.shownEnded[id] = true
				if err := w.print(&brokerpb.WatchLeasesResponse{Type: brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RELEASED, Lease: l, Time: timestamppb.New(w.c.now())}, "while disconnected"); err != nil {
					return err
				}
			}
		}
	}
	for {
		ev, err := stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
		id := ev.GetLease().GetId()
		switch ev.GetType() {
		case brokerpb.LeaseEventType_LEASE_EVENT_TYPE_ACQUIRED:
			if w.known[id] != nil {
				continue // printed before the daemon went away
			}
			w.known[id] = ev.GetLease()
		case brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RELEASED, brokerpb.LeaseEventType_LEASE_EVENT_TYPE_EXPIRED, brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RECLAIMED:
			delete(w.known, id)
			if w.shownEnded[id] {
				delete(w.shownEnded, id)
				continue
			}
		}
		if err := w.print(ev, ""); err != nil {
			return err
		}
		if ev.GetType() == brokerpb.LeaseEventType_LEASE_EVENT_TYPE_OVERFLOW {
			return client.ErrWatchOverflow
		}
	}
}

func (w *leaseWatch) print(ev *brokerpb.WatchLeasesResponse, note string) error {
	if w.asJSON {
		return printJSON(w.c.stdout, ev, true)
	}
	return w.c.printEvent(w.c.stdout, ev, note)
}

func (c *cli) printEvent(w io.Writer, ev *brokerpb.WatchLeasesResponse, note string) error {
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
	if note != "" {
		line += " (" + note + ")"
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
