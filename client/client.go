// Package client is the Go client of portbrokerd, the per-host port broker.
//
//	c, err := client.New(ctx)
//	if err != nil { ... }
//	defer c.Close()
//	lease, err := c.Acquire(ctx, "web", client.WithPort(8000))
//	// serve on lease.Port; lease.Release(ctx) when done, or just exit:
//	// the daemon reclaims the lease when its owner process dies.
//
// Errors are this package's own: match them with errors.Is against ErrNotFound,
// ErrPortHeld and the rest, and with errors.As for *PortHeldError and
// *InvalidArgumentError.
package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/portbroker/portbroker/internal/ipc"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// EnvAddr names the environment variable that overrides the default
// address when WithAddr is not given.
const EnvAddr = "PORTBROKER_ADDR"

// DefaultDialTimeout bounds New's wait for the daemon.
const DefaultDialTimeout = 5 * time.Second

// Client is a connection to portbrokerd. It is safe for concurrent use.
type Client struct {
	addr string
	conn *grpc.ClientConn
	rpc  brokerpb.BrokerServiceClient

	mu       sync.Mutex
	closed   bool
	renewing map[*Lease]struct{} // leases whose keepalive runs
}

// Option configures New.
type Option func(*options)

type options struct {
	addr        string
	dialTimeout time.Duration
	autoStart   bool
}

// WithAddr sets the daemon's address (unix:///path.sock, tcp://127.0.0.1:N,
// npipe:////./pipe/NAME). Without it, New uses $PORTBROKER_ADDR, else the
// per-user default address the daemon also uses; on Windows that falls
// back to the service's pipe, then to the TCP address the service
// recorded (ipc.ServiceTCPAddr), before auto-start.
func WithAddr(addr string) Option { return func(o *options) { o.addr = addr } }

// WithDialTimeout bounds how long New waits for the daemon to answer
// (DefaultDialTimeout when unset). ctx's deadline, if sooner, wins.
func WithDialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// WithAutoStart starts portbrokerd when no daemon answers at the per-user
// default address, then waits (up to AutoStartTimeout) until it reports
// healthy. It never starts one for another address: a daemon there is
// someone's deliberate setup. Off by default; brokerctl turns it on.
//
// The binary is $PORTBROKER_DAEMON when set, else portbrokerd next to the
// running executable, else portbrokerd on PATH. It runs detached (its own
// session on Unix, a detached process group on Windows) with the default
// state dir, logging to portbrokerd.log there. Clients racing to start it
// end up with one daemon: the daemon allows one instance per state dir and
// per address, and the losers exit while every client waits for health.
func WithAutoStart(on bool) Option { return func(o *options) { o.autoStart = on } }

// New connects to the daemon and returns once it answers. When none does,
// the error matches ErrUnavailable and says why (no socket, permission, ...).
func New(ctx context.Context, opts ...Option) (*Client, error) {
	o := options{dialTimeout: DefaultDialTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.dialTimeout <= 0 {
		return nil, &InvalidArgumentError{Field: "dial_timeout", Rule: "must be positive"}
	}
	addr, isDefault, err := resolveAddr(o.addr)
	if err != nil {
		return nil, err
	}
	c, err := dial(ctx, addr, o.dialTimeout)
	if err == nil || !isDefault || !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		return c, err
	}
	// As Dial falls back from the user's pipe to the Windows service's,
	// the default address falls back to the service's TCP address when
	// the service serves one (ipc.ServiceTCPAddr); the token and
	// certificate are then read from the service's state dir.
	if svcAddr := ipc.ServiceTCPAddr(); svcAddr != "" {
		sc, svcErr := dial(ctx, svcAddr, o.dialTimeout)
		if svcErr == nil {
			return sc, nil
		}
		err = fmt.Errorf("%w; %v", err, svcErr)
	}
	if !o.autoStart {
		return c, err
	}
	if err := startDaemon(ctx, addr); err != nil {
		return nil, err
	}
	return dial(ctx, addr, o.dialTimeout)
}

func dial(ctx context.Context, addr string, timeout time.Duration) (*Client, error) {
	target, dialOpts, err := ipc.DialOptions(addr)
	if err != nil {
		return nil, &InvalidArgumentError{Field: "addr", Rule: err.Error()}
	}
	c := &Client{addr: addr, renewing: make(map[*Lease]struct{})}
	dialOpts = append(dialOpts,
		grpc.WithChainUnaryInterceptor(c.unaryInterceptor),
		grpc.WithChainStreamInterceptor(c.streamInterceptor),
	)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("portbrokerd at %s: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := waitReady(ctx, conn); err != nil {
		conn.Close()
		return nil, c.unavailable(ctx, err)
	}
	c.conn = conn
	c.rpc = brokerpb.NewBrokerServiceClient(conn)
	return c, nil
}

// resolveAddr picks the address to dial and says whether it is the
// per-user default, the only one auto-start serves.
func resolveAddr(addr string) (string, bool, error) {
	if addr == "" {
		addr = os.Getenv(EnvAddr)
	}
	def, err := ipc.DefaultAddr()
	if addr == "" {
		if err != nil {
			return "", false, fmt.Errorf("portbrokerd address: %w", err)
		}
		return def, true, nil
	}
	return addr, err == nil && addr == def, nil
}

var errNotReady = errors.New("connection failed")

// waitReady connects conn and waits until it is ready or its first attempt
// fails.
func waitReady(ctx context.Context, conn *grpc.ClientConn) error {
	conn.Connect()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			return errNotReady
		}
		if !conn.WaitForStateChange(ctx, s) {
			return ctx.Err()
		}
	}
}

// unavailable explains a failed connection. gRPC keeps the dial error to
// itself, so dial once more for the reason.
func (c *Client) unavailable(ctx context.Context, err error) error {
	if errors.Is(err, errNotReady) {
		if conn, dialErr := ipc.Dial(ctx, c.addr); dialErr != nil {
			err = dialErr
		} else {
			conn.Close()
			err = errors.New("it accepted a connection but did not speak gRPC")
		}
	}
	e := &rpcError{kind: ErrUnavailable, msg: fmt.Sprintf("no portbrokerd at %s: %v", c.addr, err)}
	if ctxErr := ctx.Err(); ctxErr != nil {
		e.cause = ctxErr
	}
	return e
}

// Addr returns the address the client is connected to.
func (c *Client) Addr() string { return c.addr }

// Close stops the keepalive of every TTL lease acquired through c (their
// Err becomes ErrClientClosed) and closes the connection. Leases stay: they
// belong to their owner processes, not to the connection, and TTL leases
// last until their TTL runs out.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	leases := make([]*Lease, 0, len(c.renewing))
	for l := range c.renewing {
		leases = append(leases, l)
	}
	c.mu.Unlock()
	for _, l := range leases {
		l.stopKeepalive()
		l.life.end(ErrClientClosed)
	}
	return c.conn.Close()
}

// RPC returns the raw gRPC client, for what this package does not wrap
// (such as printing responses as protobuf JSON). Its errors are mapped
// like the rest of the package's: they match ErrNotFound and the rest, and
// status.Code still reports their gRPC code.
func (c *Client) RPC() brokerpb.BrokerServiceClient { return c.rpc }
