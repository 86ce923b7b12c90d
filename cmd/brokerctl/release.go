package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portbroker/portbroker/client"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

func (c *cli) releaseCmd() *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "release ID|PORT|NAME",
		Short: "End a lease, found by id, port or name",
		Long: `End a lease. The argument is tried as a lease id, then as a port, then as a
lease name in --namespace; it must match exactly one lease.`,
		Example: `  brokerctl release 8000
  brokerctl release web --namespace ci`,
		Args:              argsNamed("ID|PORT|NAME"),
		ValidArgsFunction: c.completeLeases(completeIDs|completeNames|completePorts, false),
	}
	out := newOutputFlag(cmd, "text", "json")
	cmd.Flags().StringVar(&namespace, "namespace", "default", "namespace in which to look up a lease name (default: the project's inside a project)")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		namespace := c.defaultNamespace(cmd, "namespace", namespace)
		return c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			list, err := cl.ListProto(ctx, "")
			if err != nil {
				return err
			}
			lease, err := resolveLease(list, args[0], namespace)
			if err != nil {
				return err
			}
			resp, err := cl.RPC().ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: lease.GetId()})
			if err != nil {
				return err
			}
			if out.value == "json" {
				return printJSON(c.stdout, resp, false)
			}
			_, err = fmt.Fprintf(c.stdout, "released %s (%s/%s, port %d)\n", lease.GetId(), lease.GetNamespace(), lease.GetName(), lease.GetPort())
			return err
		})
	})
	return cmd
}

// resolveLease finds the one lease arg names: by exact id, else by port
// when arg is a number, else by name within namespace.
func resolveLease(leases []*brokerpb.Lease, arg, namespace string) (*brokerpb.Lease, error) {
	for _, l := range leases {
		if l.GetId() == arg {
			return l, nil
		}
	}
	var (
		matches []*brokerpb.Lease
		what    string
	)
	if port, err := strconv.ParseUint(arg, 10, 16); err == nil {
		what = "port " + arg
		for _, l := range leases {
			if uint64(l.GetPort()) == port {
				matches = append(matches, l)
			}
		}
	}
	if len(matches) == 0 {
		what = fmt.Sprintf("name %q in namespace %q", arg, namespace)
		for _, l := range leases {
			if l.GetNamespace() == namespace && l.GetName() == arg {
				matches = append(matches, l)
			}
		}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("no lease has id, port or name %q (names looked up in namespace %q): %w", arg, namespace, client.ErrNotFound)
	case 1:
		return matches[0], nil
	}
	ids := make([]string, len(matches))
	for i, l := range matches {
		ids[i] = l.GetId()
	}
	return nil, fmt.Errorf("%s matches %d leases (%s); release one by id", what, len(matches), strings.Join(ids, ", "))
}
