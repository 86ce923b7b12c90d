// Command portbrokerd is the per-host port broker daemon.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/portbroker/portbroker/broker"
	"github.com/portbroker/portbroker/internal/daemon"
	"github.com/portbroker/portbroker/internal/version"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

func main() {
	tuneRuntime()
	// Under the Windows service manager the service runs the daemon instead.
	if code, ok := runAsService(run); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	v := viper.New()
	cmd := newRootCmd(v, stderr)
	cmd.SetArgs(args)
	// --version and --help answer on stdout, where scripts read them;
	// everything else the daemon says is logged to stderr.
	cmd.SetOut(os.Stdout)
	cmd.SetErr(stderr)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "portbrokerd: %v\n", err)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return 2
	case errors.Is(err, daemon.ErrAlreadyRunning):
		return exitAlreadyRunning
	}
	return 1
}

// exitAlreadyRunning is the exit status when another daemon already serves
// the address or state dir: not a failure to retry, so the systemd unit
// lists it in RestartPreventExitStatus.
const exitAlreadyRunning = 3

// serve runs the daemon and tells a service manager, when one asked
// (NOTIFY_SOCKET), that it is ready and, later, stopping.
func serve(ctx context.Context, cfg daemon.Config, log *slog.Logger) error {
	notify := func(state string) {
		if err := daemon.Notify(state); err != nil {
			log.Warn("cannot notify the service manager", "err", err)
		}
	}
	stopping := context.AfterFunc(ctx, func() { notify("STOPPING=1") })
	defer stopping()
	err := daemon.Run(ctx, cfg, newHost(), log, func(addr string) {
		serveOnOneP()
		notify(fmt.Sprintf("READY=1\nSTATUS=serving %s\nMAINPID=%d", addr, os.Getpid()))
	})
	if errors.Is(err, daemon.ErrAlreadyRunning) {
		err = fmt.Errorf("%w; not starting a second one (stop the running daemon first, or give this one its own --state-dir and --addr)", err)
	}
	return err
}

type usageError struct{ error }

// flagOfKey names the flag of each setting that has one.
var flagOfKey = map[string]string{
	"addr": "addr", "state_dir": "state-dir", "range": "range", "exclude": "exclude",
	"reclaim.poll_interval": "poll-interval", "reclaim.orphans": "orphans", "reclaim.grace": "grace",
	"log_level": "log-level", "log_format": "log-format", "recover": "recover", "socket_group": "socket-group",
}

func newRootCmd(v *viper.Viper, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "portbrokerd",
		Short: "Lease local ports to dev services and reclaim them when their owners die",
		Long: `portbrokerd leases ports to local services over gRPC, records each lease's
owner process, and reclaims the lease when the owner exits.

Settings come from flags, then PORTBROKER_* environment variables, then the
config file (--config, else portbroker.yaml in the user config dir).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Get().String(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := loadConfig(cmd, v, stderr)
			if err != nil {
				return usageError{err}
			}
			cfg.Version = version.Get().String()
			cfg.Service = isService(cmd.Context())
			return serve(cmd.Context(), cfg, log)
		},
	}
	cmd.SetVersionTemplate("portbrokerd {{.Version}}\n")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	f := cmd.Flags()
	f.String("addr", "", "address to serve: unix:///abs/path.sock, tcp://127.0.0.1:N or npipe:////./pipe/NAME (default: per-user socket)")
	f.String("state-dir", "", "directory of the lease store (default: per-user state dir)")
	f.String("config", "", "config file (default: portbroker.yaml in the user config dir)")
	f.String("range", "", "pool range such as 20000-32767 (default: 20000 up to the OS ephemeral start, at most 49151)")
	f.StringSlice("exclude", nil, "ports or ranges to keep out of the pool, such as 25000-25100,27017")
	f.String("poll-interval", "", "how often to poll owners where exits cannot be watched as events (default 1s)")
	f.String("orphans", "", "what to do with a service whose launcher died: kill (default) or keep")
	f.String("grace", "", "time between the graceful and the forced stop of a process (default 5s)")
	f.String("log-level", "info", "debug, info, warn or error")
	f.String("log-format", "text", "text or json")
	f.String("socket-group", "", "open the unix socket to this group (mode 0660) so its members may call")
	f.Bool("recover", false, "move an unreadable lease store aside (keeping it) and start empty")
	for key, name := range flagOfKey {
		_ = v.BindPFlag(key, f.Lookup(name))
	}
	cmd.AddCommand(newServiceCmd())
	return cmd
}

func loadConfig(cmd *cobra.Command, v *viper.Viper, stderr io.Writer) (daemon.Config, *slog.Logger, error) {
	v.SetEnvPrefix("PORTBROKER")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_", ".", "_"))
	v.AutomaticEnv()
	file, _ := cmd.Flags().GetString("config")
	if file == "" {
		file = os.Getenv("PORTBROKER_CONFIG")
	}
	explicit := file != ""
	if !explicit {
		if dir, err := os.UserConfigDir(); err == nil {
			file = filepath.Join(dir, "portbroker", "portbroker.yaml")
		}
	}
	var cf *configFile
	if file != "" {
		v.SetConfigFile(file)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			if explicit || !errors.Is(err, os.ErrNotExist) {
				return daemon.Config{}, nil, fmt.Errorf("config %s: %w", file, err)
			}
		} else {
			// The file is read again on its own: the main viper also holds
			// every bound flag, which are not the file's to name.
			if cf, err = readConfigFile(file); err != nil {
				return daemon.Config{}, nil, err
			}
			if err := cf.check(); err != nil {
				return daemon.Config{}, nil, err
			}
		}
	}
	log, err := newLogger(stderr, v.GetString("log_level"), v.GetString("log_format"))
	if err != nil {
		return daemon.Config{}, nil, err
	}
	var services map[string]daemon.ServiceSettings
	if err := v.UnmarshalKey("services", &services); err != nil {
		return daemon.Config{}, nil, fmt.Errorf("services: %w", err)
	}
	s := daemon.Settings{
		Addr:     v.GetString("addr"),
		StateDir: v.GetString("state_dir"),
		Range:    v.GetString("range"),
		Exclude:  v.GetStringSlice("exclude"),
		Services: services,
		Reclaim: daemon.ReclaimSettings{
			Orphans:      v.GetString("reclaim.orphans"),
			Grace:        v.GetString("reclaim.grace"),
			PollInterval: v.GetString("reclaim.poll_interval"),
		},
		Limits: broker.Limits{
			Leases:        v.GetInt("limits.leases"),
			LeasesPerUser: v.GetInt("limits.leases_per_user"),
			Watchers:      v.GetInt("limits.watchers"),
			UserShare:     v.GetInt("limits.user_share"),
		},
		Recover:     v.GetBool("recover"),
		SocketGroup: v.GetString("socket_group"),
	}
	cfg, err := s.Resolve()
	if cf != nil {
		cfg.ConfigFile = cf.path
	}
	if err != nil {
		// Errors start with the setting; name the file's line when the
		// value came from there (not from a flag or the environment).
		key, _, _ := strings.Cut(err.Error(), ":")
		if where := cf.line(key); where != "" && !fromFlagOrEnv(cmd, key) {
			err = fmt.Errorf("config %s: %w", where, err)
		}
	}
	cfg.Protected = protectedNames
	return cfg, log, err
}

// fromFlagOrEnv reports whether key's value came from a flag or a
// PORTBROKER_* variable, which beat the file.
func fromFlagOrEnv(cmd *cobra.Command, key string) bool {
	if name, ok := flagOfKey[key]; ok && cmd.Flags().Changed(name) {
		return true
	}
	_, ok := os.LookupEnv("PORTBROKER_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key)))
	return ok
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log_level: %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log_format: %q: want text or json", format)
}
