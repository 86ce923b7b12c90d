package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/internal/project"
)

func (c *cli) portCmd() *cobra.Command {
	var namespace string
	cmd := &cobra.Command{
		Use:   "port NAME",
		Short: "Print the port leased to NAME",
		Long: `Print the port of the lease called NAME, in --namespace: by default the
project's namespace inside a project (a directory with a Procfile or
portbroker.yaml, or below one), else "default". Exits 1 when NAME has no
lease.`,
		Example: `  curl http://localhost:$(brokerctl port backend)/health
  brokerctl port web --namespace ci`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&namespace, "namespace", "default", "namespace of NAME (default: the project's inside a project)")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		ns := c.defaultNamespace(cmd, "namespace", namespace)
		if ns == "" {
			ns = "default"
		}
		return c.call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			port, err := leasePort(ctx, cl, ns, args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.stdout, port)
			return err
		})
	})
	return cmd
}

// leasePort is the port of the lease called name in namespace ns.
func leasePort(ctx context.Context, cl *client.Client, ns, name string) (uint32, error) {
	leases, err := cl.List(ctx, ns)
	if err != nil {
		return 0, err
	}
	for _, l := range leases {
		if l.Name == name {
			return uint32(l.Port), nil
		}
	}
	return 0, fmt.Errorf("no lease called %q in namespace %q: %w", name, ns, client.ErrNotFound)
}

// projectNamespace is the namespace of the project around the current
// directory, if there is one that loads.
func (c *cli) projectNamespace() (string, bool) {
	found, err := project.Find(".")
	if err != nil {
		return "", false
	}
	p, err := project.Load(found.Path)
	if err != nil {
		fmt.Fprintf(c.stderr, "brokerctl: not using the project's namespace: %v\n", err)
		return "", false
	}
	return p.Namespace(""), true
}

// defaultNamespace is the namespace a command works in: its flag when
// given, else, inside a project, the project's namespace, else the
// flag's default. A project file that does not load is reported and
// passed over.
func (c *cli) defaultNamespace(cmd *cobra.Command, flag, value string) string {
	if cmd.Flags().Changed(flag) {
		return value
	}
	if ns, ok := c.projectNamespace(); ok {
		return ns
	}
	return value
}
