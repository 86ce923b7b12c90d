package rpcserver

import (
	"time"

	"github.com/portbroker/portbroker/broker"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func leaseToPB(l broker.Lease) *brokerpb.Lease {
	pb := &brokerpb.Lease{
		Id:             l.ID,
		Name:           l.Name,
		Namespace:      l.Namespace,
		Port:           uint32(l.Port),
		Protocol:       protocolToPB(l.Protocol),
		OwnerPid:       int32(l.Owner.PID),
		OwnerStartTime: timeToPB(l.Owner.StartTime),
		OwnerName:      l.Owner.Name,
		OwnerUser:      l.Owner.User,
		CreatedAt:      timeToPB(l.CreatedAt),
		ExpiresAt:      timeToPB(l.ExpiresAt),
	}
	if !l.Launcher.IsZero() {
		pb.LauncherPid = int32(l.Launcher.PID)
		pb.LauncherStartTime = timeToPB(l.Launcher.StartTime)
	}
	if l.TTL > 0 {
		pb.Ttl = durationpb.New(l.TTL)
	}
	return pb
}

func timeToPB(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// protocolFromPB keeps unknown values as they are, so validation can name them.
func protocolFromPB(p brokerpb.Protocol) broker.Protocol {
	switch p {
	case brokerpb.Protocol_PROTOCOL_UNSPECIFIED:
		return 0
	case brokerpb.Protocol_PROTOCOL_TCP:
		return broker.TCP
	case brokerpb.Protocol_PROTOCOL_UDP:
		return broker.UDP
	case brokerpb.Protocol_PROTOCOL_TCP_UDP:
		return broker.TCPUDP
	}
	if p < 0 || p > 255 {
		return 255
	}
	return broker.Protocol(p)
}

func protocolToPB(p broker.Protocol) brokerpb.Protocol {
	switch p {
	case broker.TCP:
		return brokerpb.Protocol_PROTOCOL_TCP
	case broker.UDP:
		return brokerpb.Protocol_PROTOCOL_UDP
	case broker.TCPUDP:
		return brokerpb.Protocol_PROTOCOL_TCP_UDP
	}
	return brokerpb.Protocol_PROTOCOL_UNSPECIFIED
}

func eventTypeToPB(t broker.EventType) brokerpb.LeaseEventType {
	switch t {
	case broker.EventAcquired:
		return brokerpb.LeaseEventType_LEASE_EVENT_TYPE_ACQUIRED
	case broker.EventReleased:
		return brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RELEASED
	case broker.EventExpired:
		return brokerpb.LeaseEventType_LEASE_EVENT_TYPE_EXPIRED
	case broker.EventReclaimed:
		return brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RECLAIMED
	case broker.EventRenewed:
		return brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RENEWED
	case broker.EventTransferred:
		return brokerpb.LeaseEventType_LEASE_EVENT_TYPE_TRANSFERRED
	}
	return brokerpb.LeaseEventType_LEASE_EVENT_TYPE_UNSPECIFIED
}

func reasonToPB(r broker.Reason) brokerpb.ReclaimReason {
	switch r {
	case broker.ReasonOwnerExited:
		return brokerpb.ReclaimReason_RECLAIM_REASON_OWNER_EXITED
	case broker.ReasonLauncherExited:
		return brokerpb.ReclaimReason_RECLAIM_REASON_LAUNCHER_EXITED
	case broker.ReasonTTLExpired:
		return brokerpb.ReclaimReason_RECLAIM_REASON_TTL_EXPIRED
	case broker.ReasonForced:
		return brokerpb.ReclaimReason_RECLAIM_REASON_FORCED
	}
	return brokerpb.ReclaimReason_RECLAIM_REASON_UNSPECIFIED
}

func eventToPB(ev broker.Event) *brokerpb.WatchLeasesResponse {
	return &brokerpb.WatchLeasesResponse{
		Type:   eventTypeToPB(ev.Type),
		Lease:  leaseToPB(ev.Lease),
		Reason: reasonToPB(ev.Reason),
		Time:   timeToPB(ev.Time),
	}
}

func rangeToPB(r broker.PortRange) *brokerpb.PortRange {
	return &brokerpb.PortRange{First: uint32(r.First), Last: uint32(r.Last), Source: r.Source}
}

func rangesToPB(rs []broker.PortRange) []*brokerpb.PortRange {
	out := make([]*brokerpb.PortRange, len(rs))
	for i, r := range rs {
		out[i] = rangeToPB(r)
	}
	return out
}

// durationFromPB converts an optional duration; an unset one is zero. A
// value too large for time.Duration saturates, and validation rejects
// negatives by name.
func durationFromPB(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}
