package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/portbroker/portbroker/client"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// defaultDoctorPort is what doctor checks when nothing is configured: the
// port dev servers reach for first.
const defaultDoctorPort = 8000

// Re-checks after --fix: the OS may release a port a moment after its
// holder exits.
const (
	fixChecks   = 10
	fixInterval = 200 * time.Millisecond
)

func (c *cli) doctorCmd() *cobra.Command {
	var (
		fix        bool
		configFile string
		namespace  string
	)
	cmd := &cobra.Command{
		Use:   "doctor [PORT|NAME...]",
		Short: "Explain why ports are not usable, and with --fix free them",
		Long: `Check ports a dev stack needs: for each, whether it is leased and to whom,
who holds it (pid, name, command line, parent, orphan or not), whether it
binds now and if not why (in use, excluded range, exclusive use, permission)
with the fix, and where it sits against the OS ephemeral range; on Windows
also whether a broker firewall rule exists.

With no arguments it checks the ports of the services in portbroker.yaml
(--config, else $PORTBROKER_CONFIG, else portbroker.yaml in the user config
dir), else 8000. A NAME is a lease name, else a configured service.

--fix stops holders that are orphans of your own (their parent is gone, so
nobody else will), gracefully then by force, and checks again. It never
stops a process whose parent still runs. Exits 0 only when every port is
usable.`,
		Example: `  brokerctl doctor
  brokerctl doctor 8000 frontend --fix`,
		ValidArgsFunction: c.completeLeases(completeNames|completePorts, true),
	}
	out := newOutputFlag(cmd, "text", "json")
	f := cmd.Flags()
	f.BoolVar(&fix, "fix", false, "stop orphaned holders you own, then check again")
	f.StringVar(&configFile, "config", "", "portbroker.yaml to read services from (env PORTBROKER_CONFIG)")
	f.StringVar(&namespace, "namespace", "default", "namespace in which to look up lease names")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		services, err := loadServices(configFile)
		if err != nil {
			return err
		}
		call := c.call
		if fix {
			call = c.callStopping
		}
		return call(cmd.Context(), func(ctx context.Context, cl *client.Client) error {
			targets, err := resolveTargets(ctx, cl, args, services, namespace)
			if err != nil {
				return err
			}
			d := &doctor{cli: c, cl: cl, fix: fix, quiet: out.value == "json", user: currentUser()}
			var reports []*portReport
			for _, t := range targets {
				r, err := d.check(ctx, t)
				if err != nil {
					return err
				}
				reports = append(reports, r)
			}
			if out.value == "json" {
				if err := printDoctorJSON(c.stdout, reports); err != nil {
					return err
				}
			}
			var bad []string
			for _, r := range reports {
				if !r.Usable {
					bad = append(bad, strconv.Itoa(int(r.Port)))
				}
			}
			switch {
			case len(bad) == 1:
				return fmt.Errorf("port %s is not usable", bad[0])
			case len(bad) > 1:
				return fmt.Errorf("%d of %d ports are not usable: %s", len(bad), len(reports), strings.Join(bad, ", "))
			}
			return nil
		})
	})
	return cmd
}

// target is one port doctor checks, with the name it was asked by.
type target struct {
	port  uint32
	label string
}

// resolveTargets turns the arguments into ports: numbers as they are,
// names through their lease, else the config.
func resolveTargets(ctx context.Context, cl *client.Client, args []string, services map[string]uint32, namespace string) ([]target, error) {
	if len(args) == 0 {
		if len(services) == 0 {
			return []target{{port: defaultDoctorPort}}, nil
		}
		var ts []target
		for _, name := range slices.Sorted(maps.Keys(services)) {
			ts = append(ts, target{port: services[name], label: name})
		}
		return ts, nil
	}
	var leases []*brokerpb.Lease
	listed := false
	var ts []target
	for _, arg := range args {
		if port, err := strconv.ParseUint(arg, 10, 16); err == nil {
			if port == 0 {
				return nil, usageErrorf("PORT: must be from 1 to 65535, not 0")
			}
			ts = append(ts, target{port: uint32(port)})
			continue
		}
		if !listed {
			all, err := cl.ListProto(ctx, namespace)
			if err != nil {
				return nil, err
			}
			leases, listed = all, true
		}
		t := target{label: arg}
		for _, l := range leases {
			if l.GetName() == arg {
				t.port = l.GetPort()
			}
		}
		if t.port == 0 {
			t.port = services[strings.ToLower(arg)]
		}
		if t.port == 0 {
			return nil, fmt.Errorf("%q is neither a port, a lease in namespace %q, nor a service in portbroker.yaml", arg, namespace)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// loadServices reads the services' ports from portbroker.yaml, found the
// way portbrokerd finds it. A missing default file is no error.
func loadServices(file string) (map[string]uint32, error) {
	if file == "" {
		file = os.Getenv("PORTBROKER_CONFIG")
	}
	explicit := file != ""
	if !explicit {
		dir, err := os.UserConfigDir()
		if err != nil {
			return nil, nil
		}
		file = filepath.Join(dir, "portbroker", "portbroker.yaml")
	}
	v := viper.New()
	v.SetConfigFile(file)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	var raw map[string]struct{ Port int }
	if err := v.UnmarshalKey("services", &raw); err != nil {
		return nil, fmt.Errorf("config %s: services: %w", file, err)
	}
	services := make(map[string]uint32, len(raw))
	for name, s := range raw {
		if s.Port < 1 || s.Port > 65535 {
			return nil, fmt.Errorf("config %s: services.%s.port: must be from 1 to 65535, got %d", file, name, s.Port)
		}
		services[name] = uint32(s.Port)
	}
	return services, nil
}

// portReport is what doctor found for one port, and did about it.
type portReport struct {
	Port    uint32
	Label   string
	Usable  bool
	Verdict string
	Inspect *brokerpb.InspectPortResponse
	// Reclaim and After are set when --fix stopped holders.
	Reclaim *brokerpb.ReclaimPortResponse
	After   *brokerpb.InspectPortResponse
	// Firewall is set on Windows.
	Firewall []*brokerpb.FirewallRule
}

type doctor struct {
	*cli
	cl    *client.Client
	fix   bool
	quiet bool   // -o json: no text
	user  string // this user's uid or SID
}

func (d *doctor) check(ctx context.Context, t target) (*portReport, error) {
	r := &portReport{Port: t.port, Label: t.label}
	var err error
	if r.Inspect, err = d.inspect(ctx, t.port); err != nil {
		return nil, err
	}
	r.Usable, r.Verdict = verdict(r.Inspect)
	// Firewall rules matter on Windows, where the daemon manages them; a
	// daemon that does not is skipped without a word.
	firewall := false
	if runtime.GOOS == "windows" {
		rules, err := d.cl.RPC().ListFirewallRules(ctx, &brokerpb.ListFirewallRulesRequest{})
		if err != nil && !errors.Is(err, client.ErrUnimplemented) {
			return nil, err
		}
		firewall = err == nil
		for _, rule := range rules.GetRules() {
			if rule.GetPort() == t.port {
				r.Firewall = append(r.Firewall, rule)
			}
		}
	}
	// Text goes out as the checks go, so a slow --fix shows progress.
	if !d.quiet {
		if t.label != "" {
			fmt.Fprintf(d.stdout, "%s:\n", t.label)
		}
		d.describePort(d.stdout, r.Inspect)
		if firewall {
			d.describeFirewall(r)
		}
	}
	if !r.Usable && d.fix {
		if err := d.fixPort(ctx, r); err != nil {
			return nil, err
		}
	}
	if !d.quiet {
		mark := "ok"
		if !r.Usable {
			mark = "NOT USABLE"
		}
		fmt.Fprintf(d.stdout, "  => %s: %s\n\n", mark, r.Verdict)
	}
	return r, nil
}

func (d *doctor) inspect(ctx context.Context, port uint32) (*brokerpb.InspectPortResponse, error) {
	return d.cl.RPC().InspectPort(ctx, &brokerpb.InspectPortRequest{Port: port, Protocol: brokerpb.Protocol_PROTOCOL_TCP})
}

func (d *doctor) describeFirewall(r *portReport) {
	if len(r.Firewall) == 0 {
		fmt.Fprintf(d.stdout, "  %-10s no portbroker rule for port %d: other machines reach it only if another rule allows it\n", "firewall:", r.Port)
		return
	}
	for _, rule := range r.Firewall {
		fmt.Fprintf(d.stdout, "  %-10s rule %q allows inbound %s/%d\n", "firewall:", rule.GetName(), protocolName(rule.GetProtocol()), rule.GetPort())
	}
}

// verdict says whether a port is usable: it binds now, or the lease's own
// owner (or a child of it) is serving on it.
func verdict(r *brokerpb.InspectPortResponse) (bool, string) {
	port := r.GetPort()
	l := r.GetLease()
	if r.GetBind() == brokerpb.BindResult_BIND_RESULT_FREE {
		if l != nil {
			return true, fmt.Sprintf("port %d is free to bind; it is leased to %s/%s (%s)", port, l.GetNamespace(), l.GetName(), procName(l.GetOwnerPid(), l.GetOwnerName()))
		}
		return true, fmt.Sprintf("port %d is free", port)
	}
	if l != nil && r.GetBind() == brokerpb.BindResult_BIND_RESULT_IN_USE {
		for _, h := range r.GetHolders() {
			if h.GetPid() == l.GetOwnerPid() || h.GetParentPid() == l.GetOwnerPid() {
				return true, fmt.Sprintf("port %d is served by %s, which leased it as %s/%s", port, procName(h.GetPid(), h.GetName()), l.GetNamespace(), l.GetName())
			}
		}
	}
	if hs := r.GetHolders(); len(hs) > 0 {
		return false, fmt.Sprintf("port %d is in use by %s", port, describeHolders(hs))
	}
	why := bindWords(r.GetBind())
	if d := r.GetBindDetail(); d != "" {
		why += ": " + d
	}
	return false, fmt.Sprintf("port %d does not bind: %s", port, why)
}

func describeHolders(hs []*brokerpb.Process) string {
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = procName(h.GetPid(), h.GetName())
	}
	return strings.Join(parts, ", ")
}

// fixPort stops the port's holders when every one is an orphan of this
// user, and says why not otherwise.
func (d *doctor) fixPort(ctx context.Context, r *portReport) error {
	port := r.Port
	hs := r.Inspect.GetHolders()
	if r.Inspect.GetBind() != brokerpb.BindResult_BIND_RESULT_IN_USE || len(hs) == 0 {
		d.note("--fix: nothing to stop; %s", orDash(r.Inspect.GetFix()))
		return nil
	}
	for _, h := range hs {
		var why string
		switch {
		case h.GetSystem():
			why = "a system process"
		case !h.GetOrphan():
			why = "not an orphan"
		case d.user == "" || h.GetUser() != d.user:
			why = "not yours (user " + userName(h.GetUser()) + ")"
		default:
			continue
		}
		r.Verdict = fmt.Sprintf("held by %s, which is %s; stop it yourself or run brokerctl reclaim %d --kill", procName(h.GetPid(), h.GetName()), why, port)
		return nil
	}
	resp, err := d.cl.RPC().ReclaimPort(ctx, &brokerpb.ReclaimPortRequest{Port: port, Protocol: brokerpb.Protocol_PROTOCOL_TCP, Kill: true})
	if err != nil {
		return fmt.Errorf("reclaim port %d: %w", port, err)
	}
	r.Reclaim = resp
	if !d.quiet {
		for _, s := range resp.GetStopped() {
			p := s.GetProcess()
			d.note("--fix: %s %s", procName(p.GetPid(), p.GetName()), stopWords(s.GetMethod()))
		}
	}
	for i := range fixChecks {
		if r.After, err = d.inspect(ctx, port); err != nil {
			return err
		}
		if r.Usable, r.Verdict = verdict(r.After); r.Usable || i == fixChecks-1 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(fixInterval):
		}
	}
	if !r.Usable && resp.GetDetail() != "" {
		r.Verdict += " (" + resp.GetDetail() + ")"
	}
	return nil
}

func (d *doctor) note(format string, args ...any) {
	if !d.quiet {
		fmt.Fprintf(d.stdout, "  "+format+"\n", args...)
	}
}

// printDoctorJSON prints the reports as {"ports":[...]}, each message in
// protobuf JSON with proto field names.
func printDoctorJSON(w io.Writer, reports []*portReport) error {
	type portJSON struct {
		Port     uint32            `json:"port"`
		Name     string            `json:"name,omitempty"`
		Usable   bool              `json:"usable"`
		Verdict  string            `json:"verdict"`
		Inspect  json.RawMessage   `json:"inspect"`
		Reclaim  json.RawMessage   `json:"reclaim,omitempty"`
		After    json.RawMessage   `json:"after,omitempty"`
		Firewall []json.RawMessage `json:"firewall_rules,omitempty"`
	}
	var out struct {
		Ports []portJSON `json:"ports"`
	}
	for _, r := range reports {
		p := portJSON{Port: r.Port, Name: r.Label, Usable: r.Usable, Verdict: r.Verdict}
		var err error
		if p.Inspect, err = rawProto(r.Inspect); err != nil {
			return err
		}
		if r.Reclaim != nil {
			if p.Reclaim, err = rawProto(r.Reclaim); err != nil {
				return err
			}
		}
		if r.After != nil {
			if p.After, err = rawProto(r.After); err != nil {
				return err
			}
		}
		for _, rule := range r.Firewall {
			raw, err := rawProto(rule)
			if err != nil {
				return err
			}
			p.Firewall = append(p.Firewall, raw)
		}
		out.Ports = append(out.Ports, p)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode doctor report: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func rawProto(m proto.Message) (json.RawMessage, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return b, nil
}
