package main

import (
	"github.com/portbroker/portbroker/client/clienttest"
	"strings"
	"testing"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

func TestVerdict(t *testing.T) {
	lease := &brokerpb.Lease{Name: "web", Namespace: "default", OwnerPid: 40, OwnerName: "python3"}
	tests := []struct {
		name   string
		r      *brokerpb.InspectPortResponse
		usable bool
		want   string
	}{
		{
			name: "free", usable: true, want: "port 8000 is free",
			r: &brokerpb.InspectPortResponse{Port: 8000, Bind: brokerpb.BindResult_BIND_RESULT_FREE},
		},
		{
			name: "leased, not bound", usable: true, want: "port 8000 is free to bind; it is leased to default/web (pid 40 (python3))",
			r: &brokerpb.InspectPortResponse{Port: 8000, Bind: brokerpb.BindResult_BIND_RESULT_FREE, Lease: lease},
		},
		{
			name: "served by its owner", usable: true, want: "port 8000 is served by pid 40 (python3), which leased it as default/web",
			r: &brokerpb.InspectPortResponse{Port: 8000, Bind: brokerpb.BindResult_BIND_RESULT_IN_USE, Lease: lease,
				Holders: []*brokerpb.Process{{Pid: 40, Name: "python3"}}},
		},
		{
			name: "served by the owner's child", usable: true, want: "port 8000 is served by pid 41 (uvicorn)",
			r: &brokerpb.InspectPortResponse{Port: 8000, Bind: brokerpb.BindResult_BIND_RESULT_IN_USE, Lease: lease,
				Holders: []*brokerpb.Process{{Pid: 41, Name: "uvicorn", ParentPid: 40}}},
		},
		{
			name: "leased, held by another", usable: false, want: "port 8000 is in use by pid 7 (nginx)",
			r: &brokerpb.InspectPortResponse{Port: 8000, Bind: brokerpb.BindResult_BIND_RESULT_IN_USE, Lease: lease,
				Holders: []*brokerpb.Process{{Pid: 7, Name: "nginx", ParentPid: 1}}},
		},
		{
			name: "in use, holder unseen", usable: false, want: "port 8000 does not bind: in use: address already in use",
			r: &brokerpb.InspectPortResponse{Port: 8000, Bind: brokerpb.BindResult_BIND_RESULT_IN_USE, BindDetail: "address already in use"},
		},
		{
			name: "excluded", usable: false, want: "port 50000 does not bind: in a range the OS excluded: WSAEACCES",
			r: &brokerpb.InspectPortResponse{Port: 50000, Bind: brokerpb.BindResult_BIND_RESULT_EXCLUDED_RANGE, BindDetail: "WSAEACCES"},
		},
		{
			name: "permission", usable: false, want: "port 80 does not bind: permission denied",
			r: &brokerpb.InspectPortResponse{Port: 80, Bind: brokerpb.BindResult_BIND_RESULT_PERMISSION},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			usable, got := verdict(tt.r)
			if usable != tt.usable || !strings.HasPrefix(got, tt.want) {
				t.Errorf("verdict = %v, %q; want %v, %q", usable, got, tt.usable, tt.want)
			}
		})
	}
}

// doctor --fix stops only orphans of this user, and says why not otherwise.
func TestDoctorFixRefuses(t *testing.T) {
	me := currentUser()
	tests := []struct {
		name   string
		holder *brokerpb.Process
		want   string
	}{
		{"not an orphan", &brokerpb.Process{Pid: 7, Name: "node", User: me, ParentPid: 6, ParentAlive: true}, "held by pid 7 (node), which is not an orphan; stop it yourself or run brokerctl reclaim 8000 --kill"},
		{"system", &brokerpb.Process{Pid: 7, Name: "svchost", User: me, Orphan: true, System: true}, "which is a system process"},
		{"another user", &brokerpb.Process{Pid: 7, Name: "node", User: "some-other-user", Orphan: true}, "which is not yours (user some-other-user)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := clienttest.Serve(t, &clienttest.FakeBroker{
				Inspect: func(*brokerpb.InspectPortRequest) (*brokerpb.InspectPortResponse, error) {
					return &brokerpb.InspectPortResponse{Port: 8000, Bind: brokerpb.BindResult_BIND_RESULT_IN_USE, Holders: []*brokerpb.Process{tt.holder}}, nil
				},
				Reclaim: func(*brokerpb.ReclaimPortRequest) (*brokerpb.ReclaimPortResponse, error) {
					t.Error("ReclaimPort called for a holder --fix must leave alone")
					return &brokerpb.ReclaimPortResponse{}, nil
				},
			})
			r := brokerctl(t, "--addr", addr, "doctor", "8000", "--fix")
			if r.code != 1 || !strings.Contains(r.stdout, tt.want) || r.stderr != "brokerctl: port 8000 is not usable\n" {
				t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant exit 1 and %q", r.code, r.stderr, r.stdout, tt.want)
			}
		})
	}
}
