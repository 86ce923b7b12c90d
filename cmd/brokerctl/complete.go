package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portbroker/portbroker/client"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// completionTimeout bounds how long a shell's Tab waits for the daemon.
const completionTimeout = time.Second

// What an argument completes to.
const (
	completeIDs = 1 << iota
	completeNames
	completePorts
)

// liveLeases lists the leases, and the services the daemon's config file
// names, for completion: quietly none when no daemon answers, and never
// by starting one.
func (c *cli) liveLeases(ctx context.Context) ([]*brokerpb.Lease, []*brokerpb.ConfiguredService) {
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	opts := []client.Option{client.WithDialTimeout(completionTimeout), client.WithAutoStart(false)}
	if addr := c.v.GetString("addr"); addr != "" {
		opts = append(opts, client.WithAddr(addr))
	}
	cl, err := client.New(ctx, opts...)
	if err != nil {
		return nil, nil
	}
	defer cl.Close()
	resp, err := cl.RPC().ListLeases(ctx, &brokerpb.ListLeasesRequest{})
	if err != nil {
		return nil, nil
	}
	st, err := cl.RPC().GetStatus(ctx, &brokerpb.GetStatusRequest{})
	if err != nil {
		return resp.GetLeases(), nil
	}
	return resp.GetLeases(), st.GetServices()
}

// completeLeases completes arguments from the live leases: their ids,
// names (and the configured services' names) or ports, as what says, each
// with a description, leaving out what is already on the command line. With many, it completes only the first
// argument unless many is set.
func (c *cli) completeLeases(what int, many bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 && !many {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		add := func(value, desc string) {
			if strings.HasPrefix(value, toComplete) && !slices.Contains(args, value) && !slices.ContainsFunc(out, func(c cobra.Completion) bool {
				return strings.HasPrefix(c, value+"\t")
			}) {
				out = append(out, cobra.CompletionWithDesc(value, desc))
			}
		}
		leases, services := c.liveLeases(cmd.Context())
		for _, l := range leases {
			owner := procName(l.GetOwnerPid(), l.GetOwnerName())
			if what&completeNames != 0 {
				add(l.GetName(), fmt.Sprintf("port %d, %s", l.GetPort(), owner))
			}
			if what&completeIDs != 0 {
				add(l.GetId(), fmt.Sprintf("%s/%s, port %d", l.GetNamespace(), l.GetName(), l.GetPort()))
			}
			if what&completePorts != 0 {
				add(strconv.Itoa(int(l.GetPort())), fmt.Sprintf("%s/%s, %s", l.GetNamespace(), l.GetName(), owner))
			}
		}
		if what&completeNames != 0 {
			for _, svc := range services {
				add(svc.GetName(), fmt.Sprintf("configured service, port %d", svc.GetPort()))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
