package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portbroker/portbroker/internal/ipc"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"golang.org/x/sys/windows/svc"
	"google.golang.org/grpc"
)

// lockedBuffer is the service's log, written by the daemon while the test
// reads it on failure.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The service on a TCP address records it in its state dir with its token
// and certificate; a client given only that address finds the rest there
// and calls it. Stopping the service removes the record.
func TestServiceOnTCPServesItsUsers(t *testing.T) {
	for _, env := range []string{"PORTBROKER_TOKEN", "PORTBROKER_TOKEN_FILE", "PORTBROKER_CERT_FILE", "PORTBROKER_STATE_DIR", "PORTBROKER_ADDR", "PORTBROKER_CONFIG"} {
		t.Setenv(env, "")
	}
	t.Setenv("ProgramData", t.TempDir())
	t.Setenv("LOCALAPPDATA", t.TempDir()) // the user's own state dir: empty
	t.Setenv("APPDATA", t.TempDir())      // no config file
	stateDir, err := ipc.ServiceStateDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	log := &lockedBuffer{}
	h := &serviceHandler{run: run, args: []string{"--addr", "tcp://127.0.0.1:0", "--state-dir", stateDir}, out: log}
	r := &serviceRun{req: make(chan svc.ChangeRequest), status: make(chan svc.Status), done: make(chan [2]uint32, 1)}
	go func() {
		specific, code := h.Execute(nil, r.req, r.status)
		s := uint32(0)
		if specific {
			s = 1
		}
		r.done <- [2]uint32{s, code}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		r.req <- svc.ChangeRequest{Cmd: svc.Stop}
		r.next(t)
		if got := r.exit(t); got != [2]uint32{0, 0} {
			t.Errorf("Execute returned %v, want a clean exit; log:\n%s", got, log)
		}
	}
	t.Cleanup(stop)
	if s := r.next(t); s.State != svc.StartPending {
		t.Fatalf("first status %+v, want StartPending", s)
	}
	if s := r.next(t); s.State != svc.Running {
		t.Fatalf("second status %+v, want Running", s)
	}

	// The daemon starts after the service reports Running; wait for its
	// record (the wait bounds a hang, it measures nothing).
	addrPath := filepath.Join(stateDir, ipc.ServiceAddrFile)
	var addr string
	for deadline := time.Now().Add(time.Minute); addr == ""; time.Sleep(50 * time.Millisecond) {
		if data, err := os.ReadFile(addrPath); err == nil {
			addr = strings.TrimSpace(string(data))
			break
		}
		select {
		case e := <-r.done:
			r.done <- e
			stopped = true
			t.Fatalf("the service exited %v before recording its address; log:\n%s", e, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after a minute; log:\n%s", addrPath, log)
		}
	}
	if !strings.HasPrefix(addr, "tcp://127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("recorded address %q; want the port the service serves", addr)
	}
	for _, name := range []string{ipc.TokenFile, ipc.CertFile} {
		if _, err := os.Stat(filepath.Join(stateDir, name)); err != nil {
			t.Errorf("the service's %s: %v", name, err)
		}
	}

	target, opts, err := ipc.DialOptions(addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := brokerpb.NewBrokerServiceClient(conn).GetStatus(ctx, &brokerpb.GetStatusRequest{})
	if err != nil {
		t.Fatalf("GetStatus from the service at %s with nothing set: %v; log:\n%s", addr, err, log)
	}
	if !strings.EqualFold(filepath.Dir(st.GetStatePath()), stateDir) {
		t.Errorf("the daemon answering at %s keeps its state in %s; want the service's %s", addr, st.GetStatePath(), stateDir)
	}

	stop()
	if _, err := os.Stat(addrPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after the service stopped, %s: %v; want it removed", addrPath, err)
	}
}
