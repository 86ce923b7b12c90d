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

// run stops the plan's processes: a graceful request to each, a wait of up
// to grace, then a forced stop of the survivors, leaves first.
func (b *Broker) run(ctx context.Context, plan *stopPlan, grace time.Duration, force bool) []Stopped {
	out := make([]Stopped, len(plan.procs))
	for i, p := range plan.procs {
		out[i].Process = p
	}
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
		b.waitGone(ctx, plan.procs, grace)
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
	b.waitGone(ctx, plan.procs, forcedWait)
	for _, s := range out {
		b.log.Info("process stopped", "pid", s.Process.PID, "name", s.Process.Name, "method", s.Method.String(),
			"asked_by_pid", plan.asker.PID, "asked_by_user", plan.asker.User, "why", plan.why)
	}
	return out
}

// waitGone waits until every process in procs has exited, up to d.
func (b *Broker) waitGone(ctx context.Context, procs []ProcessInfo, d time.Duration) bool {
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
		case <-ctx.Done():
			return false
		case <-b.done:
			return false
		case <-time.After(min(interval, time.Until(deadline))):
		}
		interval = min(interval*2, 100*time.Millisecond)
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
