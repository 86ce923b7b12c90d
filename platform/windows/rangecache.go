package windows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// netshFunc runs netsh with args and returns what it printed.
type netshFunc func(ctx context.Context, args ...string) (string, error)

// rangeCache keeps the dynamic and excluded port ranges netsh reports.
// Reading them runs netsh several times, which takes a noticeable fraction
// of a second on Windows, so results are kept for maxAge. Excluded ranges
// still have to be re-read from time to time and after a WSAEACCES, because
// WinNAT moves them at boot and when Hyper-V networks come and go.
type rangeCache struct {
	netsh  netshFunc
	now    func() time.Time
	maxAge time.Duration

	// mu is held across netsh runs, so concurrent callers wait for one
	// refresh instead of starting their own.
	mu        sync.Mutex
	dynamic   broker.PortRange
	dynamicAt time.Time // zero until first read
	// excluded is the last successful read; excludedErr is the error of
	// the last attempt, if it failed.
	excluded    []broker.PortRange
	excludedErr error
	excludedAt  time.Time // zero until first attempt
}

var (
	ipVersions = []string{"ipv4", "ipv6"}
	protocols  = []string{"tcp", "udp"}
)

// dynamicRange returns the span of the dynamic port ranges of TCP and UDP
// over IPv4 and IPv6: from the lowest start to the highest end. The pool has
// to stay below every one of them, so the lowest start is what matters; the
// four agree unless an administrator changed one. When netsh reports none
// (it failed, or it is Wine's silent stub) the Windows default is returned,
// its Source saying why.
func (c *rangeCache) dynamicRange(ctx context.Context) broker.PortRange {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dynamicAt.IsZero() && c.now().Sub(c.dynamicAt) < c.maxAge {
		return c.dynamic
	}
	var (
		span     broker.PortRange
		found    bool
		firstErr error
	)
	for _, ip := range ipVersions {
		for _, proto := range protocols {
			args := []string{"int", ip, "show", "dynamicport", proto}
			r, err := c.readDynamic(ctx, args)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			if !found {
				span, found = r, true
				continue
			}
			span.First = min(span.First, r.First)
			span.Last = max(span.Last, r.Last)
		}
	}
	if !found {
		span = defaultDynamicRange
		span.Source = fmt.Sprintf("%s (%v)", defaultDynamicRange.Source, firstErr)
	}
	c.dynamic, c.dynamicAt = span, c.now()
	return span
}

func (c *rangeCache) readDynamic(ctx context.Context, args []string) (broker.PortRange, error) {
	out, err := c.netsh(ctx, args...)
	if err == nil {
		var r broker.PortRange
		if r, err = ParseDynamicPorts(out); err == nil {
			return r, nil
		}
	}
	return broker.PortRange{}, fmt.Errorf("netsh %s: %w", strings.Join(args, " "), err)
}

// excludedRanges returns the excluded port ranges of TCP and UDP over IPv4
// and IPv6, merged, reading them again when the last read is older than
// maxAge. It fails when netsh does; empty output is no ranges.
func (c *rangeCache) excludedRanges(ctx context.Context, maxAge time.Duration) ([]broker.PortRange, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.excludedAt.IsZero() || c.now().Sub(c.excludedAt) >= maxAge {
		c.refreshExcluded(ctx)
	}
	if c.excludedErr != nil {
		return nil, c.excludedErr
	}
	return slices.Clone(c.excluded), nil
}

// lastExcluded returns the ranges of the last successful read, refreshing
// them first when they are older than maxAge; a failed refresh keeps the
// old ones. Bind classification uses it: stale ranges beat none.
func (c *rangeCache) lastExcluded(ctx context.Context, maxAge time.Duration) []broker.PortRange {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.excludedAt.IsZero() || c.now().Sub(c.excludedAt) >= maxAge {
		c.refreshExcluded(ctx)
	}
	return slices.Clone(c.excluded)
}

func (c *rangeCache) refreshExcluded(ctx context.Context) {
	var (
		all  []broker.PortRange
		errs []error
	)
	for _, ip := range ipVersions {
		for _, proto := range protocols {
			args := []string{"int", ip, "show", "excludedportrange", "protocol=" + proto}
			out, err := c.netsh(ctx, args...)
			var rs []broker.PortRange
			if err == nil {
				rs, err = ParseExcludedRanges(out, SourceExcluded)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("netsh %s: %w", strings.Join(args, " "), err))
				continue
			}
			all = append(all, rs...)
		}
	}
	c.excludedAt = c.now()
	c.excludedErr = errors.Join(errs...)
	if c.excludedErr == nil {
		c.excluded = broker.MergeRanges(all)
	}
}
