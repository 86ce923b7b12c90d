package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// Versus is the side-by-side figure: at each client count, AcquireLease
// (a port for a live owner, each lease released between rounds, untimed)
// against empty calls on the same connections and against Google's
// portserver handing a port to the same live PID, all interleaved in
// rounds in one run.
type Versus struct {
	Portserver string        `json:"portserver,omitempty"` // the script run; "" when none
	Levels     []VersusLevel `json:"levels"`
}

// VersusLevel is one client count of the side-by-side run.
type VersusLevel struct {
	Clients    int    `json:"clients"`
	Acquire    Phase  `json:"acquire"`
	Empty      Phase  `json:"empty"`
	Portserver *Phase `json:"portserver,omitempty"`
	// RatioEmpty is acquires/s over empty calls/s; RatioPortserver is
	// acquires/s over portserver's ports/s.
	RatioEmpty      float64 `json:"ratio_empty"`
	RatioPortserver float64 `json:"ratio_portserver,omitempty"`
}

// versusRound is how many calls of each kind one round makes.
const versusRound = 200

// portserverPool is the pool the started portserver hands out, apart from
// the daemon's; each client level gets a fresh portserver, and a level
// makes at most --versus-calls of its calls, so the pool never runs dry.
const portserverPool = "10000-19999"

// versus runs the side-by-side figure.
func versus(ctx context.Context, cfg config, log func(string, ...any)) (*Versus, error) {
	res := &Versus{Portserver: cfg.portserver}
	owner := int32(os.Getpid())
	err := withDaemon(ctx, cfg, log, func(addr string) error {
		for _, n := range cfg.clients {
			cs, err := dial(ctx, addr, n)
			if err != nil {
				return err
			}
			lv, err := versusLevel(ctx, cfg, cs, owner, log)
			closeAll(cs)
			if err != nil {
				return fmt.Errorf("%d clients: %w", n, err)
			}
			res.Levels = append(res.Levels, lv)
		}
		return nil
	})
	return res, err
}

func versusLevel(ctx context.Context, cfg config, cs []*client, owner int32, log func(string, ...any)) (VersusLevel, error) {
	lv := VersusLevel{Clients: len(cs)}
	var ps *portserver
	if cfg.portserver != "" {
		var err error
		if ps, err = startPortserver(ctx, cfg, len(cs)); err != nil {
			return lv, err
		}
		defer ps.stop()
	}
	if err := warmUp(ctx, cs, owner); err != nil {
		return lv, fmt.Errorf("warm up: %w", err)
	}
	if ps != nil {
		for range 10 {
			if _, err := ps.request(ctx, owner); err != nil {
				return lv, fmt.Errorf("warm up portserver: %w", err)
			}
		}
	}
	log("side by side with %d clients: %d calls of each kind", len(cs), cfg.versusCalls)
	acq := make([][]time.Duration, len(cs))
	emp := make([][]time.Duration, len(cs))
	prt := make([][]time.Duration, len(cs))
	var acqTime, empTime, prtTime time.Duration
	var seq atomic.Int64
	for done := 0; done < cfg.versusCalls; done += versusRound {
		round := int64(min(versusRound, cfg.versusCalls-done))
		// Acquires: each a new name for the live owner, so each is a grant.
		ids := make([][]string, len(cs))
		var claimed atomic.Int64
		elapsed, err := parallel(ctx, cs, func(ctx context.Context, i int, c *client) error {
			for claimed.Add(1) <= round {
				name := "vs-" + strconv.FormatInt(seq.Add(1), 10)
				t0 := time.Now()
				res, err := call(ctx, c.broker.AcquireLease, &brokerpb.AcquireLeaseRequest{Name: name, Namespace: namespace, OwnerPid: owner})
				if err != nil {
					return fmt.Errorf("acquire %s: %w", name, err)
				}
				acq[i] = append(acq[i], time.Since(t0))
				ids[i] = append(ids[i], res.GetLease().GetId())
			}
			return nil
		})
		if err != nil {
			return lv, err
		}
		acqTime += elapsed
		if err := releaseAll(ctx, cs, flattenIDs(ids)); err != nil {
			return lv, err
		}
		if err := settle(ctx); err != nil {
			return lv, err
		}
		claimed.Store(0)
		elapsed, err = parallel(ctx, cs, func(ctx context.Context, i int, c *client) error {
			for claimed.Add(1) <= round {
				t, err := empty(ctx, c)
				if err != nil {
					return err
				}
				emp[i] = append(emp[i], t)
			}
			return nil
		})
		if err != nil {
			return lv, err
		}
		empTime += elapsed
		if ps == nil {
			continue
		}
		if err := settle(ctx); err != nil {
			return lv, err
		}
		claimed.Store(0)
		elapsed, err = parallel(ctx, cs, func(ctx context.Context, i int, _ *client) error {
			for claimed.Add(1) <= round {
				t, err := ps.request(ctx, owner)
				if err != nil {
					return err
				}
				prt[i] = append(prt[i], t)
			}
			return nil
		})
		if err != nil {
			return lv, fmt.Errorf("portserver: %w", err)
		}
		prtTime += elapsed
		if err := settle(ctx); err != nil {
			return lv, err
		}
	}
	lv.Acquire = phase(flatten(acq), acqTime)
	lv.Empty = phase(flatten(emp), empTime)
	if lv.Empty.CallsPerSec > 0 {
		lv.RatioEmpty = round3(lv.Acquire.CallsPerSec / lv.Empty.CallsPerSec)
	}
	if ps != nil {
		p := phase(flatten(prt), prtTime)
		lv.Portserver = &p
		if p.CallsPerSec > 0 {
			lv.RatioPortserver = round3(lv.Acquire.CallsPerSec / p.CallsPerSec)
		}
	}
	return lv, nil
}

func flattenIDs(per [][]string) []string {
	var out []string
	for _, s := range per {
		out = append(out, s...)
	}
	return out
}

// portserver is a started python portserver.py.
type portserver struct {
	cmd    *exec.Cmd
	addr   string // the abstract socket, "@name"
	exited chan struct{}
	log    strings.Builder
}

// startPortserver runs cfg.portserver with cfg.python on an abstract
// socket of its own and waits until it answers.
func startPortserver(ctx context.Context, cfg config, level int) (*portserver, error) {
	name := fmt.Sprintf("brokerbench-portserver-%d-%d", os.Getpid(), level)
	ps := &portserver{addr: "@" + name, exited: make(chan struct{})}
	ps.cmd = exec.Command(cfg.python, cfg.portserver, "--portserver_address", ps.addr, "--portserver_static_pool", portserverPool)
	ps.cmd.Stdout = io.Discard
	ps.cmd.Stderr = &ps.log
	ps.cmd.SysProcAttr = ownerAttr() // dies with brokerbench
	if err := ps.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start portserver %s: %w", cfg.portserver, err)
	}
	go func() {
		ps.cmd.Wait()
		close(ps.exited)
	}()
	deadline := time.Now().Add(healthyTimeout)
	for {
		conn, err := net.Dial("unix", ps.addr)
		if err == nil {
			conn.Close()
			return ps, nil
		}
		select {
		case <-ps.exited:
			return nil, fmt.Errorf("portserver %s exited at start: %s", cfg.portserver, strings.TrimSpace(ps.log.String()))
		case <-ctx.Done():
			ps.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			ps.stop()
			return nil, fmt.Errorf("portserver %s did not listen on %s within %v", cfg.portserver, ps.addr, healthyTimeout)
		}
	}
}

// request asks for a port for pid as portpicker does: the PID on a new
// connection, the port back, then the close.
func (ps *portserver) request(ctx context.Context, pid int32) (time.Duration, error) {
	t0 := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", ps.addr)
	if err != nil {
		return 0, fmt.Errorf("dial portserver: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(callTimeout))
	if _, err := fmt.Fprintf(conn, "%d\n", pid); err != nil {
		return 0, fmt.Errorf("portserver request: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return 0, fmt.Errorf("portserver gave no port (pool empty or pid refused): %w", err)
	}
	if port, err := strconv.Atoi(strings.TrimSpace(line)); err != nil || port <= 0 {
		return 0, fmt.Errorf("portserver answered %q, want a port", line)
	}
	return time.Since(t0), nil
}

func (ps *portserver) stop() {
	ps.cmd.Process.Kill()
	<-ps.exited
}
