package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/windows/svc"
)

func TestRunAsServiceOutsideServiceManager(t *testing.T) {
	ran := false
	code, ok := runAsService(func(context.Context, []string, io.Writer) int {
		ran = true
		return 0
	})
	if ok || ran || code != 0 {
		t.Errorf("runAsService in a test = %d, %v (daemon ran: %v); want false, not run", code, ok, ran)
	}
}

func TestServiceCommandUnknownVerb(t *testing.T) {
	err := serviceCommand(context.Background(), "restart")
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "restart") || !strings.Contains(err.Error(), "install, uninstall, start or stop") {
		t.Errorf("serviceCommand(restart) = %v, want a usage error naming the verbs", err)
	}
}

// serviceRun drives a serviceHandler as the service manager would.
type serviceRun struct {
	req    chan svc.ChangeRequest
	status chan svc.Status
	done   chan [2]uint32 // svcSpecific (0/1), exit code
}

func startServiceHandler(t *testing.T, run runFunc) *serviceRun {
	t.Helper()
	h := &serviceHandler{run: run, args: []string{"--addr", "tcp://127.0.0.1:0"}, out: io.Discard}
	r := &serviceRun{req: make(chan svc.ChangeRequest), status: make(chan svc.Status), done: make(chan [2]uint32, 1)}
	go func() {
		specific, code := h.Execute(nil, r.req, r.status)
		s := uint32(0)
		if specific {
			s = 1
		}
		r.done <- [2]uint32{s, code}
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		case <-time.After(time.Minute):
			t.Error("Execute did not return")
		}
	})
	return r
}

func (r *serviceRun) next(t *testing.T) svc.Status {
	t.Helper()
	select {
	case s := <-r.status:
		return s
	case <-time.After(time.Minute):
		t.Fatal("no status reported")
	}
	panic("unreachable")
}

func (r *serviceRun) exit(t *testing.T) [2]uint32 {
	t.Helper()
	select {
	case e := <-r.done:
		r.done <- e // for the cleanup
		return e
	case <-time.After(time.Minute):
		t.Fatal("Execute did not return")
	}
	panic("unreachable")
}

func TestServiceHandlerStop(t *testing.T) {
	for _, cmd := range []svc.Cmd{svc.Stop, svc.Shutdown} {
		t.Run(fmt.Sprint(cmd), func(t *testing.T) {
			var gotArgs []string
			stopped := make(chan struct{})
			r := startServiceHandler(t, func(ctx context.Context, args []string, _ io.Writer) int {
				gotArgs = args
				<-ctx.Done()
				close(stopped)
				return 0
			})
			running := svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
			if diff := cmp.Diff([]svc.Status{{State: svc.StartPending}, running}, []svc.Status{r.next(t), r.next(t)}); diff != "" {
				t.Errorf("start statuses (-want +got):\n%s", diff)
			}
			r.req <- svc.ChangeRequest{Cmd: svc.Interrogate}
			if got := r.next(t); got != running {
				t.Errorf("interrogated status %+v, want %+v", got, running)
			}
			r.req <- svc.ChangeRequest{Cmd: cmd}
			if got := r.next(t); got.State != svc.StopPending || got.WaitHint == 0 {
				t.Errorf("status after %v: %+v, want StopPending with a wait hint", cmd, got)
			}
			if got := r.exit(t); got != [2]uint32{0, 0} {
				t.Errorf("Execute returned %v, want a clean exit", got)
			}
			select {
			case <-stopped:
			default:
				t.Error("Execute returned before the daemon stopped")
			}
			if diff := cmp.Diff([]string{"--addr", "tcp://127.0.0.1:0"}, gotArgs); diff != "" {
				t.Errorf("daemon args (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServiceHandlerDaemonFails(t *testing.T) {
	r := startServiceHandler(t, func(context.Context, []string, io.Writer) int { return 2 })
	r.next(t) // StartPending
	// The daemon may fail before Running is reported; the report must not
	// block its exit.
	go func() {
		for range r.status {
		}
	}()
	if got := r.exit(t); got != [2]uint32{1, 2} {
		t.Errorf("Execute returned %v, want the daemon's exit code 2 as a service-specific code", got)
	}
	close(r.status)
}

// fakeEventLog records events.
type fakeEventLog struct {
	mu     sync.Mutex
	events []string
	fail   error
}

func (f *fakeEventLog) add(level string, eid uint32, msg string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, fmt.Sprintf("%s %d %s", level, eid, msg))
	return f.fail
}

func (f *fakeEventLog) Info(eid uint32, msg string) error    { return f.add("info", eid, msg) }
func (f *fakeEventLog) Warning(eid uint32, msg string) error { return f.add("warning", eid, msg) }
func (f *fakeEventLog) Error(eid uint32, msg string) error   { return f.add("error", eid, msg) }

func TestEventLogWriter(t *testing.T) {
	log := &fakeEventLog{}
	w := &eventLogWriter{log: log}
	writes := []string{
		"time=2025-01-01T00:00:00Z level=INFO msg=\"serving\" addr=tcp://127.0.0.1:7000\n",
		"time=2025-01-01T00:00:01Z level=WARN msg=\"slow store\"\r\n",
		`{"time":"2025-01-01T00:00:02Z","level":"ERROR","msg":"store failed"}` + "\n",
		"\n",
		"portbrokerd: listen: address in use\npart of ",
		"a line\n",
		"no newline yet",
	}
	for _, s := range writes {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	want := []string{
		"info 1 time=2025-01-01T00:00:00Z level=INFO msg=\"serving\" addr=tcp://127.0.0.1:7000",
		"warning 2 time=2025-01-01T00:00:01Z level=WARN msg=\"slow store\"",
		`error 3 {"time":"2025-01-01T00:00:02Z","level":"ERROR","msg":"store failed"}`,
		"error 3 portbrokerd: listen: address in use",
		"info 1 part of a line",
	}
	if diff := cmp.Diff(want, log.events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	log.fail = errors.New("event log full")
	if _, err := w.Write([]byte("\n")); err == nil || !strings.Contains(err.Error(), "event log full") {
		t.Errorf("Write with a failing event log = %v, want its error", err)
	}
}
