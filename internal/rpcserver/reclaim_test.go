package rpcserver

import (
	"strings"
	"testing"

	"github.com/portbroker/portbroker/broker"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestReclaimGraceOutOfRange: a grace longer than a call can wait, or
// beyond what a time.Duration holds, is InvalidArgument naming grace.
func TestReclaimGraceOutOfRange(t *testing.T) {
	b, err := broker.Open(t.Context(), broker.Config{
		Pool: broker.PoolConfig{Range: broker.PortRange{First: 10000, Last: 10099}, Ephemeral: broker.PortRange{First: 32768, Last: 60999}},
	}, broker.Deps{Store: &memStore{leases: map[string]broker.Lease{}}, Processes: anyProcess{}, Prober: freePorts{}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rpc := serve(t, b)
	for _, g := range []*durationpb.Duration{
		{Seconds: 21},
		{Seconds: 1 << 40},
		{Seconds: -1 << 40},
		{Seconds: -1},
	} {
		_, err := rpc.ReclaimPort(t.Context(), &brokerpb.ReclaimPortRequest{Port: 10001, Kill: true, Grace: g})
		if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "grace: ") {
			t.Errorf("grace %v: %v; want InvalidArgument starting with grace", g.AsDuration(), err)
		}
	}
}
