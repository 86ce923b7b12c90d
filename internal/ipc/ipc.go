// Package ipc is the broker's local transport, both ends: it parses
// addresses, resolves the per-user default address and state directory,
// listens and dials, and tells the server who calls. Unix sockets live in
// a private directory (or one shared with a chosen group), TCP is bound to
// loopback only and Windows named pipes are restricted to the current
// user, except the Windows service's ServiceAddr, which interactive users
// may open. Over unix sockets and pipes the OS names each caller
// (ServerCredentials, IdentityFrom). Over TCP, which every local user can
// reach, the daemon proves itself with a certificate clients pin
// (NewDaemonCert), the OS socket table names the caller where it can, and
// calls must carry a token only the daemon's user can read (RotateToken,
// TokenInterceptors).
package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Networks ParseAddr returns.
const (
	NetworkUnix = "unix"
	NetworkTCP  = "tcp"
	NetworkPipe = "npipe"
)

var (
	// ErrInvalidAddr matches every error ParseAddr returns.
	ErrInvalidAddr = errors.New("invalid address")
	// ErrAddrInUse matches a Listen error for an address something else is
	// already serving.
	ErrAddrInUse = errors.New("address in use")
)

const addrForms = "unix:///abs/path.sock, tcp://127.0.0.1:PORT or npipe:////./pipe/NAME"

// ParseAddr splits a broker address into a network (NetworkUnix,
// NetworkTCP or NetworkPipe) and the address for that network:
//
//	unix:///run/user/1000/portbroker/portbroker.sock -> unix, /run/user/1000/portbroker/portbroker.sock
//	tcp://127.0.0.1:7000, tcp://[::1]:7000           -> tcp, 127.0.0.1:7000 / [::1]:7000
//	tcp://localhost:7000                             -> tcp, localhost:7000
//	npipe:////./pipe/portbroker-alice                -> npipe, \\.\pipe\portbroker-alice
//
// Unix paths must be absolute and TCP hosts loopback. Port 0 is accepted:
// Listen then picks a free port. ParseAddr does not consult the OS, so it
// accepts npipe addresses on Unix and unix addresses on Windows; Listen and
// Dial refuse them there.
func ParseAddr(s string) (network, address string, err error) {
	if s == "" {
		return "", "", fmt.Errorf("%w: address is empty; want %s", ErrInvalidAddr, addrForms)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "", "", fmt.Errorf("%w %q: must not contain NUL bytes", ErrInvalidAddr, s)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "", "", fmt.Errorf("%w %q: missing scheme; want %s", ErrInvalidAddr, s, addrForms)
	}
	switch scheme {
	case "unix":
		address, err = parseUnix(rest)
		network = NetworkUnix
	case "tcp":
		address, err = parseTCP(rest)
		network = NetworkTCP
	case "npipe":
		address, err = parsePipe(rest)
		network = NetworkPipe
	default:
		err = fmt.Errorf("unknown scheme %q; want %s", scheme, addrForms)
	}
	if err != nil {
		return "", "", fmt.Errorf("%w %q: %w", ErrInvalidAddr, s, err)
	}
	return network, address, nil
}

func parseUnix(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("socket path is empty; want unix:///abs/path.sock")
	case !strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("socket path %q is not absolute; want unix:///abs/path.sock", p)
	case strings.HasSuffix(p, "/"):
		return "", fmt.Errorf("socket path %q names a directory; want unix:///abs/path.sock", p)
	}
	return p, nil
}

func parseTCP(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("want tcp://127.0.0.1:PORT: %w", err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", fmt.Errorf("port %q: must be a number from 0 to 65535", port)
	}
	port = strconv.FormatUint(n, 10)
	if strings.EqualFold(host, "localhost") {
		return net.JoinHostPort("localhost", port), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" || !ip.IsLoopback() {
		return "", fmt.Errorf("host %q is not loopback: the broker listens on 127.0.0.1, [::1] or localhost only", host)
	}
	return net.JoinHostPort(ip.Unmap().String(), port), nil
}

const pipePrefix = "//./pipe/"

func parsePipe(p string) (string, error) {
	name, ok := strings.CutPrefix(p, pipePrefix)
	if !ok {
		return "", fmt.Errorf("pipe path %q: want npipe:////./pipe/NAME (local pipes only)", p)
	}
	if name == "" {
		return "", errors.New("pipe name is empty; want npipe:////./pipe/NAME")
	}
	return `\\.\pipe\` + strings.ReplaceAll(name, "/", `\`), nil
}

// formatAddr is the inverse of ParseAddr.
func formatAddr(network, address string) string {
	if network == NetworkPipe {
		return "npipe://" + strings.ReplaceAll(address, `\`, "/")
	}
	return network + "://" + address
}

// Listen listens on a broker address. See the per-OS listenUnix and
// listenPipe for what each network checks first. It returns an error
// matching ErrAddrInUse when something already serves addr.
func Listen(addr string) (net.Listener, error) { return ListenWith(addr) }

// ListenOption configures ListenWith.
type ListenOption func(*listenConfig)

type listenConfig struct {
	// group, when set, is the socket's group: a gid, or a name in
	// groupName to look up.
	group     *int
	groupName string
}

// WithGroup shares a unix socket with the members of group gid: the socket
// is made 0660 and, when Listen creates its directory, that directory 0750,
// both with group gid. The daemon's user must be in the group (or be
// root). An existing directory is never widened; it must already let the
// group through. Other networks refuse this option.
func WithGroup(gid int) ListenOption {
	return func(c *listenConfig) { c.group, c.groupName = &gid, "" }
}

// WithGroupName is WithGroup for a group named by name (or by a decimal
// gid).
func WithGroupName(name string) ListenOption {
	return func(c *listenConfig) { c.group, c.groupName = nil, name }
}

func (c *listenConfig) hasGroup() bool { return c.group != nil || c.groupName != "" }

// ListenWith is Listen with options.
func ListenWith(addr string, opts ...ListenOption) (net.Listener, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	var cfg listenConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.hasGroup() && network != NetworkUnix {
		return nil, fmt.Errorf("listen %s: a socket group applies to unix:// addresses only", addr)
	}
	switch network {
	case NetworkUnix:
		return listenUnix(addr, address, cfg)
	case NetworkPipe:
		return listenPipe(addr, address)
	}
	ln, err := net.Listen("tcp", address)
	if err != nil {
		if isAddrInUse(err) {
			return nil, fmt.Errorf("listen %s: %w: another process holds the port", addr, ErrAddrInUse)
		}
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// Dial connects to a broker address. Before it dials a unix socket it
// checks that no other user could have put the socket there; see
// checkServerDir. On Windows a pipe must be owned by the caller, SYSTEM
// or Administrators, and the user's default pipe falls back to
// ServiceAddr when it does not exist.
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	switch network {
	case NetworkUnix:
		return dialUnix(ctx, address)
	case NetworkPipe:
		return dialPipe(ctx, address)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", address)
}

// DialOptions returns the target and options for grpc.NewClient to reach
// addr through Dial. Unix sockets and pipes are local and restricted to
// their users, so they carry no TLS. Over TCP, which any local user can
// reach (and bind while the daemon is down), the client first checks that
// the server holds the key of the certificate the daemon wrote in its
// state dir (see NewDaemonCert, pinnedCert), over TLS; only then does
// each call carry the broker token (see RotateToken), read per call from
// $PORTBROKER_TOKEN, else the file $PORTBROKER_TOKEN_FILE names, else the
// token file in $PORTBROKER_STATE_DIR, else in the Windows service's state
// dir when addr is the address the service recorded (WriteServiceAddr),
// else in DefaultStateDir; with none, calls go without it and the daemon's
// refusal says where it is. The certificate is found the same way.
func DialOptions(addr string) (target string, opts []grpc.DialOption, err error) {
	network, _, err := ParseAddr(addr)
	if err != nil {
		return "", nil, err
	}
	dial := func(ctx context.Context, _ string) (net.Conn, error) { return Dial(ctx, addr) }
	creds := insecure.NewCredentials()
	if network == NetworkTCP {
		creds = credentials.NewTLS(clientTLS(addr))
	}
	opts = []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(dial),
		// The endpoint is a whole address, not a host; give HTTP/2 a
		// plain authority instead of an escaped path.
		grpc.WithAuthority("localhost"),
	}
	if network == NetworkTCP {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds{addr: addr}))
	}
	return "passthrough:///" + addr, opts, nil
}
