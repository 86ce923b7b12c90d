package ipc

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

// EnsureToken returns the loopback TCP token kept in stateDir, creating it
// (32 random bytes, hex) when missing. The file is readable by its owner
// only: on Unix an existing one that group or others may read or write is
// refused, since whoever reads it can call the broker as the daemon's
// user; on Windows a new one gets a DACL for the current user alone.
func EnsureToken(stateDir string) (token, path string, err error) {
	path = filepath.Join(stateDir, TokenFile)
	for range 2 {
		token, err = readTokenFile(path)
		if !errors.Is(err, fs.ErrNotExist) {
			return token, path, err
		}
		token, err = createToken(path)
		if !errors.Is(err, fs.ErrExist) {
			return token, path, err
		}
		// Another process created it first; read theirs.
	}
	return "", path, fmt.Errorf("token file %s: created and removed repeatedly by another process", path)
}

func readTokenFile(path string) (string, error) {
	f, err := openTokenFile(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := checkTokenFile(f, path); err != nil {
		return "", err
	}
	// Twice the expected size is plenty to tell a token from anything else.
	data, err := io.ReadAll(io.LimitReader(f, 4*tokenBytes))
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if b, err := hex.DecodeString(tok); err != nil || len(b) != tokenBytes {
		return "", fmt.Errorf("token file %s is malformed: want %d hex digits; remove it and restart portbrokerd to make a new one", path, 2*tokenBytes)
	}
	return tok, nil
}

// createToken writes a new token beside path and links it into place, so
// that nobody ever reads a half-written token and a token another process
// created meanwhile is never replaced (the error then matches fs.ErrExist).
func createToken(path string) (string, error) {
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	tok := hex.EncodeToString(raw)

	f, err := createPrivateTemp(filepath.Dir(path), TokenFile+".*.tmp")
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

// clientToken finds the token a client sends over TCP: $PORTBROKER_TOKEN,
// else the file $PORTBROKER_TOKEN_FILE names, else TokenFile in
// $PORTBROKER_STATE_DIR or DefaultStateDir. It returns "" without an error
// when the last has no token file, so that the daemon can say where it is.
func clientToken() (string, error) {
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
	dir := os.Getenv(EnvStateDir)
	if dir == "" {
		var err error
		if dir, err = DefaultStateDir(); err != nil {
			return "", nil
		}
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
type tokenCreds struct{}

func (tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok, err := clientToken()
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	if tok == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity is false: the token only travels over
// loopback, which ParseAddr enforces.
func (tokenCreds) RequireTransportSecurity() bool { return false }

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
	if id, ok := IdentityFrom(ctx); ok && id.Known {
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
