//go:build unix && !linux && !darwin

package unix

import (
	"fmt"

	"github.com/portbroker/portbroker/broker"
)

// EphemeralRange is not supported on this system.
func (h *Host) EphemeralRange() (broker.PortRange, error) {
	return broker.PortRange{}, fmt.Errorf("ephemeral port range: %w", broker.ErrUnsupported)
}

// ReservedRanges is not supported on this system.
func (h *Host) ReservedRanges() ([]broker.PortRange, error) {
	return nil, fmt.Errorf("reserved port ranges: %w", broker.ErrUnsupported)
}
