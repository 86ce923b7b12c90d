// Package daemon runs portbrokerd: it opens the store, builds the broker on
// the host's facts, and serves it over the local transport until its
// context ends.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/portbroker/portbroker/broker"
	"github.com/portbroker/portbroker/broker/boltstore"
	"github.com/portbroker/portbroker/internal/ipc"
	"github.com/portbroker/portbroker/internal/rpcserver"
	"google.golang.org/grpc"
)

// Host is what the daemon needs from the platform package.
type Host interface {
	broker.ProcessTable
	broker.Prober
	EphemeralRange() (broker.PortRange, error)
	ReservedRanges() ([]broker.PortRange, error)
	NewExitWatcher(pollInterval time.Duration) (broker.ExitWatcher, error)
}

// Names of files in the state dir.
const (
	StoreFile = "leases.db"
	PIDFile   = "portbrokerd.pid"
)

// shutdownGrace bounds how long in-flight calls may take once a stop is asked.
const shutdownGrace = 10 * time.Second

// ErrAlreadyRunning matches a start refused because another daemon holds
// the state dir or the address.
var ErrAlreadyRunning = errors.New("another portbrokerd is running")

// Daemon is a started portbrokerd: store open, broker restored, socket
// listening. Serve runs it; Close releases what New took if Serve never ran.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	store   *boltstore.Store
	broker  *broker.Broker
	ln      net.Listener
	srv     *rpcserver.Server
	gs      *grpc.Server
	host    Host
	fw      rpcserver.Firewall
	pidPath string
}

// callerOf turns the transport's identity into the core's caller. A TCP
// caller that passed the token is unidentified: the core treats it as the
// daemon's own user, which is who can read the token.
func callerOf(ctx context.Context) broker.Caller {
	id, _ := ipc.IdentityFrom(ctx)
	return broker.Caller{PID: id.PID, User: id.UID, Admin: id.Admin}
}

// rangesRefresh is how often the OS port ranges are read again: Windows
// moves its excluded ranges (WinNAT, Hyper-V) while the daemon runs.
const rangesRefresh = time.Minute

// Run starts the daemon and serves until ctx ends, then stops cleanly.
// ready, if not nil, is called with the address once it accepts calls.
func Run(ctx context.Context, cfg Config, host Host, log *slog.Logger, ready func(addr string)) error {
	d, err := New(ctx, cfg, host, log)
	if err != nil {
		return err
	}
	return d.Serve(ctx, ready)
}

// New opens the store, restores the broker on the host's facts and
// listens. It fails, naming the other daemon, when one already serves the
// state dir or the address.
func New(ctx context.Context, cfg Config, host Host, log *slog.Logger) (_ *Daemon, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	if cfg.Addr == "" {
		if cfg.Addr, err = ipc.DefaultAddr(); err != nil {
			return nil, fmt.Errorf("default address: %w", err)
		}
	}
	if cfg.StateDir == "" {
		if cfg.StateDir, err = ipc.DefaultStateDir(); err != nil {
			return nil, fmt.Errorf("default state dir: %w", err)
		}
	}
	if err := prepareStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log, host: host}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.store, err = openStore(cfg, log); err != nil {
		return nil, err
	}
	eph, err := host.EphemeralRange()
	if err != nil {
		return nil, fmt.Errorf("read the OS ephemeral port range: %w", err)
	}
	reserved, err := host.ReservedRanges()
	if err != nil {
		return nil, fmt.Errorf("read the OS reserved port ranges: %w", err)
	}
	watcher, err := host.NewExitWatcher(cfg.PollInterval)
	if err != nil {
		return nil, fmt.Errorf("watch owner processes: %w", err)
	}
	user, admin, err := currentUser()
	if err != nil {
		watcher.Close()
		return nil, fmt.Errorf("identify the daemon's user: %w", err)
	}
	deps := broker.Deps{Store: d.store, Processes: host, Prober: host, Watcher: watcher}
	// Platforms that can find and stop processes say so by implementing
	// these; without them InspectPort names no holders and kills are refused.
	deps.Inspector, _ = host.(broker.ProcessInspector)
	deps.Holders, _ = host.(broker.PortHolders)
	deps.Killer, _ = host.(broker.Killer)
	d.broker, err = broker.Open(ctx, broker.Config{
		Pool:     broker.PoolConfig{Range: cfg.Range, Ephemeral: eph, Reserved: reserved, Exclude: cfg.Exclude},
		Services: cfg.Services,
		Logger:   log,
		Orphans:  cfg.Orphans,
		Grace:    cfg.Grace,
		Limits:   cfg.Limits,
		Kill:     broker.KillPolicy{SelfPID: os.Getpid(), User: user, Admin: admin, Protected: cfg.Protected},
	}, deps)
	if err != nil {
		watcher.Close()
		return nil, err
	}
	// Loopback TCP cannot tell who calls, so it needs a token only the
	// daemon's user can read; sockets and pipes identify their peers.
	var token, tokenPath string
	if network, _, _ := ipc.ParseAddr(cfg.Addr); network == ipc.NetworkTCP {
		if token, tokenPath, err = ipc.EnsureToken(cfg.StateDir); err != nil {
			return nil, err
		}
	}
	var lopts []ipc.ListenOption
	if cfg.SocketGroup != "" {
		lopts = append(lopts, ipc.WithGroupName(cfg.SocketGroup))
	}
	if d.ln, err = ipc.ListenWith(cfg.Addr, lopts...); err != nil {
		if errors.Is(err, ipc.ErrAddrInUse) {
			return nil, fmt.Errorf("%w: %v", ErrAlreadyRunning, err)
		}
		return nil, err
	}
	if tcp, ok := d.ln.Addr().(*net.TCPAddr); ok {
		// Report the port the OS picked for tcp://127.0.0.1:0.
		d.cfg.Addr = "tcp://" + tcp.String()
	}
	d.pidPath = filepath.Join(cfg.StateDir, PIDFile)
	if err := writePIDFile(d.pidPath, d.cfg.Addr); err != nil {
		return nil, err
	}
	d.srv = rpcserver.New(d.broker, rpcserver.Info{Version: cfg.Version, StatePath: d.store.Path(), StartedAt: started}, callerOf)
	if fw, ok := host.(rpcserver.Firewall); ok {
		d.fw = fw
		d.srv.SetFirewall(fw)
	}
	tokUnary, tokStream := ipc.TokenInterceptors(token, tokenPath)
	d.gs = grpc.NewServer(
		grpc.Creds(ipc.ServerCredentials(ipc.WithLogger(log))),
		// Reused stream workers keep their grown stacks; a goroutine per
		// call grows a new one each time (about a tenth of a call's CPU).
		grpc.NumStreamWorkers(uint32(4*runtime.NumCPU())),
		grpc.ChainUnaryInterceptor(tokUnary, rpcserver.UnaryDeadline),
		grpc.ChainStreamInterceptor(tokStream),
	)
	d.srv.Register(d.gs)

	st := d.broker.Status()
	log.Info("portbrokerd serving", "addr", d.cfg.Addr, "state", d.store.Path(), "pool", st.Pool.String(),
		"pool_size", st.PoolSize, "ephemeral", eph.String(), "reserved", broker.FormatRanges(reserved),
		"leases", st.Leases, "pid", os.Getpid(), "platform", runtime.GOOS+"/"+runtime.GOARCH)
	return d, nil
}

// Addr is the address the daemon listens on.
func (d *Daemon) Addr() string { return d.cfg.Addr }

// Broker is the daemon's broker, for tests that check its invariants.
func (d *Daemon) Broker() *broker.Broker { return d.broker }

// Serve answers calls until ctx ends, then stops accepting, lets in-flight
// calls finish (up to shutdownGrace) and closes everything.
func (d *Daemon) Serve(ctx context.Context, ready func(addr string)) error {
	defer d.Close()
	serveErr := make(chan error, 1)
	go func() { serveErr <- d.gs.Serve(d.ln) }()
	refreshCtx, stopRefresh := context.WithCancel(ctx)
	refreshed := make(chan struct{})
	go func() {
		defer close(refreshed)
		d.refreshRanges(refreshCtx)
	}()
	defer func() {
		stopRefresh()
		<-refreshed
	}()
	if d.fw != nil {
		stopRules, err := d.startRuleCleanup(ctx)
		if err != nil {
			return err
		}
		defer stopRules()
	}
	if ready != nil {
		ready(d.cfg.Addr)
	}
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve %s: %w", d.cfg.Addr, err)
	case <-ctx.Done():
	}
	d.log.Info("portbrokerd stopping")
	d.srv.Shutdown()
	stopped := make(chan struct{})
	go func() {
		d.gs.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(shutdownGrace):
		d.log.Warn("in-flight calls did not finish in time; stopping them", "grace", shutdownGrace)
		d.gs.Stop()
		<-stopped
	}
	<-serveErr
	d.log.Info("portbrokerd stopped")
	return nil
}

// refreshRanges keeps the pool clear of OS ranges that move.
func (d *Daemon) refreshRanges(ctx context.Context) {
	t := time.NewTicker(rangesRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		eph, err := d.host.EphemeralRange()
		if err != nil {
			d.log.Warn("read the OS ephemeral port range", "err", err)
			continue
		}
		reserved, err := d.host.ReservedRanges()
		if err != nil {
			d.log.Warn("read the OS reserved port ranges", "err", err)
			continue
		}
		if _, err := d.broker.SetHostRanges(eph, reserved); err != nil {
			d.log.Error("apply new OS port ranges; keeping the old pool", "err", err)
		}
	}
}

// Close releases the listener, broker and store. Serve calls it; call it
// yourself only when Serve will not run.
func (d *Daemon) Close() {
	if d.gs != nil {
		d.gs.Stop()
	}
	if d.ln != nil {
		d.ln.Close()
	}
	if d.pidPath != "" {
		os.Remove(d.pidPath)
	}
	if d.broker != nil {
		d.broker.Close()
	}
	if d.store != nil {
		d.store.Close()
	}
}

// prepareStateDir creates the state dir private to the user and refuses
// one that others may write, since whoever writes the store decides which
// processes the daemon kills.
func prepareStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("state dir %s is writable by group or others (mode %v): run chmod 700 on it", dir, fi.Mode().Perm())
	}
	return nil
}

func openStore(cfg Config, log *slog.Logger) (*boltstore.Store, error) {
	path := filepath.Join(cfg.StateDir, StoreFile)
	store, err := boltstore.Open(path)
	switch {
	case err == nil:
		return store, nil
	case errors.Is(err, boltstore.ErrLocked):
		if who := readPIDFile(filepath.Join(cfg.StateDir, PIDFile)); who != "" {
			return nil, fmt.Errorf("%w on state dir %s: %s", ErrAlreadyRunning, cfg.StateDir, who)
		}
		return nil, fmt.Errorf("%w: %v", ErrAlreadyRunning, err)
	case errors.Is(err, boltstore.ErrCorrupt) && cfg.Recover:
		aside, merr := boltstore.MoveAside(path)
		if merr != nil {
			return nil, fmt.Errorf("%v; and moving it aside failed: %w", err, merr)
		}
		log.Warn("state file unreadable; moved aside and starting empty", "file", path, "kept_as", aside, "err", err)
		return boltstore.Open(path)
	}
	return nil, err
}

type pidRecord struct {
	PID  int    `json:"pid"`
	Addr string `json:"addr"`
}

// writePIDFile records who serves this state dir, so a second daemon can
// name the first. The store's lock, not this file, is what excludes it.
func writePIDFile(path, addr string) error {
	data, _ := json.Marshal(pidRecord{PID: os.Getpid(), Addr: addr})
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func readPIDFile(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var rec pidRecord
	if json.Unmarshal(data, &rec) != nil || rec.PID == 0 {
		return ""
	}
	return fmt.Sprintf("portbrokerd pid %d serving %s", rec.PID, rec.Addr)
}
