package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestKillSafety(t *testing.T) {
	policy := KillPolicy{SelfPID: 50, User: "1000", Protected: []string{"sshd", "svchost.exe", "System", "systemd-*"}}
	caller := Caller{PID: 60, User: "1000"}
	ancestors := map[int]bool{61: true, 62: true}
	proc := func(pid int, name, user string) ProcessInfo {
		return ProcessInfo{Process: Process{PID: pid, Name: name, User: user}}
	}
	tests := []struct {
		name   string
		caller Caller
		policy KillPolicy
		target ProcessInfo
		reason string // empty: allowed
	}{
		{"own process", caller, policy, proc(500, "uvicorn", "1000"), ""},
		{"pid 0", caller, policy, proc(0, "kernel", "0"), "kernel or init"},
		{"pid 1", caller, policy, proc(1, "systemd", "0"), "kernel or init"},
		{"kernel thread", caller, policy, ProcessInfo{Process: Process{PID: 2, Name: "kthreadd", User: "0"}, KernelThread: true}, "kernel thread"},
		{"the broker", caller, policy, proc(50, "portbrokerd", "1000"), "portbrokerd itself"},
		{"the caller", caller, policy, proc(60, "brokerctl", "1000"), "the caller"},
		{"caller's parent", caller, policy, proc(61, "bash", "1000"), "ancestor of the caller"},
		{"caller's grandparent", caller, policy, proc(62, "tmux", "1000"), "ancestor of the caller"},
		{"protected name", caller, policy, proc(700, "sshd", "1000"), "system process"},
		{"protected windows name any case", caller, policy, proc(701, "SVCHOST.EXE", "1000"), "system process"},
		{"protected without exe", caller, policy, proc(702, "svchost", "1000"), "system process"},
		{"protected prefix", caller, policy, proc(705, "systemd-resolved", "1000"), "system process"},
		{"not the prefix itself unless listed", caller, policy, proc(706, "systemdx", "1000"), ""},
		{"system flag", caller, policy, ProcessInfo{Process: Process{PID: 703, Name: "x", User: "1000"}, System: true}, "system process"},
		{"session leader", caller, policy, ProcessInfo{Process: Process{PID: 704, Name: "bash", User: "1000"}, SessionLeader: true}, "login session"},
		{"other user", caller, policy, proc(800, "postgres", "1001"), "belongs to user 1001"},
		{"other user, admin caller, user daemon", Caller{PID: 60, User: "0", Admin: true}, policy, proc(800, "postgres", "1001"), "belongs to user 1001"},
		{"other user, admin caller, admin daemon", Caller{PID: 60, User: "0", Admin: true}, KillPolicy{SelfPID: 50, User: "0", Admin: true}, proc(800, "postgres", "1001"), ""},
		{"unknown user", caller, policy, proc(801, "x", ""), "cannot be determined"},
		{"unidentified caller may not stop even its own user's process", Caller{}, policy, proc(500, "uvicorn", "1000"), "could not be identified"},
		{"caller with a user but no PID", Caller{User: "1000"}, policy, proc(500, "uvicorn", "1000"), "could not be identified"},
		{"the broker itself acts as daemon user", Caller{Broker: true}, policy, proc(500, "uvicorn", "1000"), ""},
		{"the broker itself, other user", Caller{Broker: true}, policy, proc(800, "postgres", "1001"), "belongs to user 1001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.mayKill(tt.caller, ancestors, tt.target)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v, want PermissionDenied with %q", err, tt.reason)
			}
			if !strings.Contains(err.Error(), "pid ") {
				t.Errorf("refusal %q does not name the pid", err)
			}
		})
	}
}

func TestReclaimPortStopsTree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newHostRig(t, Config{})
		h.spawnChild(200, 0)
		h.spawnChild(201, 200)
		h.spawnChild(202, 201) // grandchild
		h.spawnChild(300, 0)   // unrelated
		h.holds[8000] = []int{200}
		l := r.acquire(AcquireRequest{Name: "web", Port: 8000, OwnerPID: 100})
		if l.Lease.Port == 8000 {
			t.Fatal("busy port 8000 was leased")
		}
		// Lease 8001 too, to see the lease part of the reclaim.
		h.holds[8001] = []int{201}
		res, err := r.b.ReclaimPort(context.Background(), ReclaimRequest{Caller: asker, Port: 8000, Kill: true})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Free {
			t.Errorf("port not free after reclaim: %s", res.Detail)
		}
		var got []string
		for _, s := range res.Stopped {
			got = append(got, s.Process.Name+" "+s.Method.String())
		}
		want := []string{"proc200 graceful", "proc201 graceful", "proc202 graceful"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stopped (-want +got):\n%s", diff)
		}
		if !h.isAlive(300) || !h.isAlive(100) {
			t.Error("reclaim stopped an unrelated process")
		}
	})
}

func TestReclaimPortReleasesLease(t *testing.T) {
	r, h := newHostRig(t, Config{})
	l := r.acquire(AcquireRequest{Name: "web", Port: 8000, OwnerPID: 101}).Lease
	sub, err := r.b.Watch("", false)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	res, err := r.b.ReclaimPort(context.Background(), ReclaimRequest{Port: 8000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Released == nil || res.Released.ID != l.ID || !res.Free || len(res.Stopped) != 0 {
		t.Errorf("result = %+v, want lease %s released, free, nothing stopped", res, l.ID)
	}
	ev := <-sub.Events()
	if ev.Type != EventReclaimed || ev.Reason != ReasonForced {
		t.Errorf("event = %v/%v, want reclaimed/forced", ev.Type, ev.Reason)
	}
	if !h.isAlive(101) {
		t.Error("reclaim without kill stopped the owner")
	}
}

func TestReclaimForcesStubbornProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newHostRig(t, Config{Grace: 3 * time.Second})
		h.spawnChild(200, 0)
		h.stubborn[200] = true
		h.holds[8000] = []int{200}
		start := time.Now()
		res, err := r.b.ReclaimPort(context.Background(), ReclaimRequest{Caller: asker, Port: 8000, Kill: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Stopped) != 1 || res.Stopped[0].Method != StopForced || !res.Free {
			t.Fatalf("result = %+v, want pid 200 forced and the port free", res)
		}
		if waited := time.Since(start); waited < 3*time.Second {
			t.Errorf("forced after %v, before the 3s grace", waited)
		}
		if diff := cmp.Diff([]string{"TERM 200", "KILL 200"}, h.sent()); diff != "" {
			t.Errorf("signals (-want +got):\n%s", diff)
		}
	})
}

func TestReclaimForceSkipsGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newHostRig(t, Config{Grace: time.Hour})
		h.spawnChild(200, 0)
		h.holds[8000] = []int{200}
		res, err := r.b.ReclaimPort(context.Background(), ReclaimRequest{Caller: asker, Port: 8000, Kill: true, Force: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Stopped) != 1 || res.Stopped[0].Method != StopForced {
			t.Fatalf("result = %+v, want a forced stop", res)
		}
		if diff := cmp.Diff([]string{"KILL 200"}, h.sent()); diff != "" {
			t.Errorf("signals (-want +got):\n%s", diff)
		}
	})
}

func TestReclaimRefusalStopsNothing(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *fakeHost)
		call  Caller
	}{
		{"other user's child in the tree", func(h *fakeHost) {
			h.spawnChild(201, 200)
			h.info[201] = ProcessInfo{Process: Process{User: "1001"}}
		}, Caller{PID: 60, User: "1000"}},
		{"holder is protected", func(h *fakeHost) { h.info[200] = ProcessInfo{System: true} }, Caller{PID: 60, User: "1000"}},
		{"holder is the caller", func(*fakeHost) {}, Caller{PID: 200, User: "1000"}},
		{"holder is the caller's parent", func(h *fakeHost) { h.spawnChild(210, 200) }, Caller{PID: 210, User: "1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h := newHostRig(t, Config{})
			h.spawnChild(200, 0)
			h.holds[8000] = []int{200}
			tt.setup(h)
			// Inspect overlays only the flags set in info; keep user 1000 unless set.
			for pid, info := range h.info {
				if info.User == "" {
					info.User = "1000"
				}
				h.procs[pid] = Process{PID: pid, StartTime: h.procs[pid].StartTime, Name: h.procs[pid].Name, User: info.User}
			}
			l := r.acquire(AcquireRequest{Name: "web", OwnerPID: 100})
			_, err := r.b.ReclaimPort(context.Background(), ReclaimRequest{Caller: tt.call, Port: int(l.Lease.Port), Kill: true})
			if err != nil {
				t.Fatalf("reclaim of a port no one refuses: %v", err)
			}
			_, err = r.b.ReclaimPort(context.Background(), ReclaimRequest{Caller: tt.call, Port: 8000, Kill: true})
			if !errors.Is(err, ErrPermission) {
				t.Fatalf("err = %v, want PermissionDenied", err)
			}
			if len(h.sent()) != 0 || !h.isAlive(200) {
				t.Errorf("a refused reclaim still signalled: %v", h.sent())
			}
		})
	}
}

func TestOrphanStoppedWhenLauncherExits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newHostRig(t, Config{Grace: time.Second})
		launcher := h.spawnChild(400, 0)
		h.spawnChild(401, 400) // the service
		h.spawnChild(402, 401) // its worker
		sub, err := r.b.Watch("", false)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		l := r.acquire(AcquireRequest{Name: "backend", OwnerPID: 401, LauncherPID: 400}).Lease
		<-sub.Events()
		h.holds[l.Port] = []int{401}
		h.kill(400)
		r.watcher.exit(launcher)
		ev := <-sub.Events()
		if ev.Type != EventReclaimed || ev.Reason != ReasonLauncherExited || ev.Lease.ID != l.ID {
			t.Fatalf("event = %v/%v for %s, want reclaimed/launcher exited", ev.Type, ev.Reason, ev.Lease.ID)
		}
		if h.isAlive(401) || h.isAlive(402) {
			t.Error("orphaned service tree still running")
		}
	})
}

func TestOrphanKeptWhenPolicySaysKeep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newHostRig(t, Config{Orphans: OrphanKeep})
		launcher := h.spawnChild(400, 0)
		h.spawnChild(401, 400)
		l := r.acquire(AcquireRequest{Name: "backend", OwnerPID: 401, LauncherPID: 400}).Lease
		h.kill(400)
		r.watcher.exit(launcher)
		synctest.Wait()
		if _, err := r.b.Get(l.ID); err != nil {
			t.Errorf("lease gone under keep: %v", err)
		}
		if !h.isAlive(401) || len(h.sent()) != 0 {
			t.Errorf("service signalled under keep: %v", h.sent())
		}
	})
}

func TestOrphanWithReusedPIDIsNotKilled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newHostRig(t, Config{})
		launcher := h.spawnChild(400, 0)
		h.spawnChild(401, 400)
		l := r.acquire(AcquireRequest{Name: "backend", OwnerPID: 401, LauncherPID: 400}).Lease
		h.reuse(401) // the owner died and its PID went to another process
		h.kill(400)
		r.watcher.exit(launcher)
		synctest.Wait()
		if _, err := r.b.Get(l.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("lease of a dead owner kept: %v", err)
		}
		if len(h.sent()) != 0 || !h.isAlive(401) {
			t.Errorf("the process that reused the PID was signalled: %v", h.sent())
		}
	})
}

func TestInspectPort(t *testing.T) {
	cfg := Config{Pool: PoolConfig{
		Range:     PortRange{First: 20000, Last: 20099},
		Ephemeral: PortRange{First: 32768, Last: 60999},
		Reserved:  []PortRange{{First: 8080, Last: 8090, Source: "ip_local_reserved_ports"}},
	}}
	r, h := newHostRig(t, cfg)
	h.spawnChild(200, 0)
	h.holds[8085] = []int{200}
	rep, err := r.b.InspectPort(context.Background(), 8085, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Holders) != 1 || rep.Holders[0].PID != 200 || !rep.Holders[0].Orphan() || rep.Holders[0].LocalAddr != "0.0.0.0:8085" {
		t.Errorf("holders = %+v, want orphaned pid 200 on 0.0.0.0:8085", rep.Holders)
	}
	if rep.Bind == nil || rep.Bind.Class != BindInUse || !strings.Contains(rep.Fix, "brokerctl reclaim 8085 --kill") {
		t.Errorf("bind = %+v, fix %q", rep.Bind, rep.Fix)
	}
	if rep.Position != EphemeralBelow || rep.InPool || len(rep.ExcludedBy) != 1 || rep.ExcludedBy[0].Source != "ip_local_reserved_ports" {
		t.Errorf("report = %+v", rep)
	}

	l := r.acquire(AcquireRequest{Name: "web", OwnerPID: 100}).Lease
	rep, err = r.b.InspectPort(context.Background(), int(l.Port), TCP)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lease == nil || rep.Lease.ID != l.ID || rep.Bind != nil || !rep.InPool {
		t.Errorf("leased port report = %+v", rep)
	}
	rep, err = r.b.InspectPort(context.Background(), 40000, TCP)
	if err != nil || rep.Position != EphemeralInside {
		t.Errorf("40000: %+v, %v; want inside the ephemeral range", rep, err)
	}
	for _, port := range []int{0, 70000} {
		if _, err := r.b.InspectPort(context.Background(), port, TCP); !errors.Is(err, ErrInvalid) {
			t.Errorf("InspectPort(%d) = %v, want invalid", port, err)
		}
	}
}

func TestAcquireReclaimStopsOrphanOfSameName(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newHostRig(t, Config{Orphans: OrphanKeep})
		h.spawnChild(400, 0)
		h.spawnChild(401, 400)
		old := r.acquire(AcquireRequest{Name: "backend", Port: 8000, OwnerPID: 401, LauncherPID: 400}).Lease
		h.holds[8000] = []int{401}
		h.kill(400) // the dev run crashed; its backend lives on

		h.spawnChild(500, 0)
		h.spawnChild(501, 500)
		_, err := r.b.Acquire(context.Background(), AcquireRequest{Caller: asker, Name: "backend", Port: 8000, OwnerPID: 501, LauncherPID: 500})
		mustErr(t, err, ErrNameTaken)

		res := r.acquire(AcquireRequest{Caller: asker, Name: "backend", Port: 8000, OwnerPID: 501, LauncherPID: 500, Reclaim: true})
		if res.Lease.Port != 8000 || res.Lease.ID == old.ID {
			t.Errorf("got %+v, want a new lease on 8000", res.Lease)
		}
		if h.isAlive(401) {
			t.Error("orphan still running")
		}
	})
}

func TestAcquireReclaimNeverStopsUnrelated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, h := newHostRig(t, Config{})
		l := r.acquire(AcquireRequest{Name: "backend", Port: 8000, OwnerPID: 101}).Lease
		if _, err := r.b.Release(context.Background(), Caller{}, l.ID); err != nil {
			t.Fatal(err)
		}
		h.spawnChild(600, 0) // unrelated process takes 8000
		h.holds[8000] = []int{600}
		res := r.acquire(AcquireRequest{Caller: asker, Name: "backend", Port: 8000, OwnerPID: 102, Reclaim: true})
		if res.Lease.Port == 8000 || res.FallbackReason == "" {
			t.Errorf("got port %d (fallback %q), want a fallback", res.Lease.Port, res.FallbackReason)
		}
		if len(h.sent()) != 0 {
			t.Errorf("unrelated process signalled: %v", h.sent())
		}

		// The previous owner itself still holding the port is fair game.
		if _, err := r.b.Release(context.Background(), Caller{}, res.Lease.ID); err != nil {
			t.Fatal(err)
		}
		h.holds[8000] = []int{102}
		res = r.acquire(AcquireRequest{Caller: asker, Name: "backend", Port: 8000, OwnerPID: 103, Reclaim: true})
		if res.Lease.Port != 8000 || h.isAlive(102) {
			t.Errorf("got port %d, previous owner alive %v; want 8000 after stopping it", res.Lease.Port, h.isAlive(102))
		}
	})
}

func TestLeaseChangesNeedOwnersUser(t *testing.T) {
	r := newRig(t, Config{})
	l := r.acquire(AcquireRequest{Name: "web", OwnerPID: 100}).Lease // user 1000
	other := Caller{PID: 5000, User: "1001"}
	if _, err := r.b.Release(context.Background(), other, l.ID); !errors.Is(err, ErrPermission) {
		t.Errorf("release by another user: %v", err)
	}
	if _, err := r.b.Renew(context.Background(), other, l.ID, time.Minute); !errors.Is(err, ErrPermission) {
		t.Errorf("renew by another user: %v", err)
	}
	if _, err := r.b.ReclaimPort(context.Background(), ReclaimRequest{Caller: other, Port: int(l.Port)}); !errors.Is(err, ErrPermission) {
		t.Errorf("reclaim by another user: %v", err)
	}
	_, err := r.b.Acquire(context.Background(), AcquireRequest{Caller: other, Name: "x", OwnerPID: 101})
	if !errors.Is(err, ErrPermission) || !strings.HasPrefix(err.Error(), "owner_pid: ") {
		t.Errorf("naming another user's process as owner: %v", err)
	}
	if _, err := r.b.Get(l.ID); err != nil {
		t.Errorf("lease gone after refused changes: %v", err)
	}
	admin := Caller{PID: 5001, User: "0", Admin: true}
	if _, err := r.b.Release(context.Background(), admin, l.ID); err != nil {
		t.Errorf("release by admin: %v", err)
	}
}

func TestLimits(t *testing.T) {
	r := newRig(t, Config{Limits: Limits{Leases: 3, LeasesPerUser: 2, Watchers: 1}})
	r.procs.spawn(104)
	r.procs.mu.Lock()
	p := r.procs.procs[104]
	p.User = "2000"
	r.procs.procs[104] = p
	r.procs.mu.Unlock()

	r.acquire(AcquireRequest{Name: "a", OwnerPID: 100})
	r.acquire(AcquireRequest{Name: "b", OwnerPID: 101})
	_, err := r.b.Acquire(context.Background(), AcquireRequest{Name: "c", OwnerPID: 102})
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "limits.leases_per_user") {
		t.Errorf("third lease of one user: %v", err)
	}
	r.acquire(AcquireRequest{Name: "c", OwnerPID: 104}) // another user still may
	_, err = r.b.Acquire(context.Background(), AcquireRequest{Name: "d", OwnerPID: 104})
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "limits.leases") {
		t.Errorf("fourth lease in all: %v", err)
	}
	if n := len(r.b.List("")); n != 3 {
		t.Errorf("%d leases, want 3", n)
	}

	sub, err := r.b.Watch("", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.b.Watch("", false); !errors.Is(err, ErrExhausted) {
		t.Errorf("second watcher: %v", err)
	}
	sub.Close()
	sub, err = r.b.Watch("", false)
	if err != nil {
		t.Errorf("watcher after one closed: %v", err)
	} else {
		sub.Close()
	}
}

// asker is a caller the transport identified, as kill requests need: a
// PID the fake process table does not hold, so it has no ancestors there.
var asker = Caller{PID: 9999}

func TestStopFixNeverSuggestsStoppingTheUnstoppable(t *testing.T) {
	policy := KillPolicy{SelfPID: 50, User: "1000", Protected: []string{"sshd"}}
	proc := func(pid int, name, user string) ProcessInfo {
		return ProcessInfo{Process: Process{PID: pid, Name: name, User: user}}
	}
	tests := []struct {
		holder ProcessInfo
		want   string
	}{
		{proc(500, "uvicorn", "1000"), "stop pid 500"},
		{proc(1, "bash", "0"), "use another port"},
		{ProcessInfo{Process: Process{PID: 2, Name: "kthreadd", User: "0"}, KernelThread: true}, "use another port"},
		{ProcessInfo{Process: Process{PID: 700, Name: "x", User: "1000"}, System: true}, "use another port"},
		{proc(701, "sshd", "1000"), "use another port"},
		{proc(800, "postgres", "1001"), "use another port"},
	}
	for _, tt := range tests {
		got := policy.stopFix(tt.holder, 8000)
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("fix for %v = %q; want it to start %q", tt.holder.Process, got, tt.want)
		}
		if tt.want != "stop pid 500" && strings.Contains(got, "reclaim") {
			t.Errorf("fix for %v = %q suggests a reclaim", tt.holder.Process, got)
		}
	}
}
