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
	"net/netip"
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

// connectionSetup bounds a connection's handshake (TLS on TCP).
const connectionSetup = 5 * time.Second

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
	// addrPath is the service's address record, removed on Close.
	addrPath string
	mark     *commitMark
	// warnings are what the daemon found wrong at start and keeps saying.
	warnings []string
}

// callerOf turns the transport's identity into the core's caller. A TCP
// caller the OS could not name passed the token, so the core treats it as
// the daemon's own user, who alone can read the token; without a PID it
// may not ask for kills.
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
	// A host that reads the OS connection table names loopback TCP callers
	// where the transport cannot (Windows).
	if o, ok := host.(interface {
		ConnOwner(local, remote netip.AddrPort) (int, bool, error)
	}); ok {
		ipc.SetConnOwner(o.ConnOwner)
	}
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
	if err := d.openStore(cfg, host, log); err != nil {
		return nil, err
	}
	// Everything that can fail comes before broker.Open: it may begin
	// stopping orphans, and a daemon that then failed to start would have
	// stopped them for nothing. Holding the address first also means no
	// stop begins while another daemon answers there.
	var lopts []ipc.ListenOption
	if cfg.SocketGroup != "" {
		lopts = append(lopts, ipc.WithGroupName(cfg.SocketGroup))
	}
	// A socket a service manager handed over is served instead of binding.
	if d.ln, d.cfg.Addr, err = ipc.Activated(); err != nil {
		return nil, err
	}
	if d.ln == nil {
		d.cfg.Addr = cfg.Addr
		if d.ln, err = ipc.ListenWith(cfg.Addr, lopts...); err != nil {
			if errors.Is(err, ipc.ErrAddrInUse) {
				return nil, fmt.Errorf("%w: %v", ErrAlreadyRunning, err)
			}
			return nil, err
		}
	}
	if tcp, ok := d.ln.Addr().(*net.TCPAddr); ok {
		// Report the port the OS picked for tcp://127.0.0.1:0.
		d.cfg.Addr = "tcp://" + tcp.String()
	}
	d.ln = ipc.LimitConns(d.ln, ipc.DefaultConnsPerUser, log)
	d.pidPath = filepath.Join(cfg.StateDir, PIDFile)
	if err := writePIDFile(d.pidPath, d.cfg.Addr); err != nil {
		return nil, err
	}
	user, admin, err := currentUser()
	if err != nil {
		return nil, fmt.Errorf("identify the daemon's user: %w", err)
	}
	creds := []ipc.CredentialsOption{ipc.WithLogger(log)}
	// Loopback TCP reaches every local user and whoever binds the port
	// while the daemon is down: the daemon proves itself with a new
	// certificate clients pin, and callers need a new token only the
	// daemon's user can read; sockets and pipes identify their peers.
	var token, tokenPath string
	network, _, _ := ipc.ParseAddr(cfg.Addr)
	switch {
	case network == ipc.NetworkTCP && cfg.Service:
		// The service serves every user its pipe admits; the token's
		// DACL, granted to exactly them, is the gate.
		if token, tokenPath, err = ipc.RotateServiceToken(cfg.StateDir); err != nil {
			return nil, err
		}
		cert, _, err := ipc.NewServiceCert(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		if d.addrPath, err = ipc.WriteServiceAddr(cfg.StateDir, d.cfg.Addr); err != nil {
			return nil, err
		}
		creds = append(creds, ipc.WithTLS(cert))
	case network == ipc.NetworkTCP:
		if token, tokenPath, err = ipc.RotateToken(cfg.StateDir); err != nil {
			return nil, err
		}
		cert, _, err := ipc.NewDaemonCert(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		creds = append(creds, ipc.WithTLS(cert), ipc.WithAllowedUsers(func(id ipc.Identity) bool {
			return id.UID == user || id.Admin
		}))
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
	// Strings from the OS reach leases, the store and replies only as
	// valid UTF-8 (see validText).
	deps := broker.Deps{Store: d.store, Processes: validProcesses{host}, Prober: host, Watcher: watcher}
	// Platforms that can find and stop processes say so by implementing
	// these; without them InspectPort names no holders and kills are refused.
	if i, ok := host.(broker.ProcessInspector); ok {
		deps.Inspector = validInspector{i}
	}
	if h, ok := host.(broker.PortHolders); ok {
		deps.Holders = validHolders{h}
	}
	deps.Killer, _ = host.(broker.Killer)
	d.broker, err = broker.Open(ctx, broker.Config{
		Pool:     broker.PoolConfig{Range: cfg.Range, Ephemeral: eph, Reserved: reserved, Exclude: cfg.Exclude},
		Services: cfg.Services,
		Logger:   log,
		Orphans:  cfg.Orphans,
		Grace:    cfg.Grace,
		Limits:   cfg.Limits,
		// A socket group makes the daemon shared: each user gets a share
		// of the pool and names another user holds are refused naming them.
		Shared: broker.SharedPolicy{Enabled: cfg.SocketGroup != ""},
		Kill:   broker.KillPolicy{SelfPID: os.Getpid(), User: user, Admin: admin, Protected: cfg.Protected},
	}, deps)
	if err != nil {
		watcher.Close()
		return nil, err
	}
	d.srv = rpcserver.New(d.broker, rpcserver.Info{Version: cfg.Version, StatePath: d.store.Path(), StartedAt: started, ConfigFile: cfg.ConfigFile, Services: cfg.Services, Warnings: d.warnings}, callerOf)
	d.srv.SetPIDTranslator(func(ctx context.Context, pid int) (int, error) {
		id, _ := ipc.IdentityFrom(ctx)
		return ipc.TranslatePID(id, pid)
	})
	if fw, ok := host.(rpcserver.Firewall); ok {
		d.fw = fw
		d.srv.SetFirewall(fw)
	}
	tokUnary, tokStream := ipc.TokenInterceptors(token, tokenPath)
	d.gs = grpc.NewServer(
		grpc.Creds(ipc.ServerCredentials(creds...)),
		// A connection that does not finish its handshake soon holds a
		// per-user slot and a descriptor for nothing.
		grpc.ConnectionTimeout(connectionSetup),
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

// Warnings are what the daemon found wrong at start (a store rolled back),
// logged then and kept for as long as it runs.
func (d *Daemon) Warnings() []string { return d.warnings }

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
	if d.addrPath != "" {
		os.Remove(d.addrPath)
	}
	if d.broker != nil {
		d.broker.Close()
	}
	if d.store != nil {
		d.store.Close()
	}
	if d.mark != nil {
		d.mark.Close()
	}
}

// prepareStateDir creates the state dir private to the user and refuses
// one that another user owns or that others may write, since whoever
// writes the store decides which processes the daemon kills.
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
	if err := checkOwner("state dir", dir, fi); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("state dir %s is writable by group or others (mode %v): run chmod 700 on it", dir, fi.Mode().Perm())
	}
	return nil
}

// openStore opens the store after checking who owns it, and warns when it
// opens older than the daemon last saw it (see CommitMarkFile).
func (d *Daemon) openStore(cfg Config, host Host, log *slog.Logger) error {
	path := filepath.Join(cfg.StateDir, StoreFile)
	if fi, err := os.Lstat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("store %s is not a regular file (%v): remove it or move it aside", path, fi.Mode().Type())
		}
		if err := checkOwner("store", path, fi); err != nil {
			return err
		}
	}
	markPath := filepath.Join(cfg.StateDir, CommitMarkFile)
	warning, err := checkCommitMark(path, markPath, log)
	if err != nil {
		return err
	}
	if d.mark, err = openCommitMark(markPath, log); err != nil {
		return err
	}
	store, err := openBolt(cfg, host, path, log, boltstore.WithSyncHook(d.mark.record))
	if err != nil {
		return err
	}
	if warning != "" {
		d.warnings = append(d.warnings, warning)
	}
	d.store = store
	// The mark starts from the store as it is now, made durable first so
	// that the mark cannot lead it after a power loss.
	if err := store.Sync(); err != nil {
		return err
	}
	return nil
}

func openBolt(cfg Config, host Host, path string, log *slog.Logger, opts ...boltstore.Option) (*boltstore.Store, error) {
	// The boot id lets the store void the leases of an earlier boot at
	// once, and rebuild a file torn by the power loss that ended it.
	if bs, ok := host.(broker.BootSource); ok {
		id, err := bs.BootID()
		if err != nil {
			log.Warn("boot id unknown; leases of an earlier boot are checked owner by owner", "err", err)
		}
		opts = append(opts, boltstore.WithBootID(id))
	}
	store, err := boltstore.Open(path, opts...)
	switch {
	case err == nil:
		if rep := store.Boot(); rep.TornAside != "" {
			log.Warn("state file torn when the last boot ended; moved aside and rebuilt with the last ports it still held",
				"file", path, "kept_as", rep.TornAside, "last_ports", rep.LastPorts, "err", rep.Torn)
		} else if rep.Rebooted {
			log.Info("state file from an earlier boot; its leases are void", "voided", rep.Voided, "last_ports", rep.LastPorts)
		}
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
		return boltstore.Open(path, opts...)
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
