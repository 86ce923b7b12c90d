package rpcserver

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/portbroker/portbroker/broker"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// FuzzLeaseJSON checks that any lease the broker can hold survives the
// JSON that brokerctl -o json and grpcurl print, field for field.
func FuzzLeaseJSON(f *testing.F) {
	f.Add("0123456789abcdef", "backend", "default", uint16(8000), uint8(1), 4242, int64(1_700_000_000_123_456_789), "python3", 17, int64(30e9), "1000")
	f.Add("", "", "", uint16(0), uint8(0), 0, int64(0), "", 0, int64(0), "")
	f.Add("x", "名前", "ns with space", uint16(65535), uint8(3), -1, int64(-5), "a\x00b", -9, int64(-1), "S-1-5-21")
	f.Fuzz(func(t *testing.T, id, name, ns string, port uint16, proto8 uint8, pid int, start int64, owner string, launcher int, ttl int64, user string) {
		l := broker.Lease{
			ID: id, Name: name, Namespace: ns, Port: port, Protocol: broker.Protocol(proto8 % 5),
			Owner:     broker.Process{PID: pid, StartTime: time.Unix(0, start), Name: owner, User: user},
			CreatedAt: time.Unix(0, start/2),
			TTL:       time.Duration(ttl),
		}
		if launcher != 0 {
			l.Launcher = broker.Process{PID: launcher, StartTime: time.Unix(0, start/3)}
		}
		if l.TTL > 0 {
			l.ExpiresAt = l.CreatedAt.Add(l.TTL)
		}
		pb := leaseToPB(l)
		data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(pb)
		if err != nil {
			// Only strings that are not UTF-8 may fail: proto3 strings must be.
			for _, s := range []string{id, name, ns, owner, user} {
				if !utf8.ValidString(s) {
					return
				}
			}
			t.Fatalf("marshal %v: %v", pb, err)
		}
		var back brokerpb.Lease
		if err := protojson.Unmarshal(data, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", data, err)
		}
		if !proto.Equal(pb, &back) {
			t.Fatalf("round trip changed the lease:\n%v\n%v", pb, &back)
		}
	})
}
