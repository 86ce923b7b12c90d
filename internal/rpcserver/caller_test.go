package rpcserver

import (
	"strconv"
	"strings"
	"testing"

	"github.com/portbroker/portbroker/broker"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

func TestCheckProtocol(t *testing.T) {
	for _, p := range []brokerpb.Protocol{0, 1, 2, 3} {
		if err := checkProtocol(p); err != nil {
			t.Errorf("checkProtocol(%v) = %v; want nil", p, err)
		}
	}
	for _, p := range []int32{-1, 4, 255, 256, -2147483648} {
		err := checkProtocol(brokerpb.Protocol(p))
		want := "protocol: unknown value " + strconv.Itoa(int(p))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("checkProtocol(%d) = %v; want %q", p, err, want)
		}
	}
}

func TestRedactForeign(t *testing.T) {
	ps := []broker.ProcessInfo{
		{Process: broker.Process{PID: 1, User: "1000"}, Exe: "/mine", Cmdline: []string{"mine"}},
		{Process: broker.Process{PID: 2, User: "1001"}, Exe: "/theirs", Cmdline: []string{"theirs", "--token=x"}},
	}
	got := redactForeign(broker.Caller{User: "1000", PID: 9}, ps)
	if got[0].Exe != "/mine" || len(got[0].Cmdline) != 1 {
		t.Errorf("own process redacted: %+v", got[0])
	}
	if got[1].Exe != "" || got[1].Cmdline != nil || got[1].PID != 2 || got[1].User != "1001" {
		t.Errorf("another user's process = %+v; want exe and command line hidden, pid and user kept", got[1])
	}
	if ps[1].Exe != "/theirs" {
		t.Error("redactForeign changed its input")
	}
	if admin := redactForeign(broker.Caller{User: "0", Admin: true}, ps); admin[1].Exe != "/theirs" {
		t.Errorf("an administrator sees %+v; want everything", admin[1])
	}
}
