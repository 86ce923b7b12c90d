package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/portbroker/portbroker/client"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// run executes brokerctl with args and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, now: time.Now}
	return c.run(ctx, args)
}

// cli holds what every command shares.
type cli struct {
	stdout, stderr io.Writer
	now            func() time.Time
	// v resolves the global settings: flag, then PORTBROKER_* env, then
	// default.
	v *viper.Viper
}

func (c *cli) run(ctx context.Context, args []string) int {
	root := c.rootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ec *exitCode
	if errors.As(err, &ec) {
		return ec.code
	}
	var f *failure
	if errors.As(err, &f) {
		// One plain line, for people and for scripts that capture it.
		fmt.Fprintf(c.stderr, "brokerctl: %s\n", printable(strings.Join(strings.Fields(f.Error()), " ")))
		return exitFailure
	}
	msg := strings.TrimRight(err.Error(), "\n")
	if cmd.Name() == "run" && strings.HasPrefix(msg, "unknown") && strings.Contains(msg, "flag") && !slices.Contains(args, "--") {
		// The command's own flags were read as brokerctl's.
		msg += "; put -- before the command: brokerctl run NAME [flags] -- CMD [ARGS...]"
	}
	fmt.Fprintf(c.stderr, "brokerctl: %s\nRun '%s --help' for usage.\n", msg, cmd.CommandPath())
	return exitUsage
}

// argsNamed checks a command's positional arguments against their names
// (as the usage line spells them), so that errors name what is missing,
// extra or empty.
func argsNamed(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return fmt.Errorf("missing %s: usage: %s", strings.Join(names[len(args):], " "), cmd.UseLine())
		}
		if len(args) > len(names) {
			return fmt.Errorf("too many arguments: %s takes %s, got %d (%s)", cmd.CommandPath(), strings.Join(names, " "), len(args), strings.Join(args, " "))
		}
		return nonEmpty(names[0], args)
	}
}

// argsAtLeastOne is argsNamed for a command taking one or more of name.
func argsAtLeastOne(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return fmt.Errorf("missing %s: usage: %s", name, cmd.UseLine())
		}
		return nonEmpty(name, args)
	}
}

func nonEmpty(name string, args []string) error {
	for _, a := range args {
		if strings.TrimSpace(a) == "" {
			return fmt.Errorf("%s: must not be empty", name)
		}
	}
	return nil
}

// flagOfField names the flag or argument a request field came from, so
// that the daemon's refusal of a value reads as a usage error about what
// the user typed.
var flagOfField = map[string]string{
	"name":         "NAME",
	"namespace":    "--namespace",
	"port":         "--port",
	"ttl":          "--ttl",
	"owner_pid":    "--pid",
	"launcher_pid": "--launcher-pid",
	"grace":        "--grace",
	"protocol":     "--udp/--tcp-udp",
}

func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "brokerctl",
		Short: "Inspect and drive portbrokerd, the local port broker",
		Long: `brokerctl inspects and drives portbrokerd, which leases TCP/UDP ports to
local services and reclaims them when their owners die.`,
		// Errors are printed once, by run; usage only for usage errors.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return err })

	flags := root.PersistentFlags()
	flags.String("addr", "", "daemon address: unix:///path.sock, tcp://127.0.0.1:PORT or npipe:////./pipe/NAME (env PORTBROKER_ADDR; default: the per-user address)")
	flags.Duration("timeout", 10*time.Second, "how long to wait for the daemon (env PORTBROKER_TIMEOUT)")
	flags.Bool("no-autostart", false, "do not start portbrokerd when none answers at the default address (env PORTBROKER_NO_AUTOSTART=1)")
	c.v = viper.New()
	c.v.SetEnvPrefix("PORTBROKER")
	for _, name := range []string{"addr", "timeout", "no-autostart"} {
		// None can fail: the flags exist and the keys are non-empty.
		_ = c.v.BindPFlag(name, flags.Lookup(name))
		_ = c.v.BindEnv(name, "PORTBROKER_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
	}

	root.AddCommand(
		c.leasesCmd(),
		c.acquireCmd(),
		c.releaseCmd(),
		c.statusCmd(),
		c.versionCmd(),
		c.whoCmd(),
		c.reclaimCmd(),
		c.doctorCmd(),
		c.runCmd(),
		c.upCmd(),
		c.portCmd(),
		c.firewallCmd(),
	)
	return root
}

// failure is an error found while running a command, as opposed to a
// usage error; it exits 1.
type failure struct{ err error }

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// exitCode ends brokerctl with code and no message of its own: the
// command has said what there was to say, or the code is a child's.
type exitCode struct{ code int }

func (e *exitCode) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError is a bad flag value or argument that only the command can
// tell; it exits 2 like cobra's own usage errors.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// runE marks the errors of a command's body as failures, unless they are
// usage errors. Errors cobra returns itself (unknown command or flag,
// wrong argument count) stay unmarked and so exit 2.
func runE(body func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := body(cmd, args)
		if u, ec := (*usageError)(nil), (*exitCode)(nil); err == nil || errors.As(err, &u) || errors.As(err, &ec) {
			return err
		}
		// A value the daemon refused is bad input, as a flag brokerctl
		// refuses itself is: exit 2, naming the flag.
		if iae := (*client.InvalidArgumentError)(nil); errors.As(err, &iae) && iae.Field != "" {
			name, ok := flagOfField[iae.Field]
			if !ok {
				name = iae.Field
			}
			return usageErrorf("%s: %s", name, iae.Rule)
		}
		return &failure{err: err}
	}
}

func (c *cli) timeout() (time.Duration, error) {
	d := c.v.GetDuration("timeout")
	if d <= 0 {
		return 0, usageErrorf("--timeout (or PORTBROKER_TIMEOUT) must be a positive duration such as 10s, not %q", c.v.GetString("timeout"))
	}
	return d, nil
}

// connect dials the daemon, waiting at most the --timeout, and starts it
// when none answers at the default address unless told not to.
func (c *cli) connect(ctx context.Context) (*client.Client, error) {
	timeout, err := c.timeout()
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithDialTimeout(timeout), client.WithAutoStart(!c.v.GetBool("no-autostart"))}
	if addr := c.v.GetString("addr"); addr != "" {
		opts = append(opts, client.WithAddr(addr))
	}
	cl, err := client.New(ctx, opts...)
	var iae *client.InvalidArgumentError
	if errors.As(err, &iae) && iae.Field == "addr" {
		return nil, usageErrorf("--addr: %s", iae.Rule)
	}
	return cl, err
}

// call runs fn with a connected client under the --timeout.
func (c *cli) call(ctx context.Context, fn func(ctx context.Context, cl *client.Client) error) error {
	timeout, err := c.timeout()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(ctx, cl)
}

// callStopping is call for commands that stop processes, which take a
// grace period or more: --timeout bounds the connection, and the daemon
// bounds each call itself.
func (c *cli) callStopping(ctx context.Context, fn func(ctx context.Context, cl *client.Client) error) error {
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
	return fn(ctx, cl)
}

// outputFlag is an -o value restricted to a few formats, so that a wrong
// one is a flag error (exit 2) with the choices in its message.
type outputFlag struct {
	value   string
	choices []string
}

func newOutputFlag(cmd *cobra.Command, choices ...string) *outputFlag {
	o := &outputFlag{value: choices[0], choices: choices}
	cmd.Flags().VarP(o, "output", "o", "output format: "+strings.Join(choices, "|"))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(choices, cobra.ShellCompDirectiveNoFileComp))
	return o
}

func (o *outputFlag) String() string { return o.value }
func (o *outputFlag) Type() string   { return "format" }

func (o *outputFlag) Set(s string) error {
	if !slices.Contains(o.choices, s) {
		return fmt.Errorf("must be one of %s", strings.Join(o.choices, ", "))
	}
	o.value = s
	return nil
}

// printJSON prints m as protobuf JSON with proto field names, the shape
// grpcurl shows: indented, or on one line for streams.
func printJSON(w io.Writer, m proto.Message, oneLine bool) error {
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	// protojson varies its spacing on purpose; normalise it so the output
	// is the same from run to run, for people and for diff.
	var buf bytes.Buffer
	if oneLine {
		err = json.Compact(&buf, raw)
	} else {
		err = json.Indent(&buf, raw, "", "  ")
	}
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}
