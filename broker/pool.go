package broker

import (
	"fmt"
	"time"
)

// PoolConfig is what the pool is made of.
type PoolConfig struct {
	// Range is the configured range; zero means DefaultRange(Ephemeral).
	Range PortRange
	// Ephemeral is the OS ephemeral range; the pool never reaches into it.
	Ephemeral PortRange
	// Reserved are ranges the OS reserved or excluded.
	Reserved []PortRange
	// Exclude are ranges the configuration keeps out of the pool.
	Exclude []PortRange
}

const (
	defaultFirst  = 20000
	defaultCapEnd = 49151
	// minPort keeps the pool out of the privileged ports.
	minPort = 1024
)

// DefaultRange is 20000 up to one below the ephemeral start, capped at
// 49151. When the ephemeral range starts too low for that, it starts at 1024.
func DefaultRange(ephemeral PortRange) PortRange {
	last := uint16(defaultCapEnd)
	if ephemeral.First > 0 && ephemeral.First-1 < last {
		last = ephemeral.First - 1
	}
	first := uint16(defaultFirst)
	if last < first+255 {
		first = minPort
	}
	return PortRange{First: first, Last: last, Source: "default"}
}

// pool tracks which ports may be handed out and which are free. Allocation
// is next-fit over a bitset, so a request never scans the pool port by port
// and a full pool is refused in O(1).
type pool struct {
	cfg     PoolConfig
	rng     PortRange
	allowed portSet
	size    int
	// avail = allowed minus leased minus busy; free counts it.
	avail portSet
	free  int
	// busy ports failed a bind probe; they rest until their time is up.
	busy      map[uint16]time.Time
	nextSweep time.Time
	cursor    uint16
}

// busyRest is how long a port that failed its bind probe is left alone.
const busyRest = 30 * time.Second

func newPool(cfg PoolConfig) (*pool, error) {
	rng := cfg.Range
	if rng == (PortRange{}) {
		rng = DefaultRange(cfg.Ephemeral)
	}
	if rng.First == 0 || rng.Last < rng.First {
		return nil, fmt.Errorf("pool range %s: must be ports from 1 to 65535, first <= last", rng)
	}
	p := &pool{cfg: cfg, rng: rng, busy: make(map[uint16]time.Time), cursor: rng.First}
	for port := int(rng.First); port <= int(rng.Last); port++ {
		p.allowed.add(uint16(port))
	}
	cut := func(r PortRange) {
		for port := int(r.First); port <= int(r.Last); port++ {
			p.allowed.remove(uint16(port))
		}
	}
	if cfg.Ephemeral.Len() > 0 {
		cut(cfg.Ephemeral)
	}
	cut(PortRange{First: 0, Last: minPort - 1})
	for _, r := range cfg.Reserved {
		cut(r)
	}
	for _, r := range cfg.Exclude {
		cut(r)
	}
	p.avail = p.allowed
	p.size = p.allowed.count()
	p.free = p.size
	if p.size == 0 {
		return nil, fmt.Errorf("pool range %s: no usable port left after removing the ephemeral range %s, ports below %d, reserved ranges [%s] and exclusions [%s]",
			rng, cfg.Ephemeral, minPort, FormatRanges(cfg.Reserved), FormatRanges(cfg.Exclude))
	}
	return p, nil
}

// inPool reports whether port is one the pool may hand out.
func (p *pool) inPool(port uint16) bool { return p.allowed.has(port) }

// take marks port as leased. Ports outside the pool are not tracked here.
func (p *pool) take(port uint16) {
	if p.avail.has(port) {
		p.avail.remove(port)
		p.free--
	}
	delete(p.busy, port)
}

// give marks a leased port free again.
func (p *pool) give(port uint16) {
	if p.allowed.has(port) && !p.avail.has(port) {
		p.avail.add(port)
		p.free++
	}
}

// rest marks a free port busy until now+busyRest.
func (p *pool) rest(port uint16, now time.Time) {
	if p.avail.has(port) {
		p.avail.remove(port)
		p.free--
		p.busy[port] = now.Add(busyRest)
		if p.nextSweep.IsZero() || p.nextSweep.After(now.Add(busyRest)) {
			p.nextSweep = now.Add(busyRest)
		}
	}
}

// sweep returns rested ports whose time is up. The leased check is the
// caller's: a rested port cannot be leased, since take clears it.
func (p *pool) sweep(now time.Time) {
	if p.nextSweep.IsZero() || now.Before(p.nextSweep) {
		return
	}
	p.nextSweep = time.Time{}
	for port, until := range p.busy {
		if !now.Before(until) {
			delete(p.busy, port)
			if p.allowed.has(port) && !p.avail.has(port) {
				p.avail.add(port)
				p.free++
			}
			continue
		}
		if p.nextSweep.IsZero() || until.Before(p.nextSweep) {
			p.nextSweep = until
		}
	}
}

// candidate returns the next free port after the last one handed out.
func (p *pool) candidate() (uint16, bool) {
	if p.free == 0 {
		return 0, false
	}
	port, ok := p.avail.next(p.cursor)
	if ok {
		p.cursor = port + 1
		if p.cursor > p.rng.Last || p.cursor == 0 {
			p.cursor = p.rng.First
		}
	}
	return port, ok
}

// SetHostRanges replaces the OS's ephemeral and reserved ranges, which can
// move while the daemon runs (WinNAT re-reserves ranges at will). Leases
// on ports that became reserved stay; their ports are just not handed out
// again. It returns whether anything changed.
func (b *Broker) SetHostRanges(ephemeral PortRange, reserved []PortRange) (bool, error) {
	reserved = MergeRanges(reserved)
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.pool
	if old.cfg.Ephemeral == ephemeral && slicesEqual(old.cfg.Reserved, reserved) {
		return false, nil
	}
	cfg := old.cfg
	cfg.Ephemeral, cfg.Reserved = ephemeral, reserved
	p, err := newPool(cfg)
	if err != nil {
		return false, err
	}
	p.cursor = old.cursor
	if !p.rng.Contains(p.cursor) {
		p.cursor = p.rng.First
	}
	for port := range b.byPort {
		p.take(port)
	}
	for port, until := range old.busy {
		if p.avail.has(port) {
			p.avail.remove(port)
			p.free--
			p.busy[port] = until
		}
	}
	p.nextSweep = old.nextSweep
	b.pool = p
	b.log.Info("host port ranges changed", "ephemeral", ephemeral.String(), "reserved", FormatRanges(reserved), "pool_size", p.size)
	return true, nil
}

func slicesEqual(a, b []PortRange) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
