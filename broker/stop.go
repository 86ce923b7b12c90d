package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// StopMethod says how a process was stopped.
type StopMethod uint8

const (
	StopGraceful StopMethod = iota + 1
	StopForced
	StopAlreadyExited
)

func (m StopMethod) String() string {
	switch m {
	case StopGraceful:
		return "graceful"
	case StopForced:
		return "forced"
	case StopAlreadyExited:
		return "already exited"
	}
	return "unknown"
}

// Stopped is one process a reclaim stopped.
type Stopped struct {
	Process ProcessInfo
	Method  StopMethod
}

// Orphan reports whether nobody is left to stop p: its parent is gone and
// it is not the system's own.
func (p ProcessInfo) Orphan() bool { return !p.ParentAlive && !p.System && !p.KernelThread }

// Timings of the stop and the port re-check. Variables so tests can shorten
// them; production never changes them.
var (
	// forcedWait bounds the wait for a killed process to disappear.
	forcedWait = 5 * time.Second
	// freeChecks and freeInterval bound the re-check that a port binds after
	// its holders stopped: the kernel may release it a moment later.
	freeChecks   = 10
	freeInterval = 100 * time.Millisecond
)

// stopPlan is a checked set of process trees, ready to stop.
type stopPlan struct {
	procs []ProcessInfo // roots and descendants, parents before children
	why   string
	asker Caller
}

// planStop collects the trees rooted at roots and applies the kill-safety
// rules to every process in them, so a refusal happens before anything is
// stopped.
func (b *Broker) planStop(caller Caller, roots []ProcessInfo, why string) (*stopPlan, error) {
	if b.killer == nil || b.inspect == nil {
		return nil, fmt.Errorf("stopping processes: %w", ErrUnsupported)
	}
	plan := &stopPlan{why: why, asker: caller}
	seen := map[procKey]bool{}
	add := func(p ProcessInfo) {
		if k := keyOf(p.Process); !seen[k] {
			seen[k] = true
			plan.procs = append(plan.procs, p)
		}
	}
	for _, root := range roots {
		add(root)
		desc, err := b.inspect.Descendants(root.Process)
		if err != nil && !errors.Is(err, ErrNoProcess) {
			return nil, fmt.Errorf("list the processes under pid %d: %w", root.PID, err)
		}
		for _, d := range desc {
			add(d)
		}
	}
	ancestors := b.ancestors(caller.PID)
	for _, p := range plan.procs {
		if err := b.cfg.Kill.mayKill(caller, ancestors, p); err != nil {
			b.log.Warn("kill refused", "pid", p.PID, "name", p.Name, "reason", err, "asked_by_pid", caller.PID, "asked_by_user", caller.User, "why", why)
			return nil, err
		}
	}
	return plan, nil
}

// ancestors returns the PIDs above pid, so a caller is never made to kill
// its own shell or launcher.
func (b *Broker) ancestors(pid int) map[int]bool {
	out := map[int]bool{}
	for range 64 {
		if pid <= 1 || b.inspect == nil {
			break
		}
		info, err := b.inspect.Inspect(pid)
		if err != nil {
			break
		}
		pid = info.PPID
		if pid > 1 {
			out[pid] = true
		}
	}
	return out
}

// MaxCallGrace is the longest grace a request may ask for: with forcedWait
// and the free re-check it fits inside the server's 30 s call deadline, so
// a caller sees the outcome of the stop it asked for.
const MaxCallGrace = 20 * time.Second

// stopJob is one stop in progress. It belongs to the broker, not to the
// request that began it: a requester that leaves does not cut the grace
// short, and nothing is forced before the grace has passed.
type stopJob struct {
	done chan struct{}
	// Set before done closes.
	stopped []Stopped
	// unfinished: the broker closed during the grace, so the survivors were
	// left running rather than forced early.
	unfinished bool
}

// startStop begins stopping plan on a goroutine the broker owns (and
// Close waits for): a graceful request to each process, a wait of the full
// grace, then a forced stop of the survivors. With force the graceful step
// and the grace are skipped. then, when not nil, runs on that goroutine
// after the stop, before the job reports done.
func (b *Broker) startStop(plan *stopPlan, grace time.Duration, force bool, then func(*stopJob)) (*stopJob, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	// Added under b.mu while open, so Close's Wait sees it.
	b.wg.Add(1)
	b.mu.Unlock()
	job := &stopJob{done: make(chan struct{})}
	go func() {
		defer b.wg.Done()
		defer close(job.done)
		if plan != nil {
			b.run(job, plan, grace, force)
		}
		if then != nil {
			then(job)
		}
	}()
	return job, nil
}

// awaitStop waits for job or ctx, whichever ends first. When ctx ends
// first the stop goes on in the broker.
func (b *Broker) awaitStop(ctx context.Context, job *stopJob, plan *stopPlan) ([]Stopped, error) {
	select {
	case <-job.done:
		if job.unfinished {
			return job.stopped, fmt.Errorf("stop of %s left unfinished: %w", describe(plan.procs), ErrClosed)
		}
		return job.stopped, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("stop of %s goes on in the broker, forced only after its grace: %w", describe(plan.procs), ctx.Err())
	}
}

// closing reports whether Close has begun.
func (b *Broker) closing() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// run stops the plan's processes for job: a graceful request to each, a
// wait of the full grace, then a forced stop of the survivors, leaves
// first. If the broker closes during the grace nothing is forced: the
// stop is left unfinished for the orphan rule at the next start.
func (b *Broker) run(job *stopJob, plan *stopPlan, grace time.Duration, force bool) {
	out := make([]Stopped, len(plan.procs))
	for i, p := range plan.procs {
		out[i].Process = p
	}
	job.stopped = out
	if !force {
		for i, p := range plan.procs {
			switch err := b.killer.Terminate(p.Process); {
			case errors.Is(err, ErrNoProcess):
				out[i].Method = StopAlreadyExited
			case err != nil:
				b.log.Info("no graceful stop; will force after the grace period", "pid", p.PID, "name", p.Name, "err", err)
			default:
				out[i].Method = StopGraceful
			}
		}
		if !b.waitGone(plan.procs, grace) && b.closing() {
			job.unfinished = true
			b.log.Warn("broker closing during a stop's grace; survivors left running, not forced",
				"pids", describe(plan.procs), "why", plan.why)
			return
		}
	}
	for i := len(plan.procs) - 1; i >= 0; i-- {
		p := plan.procs[i]
		if out[i].Method == StopAlreadyExited || !b.alive(p.Process) {
			if out[i].Method == 0 {
				out[i].Method = StopAlreadyExited
			}
			continue
		}
		switch err := b.killer.Kill(p.Process); {
		case errors.Is(err, ErrNoProcess):
			if out[i].Method == 0 {
				out[i].Method = StopAlreadyExited
			}
		case err != nil:
			b.log.Error("forced stop failed", "pid", p.PID, "name", p.Name, "err", err)
		default:
			out[i].Method = StopForced
		}
	}
	b.waitGone(plan.procs, forcedWait)
	for _, s := range out {
		b.log.Info("process stopped", "pid", s.Process.PID, "name", s.Process.Name, "method", s.Method.String(),
			"asked_by_pid", plan.asker.PID, "asked_by_user", plan.asker.User, "why", plan.why)
	}
}

// waitGone waits until every process in procs has exited, up to d or
// until the broker closes. No request's context cuts it short.
func (b *Broker) waitGone(procs []ProcessInfo, d time.Duration) bool {
	deadline := time.Now().Add(d)
	interval := 5 * time.Millisecond
	for {
		alive := false
		for _, p := range procs {
			if b.alive(p.Process) {
				alive = true
				break
			}
		}
		if !alive {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		select {
		case <-b.done:
			return false
		case <-time.After(min(interval, time.Until(deadline))):
		}
		interval = min(interval*2, 100*time.Millisecond)
	}
}

// reapOrphan stops the owner tree of lease l, whose launcher died, and
// then ends the lease, all on a goroutine the broker owns. The plan is
// checked against the kill-safety rules for caller before anything is
// stopped. A stop the broker's Close interrupts leaves the lease in place,
// so the orphan rule at the next start picks it up again.
func (b *Broker) reapOrphan(caller Caller, l Lease, why string) (*stopJob, *stopPlan, error) {
	b.mu.Lock()
	if b.reaping[l.ID] {
		b.mu.Unlock()
		return nil, nil, fmt.Errorf("name %s: its orphan is being stopped: %w; retry", l.Key(), ErrConflict)
	}
	b.reaping[l.ID] = true
	b.mu.Unlock()
	reason := ReasonLauncherExited
	var plan *stopPlan
	owner, err := b.liveInfo(l.Owner)
	switch {
	case errors.Is(err, ErrNoProcess):
		reason = ReasonOwnerExited
	case err != nil:
		b.unreap(l.ID)
		return nil, nil, err
	default:
		if plan, err = b.planStop(caller, []ProcessInfo{owner}, why); err != nil {
			b.unreap(l.ID)
			return nil, nil, err
		}
	}
	job, err := b.startStop(plan, b.cfg.Grace, false, func(job *stopJob) {
		defer b.unreap(l.ID)
		if job.unfinished {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		if plan != nil {
			if free, detail := b.waitFree(ctx, l.Port, l.Protocol); !free {
				b.log.Warn("port still does not bind after stopping the orphan", "port", l.Port, "detail", detail)
			}
		}
		if _, err := b.end(ctx, l.ID, EventReclaimed, reason, nil); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrClosed) {
			b.log.Error("reclaim lease of orphan", "lease", l.ID, "err", err)
		}
	})
	if err != nil {
		b.unreap(l.ID)
		return nil, nil, err
	}
	if plan == nil {
		return job, &stopPlan{why: why, asker: caller}, nil
	}
	return job, plan, nil
}

// unreap ends a stop of a lease's owner tree. If the lease outlived it (the
// stop was refused or its store write failed), its due work is re-armed so
// an owner exit seen meanwhile is still acted on.
func (b *Broker) unreap(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.reaping, id)
	if e := b.byID[id]; e != nil && !e.busy() {
		b.rearmLocked(e, false)
	}
}

// waitFree re-checks that port binds, a few times, since the kernel may
// release a socket a moment after its process died.
func (b *Broker) waitFree(ctx context.Context, port uint16, proto Protocol) (bool, string) {
	var last error
	for i := range freeChecks {
		if last = b.prober.Probe(port, proto); last == nil {
			return true, ""
		}
		if i == freeChecks-1 {
			break
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err().Error()
		case <-time.After(freeInterval):
		}
	}
	var be *BindError
	if errors.As(last, &be) && be.Detail != "" {
		return false, be.Detail
	}
	return false, last.Error()
}

func describe(ps []ProcessInfo) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Process.String()
	}
	return strings.Join(parts, ", ")
}
