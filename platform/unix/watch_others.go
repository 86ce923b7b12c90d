//go:build unix && !linux && !darwin

package unix

import (
	"time"

	"github.com/portbroker/portbroker/broker"
)

// NewExitWatcher returns a watcher that looks every watched process up each
// pollInterval.
func (h *Host) NewExitWatcher(pollInterval time.Duration) (broker.ExitWatcher, error) {
	if err := checkPollInterval(pollInterval); err != nil {
		return nil, err
	}
	return newPollWatcher(h.Lookup, pollInterval), nil
}

// threadGroup is Linux's; elsewhere a PID never names a thread.
func threadGroup(int) (int, bool) { return 0, false }
