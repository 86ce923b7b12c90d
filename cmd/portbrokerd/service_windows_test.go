package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/portbroker/portbroker/internal/ipc"
	"golang.org/x/sys/windows"
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

func TestServiceArgs(t *testing.T) {
	const dir = `C:\ProgramData\portbroker`
	tests := []struct {
		args   []string
		want   []string
		ownDir bool
	}{
		{nil, []string{"--addr", ipc.ServiceAddr, "--state-dir", dir}, true},
		{[]string{"--log-level", "debug"}, []string{"--addr", ipc.ServiceAddr, "--state-dir", dir, "--log-level", "debug"}, true},
		{[]string{"--addr", "tcp://127.0.0.1:7000"}, []string{"--state-dir", dir, "--addr", "tcp://127.0.0.1:7000"}, true},
		{[]string{`--state-dir=D:\broker`}, []string{"--addr", ipc.ServiceAddr, `--state-dir=D:\broker`}, false},
		{[]string{"--addr=npipe:////./pipe/pb", "--state-dir", `D:\broker`}, []string{"--addr=npipe:////./pipe/pb", "--state-dir", `D:\broker`}, false},
		// A longer flag is not --addr.
		{[]string{"--config", "--addresses.yaml"}, []string{"--addr", ipc.ServiceAddr, "--state-dir", dir, "--config", "--addresses.yaml"}, true},
	}
	for _, tt := range tests {
		got, ownDir := serviceArgs(tt.args, dir)
		if diff := cmp.Diff(tt.want, got); diff != "" || ownDir != tt.ownDir {
			t.Errorf("serviceArgs(%q): ownDir %v, want %v; args (-want +got):\n%s", tt.args, ownDir, tt.ownDir, diff)
		}
	}
}

// The arguments serviceArgs adds are ones the daemon takes.
func TestServiceArgsParse(t *testing.T) {
	args, _ := serviceArgs([]string{"--log-level", "debug"}, `C:\ProgramData\portbroker`)
	if err := checkDaemonArgs(args); err != nil {
		t.Errorf("checkDaemonArgs(%q) = %v", args, err)
	}
}

func TestServiceCommandArgs(t *testing.T) {
	tests := []struct {
		verb string
		args []string
		want string // in the usage error
	}{
		{"start", []string{"--log-level", "debug"}, "takes no arguments"},
		{"uninstall", []string{"x"}, "takes no arguments"},
		{"install", []string{"--bogus"}, "bogus"},
		{"install", []string{"--log-level"}, "log-level"},
		{"install", []string{"--log-level", "debug", "serve"}, `"serve" is not a flag`},
	}
	for _, tt := range tests {
		// Each is refused before the service manager is reached.
		err := serviceCommand(context.Background(), tt.verb, tt.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("serviceCommand(%s, %q) = %v; want a usage error containing %q", tt.verb, tt.args, err, tt.want)
		}
	}
}

func TestServiceHandlerPrepareFails(t *testing.T) {
	var out strings.Builder
	ran := false
	h := &serviceHandler{
		run:     func(context.Context, []string, io.Writer) int { ran = true; return 0 },
		out:     &out,
		prepare: func() error { return errors.New(`state dir C:\x is owned by S-1-5-21-1-2-3-1002`) },
	}
	status := make(chan svc.Status, 4)
	specific, code := h.Execute(nil, make(chan svc.ChangeRequest), status)
	if !specific || code != 1 || h.code.Load() != 1 {
		t.Errorf("Execute = %v, %d (code %d); want the service-specific code 1", specific, code, h.code.Load())
	}
	if ran {
		t.Error("the daemon ran after prepare failed")
	}
	if got := out.String(); !strings.HasPrefix(got, "portbrokerd: ") || !strings.Contains(got, "S-1-5-21-1-2-3-1002") {
		t.Errorf("log = %q; want the prepare error as the daemon's last words", got)
	}
	if eventLevel(strings.TrimSpace(out.String())) != eventError {
		t.Errorf("log %q is not an error event", out.String())
	}
}

// fileAllAccess is FA, what GENERIC_ALL maps to for files.
const fileAllAccess = windows.STANDARD_RIGHTS_ALL | 0x1ff

// makeWithSDDL creates a directory, or an empty file, at path with sddl.
func makeWithSDDL(t *testing.T, path, sddl string, dir bool) {
	t.Helper()
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		t.Fatal(err)
	}
	sa := &windows.SecurityAttributes{SecurityDescriptor: sd}
	sa.Length = uint32(unsafe.Sizeof(*sa))
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		t.Fatal(err)
	}
	if dir {
		err = windows.CreateDirectory(p, sa)
	} else {
		var h windows.Handle
		h, err = windows.CreateFile(p, windows.GENERIC_WRITE, 0, sa, windows.CREATE_NEW, windows.FILE_ATTRIBUTE_NORMAL, 0)
		if err == nil {
			windows.CloseHandle(h)
		}
	}
	if err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
}

func TestSecureStateDir(t *testing.T) {
	if os.Getenv("PORTBROKER_UNDER_WINE") != "" {
		t.Skip("Wine does not keep the security descriptor a file is created with, nor one set later")
	}
	if !windows.GetCurrentProcessToken().IsElevated() {
		t.Skip("the service state dir is owned by Administrators: only an elevated administrator (as on windows-latest) can make one")
	}
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		t.Fatal(err)
	}
	user := u.User.Sid.String()
	const (
		system = "S-1-5-18"
		admins = "S-1-5-32-544"
	)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string // in the error; "" for success
	}{
		{"new", func(*testing.T, string) {}, ""},
		{"an administrator's, open to everyone", func(t *testing.T, dir string) {
			makeWithSDDL(t, dir, "O:BAD:(A;OICI;FA;;;WD)", true)
			makeWithSDDL(t, filepath.Join(dir, "leases.db"), "O:BAD:(A;;FA;;;WD)", false)
		}, ""},
		{"a user's", func(t *testing.T, dir string) {
			makeWithSDDL(t, dir, "O:"+user+"D:(A;OICI;FA;;;WD)", true)
		}, "is owned by " + user},
		{"a user's store in it", func(t *testing.T, dir string) {
			makeWithSDDL(t, dir, "O:BAD:(A;OICI;FA;;;WD)", true)
			makeWithSDDL(t, filepath.Join(dir, "leases.db"), "O:"+user+"D:(A;;FA;;;WD)", false)
		}, `leases.db is owned by ` + user},
		{"a file", func(t *testing.T, dir string) {
			makeWithSDDL(t, dir, "O:BAD:(A;;FA;;;WD)", false)
		}, "is not a directory"},
		{"a link", func(t *testing.T, dir string) {
			target := filepath.Join(filepath.Dir(dir), "target")
			makeWithSDDL(t, target, "O:BAD:(A;OICI;FA;;;WD)", true)
			if err := os.Symlink(target, dir); err != nil {
				t.Skipf("symlink: %v", err)
			}
		}, "is a link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "portbroker")
			tt.setup(t, dir)
			err := secureStateDir(dir)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), dir) {
					t.Errorf("secureStateDir = %v; want an error naming %s and containing %q", err, dir, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("secureStateDir: %v", err)
			}
			sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
			if err != nil {
				t.Fatal(err)
			}
			if owner, _, err := sd.Owner(); err != nil || owner.String() != admins {
				t.Errorf("owner of %s = %v, %v; want Administrators", sd, owner, err)
			}
			if ctl, _, err := sd.Control(); err != nil || ctl&windows.SE_DACL_PROTECTED == 0 {
				t.Errorf("DACL of %s is not protected (%v)", sd, err)
			}
			dacl, _, err := sd.DACL()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]uint32{}
			for i := range uint32(dacl.AceCount) {
				var ace *windows.ACCESS_ALLOWED_ACE
				if err := windows.GetAce(dacl, i, &ace); err != nil {
					t.Fatal(err)
				}
				sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
				got[sid.String()] |= uint32(ace.Mask)
			}
			if diff := cmp.Diff(map[string]uint32{system: fileAllAccess, admins: fileAllAccess}, got); diff != "" {
				t.Errorf("allow entries of %s (-want +got):\n%s", sd, diff)
			}
		})
	}
}
