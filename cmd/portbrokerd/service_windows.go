package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
// service's command line (os.Args), not the start parameters, and its log
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
	h := &serviceHandler{run: run, args: os.Args[1:], out: out}
	if err := svc.Run(serviceName, h); err != nil {
		fmt.Fprintf(out, "portbrokerd: run as the %s service: %v\n", serviceName, err)
		return 1, true
	}
	return int(h.code.Load()), true
}

// serviceHandler runs the daemon for the service manager.
type serviceHandler struct {
	run  runFunc
	args []string
	out  io.Writer
	// code is the daemon's exit code once it has returned.
	code atomic.Int32
}

// Execute runs the daemon until it returns or the service manager asks it
// to stop, then waits for it. A daemon that fails reports its exit code as
// the service-specific one, so the service manager sees the failure.
func (h *serviceHandler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	ctx, cancel := context.WithCancel(context.Background())
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
func serviceCommand(ctx context.Context, verb string) error {
	var err error
	switch verb {
	case "install":
		err = installService()
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

// installService registers this executable, with no arguments, as an
// automatically started service running as LocalSystem, and the event log
// source its log goes to.
func installService() error {
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
	})
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
