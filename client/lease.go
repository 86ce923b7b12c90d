package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// Protocol is the transport a lease reserves its port for.
type Protocol int

const (
	TCP Protocol = iota + 1
	UDP
	// TCPUDP reserves the port for both.
	TCPUDP
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case TCPUDP:
		return "tcp+udp"
	}
	return fmt.Sprintf("protocol(%d)", int(p))
}

// Lease is one port leased to one owner process. The daemon reclaims it
// when the owner exits (or its launcher does, leaving it orphaned), when
// its TTL runs out, or when someone reclaims the port by force.
type Lease struct {
	ID        string
	Name      string
	Namespace string
	Port      int
	Protocol  Protocol
	// OwnerPID and OwnerStartTime identify the owner process; a process
	// with the same PID but another start time is not the owner.
	OwnerPID       int
	OwnerStartTime time.Time
	OwnerName      string
	// OwnerUser is a uid on Unix or a SID on Windows.
	OwnerUser string
	// LauncherPID is the process that asked on the owner's behalf; 0 when
	// the owner asked itself.
	LauncherPID       int
	LauncherStartTime time.Time
	CreatedAt         time.Time
	// TTL is zero for a lease that lives as long as its owner; ExpiresAt
	// is then zero too.
	TTL       time.Duration
	ExpiresAt time.Time

	// Existing is set by Acquire when it returned the owner's existing
	// lease of the same name rather than a new one.
	Existing bool
	// FallbackReason is set by Acquire when the preferred port was not
	// granted and another was: why not.
	FallbackReason string

	c    *Client
	life *lifetime
}

// Release stops the lease's keepalive and ends the lease. Done is closed
// afterwards whatever the outcome: this process no longer holds the lease.
func (l *Lease) Release(ctx context.Context) error {
	l.stopKeepalive()
	err := l.c.Release(ctx, l.ID)
	switch {
	case err == nil:
		l.life.end(ErrReleased)
	case errors.Is(err, ErrNotFound):
		l.life.end(&lostError{id: l.ID, err: err})
	default:
		l.life.end(err)
	}
	return err
}

func leaseFromProto(c *Client, p *brokerpb.Lease) *Lease {
	return &Lease{
		ID:                p.GetId(),
		Name:              p.GetName(),
		Namespace:         p.GetNamespace(),
		Port:              int(p.GetPort()),
		Protocol:          Protocol(p.GetProtocol()),
		OwnerPID:          int(p.GetOwnerPid()),
		OwnerStartTime:    timeFromProto(p.GetOwnerStartTime()),
		OwnerName:         p.GetOwnerName(),
		OwnerUser:         p.GetOwnerUser(),
		LauncherPID:       int(p.GetLauncherPid()),
		LauncherStartTime: timeFromProto(p.GetLauncherStartTime()),
		CreatedAt:         timeFromProto(p.GetCreatedAt()),
		TTL:               p.GetTtl().AsDuration(),
		ExpiresAt:         timeFromProto(p.GetExpiresAt()),
		c:                 c,
		life:              newLifetime(),
	}
}

// timeFromProto maps an unset timestamp to the zero time, not to 1970.
func timeFromProto(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// AcquireOption configures Acquire.
type AcquireOption func(*acquireRequest)

type acquireRequest struct {
	req *brokerpb.AcquireLeaseRequest
	err error // the first invalid option
}

func (r *acquireRequest) invalid(field, rule string) {
	if r.err == nil {
		r.err = &InvalidArgumentError{Field: field, Rule: rule}
	}
}

// WithPort asks for a preferred port. Without WithStrict the daemon falls
// back to another port when it is not free (Lease.FallbackReason says why).
func WithPort(port int) AcquireOption {
	return func(r *acquireRequest) {
		if port < 0 || port > math.MaxUint16 {
			r.invalid("port", fmt.Sprintf("must be from 0 to 65535, not %d", port))
			return
		}
		r.req.Port = uint32(port)
	}
}

// WithNamespace puts the lease in a namespace ("default" when unset).
func WithNamespace(ns string) AcquireOption {
	return func(r *acquireRequest) { r.req.Namespace = ns }
}

// WithOwnerPID makes another process the lease's owner; by default the
// owner is the calling process (os.Getpid()).
func WithOwnerPID(pid int) AcquireOption {
	return func(r *acquireRequest) {
		if pid <= 0 || pid > math.MaxInt32 {
			r.invalid("owner_pid", fmt.Sprintf("must be a process id, not %d", pid))
			return
		}
		r.req.OwnerPid = int32(pid)
	}
}

// WithLauncherPID records the launcher that asks on the owner's behalf: when
// it dies and leaves the owner running, the daemon stops the orphaned owner
// and reclaims the port.
func WithLauncherPID(pid int) AcquireOption {
	return func(r *acquireRequest) {
		if pid <= 0 || pid > math.MaxInt32 {
			r.invalid("launcher_pid", fmt.Sprintf("must be a process id, not %d", pid))
			return
		}
		r.req.LauncherPid = int32(pid)
	}
}

// WithTTL makes the lease expire unless renewed within ttl. Acquire then
// renews it at a third of the TTL until Release, Client.Close, or the end
// of the context given to Acquire: pass a context that lives as long as the
// lease should, not a short call timeout. The daemon's minimum TTL is 1s.
func WithTTL(ttl time.Duration) AcquireOption {
	return func(r *acquireRequest) {
		if ttl <= 0 {
			r.invalid("ttl", fmt.Sprintf("must be positive, not %v", ttl))
			return
		}
		r.req.Ttl = durationpb.New(ttl)
	}
}

// WithProtocol reserves the port for p (TCP when unset).
func WithProtocol(p Protocol) AcquireOption {
	return func(r *acquireRequest) {
		if p < TCP || p > TCPUDP {
			r.invalid("protocol", fmt.Sprintf("must be TCP, UDP or TCPUDP, not %v", p))
			return
		}
		r.req.Protocol = brokerpb.Protocol(p)
	}
}

// WithUDP is WithProtocol(UDP).
func WithUDP() AcquireOption { return WithProtocol(UDP) }

// WithStrict fails with a *PortHeldError instead of falling back to another
// port when the preferred port is not free.
func WithStrict() AcquireOption {
	return func(r *acquireRequest) { r.req.Strict = true }
}

// WithReclaim lets the daemon stop an orphan of an earlier lease of the
// same name that still holds the preferred port.
func WithReclaim() AcquireOption {
	return func(r *acquireRequest) { r.req.Reclaim = true }
}

// Acquire leases a port for name. Asking again for the same name from the
// same live owner returns the same lease (with Existing set). A lease with
// a TTL is kept alive as WithTTL describes; watch Done for its loss.
func (c *Client) Acquire(ctx context.Context, name string, opts ...AcquireOption) (*Lease, error) {
	// The owner is sent explicitly: the daemon cannot tell who calls over
	// every transport (loopback TCP carries no peer identity).
	r := acquireRequest{req: &brokerpb.AcquireLeaseRequest{Name: name, OwnerPid: int32(os.Getpid())}}
	for _, opt := range opts {
		opt(&r)
	}
	if r.err != nil {
		return nil, r.err
	}
	resp, err := c.rpc.AcquireLease(ctx, r.req)
	if err != nil {
		return nil, err
	}
	l := leaseFromProto(c, resp.GetLease())
	l.Existing = resp.GetExisting()
	l.FallbackReason = resp.GetFallbackReason()
	if l.TTL > 0 {
		c.keepAlive(ctx, l)
	}
	return l, nil
}

// ErrTransferred is a lease's Err after Transfer gave it to another owner;
// the *Lease Transfer returned stands for it from then on.
var ErrTransferred = errors.New("lease transferred")

// Transfer hands the lease to a new owner process (and its launcher; 0
// for none) in one step, keeping its ID, name and port, so nothing can take
// them in between. It is authorized like Release. On success l ends with
// ErrTransferred and the returned lease, kept alive by this process as an
// Acquire'd one is when it has a TTL, stands for it.
func (l *Lease) Transfer(ctx context.Context, ownerPID, launcherPID int) (*Lease, error) {
	if ownerPID <= 0 {
		return nil, &InvalidArgumentError{Field: "owner_pid", Rule: fmt.Sprintf("must be a PID, not %d", ownerPID)}
	}
	if launcherPID < 0 {
		return nil, &InvalidArgumentError{Field: "launcher_pid", Rule: fmt.Sprintf("must be a PID or 0, not %d", launcherPID)}
	}
	resp, err := l.c.rpc.TransferLease(ctx, &brokerpb.TransferLeaseRequest{
		LeaseId: l.ID, OwnerPid: int32(ownerPID), LauncherPid: int32(launcherPID)})
	if err != nil {
		return nil, err
	}
	l.stopKeepalive()
	l.life.end(ErrTransferred)
	moved := leaseFromProto(l.c, resp.GetLease())
	moved.FallbackReason = l.FallbackReason
	if moved.TTL > 0 {
		l.c.keepAlive(ctx, moved)
	}
	return moved, nil
}

// Release ends the lease with this ID.
func (c *Client) Release(ctx context.Context, id string) error {
	_, err := c.rpc.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: id})
	return err
}

// Renew extends a TTL lease. A positive ttl replaces the lease's TTL; 0
// keeps it.
func (c *Client) Renew(ctx context.Context, id string, ttl time.Duration) (*Lease, error) {
	if ttl < 0 {
		return nil, &InvalidArgumentError{Field: "ttl", Rule: fmt.Sprintf("must not be negative, not %v", ttl)}
	}
	req := &brokerpb.RenewLeaseRequest{LeaseId: id}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	resp, err := c.rpc.RenewLease(ctx, req)
	if err != nil {
		return nil, err
	}
	return leaseFromProto(c, resp.GetLease()), nil
}

// List returns the live leases in namespace, or in every namespace when
// namespace is empty, following the daemon's pages to the last.
func (c *Client) List(ctx context.Context, namespace string) ([]*Lease, error) {
	pbs, err := c.ListProto(ctx, namespace)
	if err != nil {
		return nil, err
	}
	leases := make([]*Lease, len(pbs))
	for i, p := range pbs {
		leases[i] = leaseFromProto(c, p)
	}
	return leases, nil
}

// ListProto is List in the API's own messages, for tools that print them.
func (c *Client) ListProto(ctx context.Context, namespace string) ([]*brokerpb.Lease, error) {
	var out []*brokerpb.Lease
	req := &brokerpb.ListLeasesRequest{Namespace: namespace}
	for {
		resp, err := c.rpc.ListLeases(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetLeases()...)
		next := resp.GetNextPageToken()
		if next == "" {
			return out, nil
		}
		if next == req.GetPageToken() {
			return nil, fmt.Errorf("list leases: the daemon returned the same page token twice")
		}
		req.PageToken = next
	}
}
