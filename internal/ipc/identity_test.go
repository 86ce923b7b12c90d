package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Helper modes of the test binary, for tests whose subject is another
// process (or another user) calling the broker.
const (
	envHelper     = "PORTBROKER_IPC_TEST_HELPER"
	envHelperAddr = "PORTBROKER_IPC_TEST_ADDR"
)

func TestMain(m *testing.M) {
	if os.Getenv(envHelper) == "call" {
		if err := helperCall(os.Getenv(envHelperAddr)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperCall makes one BrokerService call to addr, as a client would.
func helperCall(addr string) error {
	target, opts, err := DialOptions(addr)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = brokerpb.NewBrokerServiceClient(conn).GetStatus(ctx, &brokerpb.GetStatusRequest{})
	return err
}

// fakeBroker answers GetStatus and WatchLeases (one event) so that a test
// can tell a call that reached the service from one refused before it.
type fakeBroker struct {
	brokerpb.UnimplementedBrokerServiceServer
}

func (fakeBroker) GetStatus(context.Context, *brokerpb.GetStatusRequest) (*brokerpb.GetStatusResponse, error) {
	return &brokerpb.GetStatusResponse{Version: "test"}, nil
}

func (fakeBroker) WatchLeases(_ *brokerpb.WatchLeasesRequest, s grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error {
	return s.Send(&brokerpb.WatchLeasesResponse{})
}

// callRecord is what the server saw of one call.
type callRecord struct {
	method string
	id     Identity
	ok     bool
}

// recorder notes each call's identity, before the token check.
type recorder struct {
	mu    sync.Mutex
	calls []callRecord
}

func (r *recorder) note(ctx context.Context, method string) {
	id, ok := IdentityFrom(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, callRecord{method: method, id: id, ok: ok})
}

func (r *recorder) all() []callRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]callRecord(nil), r.calls...)
}

// serve runs a gRPC server on ln wired as the daemon wires it: identity
// credentials, the token gate, health and the broker service. It stops
// the server when the test ends.
func serve(t *testing.T, ln net.Listener, token, tokenPath string, opts ...CredentialsOption) *recorder {
	t.Helper()
	rec := &recorder{}
	unary, stream := TokenInterceptors(token, tokenPath)
	srv := grpc.NewServer(
		grpc.Creds(ServerCredentials(opts...)),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			rec.note(ctx, info.FullMethod)
			return h(ctx, req)
		}, unary),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			rec.note(ss.Context(), info.FullMethod)
			return h(srv, ss)
		}, stream),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	brokerpb.RegisterBrokerServiceServer(srv, fakeBroker{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return rec
}

func dialTest(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	target, opts, err := DialOptions(addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// callBroker makes a unary and a streaming BrokerService call and returns
// their errors.
func callBroker(ctx context.Context, conn *grpc.ClientConn) (unaryErr, streamErr error) {
	c := brokerpb.NewBrokerServiceClient(conn)
	_, unaryErr = c.GetStatus(ctx, &brokerpb.GetStatusRequest{})
	ws, err := c.WatchLeases(ctx, &brokerpb.WatchLeasesRequest{})
	if err == nil {
		_, err = ws.Recv()
	}
	return unaryErr, err
}

// noClientToken points every client token and certificate source at
// nothing.
func noClientToken(t *testing.T) {
	t.Setenv(EnvToken, "")
	t.Setenv(EnvTokenFile, "")
	t.Setenv(EnvCertFile, "")
	t.Setenv(EnvStateDir, t.TempDir())
}

// daemonTLS makes the daemon's certificate in a new state dir and returns
// the server option and the certificate's path, which clients pin.
func daemonTLS(t *testing.T) (CredentialsOption, string) {
	t.Helper()
	cert, path, err := NewDaemonCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return WithTLS(cert), path
}

func listenTCP(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln, err := Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "tcp://" + ln.Addr().String()
}

func TestTCPIdentityFromSocketTable(t *testing.T) {
	noClientToken(t)
	ln, addr := listenTCP(t)
	tlsOpt, certPath := daemonTLS(t)
	t.Setenv(EnvCertFile, certPath)
	rec := serve(t, ln, "", "unused", tlsOpt)
	conn := dialTest(t, addr)
	if _, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check: %v", err)
	}
	calls := rec.all()
	if len(calls) != 1 {
		t.Fatalf("server saw %d calls, want 1", len(calls))
	}
	// Where the OS socket table names a TCP peer (Linux), the caller is
	// this process, the only one holding the client socket.
	want := Identity{TCP: true}
	if runtime.GOOS == "linux" {
		uid := os.Getuid()
		want = Identity{PID: os.Getpid(), UID: strconv.Itoa(uid), Admin: uid == 0, Known: true, TCP: true, PIDNamespace: pidNamespace(os.Getpid())}
	}
	if got := calls[0]; !got.ok || got.id != want {
		t.Errorf("IdentityFrom over TCP = %+v, %v; want %+v, true", got.id, got.ok, want)
	}
}

func TestTCPWithoutTLSIsRefused(t *testing.T) {
	noClientToken(t)
	ln, addr := listenTCP(t)
	rec := serve(t, ln, "", "unused")
	_, certPath := daemonTLS(t)
	t.Setenv(EnvCertFile, certPath)
	conn := dialTest(t, addr)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("health check against a server without WithTLS: %v; want Unavailable", err)
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("server saw %d calls; want none", n)
	}
}

func TestTCPUserNotAllowedIsRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the OS names TCP peers on Linux only")
	}
	noClientToken(t)
	ln, addr := listenTCP(t)
	tlsOpt, certPath := daemonTLS(t)
	t.Setenv(EnvCertFile, certPath)
	var asked []Identity
	var mu sync.Mutex
	rec := serve(t, ln, "", "unused", tlsOpt, WithAllowedUsers(func(id Identity) bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, id)
		return false
	}))
	conn := dialTest(t, addr)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("health check from a refused user: %v; want Unavailable", err)
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("server saw %d calls; want none", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) == 0 || asked[0].UID != strconv.Itoa(os.Getuid()) {
		t.Errorf("allowed was asked about %+v; want this process's user %d", asked, os.Getuid())
	}
}

func TestTokenOverTCP(t *testing.T) {
	stateDir := t.TempDir()
	token, tokenPath, err := RotateToken(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	cert, certPath, err := NewDaemonCert(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	ln, addr := listenTCP(t)
	serve(t, ln, token, tokenPath, WithTLS(cert))
	missing := tokenPath + ".missing"

	tests := []struct {
		name    string
		env     map[string]string
		code    codes.Code
		wantMsg string // in the error when code is not OK
		// healthFails: the client cannot even build the call's metadata
		// (a token file it was told to read is missing).
		healthFails bool
	}{
		{"no token anywhere", nil, codes.Unauthenticated, "missing or wrong broker token; read it from " + tokenPath, false},
		{"wrong token", map[string]string{EnvToken: strings.Repeat("ab", 32)}, codes.Unauthenticated, tokenPath, false},
		{"token file named by env", map[string]string{EnvTokenFile: tokenPath}, codes.OK, "", false},
		{"token in env", map[string]string{EnvToken: token}, codes.OK, "", false},
		{"token in env beats a wrong file", map[string]string{EnvToken: token, EnvTokenFile: missing}, codes.OK, "", false},
		{"token and certificate in state dir", map[string]string{EnvStateDir: stateDir, EnvCertFile: ""}, codes.OK, "", false},
		{"named token file missing", map[string]string{EnvTokenFile: missing}, codes.Unauthenticated, EnvTokenFile, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noClientToken(t)
			t.Setenv(EnvCertFile, certPath)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			conn := dialTest(t, addr)
			unaryErr, streamErr := callBroker(t.Context(), conn)
			for _, c := range []struct {
				kind string
				err  error
			}{{"unary", unaryErr}, {"stream", streamErr}} {
				st := status.Convert(c.err)
				if st.Code() != tt.code || !strings.Contains(st.Message(), tt.wantMsg) {
					t.Errorf("%s call: %v; want code %v with %q", c.kind, c.err, tt.code, tt.wantMsg)
				}
			}
			// Health needs no token, whatever the client holds.
			_, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
			switch {
			case tt.healthFails && (status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), missing)):
				t.Errorf("health check: %v; want Unauthenticated naming %s", err, missing)
			case !tt.healthFails && err != nil:
				t.Errorf("health check: %v", err)
			}
		})
	}
}

func TestTokenInterceptorsGate(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const getStatus = "/portbroker.v1.BrokerService/GetStatus"
	unknown := &peer.Peer{AuthInfo: authInfo{}}
	known := &peer.Peer{AuthInfo: authInfo{id: Identity{PID: 42, UID: "1000", Known: true}}}
	knownTCP := &peer.Peer{AuthInfo: authInfo{id: Identity{PID: 42, UID: "1000", Known: true, TCP: true}}}
	tests := []struct {
		name   string
		token  string // the server's; empty means token
		peer   *peer.Peer
		method string
		auth   []string
		pass   bool
	}{
		{name: "known identity needs no token", peer: known, method: getStatus, pass: true},
		{name: "known TCP identity still needs the token", peer: knownTCP, method: getStatus},
		{name: "known TCP identity with the token", peer: knownTCP, method: getStatus, auth: []string{"Bearer " + token}, pass: true},
		{name: "unknown identity without token", peer: unknown, method: getStatus},
		{name: "no identity at all (no ServerCredentials)", method: getStatus},
		{name: "right token", peer: unknown, method: getStatus, auth: []string{"Bearer " + token}, pass: true},
		{name: "scheme is case-insensitive", peer: unknown, method: getStatus, auth: []string{"bearer " + token}, pass: true},
		{name: "one of several values is right", peer: unknown, method: getStatus, auth: []string{"Bearer nope", "Bearer " + token}, pass: true},
		{name: "wrong token", peer: unknown, method: getStatus, auth: []string{"Bearer " + strings.ToUpper(token)}},
		{name: "token prefix", peer: unknown, method: getStatus, auth: []string{"Bearer " + token[:32]}},
		{name: "wrong scheme", peer: unknown, method: getStatus, auth: []string{"Basic " + token}},
		{name: "no scheme", peer: unknown, method: getStatus, auth: []string{token}},
		{name: "empty server token refuses an empty one", token: "-", peer: unknown, method: getStatus, auth: []string{"Bearer "}},
		{name: "health", peer: unknown, method: "/grpc.health.v1.Health/Check", pass: true},
		{name: "reflection v1", peer: unknown, method: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", pass: true},
		{name: "reflection v1alpha", peer: unknown, method: "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", pass: true},
		{name: "a service named like health", peer: unknown, method: "/grpc.health.v1.HealthX/Check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverToken := token
			if tt.token == "-" {
				serverToken = ""
			}
			unary, stream := TokenInterceptors(serverToken, "/state/token")
			ctx := t.Context()
			if tt.peer != nil {
				ctx = peer.NewContext(ctx, tt.peer)
			}
			md := metadata.MD{}
			for _, v := range tt.auth {
				md.Append("authorization", v)
			}
			ctx = metadata.NewIncomingContext(ctx, md)

			var reached int
			_, uerr := unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: tt.method}, func(context.Context, any) (any, error) {
				reached++
				return nil, nil
			})
			serr := stream(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: tt.method}, func(any, grpc.ServerStream) error {
				reached++
				return nil
			})
			for _, err := range []error{uerr, serr} {
				if tt.pass && err != nil {
					t.Errorf("refused: %v", err)
				}
				if !tt.pass && (status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "/state/token")) {
					t.Errorf("error = %v; want Unauthenticated naming /state/token", err)
				}
			}
			if want := map[bool]int{true: 2, false: 0}[tt.pass]; reached != want {
				t.Errorf("handlers reached %d times, want %d", reached, want)
			}
		})
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

func TestRotateToken(t *testing.T) {
	dir := t.TempDir()
	tok, path, err := RotateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := dir + string(os.PathSeparator) + "token"; path != want {
		t.Errorf("path = %q, want %q", path, want)
	}
	isToken := func(tok string) bool { return len(tok) == 64 && strings.Trim(tok, "0123456789abcdef") == "" }
	if !isToken(tok) {
		t.Errorf("token = %q; want 64 lower-case hex digits", tok)
	}
	again, _, err := RotateToken(dir)
	if err != nil || again == tok || !isToken(again) {
		t.Errorf("second RotateToken = %q, %v; want a new token, not %q", again, err, tok)
	}
	if data, err := os.ReadFile(path); err != nil || strings.TrimSpace(string(data)) != again {
		t.Errorf("token file holds %q, %v; want the new token %q", data, err, again)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("state dir holds %v, %v; want the token file alone (no temporary files)", entries, err)
	}
}

func TestRotateTokenReplacesMalformed(t *testing.T) {
	for _, content := range []string{"", "short\n", strings.Repeat("zz", 32)} {
		dir := t.TempDir()
		path := dir + string(os.PathSeparator) + "token"
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		tok, _, err := RotateToken(dir)
		if got, _ := os.ReadFile(path); err != nil || strings.TrimSpace(string(got)) != tok || len(tok) != 64 {
			t.Errorf("token file %q: RotateToken = %q, %v, file now %q; want a new token in the file", content, tok, err, got)
		}
	}
}

func TestRotateTokenMissingStateDir(t *testing.T) {
	dir := t.TempDir() + string(os.PathSeparator) + "missing"
	if _, _, err := RotateToken(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RotateToken(missing dir) error = %v; want it to match fs.ErrNotExist", err)
	}
}

func TestListenWithGroupOnlyUnix(t *testing.T) {
	for _, addr := range []string{"tcp://127.0.0.1:0", "npipe:////./pipe/portbroker-group-test"} {
		ln, err := ListenWith(addr, WithGroup(0))
		if err == nil {
			ln.Close()
			t.Errorf("ListenWith(%s, WithGroup) succeeded; want it refused", addr)
			continue
		}
		if !strings.Contains(err.Error(), "unix:// addresses only") {
			t.Errorf("ListenWith(%s, WithGroup) error = %v; want the unix-only rule", addr, err)
		}
	}
}

func TestServerCredentialsRefuseClientUse(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if _, _, err := ServerCredentials().ClientHandshake(t.Context(), "x", c1); err == nil {
		t.Error("ClientHandshake succeeded; want server credentials refused on the client side")
	}
}
