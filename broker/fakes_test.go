package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// memStore is a Store in memory; failNext makes the next write fail.
type memStore struct {
	mu        sync.Mutex
	leases    map[string]Lease
	lastPorts map[NameKey]uint16
	failNext  error
	writes    int
}

func newMemStore() *memStore {
	return &memStore{leases: map[string]Lease{}, lastPorts: map[NameKey]uint16{}}
}

func (s *memStore) Load(context.Context) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return State{Leases: slices.Collect(maps.Values(s.leases)), LastPorts: maps.Clone(s.lastPorts)}, nil
}

func (s *memStore) Put(_ context.Context, l Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failNext; err != nil {
		s.failNext = nil
		return err
	}
	s.writes++
	s.leases[l.ID] = l
	s.lastPorts[l.Key()] = l.Port
	return nil
}

func (s *memStore) Delete(_ context.Context, ids ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failNext; err != nil {
		s.failNext = nil
		return err
	}
	s.writes++
	for _, id := range ids {
		delete(s.leases, id)
	}
	return nil
}

func (s *memStore) snapshot() map[string]Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.leases)
}

// fakeProcs is a process table the test edits. Like a kernel, it tells
// the watchers subscribed to it when a process ends (killed, or its PID
// reused).
type fakeProcs struct {
	mu       sync.Mutex
	procs    map[int]Process
	watchers map[*fakeWatcher]bool
	next     int // for SpawnForTest
}

func newFakeProcs(pids ...int) *fakeProcs {
	f := &fakeProcs{procs: map[int]Process{}, watchers: map[*fakeWatcher]bool{}}
	for _, pid := range pids {
		f.spawn(pid)
	}
	return f
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (f *fakeProcs) spawn(pid int) Process {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := Process{PID: pid, StartTime: epoch.Add(time.Duration(pid) * time.Second), Name: fmt.Sprintf("proc%d", pid), User: "1000"}
	f.procs[pid] = p
	return p
}

func (f *fakeProcs) kill(pid int) {
	f.mu.Lock()
	old, ok := f.procs[pid]
	delete(f.procs, pid)
	f.mu.Unlock()
	if ok {
		f.ended(old)
	}
}

// reuse replaces pid with a new process that has another start time.
func (f *fakeProcs) reuse(pid int) Process {
	f.mu.Lock()
	old, ok := f.procs[pid]
	p := old
	p.StartTime = p.StartTime.Add(time.Hour)
	p.Name = "impostor"
	f.procs[pid] = p
	f.mu.Unlock()
	if ok {
		f.ended(old)
	}
	return p
}

// ended tells the subscribed watchers that p is gone. It runs without
// f.mu, since a watcher's Add looks processes up under its own lock.
func (f *fakeProcs) ended(p Process) {
	f.mu.Lock()
	ws := slices.Collect(maps.Keys(f.watchers))
	f.mu.Unlock()
	for _, w := range ws {
		w.ended(p)
	}
}

func (f *fakeProcs) Lookup(pid int) (Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.procs[pid]
	if !ok {
		return Process{}, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	return p, nil
}

// fakeProber fails the ports in busy and counts probes per port.
type fakeProber struct {
	mu     sync.Mutex
	busy   map[uint16]bool
	probes map[uint16]int
}

func newFakeProber(busy ...uint16) *fakeProber {
	p := &fakeProber{busy: map[uint16]bool{}, probes: map[uint16]int{}}
	for _, port := range busy {
		p.busy[port] = true
	}
	return p
}

func (p *fakeProber) Probe(port uint16, _ Protocol) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probes[port]++
	if p.busy[port] {
		return &BindError{Port: port, Class: BindInUse, Network: "tcp4", Detail: "address already in use"}
	}
	return nil
}

func (p *fakeProber) setBusy(port uint16, busy bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.busy[port] = busy
}

func (p *fakeProber) count(port uint16) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.probes[port]
}

// fakeWatcher is an exit watcher over a fakeProcs, as strict as the real
// ones (it runs their contract, internal/exitwatchtest): a duplicate Add is
// one watch, each exit is reported once and only for a watched process, a
// process that has already exited is reported at Add, and delivery never
// blocks the process table.
type fakeWatcher struct {
	procs *fakeProcs
	out   chan Process
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}

	mu      sync.Mutex
	watched map[procKey]Process
	queue   []Process
	closed  bool
	// refused makes Add fail for these PIDs, as the real watchers refuse a
	// thread id or fail at the fd limit.
	refused map[int]error
}

func (w *fakeWatcher) refuse(pid int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.refused[pid] = err
}

func newFakeWatcher(procs *fakeProcs) *fakeWatcher {
	w := &fakeWatcher{
		procs:   procs,
		out:     make(chan Process),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		watched: map[procKey]Process{},
		refused: map[int]error{},
	}
	procs.mu.Lock()
	procs.watchers[w] = true
	procs.mu.Unlock()
	go w.deliver()
	return w
}

func (w *fakeWatcher) Add(p Process) error {
	if p.PID <= 0 {
		return fieldErr("pid", "%d: must be positive", p.PID)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("fake watcher: %w", ErrClosed)
	}
	if _, ok := w.watched[keyOf(p)]; ok {
		return nil
	}
	if err := w.refused[p.PID]; err != nil {
		return fmt.Errorf("watch %v: %w", p, err)
	}
	if cur, err := w.procs.Lookup(p.PID); err != nil || !cur.Same(p) {
		w.pushLocked(p)
		return nil
	}
	w.watched[keyOf(p)] = p
	return nil
}

func (w *fakeWatcher) Remove(p Process) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.watched, keyOf(p))
}

// ended reports p if it is watched, once.
func (w *fakeWatcher) ended(p Process) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wp, ok := w.watched[keyOf(p)]; ok {
		delete(w.watched, keyOf(p))
		w.pushLocked(wp)
	}
}

func (w *fakeWatcher) pushLocked(p Process) {
	if w.closed {
		return
	}
	w.queue = append(w.queue, p)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *fakeWatcher) deliver() {
	defer close(w.done)
	defer close(w.out)
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.mu.Unlock()
			select {
			case <-w.wake:
				continue
			case <-w.stop:
				return
			}
		}
		p := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()
		select {
		case w.out <- p:
		case <-w.stop:
			return
		}
	}
}

func (w *fakeWatcher) Exits() <-chan Process { return w.out }

func (w *fakeWatcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	w.procs.mu.Lock()
	delete(w.procs.watchers, w)
	w.procs.mu.Unlock()
	close(w.stop)
	<-w.done
	return nil
}

func (w *fakeWatcher) isWatched(p Process) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.watched[keyOf(p)]
	return ok
}

// exit ends p, as a kill would; the watcher reports it if watched.
func (w *fakeWatcher) exit(p Process) {
	w.procs.mu.Lock()
	cur, ok := w.procs.procs[p.PID]
	if ok && cur.Same(p) {
		delete(w.procs.procs, p.PID)
	}
	w.procs.mu.Unlock()
	w.procs.ended(p)
}

type rig struct {
	t       *testing.T
	b       *Broker
	store   *memStore
	procs   *fakeProcs
	prober  *fakeProber
	watcher *fakeWatcher
}

// smallPool is 100 ports, none of them reserved.
var smallPool = PoolConfig{Range: PortRange{First: 20000, Last: 20099}, Ephemeral: PortRange{First: 32768, Last: 60999}}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	procs := newFakeProcs(100, 101, 102, 103)
	r := &rig{t: t, store: newMemStore(), procs: procs, prober: newFakeProber(), watcher: newFakeWatcher(procs)}
	r.open(cfg)
	return r
}

func (r *rig) open(cfg Config) {
	r.t.Helper()
	if cfg.Pool.Range == (PortRange{}) {
		cfg.Pool = smallPool
	}
	b, err := Open(context.Background(), cfg, Deps{Store: r.store, Processes: r.procs, Prober: r.prober, Watcher: r.watcher})
	if err != nil {
		r.t.Fatalf("Open: %v", err)
	}
	r.b = b
	r.t.Cleanup(func() {
		if err := b.Check(); err != nil {
			r.t.Errorf("broker invariants: %v", err)
		}
		b.Close()
	})
}

// reopen closes the broker and opens a new one on the same store, as a
// daemon restart does.
func (r *rig) reopen(cfg Config) {
	r.t.Helper()
	r.b.Close()
	r.watcher = newFakeWatcher(r.procs)
	r.open(cfg)
}

func (r *rig) acquire(req AcquireRequest) AcquireResult {
	r.t.Helper()
	if req.OwnerPID == 0 {
		req.OwnerPID = 100
	}
	res, err := r.b.Acquire(context.Background(), req)
	if err != nil {
		r.t.Fatalf("Acquire(%+v): %v", req, err)
	}
	return res
}

func mustErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

// fakeHost adds process trees, port holders and a killer to fakeProcs.
// A port is busy to its prober while a live process holds it.
type fakeHost struct {
	*fakeProcs
	info     map[int]ProcessInfo // extra facts by pid
	parent   map[int]int
	holds    map[uint16][]int
	stubborn map[int]bool // ignores Terminate
	signals  []string
	sigLog   []signalRecord
}

// signalRecord is one signal with the (fake) time it was sent, so tests can
// tell that no forced stop came before its grace.
type signalRecord struct {
	proc Process
	sig  string
	at   time.Time
}

func newFakeHost(procs *fakeProcs) *fakeHost {
	return &fakeHost{fakeProcs: procs, info: map[int]ProcessInfo{}, parent: map[int]int{}, holds: map[uint16][]int{}, stubborn: map[int]bool{}}
}

// spawnChild starts pid under parent (0 for none).
func (h *fakeHost) spawnChild(pid, parent int) Process {
	p := h.spawn(pid)
	h.mu.Lock()
	h.parent[pid] = parent
	h.mu.Unlock()
	return p
}

func (h *fakeHost) Inspect(pid int) (ProcessInfo, error) {
	p, err := h.Lookup(pid)
	if err != nil {
		return ProcessInfo{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	info := h.info[pid]
	info.Process = p
	info.PPID = h.parent[pid]
	_, info.ParentAlive = h.procs[info.PPID]
	return info, nil
}

func (h *fakeHost) Descendants(p Process) ([]ProcessInfo, error) {
	live, err := h.Lookup(p.PID)
	if err != nil || !live.Same(p) {
		return nil, ErrNoProcess
	}
	var out []ProcessInfo
	queue := []int{p.PID}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		h.mu.Lock()
		var kids []int
		for pid, par := range h.parent {
			if _, ok := h.procs[pid]; ok && par == next {
				kids = append(kids, pid)
			}
		}
		h.mu.Unlock()
		slices.Sort(kids)
		for _, k := range kids {
			info, err := h.Inspect(k)
			if err == nil {
				out = append(out, info)
				queue = append(queue, k)
			}
		}
	}
	return out, nil
}

func (h *fakeHost) Holders(port uint16, _ Protocol) ([]ProcessInfo, error) {
	h.mu.Lock()
	pids := slices.Clone(h.holds[port])
	h.mu.Unlock()
	var out []ProcessInfo
	for _, pid := range pids {
		if info, err := h.Inspect(pid); err == nil {
			info.LocalAddr = fmt.Sprintf("0.0.0.0:%d", port)
			out = append(out, info)
		}
	}
	return out, nil
}

func (h *fakeHost) Probe(port uint16, _ Protocol) error {
	hs, _ := h.Holders(port, TCP)
	if len(hs) > 0 {
		return &BindError{Port: port, Class: BindInUse, Network: "tcp4", Detail: "address already in use"}
	}
	return nil
}

func (h *fakeHost) signal(p Process, sig string) error {
	live, err := h.Lookup(p.PID)
	if err != nil || !live.Same(p) {
		return ErrNoProcess
	}
	h.mu.Lock()
	h.signals = append(h.signals, fmt.Sprintf("%s %d", sig, p.PID))
	h.sigLog = append(h.sigLog, signalRecord{proc: p, sig: sig, at: time.Now()})
	stubborn := h.stubborn[p.PID]
	h.mu.Unlock()
	if sig == "KILL" || !stubborn {
		h.kill(p.PID)
	}
	return nil
}

func (h *fakeHost) Terminate(p Process) error { return h.signal(p, "TERM") }
func (h *fakeHost) Kill(p Process) error      { return h.signal(p, "KILL") }

func (h *fakeHost) sent() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.signals)
}

func (h *fakeHost) isAlive(pid int) bool {
	_, err := h.Lookup(pid)
	return err == nil
}

// newHostRig is a rig whose host can find holders and stop processes.
func newHostRig(t *testing.T, cfg Config) (*rig, *fakeHost) {
	t.Helper()
	procs := newFakeProcs(100, 101, 102, 103)
	h := newFakeHost(procs)
	if cfg.Pool.Range == (PortRange{}) {
		cfg.Pool = smallPool
	}
	if cfg.Kill.User == "" {
		cfg.Kill = KillPolicy{SelfPID: 99, User: "1000", Protected: []string{"sshd", "svchost.exe"}}
	}
	r := &rig{t: t, store: newMemStore(), procs: procs, prober: newFakeProber(), watcher: newFakeWatcher(procs)}
	b, err := Open(context.Background(), cfg, Deps{Store: r.store, Processes: h, Prober: h, Watcher: r.watcher, Inspector: h, Holders: h, Killer: h})
	if err != nil {
		t.Fatal(err)
	}
	r.b = b
	t.Cleanup(func() {
		if err := b.Check(); err != nil {
			t.Errorf("broker invariants: %v", err)
		}
		b.Close()
	})
	return r, h
}
