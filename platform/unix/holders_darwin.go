package unix

import (
	"errors"
	"fmt"

	"github.com/portbroker/portbroker/broker"
)

// holders asks lsof (see lsof.go).
func (t procTable) holders(port uint16, proto broker.Protocol) ([]broker.ProcessInfo, error) {
	out, err := runLsof(port, proto)
	if err != nil {
		return nil, fmt.Errorf("holders of port %d: %w", port, err)
	}
	socks, err := parseLsof(out)
	if err != nil {
		return nil, fmt.Errorf("holders of port %d: lsof output: %w", port, err)
	}
	picked := lsofHolders(socks, port)
	infos := make([]broker.ProcessInfo, 0, len(picked))
	for _, s := range picked {
		info, err := t.inspect(s.pid)
		if errors.Is(err, broker.ErrNoProcess) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("holders of port %d: %w", port, err)
		}
		info.LocalAddr, info.Protocol = s.local.String(), s.proto
		infos = append(infos, info)
	}
	return infos, nil
}
