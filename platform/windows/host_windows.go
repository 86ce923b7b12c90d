package windows

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	xwin "golang.org/x/sys/windows"

	"github.com/portbroker/portbroker/broker"
)

const (
	// rangesMaxAge bounds how stale the cached port ranges may be.
	rangesMaxAge = 30 * time.Second
	// bindRefreshAge is how stale the excluded ranges may be when a probe
	// hits WSAEACCES: fresh enough to catch a range WinNAT just moved,
	// without running netsh for every probe of a busy pool.
	bindRefreshAge = 5 * time.Second
	// netshTimeout bounds one netsh run; a refresh makes four.
	netshTimeout = 15 * time.Second
)

// Host answers the broker's questions about this machine. Its methods are
// safe for concurrent use.
type Host struct {
	ranges rangeCache
}

// New returns the host.
func New() *Host {
	return &Host{ranges: rangeCache{netsh: runNetsh, now: time.Now, maxAge: rangesMaxAge}}
}

var (
	_ broker.ProcessTable = (*Host)(nil)
	_ broker.Prober       = (*Host)(nil)
)

// EphemeralRange returns the dynamic port range: the span of the TCP and UDP
// ranges over IPv4 and IPv6 that netsh reports, or 49152-65535 when netsh
// reports none (Wine's netsh prints nothing). It does not fail; the range's
// Source says where it came from.
func (h *Host) EphemeralRange() (broker.PortRange, error) {
	return h.ranges.dynamicRange(context.Background()), nil
}

// ReservedRanges returns the excluded port ranges of TCP and UDP over IPv4
// and IPv6, merged: those Hyper-V, WinNAT, WSL or Docker took, and those an
// administrator set aside (Source SourceAdministered). They are read at most
// every 30 seconds; RefreshRanges reads them now.
func (h *Host) ReservedRanges() ([]broker.PortRange, error) {
	return h.ranges.excludedRanges(context.Background(), rangesMaxAge)
}

// RefreshRanges reads the excluded port ranges again, for callers that saw a
// bind fail and suspect WinNAT moved them.
func (h *Host) RefreshRanges() error {
	_, err := h.ranges.excludedRanges(context.Background(), 0)
	return err
}

// runNetsh runs the system's netsh, never one found on PATH, without a
// console window.
func runNetsh(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, netshTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, netshPath(), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: xwin.CREATE_NO_WINDOW}
	out, err := cmd.Output()
	if err != nil {
		// netsh explains its failures on stdout.
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return "", fmt.Errorf("run netsh: %w: %.200s", err, msg)
		}
		return "", fmt.Errorf("run netsh: %w", err)
	}
	return string(out), nil
}

func netshPath() string {
	dir, err := xwin.GetSystemDirectory()
	if err != nil {
		return "netsh.exe"
	}
	return filepath.Join(dir, "netsh.exe")
}
