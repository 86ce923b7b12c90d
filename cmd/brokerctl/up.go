package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portbroker/portbroker/internal/project"
)

// upOptions are brokerctl up's flags.
type upOptions struct {
	file, project      string
	dynamic, keepGoing bool
	ports              []string
}

func (c *cli) upCmd() *cobra.Command {
	var opts upOptions
	cmd := &cobra.Command{
		Use:   "up [SERVICE...]",
		Short: "Run a dev stack from a Procfile or a project portbroker.yaml",
		Long: `Run the services of a Procfile ("name: command", through the shell) or of a
project portbroker.yaml, found in the current directory or the nearest parent
(portbroker.yaml wins when both are there, and up says so). With SERVICE
arguments, only those and the services they need (after, {port:NAME}).

Every port is leased before anything starts, in the project's namespace:
name: in the file, else -p, else the directory's name, followed by a hash
of the checkout's path, so two checkouts never collide. A service gets PORT (and
PORTBROKER_PORT), PORT_<NAME> for every service of the stack, and {port} and
{port:NAME} replaced in its command and env values. Ports are sticky per
project and service: the next up gets the same ones when they are free.

Each service runs in its own process group (a job object on Windows), its
output prefixed with its name. up says when a service is ready (its port
accepts, or its ready: check passes) and starts the services that wait for
it (after:). Ctrl-C or SIGTERM stops every service, gracefully and then by
force after its grace, releases the leases and exits 0. When a service
exits, up stops the others and exits 1; with --keep-going the others run
on, and up exits 1 at the end if any service failed.
up is the launcher of every lease, so if up itself is killed the broker
stops the whole stack.`,
		Example: `  brokerctl up
  brokerctl up backend --port backend=8001
  brokerctl up --dynamic -p review-123
  brokerctl up -f deploy/Procfile`,
	}
	f := cmd.Flags()
	f.StringVarP(&opts.file, "file", "f", "", "the Procfile or portbroker.yaml (default: found here or in a parent directory)")
	f.StringVarP(&opts.project, "project", "p", "", "project name where the file sets no name: (the lease namespace is the name and a hash of the checkout's path)")
	f.BoolVar(&opts.dynamic, "dynamic", false, "ask for no preferred port: each service gets its last port in this project, else any")
	f.StringArrayVar(&opts.ports, "port", nil, "NAME=N: prefer port N for service NAME (repeatable)")
	f.BoolVar(&opts.keepGoing, "keep-going", false, "when a service exits, keep the others running")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if opts.project != "" {
			if err := project.CheckName(opts.project); err != nil {
				return usageErrorf("-p: %v", err)
			}
		}
		overrides, err := parsePortOverrides(opts.ports)
		if err != nil {
			return err
		}
		p, err := c.loadProject(opts.file)
		if err != nil {
			return err
		}
		services, err := p.Select(args)
		if err != nil {
			return usageErrorf("%v", err)
		}
		for name := range overrides {
			if p.Service(name) == nil {
				return usageErrorf("--port %s=...: no service %q in %s", name, name, p.File)
			}
		}
		for _, s := range services {
			if st, err := os.Stat(s.Cwd); err != nil || !st.IsDir() {
				return fmt.Errorf("%s: service %s: cwd %s is not a directory", p.File, s.Name, s.Cwd)
			}
		}
		if err := p.ConflictingName(opts.project); err != nil {
			return usageErrorf("%v", err)
		}
		st := newStack(c, p, services, p.Namespace(opts.project), opts, overrides)
		return st.run(cmd.Context())
	})
	return cmd
}

// loadProject reads file, else the project file found from the current
// directory, saying which one when a directory has both.
func (c *cli) loadProject(file string) (*project.Project, error) {
	if file == "" {
		found, err := project.Find(".")
		if err != nil {
			return nil, err
		}
		if found.Ignored != "" {
			fmt.Fprintf(c.stderr, "brokerctl: using %s; %s is ignored\n", found.Path, found.Ignored)
		}
		file = found.Path
	}
	return project.Load(file)
}

// parsePortOverrides reads --port NAME=N values.
func parsePortOverrides(values []string) (map[string]int, error) {
	out := map[string]int{}
	for _, v := range values {
		name, num, ok := strings.Cut(v, "=")
		port, err := strconv.Atoi(num)
		switch {
		case !ok || name == "":
			return nil, usageErrorf("--port: want NAME=PORT such as backend=8001, not %q", v)
		case err != nil || port < 1 || port > math.MaxUint16:
			return nil, usageErrorf("--port %s: the port must be from 1 to 65535, not %q", name, num)
		}
		if _, dup := out[name]; dup {
			return nil, usageErrorf("--port: %s given twice", name)
		}
		out[name] = port
	}
	return out, nil
}
