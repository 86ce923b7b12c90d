//go:build unix && !linux && !darwin

package unix

import (
	"fmt"

	"github.com/portbroker/portbroker/broker"
)

func (procTable) inspect(pid int) (broker.ProcessInfo, error) {
	return broker.ProcessInfo{}, fmt.Errorf("inspect pid %d: %w", pid, broker.ErrUnsupported)
}

func (procTable) descendants(p broker.Process) ([]broker.ProcessInfo, error) {
	return nil, fmt.Errorf("descendants of %v: %w", p, broker.ErrUnsupported)
}

func (procTable) holders(port uint16, _ broker.Protocol) ([]broker.ProcessInfo, error) {
	return nil, fmt.Errorf("holders of port %d: %w", port, broker.ErrUnsupported)
}
