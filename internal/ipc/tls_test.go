package ipc

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// impostor serves gRPC on a loopback port, as a squatter would while the
// daemon is down, and records every call's metadata and every byte any
// client sends it (before TLS decryption: HPACK may compress headers, so
// the metadata is the telling record).
type impostor struct {
	srv  *grpc.Server
	mu   sync.Mutex
	raw  bytes.Buffer
	md   []metadata.MD
	done chan struct{}
}

func startImpostor(t *testing.T, creds credentials.TransportCredentials) (*impostor, string) {
	t.Helper()
	ln, addr := listenTCP(t)
	im := &impostor{done: make(chan struct{})}
	im.srv = grpc.NewServer(grpc.Creds(creds), grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		md, _ := metadata.FromIncomingContext(ss.Context())
		im.mu.Lock()
		im.md = append(im.md, md)
		im.mu.Unlock()
		return status.Error(codes.Unimplemented, "impostor")
	}))
	go func() {
		defer close(im.done)
		im.srv.Serve(recordingListener{Listener: ln, im: im})
	}()
	t.Cleanup(im.stop)
	return im, addr
}

func (im *impostor) stop() {
	im.srv.Stop()
	<-im.done
}

type recordingListener struct {
	net.Listener
	im *impostor
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return recordingConn{Conn: c, im: l.im}, nil
}

type recordingConn struct {
	net.Conn
	im *impostor
}

func (c recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.im.mu.Lock()
	c.im.raw.Write(p[:n])
	c.im.mu.Unlock()
	return n, err
}

func (im *impostor) received() (raw []byte, md []metadata.MD) {
	im.mu.Lock()
	defer im.mu.Unlock()
	return bytes.Clone(im.raw.Bytes()), append([]metadata.MD(nil), im.md...)
}

// TestTokenNeverReachesAnImpostor: a client holding the token dials a
// loopback port where something other than the daemon listens: plain
// TCP (speaking nothing, as a squatter that only records), TLS with its
// own certificate, and TLS presenting the daemon's own certificate, which
// is public, without its key. The call fails and the token never appears
// in anything the impostor received.
func TestTokenNeverReachesAnImpostor(t *testing.T) {
	stateDir := t.TempDir()
	token, _, err := RotateToken(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	daemonCert, _, err := NewDaemonCert(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	otherCert, _, err := NewDaemonCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stolen := tls.Certificate{Certificate: daemonCert.Certificate, PrivateKey: otherKey}
	tests := []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{"plain TCP", insecure.NewCredentials()},
		{"TLS with another certificate", credentials.NewTLS(serverTLS(otherCert))},
		{"TLS with the daemon's certificate but another key", credentials.NewTLS(serverTLS(stolen))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noClientToken(t)
			t.Setenv(EnvStateDir, stateDir)
			t.Setenv(EnvToken, token)
			im, addr := startImpostor(t, tt.creds)
			conn := dialTest(t, addr)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, err := brokerpb.NewBrokerServiceClient(conn).GetStatus(ctx, &brokerpb.GetStatusRequest{})
			if err == nil {
				t.Fatal("GetStatus against an impostor succeeded")
			}
			conn.Close()
			im.stop()
			raw, md := im.received()
			if len(raw) == 0 {
				t.Fatal("the impostor received nothing; the test did not reach it")
			}
			if bytes.Contains(raw, []byte(token)) {
				t.Errorf("the impostor received the token in the clear")
			}
			if len(md) != 0 {
				t.Errorf("the impostor received %d calls (metadata %v); want none", len(md), md)
			}
		})
	}
}
