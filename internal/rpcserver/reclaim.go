package rpcserver

import (
	"context"

	"github.com/portbroker/portbroker/broker"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

func (s *Server) InspectPort(ctx context.Context, req *brokerpb.InspectPortRequest) (*brokerpb.InspectPortResponse, error) {
	if err := checkProtocol(req.GetProtocol()); err != nil {
		return nil, toStatus(err)
	}
	rep, err := s.b.InspectPort(ctx, int(req.GetPort()), protocolFromPB(req.GetProtocol()))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &brokerpb.InspectPortResponse{
		Port:              uint32(rep.Port),
		Protocol:          protocolToPB(rep.Protocol),
		Holders:           processesToPB(redactForeign(s.caller(ctx), rep.Holders)),
		Bind:              brokerpb.BindResult_BIND_RESULT_FREE,
		Fix:               rep.Fix,
		EphemeralPosition: positionToPB(rep.Position),
		EphemeralRange:    rangeToPB(rep.Ephemeral),
		ExcludedBy:        rangesToPB(rep.ExcludedBy),
		InPool:            rep.InPool,
	}
	if rep.Lease != nil {
		out.Lease = leaseToPB(*rep.Lease)
	}
	if rep.Bind != nil {
		out.Bind = bindToPB(rep.Bind.Class)
		out.BindDetail = rep.Bind.Detail
	}
	return out, nil
}

func (s *Server) ReclaimPort(ctx context.Context, req *brokerpb.ReclaimPortRequest) (*brokerpb.ReclaimPortResponse, error) {
	if err := checkProtocol(req.GetProtocol()); err != nil {
		return nil, toStatus(err)
	}
	res, err := s.b.ReclaimPort(ctx, broker.ReclaimRequest{
		Caller:   s.caller(ctx),
		Port:     int(req.GetPort()),
		Protocol: protocolFromPB(req.GetProtocol()),
		Kill:     req.GetKill(),
		Force:    req.GetForce(),
		Grace:    durationFromPB(req.GetGrace()),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &brokerpb.ReclaimPortResponse{Free: res.Free, Detail: res.Detail}
	if res.Released != nil {
		out.Released = leaseToPB(*res.Released)
	}
	for _, st := range res.Stopped {
		out.Stopped = append(out.Stopped, &brokerpb.StoppedProcess{Process: processToPB(st.Process), Method: stopMethodToPB(st.Method)})
	}
	return out, nil
}

func processToPB(p broker.ProcessInfo) *brokerpb.Process {
	return &brokerpb.Process{
		Pid:          int32(p.PID),
		Name:         p.Name,
		Exe:          p.Exe,
		Cmdline:      p.Cmdline,
		ParentPid:    int32(p.PPID),
		ParentAlive:  p.ParentAlive,
		User:         p.User,
		StartTime:    timeToPB(p.StartTime),
		Orphan:       p.Orphan(),
		System:       p.System,
		LocalAddress: p.LocalAddr,
		Protocol:     protocolToPB(p.Protocol),
	}
}

func processesToPB(ps []broker.ProcessInfo) []*brokerpb.Process {
	out := make([]*brokerpb.Process, len(ps))
	for i, p := range ps {
		out[i] = processToPB(p)
	}
	return out
}

func bindToPB(c broker.BindClass) brokerpb.BindResult {
	switch c {
	case broker.BindInUse:
		return brokerpb.BindResult_BIND_RESULT_IN_USE
	case broker.BindExcluded:
		return brokerpb.BindResult_BIND_RESULT_EXCLUDED_RANGE
	case broker.BindExclusive:
		return brokerpb.BindResult_BIND_RESULT_EXCLUSIVE_USE
	case broker.BindPermission:
		return brokerpb.BindResult_BIND_RESULT_PERMISSION
	}
	return brokerpb.BindResult_BIND_RESULT_OTHER
}

func positionToPB(p broker.EphemeralPosition) brokerpb.EphemeralPosition {
	switch p {
	case broker.EphemeralBelow:
		return brokerpb.EphemeralPosition_EPHEMERAL_POSITION_BELOW
	case broker.EphemeralInside:
		return brokerpb.EphemeralPosition_EPHEMERAL_POSITION_INSIDE
	case broker.EphemeralAbove:
		return brokerpb.EphemeralPosition_EPHEMERAL_POSITION_ABOVE
	}
	return brokerpb.EphemeralPosition_EPHEMERAL_POSITION_UNSPECIFIED
}

func stopMethodToPB(m broker.StopMethod) brokerpb.StopMethod {
	switch m {
	case broker.StopGraceful:
		return brokerpb.StopMethod_STOP_METHOD_GRACEFUL
	case broker.StopForced:
		return brokerpb.StopMethod_STOP_METHOD_FORCED
	case broker.StopAlreadyExited:
		return brokerpb.StopMethod_STOP_METHOD_ALREADY_EXITED
	}
	return brokerpb.StopMethod_STOP_METHOD_UNSPECIFIED
}
