package ipc

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
)

// Environment variables a client reads its loopback TCP token from, in
// this order; else it reads TokenFile in $PORTBROKER_STATE_DIR or
// DefaultStateDir.
const (
	EnvToken     = "PORTBROKER_TOKEN"
	EnvTokenFile = "PORTBROKER_TOKEN_FILE"
	EnvStateDir  = "PORTBROKER_STATE_DIR"
)

// TokenFile is the name of the token file in the state dir.
const TokenFile = "token"

const tokenBytes = 32

// RotateToken makes a new loopback TCP token (32 random bytes, hex) in
// stateDir, replacing the one a previous daemon used, so a token captured
// once is worth nothing after a restart. The file is readable by its
// owner only. An existing file that is not a regular file, is owned by
// another user or that group or others may read or write is refused and
// left alone, naming the fix: whoever could plant or read it could call
// the broker as the daemon's user.
func RotateToken(stateDir string) (token, path string, err error) {
	return rotateToken(stateDir, createPrivateTemp)
}

// RotateServiceToken is RotateToken for portbrokerd running as the Windows
// service: the file grants SYSTEM and Administrators full access and the
// users the service pipe admits read access (serviceFileSDDL), so that
// they can call the service over TCP. Elsewhere it fails.
func RotateServiceToken(stateDir string) (token, path string, err error) {
	return rotateToken(stateDir, createServiceTemp)
}

// createTempFunc creates a new file in dir, named by pattern's "*"
// replaced with random text, with the access it chooses.
type createTempFunc func(dir, pattern string) (*os.File, error)

func rotateToken(stateDir string, create createTempFunc) (token, path string, err error) {
	path = filepath.Join(stateDir, TokenFile)
	f, err := openTokenFile(path)
	switch {
	case err == nil:
		err = checkTokenFile(f, path)
		f.Close()
		if err != nil {
			return "", path, err
		}
		if err := os.Remove(path); err != nil {
			return "", path, fmt.Errorf("replace token file: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", path, err
	}
	token, err = createToken(path, create)
	if errors.Is(err, fs.ErrExist) {
		return "", path, fmt.Errorf("token file %s: created by another process while portbrokerd made its own; is another daemon using this state dir?", path)
	}
	return token, path, err
}

// createToken writes a new token beside path and links it into place, so
// that nobody ever reads a half-written token and a token another process
// created meanwhile is never replaced (the error then matches fs.ErrExist).
func createToken(path string, create createTempFunc) (string, error) {
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	tok := hex.EncodeToString(raw)

	f, err := create(filepath.Dir(path), TokenFile+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("create token file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write token file: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", err
		}
		return "", fmt.Errorf("create token file: %w", err)
	}
	return tok, nil
}

// clientToken finds the token a client of addr sends over TCP:
// $PORTBROKER_TOKEN, else the file $PORTBROKER_TOKEN_FILE names, else
// TokenFile in // clientStateDir(addr). It returns "" without an error when the last has
// no token file, so that the daemon can say where it is.
func clientToken(addr string) (string, error) {
	if tok := strings.TrimSpace(os.Getenv(EnvToken)); tok != "" {
		return tok, nil
	}
	if path := os.Getenv(EnvTokenFile); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("broker token from %s: %w", EnvTokenFile, err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	dir, err := clientStateDir(addr)
	if err != nil {
		return "", nil
	}
	data, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("broker token: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// tokenCreds sends the broker token with every call. It reads the token
// per call, so a client outlives a daemon restart that made a new one.
type tokenCreds struct{ addr string }

func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := clientToken(c.addr)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if tok == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity is true: the token goes only to a server that
// proved, over TLS, that it is the daemon (see clientTLS).
func (tokenCreds) RequireTransportSecurity() bool { return true }

// TokenInterceptors return server interceptors that require the broker
// token (metadata "authorization: Bearer TOKEN") on calls whose caller the
// transport could not identify (loopback TCP) and refuse them with
// Unauthenticated, naming path, without it. Calls over unix sockets and
// pipes carry a known identity and pass. Health and reflection are open
// to all: they reveal nothing a caller could not guess, and probes have
// no token. An empty token refuses every unidentified call.
func TokenInterceptors(token, path string) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	g := &tokenGate{token: []byte(token), path: path}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := g.check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := g.check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
	return unary, stream
}

// openServices need no token.
var openServices = []string{
	healthpb.Health_ServiceDesc.ServiceName,
	reflectionv1.ServerReflection_ServiceDesc.ServiceName,
	reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName,
}

type tokenGate struct {
	token []byte
	path  string
}

func (g *tokenGate) check(ctx context.Context, fullMethod string) error {
	if id, ok := IdentityFrom(ctx); ok && id.Known && !id.TCP {
		return nil
	}
	for _, s := range openServices {
		if strings.HasPrefix(fullMethod, "/"+s+"/") {
			return nil
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		scheme, tok, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "bearer") && len(g.token) > 0 &&
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), g.token) == 1 {
			return nil
		}
	}
	return status.Errorf(codes.Unauthenticated, "missing or wrong broker token; read it from %s (brokerctl and the Go client do when %s=%s)", g.path, EnvTokenFile, g.path)
}
