//go:build unix && !linux && !darwin

package unix

import (
	"fmt"

	"github.com/portbroker/portbroker/broker"
)

// procTable cannot read processes on this system.
type procTable struct{}

func newProcTable() procTable { return procTable{} }

func (procTable) lookup(pid int) (broker.Process, error) {
	return broker.Process{}, fmt.Errorf("look up pid %d: %w", pid, broker.ErrUnsupported)
}

func (procTable) close() {}
