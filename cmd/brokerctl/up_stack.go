package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portbroker/portbroker/client"
	"github.com/portbroker/portbroker/internal/project"
)

// readersGrace bounds the wait for the last output of a stopped stack:
// a process that left the service's group may hold its pipe open.
const readersGrace = 2 * time.Second

// heldService is a service whose port is leased but which has not started
// its command yet (on Unix a shim waiting to exec, on Windows nothing but
// up's own lease).
type heldService interface {
	lease() *client.Lease
	// launch starts the command; the returned lease is the service's own.
	launch(ctx context.Context, cl *client.Client, spec *launchSpec) (upProc, *client.Lease, error)
	// abort gives up on the service and ends its lease.
	abort(ctx context.Context)
}

// upProc is a started service.
type upProc interface {
	child
	// kill stops the service's whole group or job at once.
	kill() error
}

// launchSpec is what a held service becomes.
type launchSpec struct {
	name    string
	command string // shell command line, templates expanded
	env     []string
	dir     string
}

// stackService is one service of a running stack; only the stack's loop
// touches it.
type stackService struct {
	*project.Service
	index int
	port  int
	held  heldService
	lease *client.Lease
	proc  upProc
	// pipe carries the service's output: r to up, w to the service.
	r, w *os.File

	launched, exited, ready, done bool
	stopWatch                     context.CancelFunc
	force                         *time.Timer
}

type eventKind int

const (
	evReady eventKind = iota
	evNotReady
	evExited
	evForce
)

type stackEvent struct {
	svc  *stackService
	kind eventKind
	code int
	err  error
}

// stack runs one brokerctl up.
type stack struct {
	c         *cli
	p         *project.Project
	ns        string
	opts      upOptions
	overrides map[string]int
	svcs      []*stackService
	out       *prefixer
	events    chan stackEvent

	stopping bool
	failure  error
	// readers and watchers are the goroutines that read output and check
	// readiness; the stack waits for both before it returns.
	readers, watchers sync.WaitGroup
}

func newStack(c *cli, p *project.Project, services []*project.Service, ns string, opts upOptions, overrides map[string]int) *stack {
	st := &stack{c: c, p: p, ns: ns, opts: opts, overrides: overrides}
	names := []string{"up"}
	for i, s := range services {
		st.svcs = append(st.svcs, &stackService{Service: s, index: i})
		names = append(names, s.Name)
	}
	st.out = newPrefixer(c.stdout, names, useColour(c.stdout))
	// Each service sends at most one readiness verdict, one exit and one
	// forced stop, so the loop never blocks a sender.
	st.events = make(chan stackEvent, 4*len(st.svcs)+4)
	return st
}

func (st *stack) say(format string, a ...any) { st.out.line("up", -1, fmt.Sprintf(format, a...)) }

func (st *stack) run(ctx context.Context) error {
	timeout, err := st.c.timeout()
	if err != nil {
		return err
	}
	dialCtx, cancel := context.WithTimeout(ctx, timeout)
	cl, err := st.c.connect(dialCtx)
	cancel()
	if err != nil {
		return err
	}
	defer cl.Close()

	// Catch signals before any service exists, so none is lost.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)

	// From here on signals are the loop's to handle; ctx ends with the
	// first one, which must not cut short the stop it asks for.
	bg := context.WithoutCancel(ctx)
	if err := st.hold(ctx, cl, timeout); err != nil {
		st.abortAll(bg)
		st.finish()
		return err
	}
	st.say("project %s (namespace %s), %d services from %s", st.projectName(), st.ns, len(st.svcs), st.p.File)
	ports := map[string]int{}
	for _, s := range st.svcs {
		ports[s.Name] = s.port
	}
	specs := map[*stackService]*launchSpec{}
	for _, s := range st.svcs {
		spec, err := st.spec(s, ports)
		if err != nil {
			st.abortAll(bg)
			st.finish()
			return err
		}
		specs[s] = spec
	}

	st.launchReady(bg, cl, specs)
	for !st.allDone() {
		select {
		case sig := <-sigs:
			if st.stopping {
				st.say("%v again: killing what is left", sig)
				st.killAll()
				continue
			}
			st.say("%v: stopping every service", sig)
			st.stop(bg, sig)
		case ev := <-st.events:
			st.handle(bg, cl, ev, specs)
		}
	}
	st.finish()
	if st.failure != nil {
		return st.failure
	}
	st.say("stopped; leases released")
	return nil
}

func (st *stack) projectName() string {
	if st.p.Name != "" {
		return st.p.Name
	}
	return st.ns
}

// hold leases every service's port before any command starts.
func (st *stack) hold(ctx context.Context, cl *client.Client, timeout time.Duration) error {
	for _, s := range st.svcs {
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("up %s: output pipe: %w", s.Name, err)
		}
		s.r, s.w = r, w
		st.readers.Add(1)
		go st.read(s)

		port, strict := s.Port, s.Strict
		if st.opts.dynamic {
			port, strict = 0, false
		}
		if p, ok := st.overrides[s.Name]; ok {
			port = p
		}
		opts := func(owner, launcher int, port int, strict bool) []client.AcquireOption {
			o := []client.AcquireOption{client.WithNamespace(st.ns), client.WithOwnerPID(owner), client.WithProtocol(protocolOf(s.Protocol)), client.WithReclaim()}
			if launcher != 0 {
				o = append(o, client.WithLauncherPID(launcher))
			}
			if port != 0 {
				o = append(o, client.WithPort(port))
			}
			if strict {
				o = append(o, client.WithStrict())
			}
			return o
		}
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		held, err := st.c.holdService(callCtx, cl, s, w, func(owner, launcher int) []client.AcquireOption {
			return opts(owner, launcher, port, strict)
		})
		cancel()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				err = fmt.Errorf("interrupted before the stack started: %w", context.Cause(ctx))
			case errors.Is(err, client.ErrNameTaken):
				err = fmt.Errorf("%w; is project %s already up? Stop that one, or run this one as another project with -p NAME", err, st.ns)
			}
			return fmt.Errorf("up %s: %w", s.Name, err)
		}
		s.held, s.lease = held, held.lease()
		s.port = s.lease.Port
		if r := s.lease.FallbackReason; r != "" {
			asked := "its last port"
			if port != 0 {
				asked = "port " + strconv.Itoa(port)
			}
			st.say("%s: %s is busy (%s); using %d", s.Name, asked, r, s.port)
		}
	}
	return nil
}

func protocolOf(p project.Protocol) client.Protocol {
	switch p {
	case project.UDP:
		return client.UDP
	case project.TCPUDP:
		return client.TCPUDP
	}
	return client.TCP
}

// spec is what s runs, with every port of the stack known.
func (st *stack) spec(s *stackService, ports map[string]int) (*launchSpec, error) {
	command, err := project.Expand(s.Run, s.Name, ports)
	if err != nil {
		return nil, fmt.Errorf("%s: service %s: run: %w", st.p.File, s.Name, err)
	}
	drop := []string{"PORT", "PORTBROKER_PORT", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}
	for _, o := range st.svcs {
		drop = append(drop, project.EnvName(o.Name))
	}
	env := portEnv(withoutEnv(os.Environ(), drop...), s.port)
	for _, o := range st.svcs {
		env = append(env, project.EnvName(o.Name)+"="+strconv.Itoa(o.port))
	}
	for _, e := range s.Env {
		v, err := project.Expand(e.Value, s.Name, ports)
		if err != nil {
			return nil, fmt.Errorf("%s: service %s: env %s: %w", st.p.File, s.Name, e.Key, err)
		}
		env = append(withoutEnv(env, e.Key), e.Key+"="+v)
	}
	return &launchSpec{name: s.Name, command: command, env: env, dir: s.Cwd}, nil
}

// launchReady starts every held service whose after services are ready.
func (st *stack) launchReady(ctx context.Context, cl *client.Client, specs map[*stackService]*launchSpec) {
	for _, s := range st.svcs {
		if st.stopping {
			return
		}
		if s.launched || s.done || !st.depsReady(s) {
			continue
		}
		proc, lease, err := s.held.launch(ctx, cl, specs[s])
		s.w.Close()
		if err != nil {
			s.done = true
			st.fail(ctx, fmt.Errorf("%s did not start: %w", s.Name, err))
			return
		}
		s.launched, s.proc, s.lease = true, proc, lease
		go func() {
			code, err := proc.wait()
			st.events <- stackEvent{svc: s, kind: evExited, code: code, err: err}
		}()
		watchCtx, stop := context.WithCancel(ctx)
		s.stopWatch = stop
		st.watchers.Add(1)
		go func() {
			defer st.watchers.Done()
			st.watchReady(watchCtx, s)
		}()
	}
}

func (st *stack) depsReady(s *stackService) bool {
	for _, dep := range s.After {
		if d := st.service(dep); d != nil && !d.ready {
			return false
		}
	}
	return true
}

func (st *stack) service(name string) *stackService {
	for _, s := range st.svcs {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (st *stack) handle(ctx context.Context, cl *client.Client, ev stackEvent, specs map[*stackService]*launchSpec) {
	s := ev.svc
	switch ev.kind {
	case evReady:
		if s.ready || s.exited {
			return
		}
		s.ready = true
		if s.stopWatch != nil {
			s.stopWatch()
		}
		st.say("%s ready: %s", s.Name, st.address(s))
		if !st.stopping {
			st.launchReady(ctx, cl, specs)
		}
	case evNotReady:
		if s.ready || s.exited || st.stopping {
			return
		}
		st.say("%s: not ready after %v: %v", s.Name, s.Ready.Timeout, ev.err)
		for _, w := range st.svcs {
			if !w.launched && !w.done && w.dependsOn(s.Name) {
				st.fail(ctx, fmt.Errorf("%s waits for %s, which was not ready within %v: %w", w.Name, s.Name, s.Ready.Timeout, ev.err))
				return
			}
		}
	case evExited:
		s.exited, s.done = true, true
		if s.stopWatch != nil {
			s.stopWatch()
		}
		if s.force != nil {
			s.force.Stop()
		}
		if err := releaseAfterExit(ctx, s.lease); err != nil {
			st.say("%s: release lease %s: %v", s.Name, s.lease.ID, err)
		}
		how := fmt.Sprintf("exited with code %d", ev.code)
		if ev.err != nil {
			how = fmt.Sprintf("was lost: %v", ev.err)
		}
		if st.stopping {
			st.say("%s %s", s.Name, how)
			return
		}
		if !st.opts.keepGoing {
			st.say("%s %s; stopping the others", s.Name, how)
			st.fail(ctx, fmt.Errorf("up: %s %s", s.Name, how))
			return
		}
		st.say("%s %s", s.Name, how)
		if (ev.code != 0 || ev.err != nil) && st.failure == nil {
			// The others run on, but up's exit says one failed.
			st.failure = fmt.Errorf("up: %s %s", s.Name, how)
		}
		if s.ready {
			return
		}
		// Those waiting for it would wait forever.
		for _, w := range st.svcs {
			if !w.launched && !w.done && w.dependsOn(s.Name) {
				st.say("%s will not start: %s exited before it was ready", w.Name, s.Name)
				w.held.abort(ctx)
				w.w.Close()
				w.done = true
			}
		}
	case evForce:
		if !s.exited {
			st.say("%s did not stop within %v; killing it", s.Name, s.Grace)
			if err := s.proc.kill(); err != nil {
				st.say("%s: kill: %v", s.Name, err)
			}
		}
	}
}

func (s *stackService) dependsOn(name string) bool {
	for _, d := range s.After {
		if d == name {
			return true
		}
	}
	return false
}

// address is where a ready service is reached.
func (st *stack) address(s *stackService) string {
	if s.Protocol == project.UDP {
		return fmt.Sprintf("port %d/udp", s.port)
	}
	return fmt.Sprintf("http://localhost:%d", s.port)
}

// fail records the stack's first failure and stops it.
func (st *stack) fail(ctx context.Context, err error) {
	if st.failure == nil {
		st.failure = err
	}
	st.stop(ctx, stopSignal)
}

// stop ends every service: held ones at once, running ones with sig and
// by force after their grace.
func (st *stack) stop(ctx context.Context, sig os.Signal) {
	if st.stopping {
		return
	}
	st.stopping = true
	for _, s := range st.svcs {
		switch {
		case s.done:
		case !s.launched:
			s.held.abort(ctx)
			s.w.Close()
			s.done = true
		case !s.exited:
			if err := s.proc.signal(sig); err != nil {
				st.say("%s: pass on %v: %v", s.Name, sig, err)
			}
			s.force = time.AfterFunc(s.Grace, func() { st.events <- stackEvent{svc: s, kind: evForce} })
		}
	}
}

func (st *stack) killAll() {
	for _, s := range st.svcs {
		if s.launched && !s.exited {
			if s.force != nil {
				s.force.Stop()
			}
			if err := s.proc.kill(); err != nil {
				st.say("%s: kill: %v", s.Name, err)
			}
		}
	}
}

// abortAll gives up on a stack that never started.
func (st *stack) abortAll(ctx context.Context) {
	for _, s := range st.svcs {
		if s.held != nil {
			s.held.abort(ctx)
		}
		if s.w != nil {
			s.w.Close()
		}
		s.done = true
	}
}

func (st *stack) allDone() bool {
	for _, s := range st.svcs {
		if !s.done {
			return false
		}
	}
	return true
}

// finish waits for the readiness checks and, for a bounded time, for the
// last output.
func (st *stack) finish() {
	st.watchers.Wait()
	done := make(chan struct{})
	go func() {
		st.readers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(readersGrace):
		// Something outside the services' groups holds a pipe; closing
		// our ends ends the reads.
		for _, s := range st.svcs {
			if s.r != nil {
				s.r.Close()
			}
		}
		<-done
	}
}

// maxLine is the longest line passed on whole; longer ones are split.
const maxLine = 64 * 1024

// read passes s's output on, line by line, and tells when a line matches
// its ready: log check.
func (st *stack) read(s *stackService) {
	defer st.readers.Done()
	defer s.r.Close()
	br := bufio.NewReaderSize(s.r, maxLine)
	matched := false
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			line := strings.TrimRight(string(chunk), "\r\n")
			st.out.line(s.Name, s.index, line)
			if re := s.Ready.Log; re != nil && !matched && re.MatchString(line) {
				matched = true
				st.events <- stackEvent{svc: s, kind: evReady}
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF), errors.Is(err, os.ErrClosed):
			return
		default:
			st.say("%s: output: %v", s.Name, err)
			return
		}
	}
}
