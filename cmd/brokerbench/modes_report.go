package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// writeVersus prints the side-by-side figure and the targets.
func writeVersus(w io.Writer, v *Versus) error {
	var b strings.Builder
	b.WriteString("side by side: AcquireLease (a new lease for a live owner) vs grpc.health.v1.Health/Check on the same connections")
	if v.Portserver != "" {
		b.WriteString(" vs portserver.py handing a port to the same PID")
	}
	b.WriteString(", interleaved in rounds\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "clients\tacquires/s\tp50\tp99\tempty/s\tp50\tp99\tportserver/s\tp50\tp99\tacquire/empty\tacquire/portserver\t")
	for _, l := range v.Levels {
		ps, psP50, psP99, ratio := "-", "-", "-", "-"
		if p := l.Portserver; p != nil {
			ps, psP50, psP99 = fmt.Sprintf("%.0f", p.CallsPerSec), fmtUS(p.Latency.P50US), fmtUS(p.Latency.P99US)
			ratio = fmt.Sprintf("%.2f", l.RatioPortserver)
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t\n", l.Clients,
			l.Acquire.CallsPerSec, fmtUS(l.Acquire.Latency.P50US), fmtUS(l.Acquire.Latency.P99US),
			l.Empty.CallsPerSec, fmtUS(l.Empty.Latency.P50US), fmtUS(l.Empty.Latency.P99US),
			ps, psP50, psP99, l.RatioEmpty, ratio)
	}
	tw.Flush()
	// Issue 14's targets, where this run measured their client count.
	var targets []Target
	for _, l := range v.Levels {
		switch l.Clients {
		case 1:
			targets = append(targets, atLeast("acquire/empty, clients=1", 0.45, l.RatioEmpty))
			if l.Portserver != nil {
				targets = append(targets, atLeast("acquire/portserver, clients=1", 1.5, l.RatioPortserver))
			}
		case 8:
			if l.Portserver != nil {
				targets = append(targets, atLeast("acquire/portserver, clients=8", 2, l.RatioPortserver))
			}
		case 16:
			targets = append(targets, atLeast("acquire/empty, clients=16", 0.5, l.RatioEmpty))
		}
	}
	writeTargets(&b, targets)
	_, err := io.WriteString(w, b.String())
	return err
}

func atLeast(name string, want, got float64) Target {
	return Target{Name: name, Want: fmt.Sprintf(">= %.2f", want), Got: fmt.Sprintf("%.2f", got), Met: got >= want}
}

// writeChurn prints the kill scenario's figure.
func writeChurn(w io.Writer, c *Churn) error {
	_, err := fmt.Fprintf(w, "churn: %d clients, %d shared owners, %.1f s: %d acquires, %d releases\n"+
		"kill every owner: %d leases held, %d reclaimed, %d left listed; kill to RECLAIMED event: p50 %s  p99 %s  max %s\n",
		c.Clients, c.Owners, c.Seconds, c.Acquires, c.Releases,
		c.Held, c.Reclaimed, c.Left, fmtUS(c.Latency.P50US), fmtUS(c.Latency.P99US), fmtUS(c.Latency.MaxUS))
	return err
}
