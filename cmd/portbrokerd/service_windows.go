package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/portbroker/portbroker/internal/ipc"
	"github.com/spf13/viper"
	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

const (
	serviceName        = "portbrokerd"
	serviceDisplayName = "portbroker daemon"
	serviceDescription = "Leases local TCP/UDP ports to dev services and reclaims them when their owners exit."

	// serviceWait bounds how long start and stop wait for the service to
	// get there.
	serviceWait = 30 * time.Second
	// stopWaitHint tells the service manager how long a stop may take: the
	// daemon's shutdown grace, with room to spare.
	stopWaitHint = 20 * time.Second

	// Event IDs: InstallAsEventCreate registers EventCreate.exe's message
	// file, which takes IDs 1 to 1000 and prints the message as given.
	eventInfo    = 1
	eventWarning = 2
	eventError   = 3
)

// runAsService runs the daemon under the Windows service manager when it
// started us, and reports false otherwise. The daemon's arguments are the
// service's command line (os.Args, as installed), not the start
// parameters, after the machine-wide defaults serviceArgs adds; its log
// goes to the Application event log under the source portbrokerd.
func runAsService(run runFunc) (int, bool) {
	isService, err := svc.IsWindowsService()
	if err != nil || !isService {
		return 0, false
	}
	var out io.Writer = io.Discard
	if elog, err := eventlog.Open(serviceName); err == nil {
		defer elog.Close()
		out = &eventLogWriter{log: elog}
	}
	stateDir, dirErr := ipc.ServiceStateDir()
	args, ownDir := serviceArgs(os.Args[1:], stateDir)
	h := &serviceHandler{run: run, args: args, out: out}
	if ownDir {
		h.prepare = func() error {
			if dirErr != nil {
				return dirErr
			}
			return secureStateDir(stateDir)
		}
	}
	if err := svc.Run(serviceName, h); err != nil {
		fmt.Fprintf(out, "portbrokerd: run as the %s service: %v\n", serviceName, err)
		return 1, true
	}
	return int(h.code.Load()), true
}

// serviceArgs returns the daemon's arguments as a service: args, the ones
// it was installed with, after --addr ipc.ServiceAddr and --state-dir
// stateDir for whichever of the two args does not set, so that users find
// the one machine-wide daemon and it keeps its state out of SYSTEM's
// profile. ownDir reports whether the state dir is stateDir.
func serviceArgs(args []string, stateDir string) (_ []string, ownDir bool) {
	var out []string
	if !setsFlag(args, "addr") {
		out = append(out, "--addr", ipc.ServiceAddr)
	}
	if !setsFlag(args, "state-dir") {
		out = append(out, "--state-dir", stateDir)
		ownDir = true
	}
	return append(out, args...), ownDir
}

// setsFlag reports whether args set the long flag name.
func setsFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--"+name || strings.HasPrefix(a, "--"+name+"=") {
			return true
		}
	}
	return false
}

// serviceHandler runs the daemon for the service manager.
type serviceHandler struct {
	run  runFunc
	args []string
	out  io.Writer
	// prepare, if set, runs before the daemon; when it fails the service
	// stops with service code 1.
	prepare func() error
	// code is the daemon's exit code once it has returned.
	code atomic.Int32
}

// Execute runs the daemon until it returns or the service manager asks it
// to stop, then waits for it. A daemon that fails reports its exit code as
// the service-specific one, so the service manager sees the failure.
func (h *serviceHandler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	if h.prepare != nil {
		if err := h.prepare(); err != nil {
			fmt.Fprintf(h.out, "portbrokerd: %v\n", err)
			h.code.Store(1)
			return true, 1
		}
	}
	ctx, cancel := context.WithCancel(asService(context.Background()))
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- h.run(ctx, h.args, h.out) }()

	current := svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	status <- current
	for {
		select {
		case code := <-done:
			h.code.Store(int32(code))
			if code != 0 {
				return true, uint32(code)
			}
			return false, 0
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- current
			case svc.Stop, svc.Shutdown:
				if current.State != svc.StopPending {
					current = svc.Status{State: svc.StopPending, WaitHint: uint32(stopWaitHint / time.Millisecond)}
					status <- current
					cancel()
				}
			}
		}
	}
}

// eventLogger is the part of *eventlog.Log the writer uses.
type eventLogger interface {
	Info(eid uint32, msg string) error
	Warning(eid uint32, msg string) error
	Error(eid uint32, msg string) error
}

// eventLogWriter turns the daemon's log lines into events, one per line,
// at the level the line names.
type eventLogWriter struct {
	mu   sync.Mutex
	log  eventLogger
	part []byte // a line not yet ended
}

func (w *eventLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.part = append(w.part, p...)
	var errs []error
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.part[:i]), "\r")
		w.part = w.part[i+1:]
		if line == "" {
			continue
		}
		var err error
		switch eventLevel(line) {
		case eventError:
			err = w.log.Error(eventError, line)
		case eventWarning:
			err = w.log.Warning(eventWarning, line)
		default:
			err = w.log.Info(eventInfo, line)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return len(p), errors.Join(errs...)
}

// eventLevel reads the level of a log line as slog's text or JSON handler
// writes it; the daemon's last words ("portbrokerd: ...") are an error.
func eventLevel(line string) uint32 {
	switch {
	case strings.Contains(line, "level=ERROR"), strings.Contains(line, `"level":"ERROR"`), strings.HasPrefix(line, "portbrokerd: "):
		return eventError
	case strings.Contains(line, "level=WARN"), strings.Contains(line, `"level":"WARN"`):
		return eventWarning
	}
	return eventInfo
}

// serviceCommand installs, uninstalls, starts or stops the service. Every
// verb needs an elevated administrator; an access-denied error says so.
// install alone takes args: daemon flags the service runs with.
func serviceCommand(ctx context.Context, verb string, args ...string) error {
	if len(args) > 0 && verb != "install" {
		return usageError{fmt.Errorf("service %s: takes no arguments, got %q", verb, args)}
	}
	var err error
	switch verb {
	case "install":
		if err := checkDaemonArgs(args); err != nil {
			return usageError{fmt.Errorf("service install: %w", err)}
		}
		err = installService(args)
	case "uninstall":
		err = uninstallService(ctx)
	case "start":
		err = startService(ctx)
	case "stop":
		err = stopService(ctx)
	default:
		return usageError{fmt.Errorf("service %s: unknown command; want install, uninstall, start or stop", verb)}
	}
	switch {
	case errors.Is(err, windows.ERROR_ACCESS_DENIED):
		return fmt.Errorf("service %s: %w; run as administrator", verb, err)
	case err != nil:
		return fmt.Errorf("service %s: %w", verb, err)
	}
	return nil
}

// checkDaemonArgs refuses install arguments the daemon would refuse at
// every start.
func checkDaemonArgs(args []string) error {
	fs := newRootCmd(viper.New(), io.Discard).Flags()
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("daemon flags %q: %w", args, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("daemon flags %q: %q is not a flag; portbrokerd takes flags only", args, fs.Arg(0))
	}
	return nil
}

// installService registers this executable, with args, as an
// automatically started service running as LocalSystem, and the event log
// source its log goes to. Unless args say otherwise, the service serves
// ipc.ServiceAddr with its state in ipc.ServiceStateDir (serviceArgs).
func installService(args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable: %w", err)
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service manager: %w", err)
	}
	defer m.Disconnect()
	if s, err := m.OpenService(serviceName); err == nil {
		s.Close()
		return fmt.Errorf("%s is already installed; uninstall it first", serviceName)
	}
	s, err := m.CreateService(serviceName, exe, mgr.Config{
		DisplayName: serviceDisplayName,
		Description: serviceDescription,
		StartType:   mgr.StartAutomatic,
	}, args...)
	if err != nil {
		return fmt.Errorf("create service: %w", err)
	}
	defer s.Close()
	// A source left by an earlier install that was not uninstalled would
	// make the install below fail; replace it.
	eventlog.Remove(serviceName)
	if err := eventlog.InstallAsEventCreate(serviceName, eventlog.Error|eventlog.Warning|eventlog.Info); err != nil {
		s.Delete()
		return fmt.Errorf("register event log source: %w", err)
	}
	return nil
}

// uninstallService stops the service if it runs, deletes it and its event
// log source.
func uninstallService(ctx context.Context) error {
	m, s, err := openService()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	if err := stop(ctx, s); err != nil {
		return err
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("delete service: %w", err)
	}
	if err := eventlog.Remove(serviceName); err != nil && !errors.Is(err, syscall.ERROR_FILE_NOT_FOUND) {
		return fmt.Errorf("remove event log source: %w", err)
	}
	return nil
}

// startService starts the service and waits until it runs, or says how it
// failed.
func startService(ctx context.Context) error {
	m, s, err := openService()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	if err := s.Start(); err != nil {
		if errors.Is(err, windows.ERROR_SERVICE_ALREADY_RUNNING) {
			return nil
		}
		return err
	}
	st, err := waitState(ctx, s, svc.Running)
	if err != nil {
		return err
	}
	if st.State == svc.Stopped {
		return fmt.Errorf("%s stopped as it started (exit code %d, service code %d); see the Application event log, source %s",
			serviceName, st.Win32ExitCode, st.ServiceSpecificExitCode, serviceName)
	}
	return nil
}

// stopService stops the service and waits until it has stopped. Stopping a
// service that is not running succeeds.
func stopService(ctx context.Context) error {
	m, s, err := openService()
	if err != nil {
		return err
	}
	defer m.Disconnect()
	defer s.Close()
	return stop(ctx, s)
}

func stop(ctx context.Context, s *mgr.Service) error {
	if _, err := s.Control(svc.Stop); err != nil {
		if errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
			return nil
		}
		return err
	}
	_, err := waitState(ctx, s, svc.Stopped)
	return err
}

func openService() (*mgr.Mgr, *mgr.Service, error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the service manager: %w", err)
	}
	s, err := m.OpenService(serviceName)
	if err != nil {
		m.Disconnect()
		if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
			return nil, nil, fmt.Errorf("%s is not installed; run: portbrokerd service install", serviceName)
		}
		return nil, nil, fmt.Errorf("open service %s: %w", serviceName, err)
	}
	return m, s, nil
}

// waitState polls the service until it reaches want or stops, for at most
// serviceWait.
func waitState(ctx context.Context, s *mgr.Service, want svc.State) (svc.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, serviceWait)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := s.Query()
		if err != nil {
			return svc.Status{}, fmt.Errorf("query service %s: %w", serviceName, err)
		}
		if st.State == want || st.State == svc.Stopped {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("%s is still in state %d after %v: %w", serviceName, st.State, serviceWait, ctx.Err())
		case <-tick.C:
		}
	}
}

// stateDirSDDL is the service state dir's security descriptor: owned by
// Administrators, SYSTEM and Administrators alone, inherited by what the
// daemon creates inside.
const stateDirSDDL = "O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

// secureStateDir makes dir, the service's state dir, SYSTEM's and
// Administrators' alone. Whoever writes the lease store decides which
// processes the daemon, running as SYSTEM, stops; and %ProgramData% lets
// every user create a directory, or a file in one an administrator
// created. So a dir, or an entry in it, that another user owns is refused,
// not used; a trusted one gets the protected DACL (and its entries the
// inherited part of it).
func secureStateDir(dir string) error {
	sd, err := windows.SecurityDescriptorFromString(stateDirSDDL)
	if err != nil {
		return fmt.Errorf("state dir %s: security descriptor: %w", dir, err)
	}
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	sa := &windows.SecurityAttributes{SecurityDescriptor: sd}
	sa.Length = uint32(unsafe.Sizeof(*sa))
	err = windows.CreateDirectory(p, sa)
	if err == nil {
		return nil
	}
	if !errors.Is(err, windows.ERROR_ALREADY_EXISTS) && !errors.Is(err, windows.ERROR_FILE_EXISTS) {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	attrs, err := windows.GetFileAttributes(p)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	switch {
	case attrs&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0:
		return fmt.Errorf("state dir %s is a link; the service keeps its state in a plain directory: remove it and start the service again", dir)
	case attrs&windows.FILE_ATTRIBUTE_DIRECTORY == 0:
		return fmt.Errorf("state dir %s is not a directory: remove it and start the service again", dir)
	}
	if err := checkStateOwner(dir, dir); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := checkStateOwner(dir, filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	if err := windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil); err != nil {
		return fmt.Errorf("state dir %s: restrict it to SYSTEM and Administrators: %w", dir, err)
	}
	return nil
}

// checkStateOwner refuses path, in the state dir dir, unless SYSTEM or
// Administrators own it.
func checkStateOwner(dir, path string) error {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("state dir %s: owner of %s: %w", dir, path, err)
	}
	owner, _, err := sd.Owner()
	if err != nil || owner == nil {
		return fmt.Errorf("state dir %s: %s has no owner (%v)", dir, path, err)
	}
	if owner.IsWellKnown(windows.WinLocalSystemSid) || owner.IsWellKnown(windows.WinBuiltinAdministratorsSid) {
		return nil
	}
	return fmt.Errorf("state dir %s: %s is owned by %s, not SYSTEM or Administrators, so another user may have planted it: remove it (or make Administrators its owner) and start the service again",
		dir, path, owner)
}

// asService marks ctx as the Windows service's, for run to tell the daemon.
func asService(ctx context.Context) context.Context {
	return context.WithValue(ctx, serviceKey{}, true)
}
