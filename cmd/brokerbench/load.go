package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portbroker/portbroker/internal/ipc"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// namespace keeps brokerbench's leases apart from a live daemon's others.
const namespace = "brokerbench"

// callTimeout bounds every call brokerbench makes.
const callTimeout = 30 * time.Second

// client is one connection, set up as every broker client sets it up
// (ipc.DialOptions), carrying both the broker and the health service.
type client struct {
	conn   *grpc.ClientConn
	broker brokerpb.BrokerServiceClient
	health healthpb.HealthClient
}

// dial opens n connections and makes one call on each, so that no timed
// call pays for connecting.
func dial(ctx context.Context, addr string, n int) (_ []*client, err error) {
	target, opts, err := ipc.DialOptions(addr)
	if err != nil {
		return nil, err
	}
	cs := make([]*client, 0, n)
	defer func() {
		if err != nil {
			closeAll(cs)
		}
	}()
	for range n {
		conn, err := grpc.NewClient(target, opts...)
		if err != nil {
			return nil, fmt.Errorf("client for %s: %w", addr, err)
		}
		c := &client{conn: conn, broker: brokerpb.NewBrokerServiceClient(conn), health: healthpb.NewHealthClient(conn)}
		cs = append(cs, c)
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err = c.health.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("health check on %s: %w", addr, err)
		}
	}
	return cs, nil
}

func closeAll(cs []*client) {
	for _, c := range cs {
		c.conn.Close()
	}
}

// parallel runs f once per client, all starting together, and returns the
// wall time from the start to the last return and the first error. An
// error cancels the others' ctx.
func parallel(ctx context.Context, cs []*client, f func(ctx context.Context, i int, c *client) error) (time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			<-start
			if err := f(ctx, i, c); err != nil {
				cancel(err)
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	if err := context.Cause(ctx); err != nil {
		return elapsed, err
	}
	return elapsed, nil
}

func call[Req, Res any](ctx context.Context, f func(context.Context, Req, ...grpc.CallOption) (Res, error), req Req) (Res, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return f(ctx, req)
}

// pair acquires a lease under name and releases it, timing each call.
func pair(ctx context.Context, c *client, name string, owner int32) (acq, rel time.Duration, err error) {
	t0 := time.Now()
	res, err := call(ctx, c.broker.AcquireLease, &brokerpb.AcquireLeaseRequest{Name: name, Namespace: namespace, OwnerPid: owner})
	t1 := time.Now()
	if err != nil {
		return 0, 0, fmt.Errorf("acquire %s: %w", name, err)
	}
	if res.GetExisting() {
		return 0, 0, fmt.Errorf("acquire %s: got an existing lease; is another brokerbench running against this daemon?", name)
	}
	if _, err := call(ctx, c.broker.ReleaseLease, &brokerpb.ReleaseLeaseRequest{LeaseId: res.GetLease().GetId()}); err != nil {
		return 0, 0, fmt.Errorf("release %s: %w", res.GetLease().GetId(), err)
	}
	return t1.Sub(t0), time.Since(t1), nil
}

func empty(ctx context.Context, c *client) (time.Duration, error) {
	t0 := time.Now()
	res, err := call(ctx, c.health.Check, &healthpb.HealthCheckRequest{})
	if err != nil {
		return 0, fmt.Errorf("health check: %w", err)
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return 0, fmt.Errorf("health check: daemon is %v", res.GetStatus())
	}
	return time.Since(t0), nil
}

// warmUp makes a few untimed calls of both kinds on every client.
func warmUp(ctx context.Context, cs []*client, owner int32) error {
	_, err := parallel(ctx, cs, func(ctx context.Context, i int, c *client) error {
		for range 10 {
			if _, _, err := pair(ctx, c, fmt.Sprintf("warm-%d", i), owner); err != nil {
				return err
			}
			if _, err := empty(ctx, c); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// cpuMeter reads the daemon's CPU time; nil when it cannot be read.
type cpuMeter func() (time.Duration, bool)

func (m cpuMeter) read() (time.Duration, bool) {
	if m == nil {
		return 0, false
	}
	return m()
}

// roundTime is how long a throughput measurement runs broker calls before
// it runs as many empty calls, and then broker calls again: short rounds
// make a burst of load from elsewhere on the host weigh on both sides of
// the ratio rather than on one.
const (
	roundTime = 250 * time.Millisecond
	maxRounds = 64
)

// throughput measures broker calls against empty calls on the same
// clients. Each round runs pairs on every client for its share of d (or
// of maxCalls broker calls), then the same count of empty calls spread
// over the same clients.
func throughput(ctx context.Context, cs []*client, d time.Duration, maxCalls int, owner int32, cpu cpuMeter) (Level, error) {
	lv := Level{Clients: len(cs)}
	if err := warmUp(ctx, cs, owner); err != nil {
		return lv, fmt.Errorf("warm up: %w", err)
	}
	acq := make([][]time.Duration, len(cs))
	rel := make([][]time.Duration, len(cs))
	emp := make([][]time.Duration, len(cs))
	var brokerTime, emptyTime, brokerCPU, emptyCPU time.Duration
	cpuOK := cpu != nil
	maxPairs := maxCalls / 2
	rounds := min(max(int(d/roundTime), 1), maxRounds)
	if maxCalls > 0 {
		rounds = min(rounds, max(maxPairs, 1))
	}
	for r := range rounds {
		// Round r's share of maxPairs; 0 means no cap.
		var capPairs int64
		if maxCalls > 0 {
			capPairs = int64(max(maxPairs*(r+1)/rounds-maxPairs*r/rounds, 1))
		}
		before := count(acq)
		cpu0, ok0 := cpu.read()
		deadline := time.Now().Add(d / time.Duration(rounds))
		var pairs atomic.Int64
		elapsed, err := parallel(ctx, cs, func(ctx context.Context, i int, c *client) error {
			name := fmt.Sprintf("bench-%d-%d", len(cs), i)
			for time.Now().Before(deadline) && (capPairs == 0 || pairs.Add(1) <= capPairs) {
				a, r, err := pair(ctx, c, name, owner)
				if err != nil {
					return err
				}
				acq[i] = append(acq[i], a)
				rel[i] = append(rel[i], r)
			}
			return nil
		})
		if err != nil {
			return lv, fmt.Errorf("%d clients: %w", len(cs), err)
		}
		cpu1, ok1 := cpu.read()
		brokerTime += elapsed
		brokerCPU += cpu1 - cpu0

		if err := settle(ctx); err != nil {
			return lv, err
		}
		total := 2 * int64(count(acq)-before)
		var claimed atomic.Int64
		elapsed, err = parallel(ctx, cs, func(ctx context.Context, i int, c *client) error {
			for claimed.Add(1) <= total {
				t, err := empty(ctx, c)
				if err != nil {
					return err
				}
				emp[i] = append(emp[i], t)
			}
			return nil
		})
		if err != nil {
			return lv, fmt.Errorf("%d clients: %w", len(cs), err)
		}
		cpu2, ok2 := cpu.read()
		emptyTime += elapsed
		emptyCPU += cpu2 - cpu1
		cpuOK = cpuOK && ok0 && ok1 && ok2
		if err := settle(ctx); err != nil {
			return lv, err
		}
	}

	a, r := flatten(acq), flatten(rel)
	lv.Broker = phase(append(slices.Clone(a), r...), brokerTime)
	lv.Acquire, lv.Release = summarize(a), summarize(r)
	lv.Empty = phase(flatten(emp), emptyTime)
	if cpuOK {
		lv.Broker.DaemonCPUPerCallUS = perCall(brokerCPU, lv.Broker.Calls)
		lv.Empty.DaemonCPUPerCallUS = perCall(emptyCPU, lv.Empty.Calls)
	}
	if lv.Empty.CallsPerSec > 0 {
		lv.Ratio = round3(lv.Broker.CallsPerSec / lv.Empty.CallsPerSec)
	}
	return lv, nil
}

// settleTime is the pause between phases. It lets the daemon finish the
// garbage collection that one phase's calls set off before the next phase
// starts, so that empty calls are not charged for broker calls' garbage.
const settleTime = 20 * time.Millisecond

func settle(ctx context.Context) error {
	t := time.NewTimer(settleTime)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func perCall(cpu time.Duration, calls int64) float64 {
	if calls == 0 {
		return 0
	}
	return us(cpu / time.Duration(calls))
}

func count(per [][]time.Duration) int {
	n := 0
	for _, d := range per {
		n += len(d)
	}
	return n
}

func flatten(per [][]time.Duration) []time.Duration {
	var out []time.Duration
	for _, d := range per {
		out = append(out, d...)
	}
	return out
}

func phase(lat []time.Duration, elapsed time.Duration) Phase {
	p := Phase{Calls: int64(len(lat)), Seconds: round3(elapsed.Seconds())}
	if elapsed > 0 {
		p.CallsPerSec = round3(float64(len(lat)) / elapsed.Seconds())
	}
	p.Latency = summarize(lat)
	return p
}

// fill takes up to n leases for owner over every client. It stops early,
// without error, when the daemon says the pool is exhausted (some pool
// ports may not bind on this host). It returns the IDs it holds.
func fill(ctx context.Context, cs []*client, n int, owner int32) ([]string, error) {
	var next atomic.Int64
	var full atomic.Bool
	ids := make([][]string, len(cs))
	_, err := parallel(ctx, cs, func(ctx context.Context, i int, c *client) error {
		for !full.Load() {
			k := next.Add(1)
			if k > int64(n) {
				return nil
			}
			name := fmt.Sprintf("fill-%05d", k)
			res, err := call(ctx, c.broker.AcquireLease, &brokerpb.AcquireLeaseRequest{Name: name, Namespace: namespace, OwnerPid: owner})
			if status.Code(err) == codes.ResourceExhausted {
				full.Store(true)
				return nil
			}
			if err != nil {
				return fmt.Errorf("fill: acquire %s: %w", name, err)
			}
			ids[i] = append(ids[i], res.GetLease().GetId())
		}
		return nil
	})
	var out []string
	for _, s := range ids {
		out = append(out, s...)
	}
	return out, err
}

// releaseAll releases the leases fill took, over every client.
func releaseAll(ctx context.Context, cs []*client, ids []string) error {
	var next atomic.Int64
	_, err := parallel(ctx, cs, func(ctx context.Context, _ int, c *client) error {
		for {
			k := next.Add(1)
			if k > int64(len(ids)) {
				return nil
			}
			_, err := call(ctx, c.broker.ReleaseLease, &brokerpb.ReleaseLeaseRequest{LeaseId: ids[k-1]})
			if err != nil && status.Code(err) != codes.NotFound {
				return fmt.Errorf("release %s: %w", ids[k-1], err)
			}
		}
	})
	return err
}

// errNotRefused reports an acquire that a full pool granted.
var errNotRefused = errors.New("acquire from a full pool was granted")

// refusals times n acquires that the full pool must refuse with
// ResourceExhausted.
func refusals(ctx context.Context, c *client, n int, owner int32) (Latency, error) {
	lat := make([]time.Duration, 0, n)
	for i := range n + 10 {
		t0 := time.Now()
		res, err := call(ctx, c.broker.AcquireLease, &brokerpb.AcquireLeaseRequest{Name: "refused", Namespace: namespace, OwnerPid: owner})
		t := time.Since(t0)
		if err == nil {
			return Latency{}, fmt.Errorf("%w: port %d", errNotRefused, res.GetLease().GetPort())
		}
		if status.Code(err) != codes.ResourceExhausted {
			return Latency{}, fmt.Errorf("acquire from a full pool: got %w, want ResourceExhausted", err)
		}
		if i >= 10 { // the first few warm up
			lat = append(lat, t)
		}
	}
	return summarize(lat), nil
}
