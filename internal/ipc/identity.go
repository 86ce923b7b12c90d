package ipc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Identity is who is at the other end of a connection, as the transport
// tells it.
type Identity struct {
	// PID is the peer's process id when it connected; 0 when unknown.
	PID int
	// UID is the peer's user: a decimal uid on Unix, a SID string on
	// Windows; empty when unknown.
	UID string
	// Admin is true for uid 0 on Unix and an elevated token on Windows.
	Admin bool
	// Known is false when the transport cannot tell who the peer is
	// (loopback TCP where the OS socket table does not say); then PID,
	// UID and Admin are zero.
	Known bool
	// PIDNamespace is the peer's PID namespace on Linux ("pid:[INODE]"),
	// when it could be read: PIDs the peer sends are translated from it
	// (TranslatePID).
	PIDNamespace string
	// TCP is true for a loopback TCP peer. Its calls need the token even
	// when the OS named the peer, and a PID of 0 (no single process holds
	// the peer's socket) leaves the caller unable to ask for kills.
	TCP bool
}

// ConnIdentity returns the identity of c's peer: from the kernel for unix
// sockets (SO_PEERCRED on Linux, LOCAL_PEERPID and LOCAL_PEERCRED on macOS),
// from the client process's token for Windows named pipes, and from the
// kernel's socket table for loopback TCP on Linux (see tcpPeer); elsewhere
// a TCP peer is unknown. It fails when a local transport, or the socket
// table, cannot name its peer.
func ConnIdentity(c net.Conn) (Identity, error) {
	if lc, ok := c.(*limitedConn); ok {
		return lc.peerIdentity()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		id, err := tcpPeer(tc)
		id.TCP = true
		id.PIDNamespace = pidNamespace(id.PID)
		return id, err
	}
	id, err := localPeer(c)
	id.PIDNamespace = pidNamespace(id.PID)
	return id, err
}

// CredentialsOption configures ServerCredentials.
type CredentialsOption func(*serverCreds)

// WithTLS makes loopback TCP connections speak TLS with cert, the
// certificate clients pin (see NewDaemonCert). Without it a TCP
// connection is refused: a client would not send it its token.
func WithTLS(cert tls.Certificate) CredentialsOption {
	return func(c *serverCreds) { c.tls = serverTLS(cert) }
}

// WithAllowedUsers refuses a TCP connection whose peer the OS names as a
// user allowed rejects, before it may make any call.
func WithAllowedUsers(allowed func(id Identity) bool) CredentialsOption {
	return func(c *serverCreds) { c.allowed = allowed }
}

// WithLogger logs, at warning level, each connection refused because its
// peer could not be identified; gRPC itself closes it without a word.
func WithLogger(log *slog.Logger) CredentialsOption {
	return func(c *serverCreds) { c.log = log }
}

// ServerCredentials returns transport credentials for grpc.Creds that
// attach each connection's Identity to its calls; IdentityFrom reads it
// back. A local connection whose peer cannot be identified is refused, so
// a call over a unix socket or pipe always carries a known identity. No
// encryption is added: every transport the broker listens on is local.
func ServerCredentials(opts ...CredentialsOption) credentials.TransportCredentials {
	c := &serverCreds{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

const authType = "portbroker-local"

type serverCreds struct {
	log     *slog.Logger
	tls     *tls.Config
	allowed func(Identity) bool
}

func (c *serverCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	id, err := ConnIdentity(conn)
	isTCP := id.TCP || isTCPConn(conn)
	if isTCP && c.tls == nil {
		return nil, nil, errors.New("loopback TCP without the daemon's TLS certificate: refused")
	}
	if err != nil {
		if !isTCP {
			c.log.Warn("connection refused: cannot identify the caller", "remote", conn.RemoteAddr().String(), "err", err)
			return nil, nil, fmt.Errorf("identify peer: %w", err)
		}
		// The token still admits it; kills stay refused (PID 0).
		c.log.Info("TCP caller not identified by the OS", "remote", conn.RemoteAddr().String(), "err", err)
		id = Identity{TCP: true}
	}
	if id.Known && c.allowed != nil && !c.allowed(id) {
		c.log.Warn("connection refused: user not allowed", "remote", conn.RemoteAddr().String(), "uid", id.UID, "pid", id.PID)
		return nil, nil, fmt.Errorf("peer user %s is not allowed", id.UID)
	}
	// As grpc's local credentials do: a kernel-identified local peer is as
	// good as an authenticated private channel.
	level := credentials.PrivacyAndIntegrity
	if isTCP {
		tc := tls.Server(conn, c.tls)
		if err := tc.Handshake(); err != nil {
			return nil, nil, fmt.Errorf("TLS handshake with %s: %w", conn.RemoteAddr(), err)
		}
		conn = tc
	}
	return conn, authInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: level}, id: id}, nil
}

func isTCPConn(c net.Conn) bool {
	if lc, ok := c.(*limitedConn); ok {
		c = lc.Conn
	}
	_, ok := c.(*net.TCPConn)
	return ok
}

var errServerOnly = errors.New("portbroker server credentials: client handshake is not supported; dial with DialOptions")

func (c *serverCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errServerOnly
}

func (c *serverCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: authType}
}

func (c *serverCreds) Clone() credentials.TransportCredentials {
	clone := *c
	return &clone
}

func (c *serverCreds) OverrideServerName(string) error { return nil }

type authInfo struct {
	credentials.CommonAuthInfo
	id Identity
}

func (authInfo) AuthType() string { return authType }

// IdentityFrom returns the caller's identity in a server handler's
// context. ok is false when the connection did not go through
// ServerCredentials.
func IdentityFrom(ctx context.Context) (id Identity, ok bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, false
	}
	ai, ok := p.AuthInfo.(authInfo)
	if !ok {
		return Identity{}, false
	}
	return ai.id, true
}

// ConnOwnerFunc names the process owning the TCP connection whose local
// end is local and remote end is remote; ok is false when the OS does not
// say.
type ConnOwnerFunc func(local, remote netip.AddrPort) (pid int, ok bool, err error)

var connOwner atomic.Pointer[ConnOwnerFunc]

// SetConnOwner gives the daemon's way of reading the OS connection table
// where the transport has none of its own (Windows: the owner tables in
// platform/windows, which this package, shared with clients, does not
// import). Until it is set, loopback TCP peers there stay unknown.
func SetConnOwner(f ConnOwnerFunc) { connOwner.Store(&f) }
