package client

import (
	"context"
	"time"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// PortRange is an inclusive range of ports.
type PortRange struct {
	First, Last int
	// Source says who set the range aside, when known
	// ("ip_local_reserved_ports", "config", "administered").
	Source string
}

// Status is the daemon's view of itself and of the host's ports.
type Status struct {
	Version string
	// Platform is the daemon's GOOS/GOARCH.
	Platform string
	PID      int
	// StartedAt is when the daemon started.
	StartedAt time.Time
	// StatePath is the daemon's lease database.
	StatePath string
	// Pool is the range ports are leased from; PoolSize and PoolFree
	// count its usable and unleased ports.
	Pool     PortRange
	PoolSize int
	PoolFree int
	// EphemeralRange is the OS's range for outgoing connections, which
	// the pool stays clear of.
	EphemeralRange PortRange
	// ReservedRanges and ExcludedRanges are set aside by the OS or the
	// administrator; the pool skips them.
	ReservedRanges    []PortRange
	ExcludedRanges    []PortRange
	LeaseCount        int
	LeasesByNamespace map[string]int
}

// Status reports the daemon's version, pool and ranges.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.rpc.GetStatus(ctx, &brokerpb.GetStatusRequest{})
	if err != nil {
		return nil, err
	}
	s := &Status{
		Version:           resp.GetVersion(),
		Platform:          resp.GetPlatform(),
		PID:               int(resp.GetPid()),
		StartedAt:         timeFromProto(resp.GetStartedAt()),
		StatePath:         resp.GetStatePath(),
		Pool:              rangeFromProto(resp.GetPool()),
		PoolSize:          int(resp.GetPoolSize()),
		PoolFree:          int(resp.GetPoolFree()),
		EphemeralRange:    rangeFromProto(resp.GetEphemeralRange()),
		ReservedRanges:    rangesFromProto(resp.GetReservedRanges()),
		ExcludedRanges:    rangesFromProto(resp.GetExcludedRanges()),
		LeaseCount:        int(resp.GetLeaseCount()),
		LeasesByNamespace: make(map[string]int, len(resp.GetLeasesByNamespace())),
	}
	for ns, n := range resp.GetLeasesByNamespace() {
		s.LeasesByNamespace[ns] = int(n)
	}
	return s, nil
}

func rangeFromProto(r *brokerpb.PortRange) PortRange {
	return PortRange{First: int(r.GetFirst()), Last: int(r.GetLast()), Source: r.GetSource()}
}

func rangesFromProto(rs []*brokerpb.PortRange) []PortRange {
	if len(rs) == 0 {
		return nil
	}
	out := make([]PortRange, len(rs))
	for i, r := range rs {
		out[i] = rangeFromProto(r)
	}
	return out
}
