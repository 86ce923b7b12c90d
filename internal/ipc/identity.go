package ipc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

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
	// (loopback TCP); then PID, UID and Admin are zero.
	Known bool
}

// ConnIdentity returns the identity of c's peer: from the kernel for unix
// sockets (SO_PEERCRED on Linux, LOCAL_PEERPID and LOCAL_PEERCRED on macOS)
// and from the client process's token for Windows named pipes. A TCP
// connection, or any other kind of connection, has an unknown identity.
// It fails only when a local transport cannot name its peer.
func ConnIdentity(c net.Conn) (Identity, error) {
	if _, ok := c.(*net.TCPConn); ok {
		return Identity{}, nil
	}
	return localPeer(c)
}

// CredentialsOption configures ServerCredentials.
type CredentialsOption func(*serverCreds)

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
	log *slog.Logger
}

func (c *serverCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	id, err := ConnIdentity(conn)
	if err != nil {
		c.log.Warn("connection refused: cannot identify the caller", "remote", conn.RemoteAddr().String(), "err", err)
		return nil, nil, fmt.Errorf("identify peer: %w", err)
	}
	// As grpc's local credentials do: a kernel-identified local peer is as
	// good as an authenticated private channel; TCP is not.
	level := credentials.NoSecurity
	if id.Known {
		level = credentials.PrivacyAndIntegrity
	}
	return conn, authInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: level}, id: id}, nil
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
