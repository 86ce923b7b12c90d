// Package rpcserver is the thin gRPC adapter over the broker: it converts
// messages, makes one call into the broker and maps its errors.
package rpcserver

import (
	"context"
	"errors"
	"maps"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/portbroker/portbroker/broker"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// Info is what GetStatus reports besides the broker's own state.
type Info struct {
	Version   string
	StatePath string
	StartedAt time.Time
	// ConfigFile is the config file the daemon read, if any, and Services
	// the preferred ports it gives.
	ConfigFile string
	Services   map[string]broker.Service
	// Warnings are what the daemon found wrong when it started.
	Warnings []string
}

// CallerFunc tells who made a call. The transport decides; the broker only
// sees the result.
type CallerFunc func(ctx context.Context) broker.Caller

// Server implements brokerpb.BrokerServiceServer over a broker.
type Server struct {
	brokerpb.UnimplementedBrokerServiceServer
	b      *broker.Broker
	info   Info
	caller CallerFunc
	pids   PIDFunc
	health *health.Server
	// firewall is nil where the platform has none to manage.
	firewall Firewall
	// stopping ends watch streams, which would otherwise hold a graceful
	// stop open for as long as their clients stay.
	stopping     chan struct{}
	stoppingOnce sync.Once
}

// New returns a server for b. caller may be nil when the transport cannot
// tell who calls.
func New(b *broker.Broker, info Info, caller CallerFunc) *Server {
	if caller == nil {
		caller = func(context.Context) broker.Caller { return broker.Caller{} }
	}
	return &Server{b: b, info: info, caller: caller, health: health.NewServer(), stopping: make(chan struct{})}
}

// Register adds the broker service, health and reflection to gs and marks
// the broker serving.
func (s *Server) Register(gs *grpc.Server) {
	brokerpb.RegisterBrokerServiceServer(gs, s)
	healthpb.RegisterHealthServer(gs, s.health)
	reflection.Register(gs)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(brokerpb.BrokerService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
}

// Shutdown marks the server not serving and ends health watches, so
// clients see the daemon going before their calls fail.
func (s *Server) Shutdown() {
	s.health.Shutdown()
	s.stoppingOnce.Do(func() { close(s.stopping) })
}

// CallTimeout bounds every unary call on the server side, so a stuck store
// or host call cannot pin a client forever.
const CallTimeout = 30 * time.Second

// UnaryDeadline is a server interceptor that applies CallTimeout.
func UnaryDeadline(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	return handler(ctx, req)
}

func (s *Server) AcquireLease(ctx context.Context, req *brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
	if err := checkProtocol(req.GetProtocol()); err != nil {
		return nil, toStatus(err)
	}
	owner, err := s.callerPID(ctx, "owner_pid", req.GetOwnerPid())
	if err != nil {
		return nil, toStatus(err)
	}
	launcher, err := s.callerPID(ctx, "launcher_pid", req.GetLauncherPid())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.b.Acquire(ctx, broker.AcquireRequest{
		Caller:            s.caller(ctx),
		Name:              req.GetName(),
		Namespace:         req.GetNamespace(),
		Port:              int(req.GetPort()),
		Protocol:          protocolFromPB(req.GetProtocol()),
		OwnerPID:          owner,
		OwnerCallerParent: req.GetOwnerCallerParent(),
		LauncherPID:       launcher,
		TTL:               durationFromPB(req.GetTtl()),
		Strict:            req.GetStrict(),
		Reclaim:           req.GetReclaim(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &brokerpb.AcquireLeaseResponse{
		Lease:          leaseToPB(res.Lease),
		Existing:       res.Existing,
		FallbackReason: res.FallbackReason,
	}, nil
}

func (s *Server) ReleaseLease(ctx context.Context, req *brokerpb.ReleaseLeaseRequest) (*brokerpb.ReleaseLeaseResponse, error) {
	l, err := s.b.Release(ctx, s.caller(ctx), req.GetLeaseId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &brokerpb.ReleaseLeaseResponse{Lease: leaseToPB(l)}, nil
}

func (s *Server) RenewLease(ctx context.Context, req *brokerpb.RenewLeaseRequest) (*brokerpb.RenewLeaseResponse, error) {
	l, err := s.b.Renew(ctx, s.caller(ctx), req.GetLeaseId(), durationFromPB(req.GetTtl()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &brokerpb.RenewLeaseResponse{Lease: leaseToPB(l)}, nil
}

func (s *Server) TransferLease(ctx context.Context, req *brokerpb.TransferLeaseRequest) (*brokerpb.TransferLeaseResponse, error) {
	l, err := s.b.Transfer(ctx, broker.TransferRequest{
		Caller:      s.caller(ctx),
		LeaseID:     req.GetLeaseId(),
		OwnerPID:    int(req.GetOwnerPid()),
		LauncherPID: int(req.GetLauncherPid()),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &brokerpb.TransferLeaseResponse{Lease: leaseToPB(l)}, nil
}

func (s *Server) ListLeases(_ context.Context, req *brokerpb.ListLeasesRequest) (*brokerpb.ListLeasesResponse, error) {
	if err := broker.CheckNamespace(req.GetNamespace()); err != nil {
		return nil, toStatus(err)
	}
	page, err := s.b.ListPage(req.GetNamespace(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, toStatus(err)
	}
	out := make([]*brokerpb.Lease, len(page.Leases))
	for i, l := range page.Leases {
		out[i] = leaseToPB(l)
	}
	return &brokerpb.ListLeasesResponse{Leases: out, NextPageToken: page.Next}, nil
}

func (s *Server) WatchLeases(req *brokerpb.WatchLeasesRequest, stream grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error {
	if err := broker.CheckNamespace(req.GetNamespace()); err != nil {
		return toStatus(err)
	}
	sub, err := s.b.Watch(req.GetNamespace(), req.GetIncludeExisting())
	if err != nil {
		return toStatus(err)
	}
	defer sub.Close()
	// The response headers say the watch is in place: a client that waits
	// for them misses no change made after.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	ctx := stream.Context()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return statusError(codes.Unavailable, ReasonStopping, "portbrokerd is stopping")
		case ev, ok := <-sub.Events():
			if !ok {
				return s.endWatch(stream, sub.Err())
			}
			if err := stream.Send(eventToPB(ev)); err != nil {
				return err
			}
		}
	}
}

// endWatch tells the watcher why its stream ends.
func (s *Server) endWatch(stream grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse], err error) error {
	if errors.Is(err, broker.ErrOverflow) {
		_ = stream.Send(&brokerpb.WatchLeasesResponse{
			Type: brokerpb.LeaseEventType_LEASE_EVENT_TYPE_OVERFLOW,
			Time: timestamppb.Now(),
		})
		return statusError(codes.ResourceExhausted, ReasonWatchOverflow, "watcher fell behind and was dropped; watch again and list leases to resync")
	}
	if err == nil {
		err = broker.ErrClosed
	}
	return toStatus(err)
}

func (s *Server) GetStatus(context.Context, *brokerpb.GetStatusRequest) (*brokerpb.GetStatusResponse, error) {
	st := s.b.Status()
	byNS := make(map[string]uint32, len(st.ByNamespace))
	for ns, n := range st.ByNamespace {
		byNS[ns] = uint32(n)
	}
	return &brokerpb.GetStatusResponse{
		Version:           s.info.Version,
		Platform:          runtime.GOOS + "/" + runtime.GOARCH,
		Pool:              rangeToPB(st.Pool),
		EphemeralRange:    rangeToPB(st.Ephemeral),
		ReservedRanges:    rangesToPB(st.Reserved),
		ExcludedRanges:    rangesToPB(st.Excluded),
		PoolSize:          uint32(st.PoolSize),
		PoolFree:          uint32(st.PoolFree),
		LeaseCount:        uint32(st.Leases),
		LeasesByNamespace: byNS,
		StartedAt:         timeToPB(s.info.StartedAt),
		StatePath:         s.info.StatePath,
		Pid:               int32(os.Getpid()),
		ConfigFile:        s.info.ConfigFile,
		Warnings:          s.info.Warnings,
		Services:          servicesToPB(s.info.Services),
	}, nil
}

// servicesToPB lists the configured services by name.
func servicesToPB(services map[string]broker.Service) []*brokerpb.ConfiguredService {
	out := make([]*brokerpb.ConfiguredService, 0, len(services))
	for _, name := range slices.Sorted(maps.Keys(services)) {
		svc := services[name]
		out = append(out, &brokerpb.ConfiguredService{Name: name, Port: uint32(svc.Port), Protocol: protocolToPB(svc.Protocol)})
	}
	return out
}
