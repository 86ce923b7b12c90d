package rpcserver

import (
	"context"
	"fmt"

	"github.com/portbroker/portbroker/broker"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// PIDFunc turns a PID as the caller named it (in its own PID namespace)
// into the PID of the same process as the broker sees it, or fails when
// there is none.
type PIDFunc func(ctx context.Context, pid int) (int, error)

// SetPIDTranslator makes AcquireLease translate owner_pid and launcher_pid
// through f before the broker sees them. Without it PIDs are taken as sent.
func (s *Server) SetPIDTranslator(f PIDFunc) { s.pids = f }

// callerPID translates one PID field of a request; 0 and negative PIDs
// pass unchanged, for the broker to interpret or refuse.
func (s *Server) callerPID(ctx context.Context, field string, pid int32) (int, error) {
	if s.pids == nil || pid <= 0 {
		return int(pid), nil
	}
	host, err := s.pids(ctx, int(pid))
	if err != nil {
		return 0, &broker.FieldError{Field: field, Rule: fmt.Sprintf("must name a process the caller can see: %v", err)}
	}
	return host, nil
}

// redactForeign hides the executable path and command line of processes
// that belong to another user than the caller, unless the caller is an
// administrator: on a shared daemon they would tell a user what another
// user's processes run with (arguments often carry secrets), which the OS
// would not show them. The PID, name and user stay, so the caller still
// learns who holds the port.
func redactForeign(c broker.Caller, ps []broker.ProcessInfo) []broker.ProcessInfo {
	if c.Admin || c.User == "" {
		return ps
	}
	out := make([]broker.ProcessInfo, len(ps))
	for i, p := range ps {
		if p.User != c.User {
			p.Exe, p.Cmdline = "", nil
		}
		out[i] = p
	}
	return out
}

// checkProtocol refuses a protocol value outside the enum as the caller
// sent it (-1 stays -1), before conversion could fold it into another.
func checkProtocol(p brokerpb.Protocol) error {
	if _, ok := brokerpb.Protocol_name[int32(p)]; ok {
		return nil
	}
	return &broker.FieldError{Field: "protocol", Rule: fmt.Sprintf("unknown value %d: want PROTOCOL_TCP, PROTOCOL_UDP or PROTOCOL_TCP_UDP", int32(p))}
}
