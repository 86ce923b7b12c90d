package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portbroker/portbroker/client/clienttest"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portbroker/portbroker/internal/version"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func local(t time.Time) string { return t.Local().Format(time.RFC3339) }

// twoLeases are a TTL lease started by a launcher and a plain one.
func twoLeases() []*brokerpb.Lease {
	return []*brokerpb.Lease{
		{
			Id: "l-web", Name: "web", Namespace: "default", Port: 8000, Protocol: brokerpb.Protocol_PROTOCOL_TCP,
			OwnerPid: 4242, OwnerName: "python3", OwnerStartTime: ts(now.Add(-time.Hour)),
			LauncherPid: 4200, CreatedAt: ts(now.Add(-90 * time.Second)),
			Ttl: durationpb.New(5 * time.Minute), ExpiresAt: ts(now.Add(3 * time.Minute)),
		},
		{
			Id: "l-dns", Name: "dns", Namespace: "ci", Port: 5353, Protocol: brokerpb.Protocol_PROTOCOL_TCP_UDP,
			OwnerPid: 77, OwnerName: "", OwnerStartTime: ts(now.Add(-50 * time.Hour)),
			CreatedAt: ts(now.Add(-49 * time.Hour)),
		},
	}
}

func listServer(t *testing.T, namespaces chan<- string) string {
	return clienttest.Serve(t, &clienttest.FakeBroker{List: func(req *brokerpb.ListLeasesRequest) (*brokerpb.ListLeasesResponse, error) {
		if namespaces != nil {
			namespaces <- req.GetNamespace()
		}
		return &brokerpb.ListLeasesResponse{Leases: twoLeases()}, nil
	}})
}

func TestLeasesTable(t *testing.T) {
	namespaces := make(chan string, 1)
	addr := listServer(t, namespaces)
	r := brokerctl(t, "--addr", addr, "leases", "--namespace", "ci")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if ns := <-namespaces; ns != "ci" {
		t.Errorf("listed namespace %q, want ci", ns)
	}
	want := [][]string{
		{"ID", "NAME", "NAMESPACE", "PORT", "PROTO", "PID", "OWNER", "AGE", "EXPIRES"},
		{"l-web", "web", "default", "8000", "tcp", "4242", "python3", "90s", "3m"},
		{"l-dns", "dns", "ci", "5353", "tcp+udp", "77", "-", "2d", "-"},
	}
	if diff := cmp.Diff(want, lines(r.stdout)); diff != "" {
		t.Errorf("table (-want +got):\n%s\n%s", diff, r.stdout)
	}
}

func TestLeasesWide(t *testing.T) {
	addr := listServer(t, nil)
	r := brokerctl(t, "--addr", addr, "leases", "-o", "wide")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	want := [][]string{
		{"ID", "NAME", "NAMESPACE", "PORT", "PROTO", "PID", "OWNER", "AGE", "EXPIRES", "LAUNCHER", "OWNER-STARTED", "CREATED"},
		{"l-web", "web", "default", "8000", "tcp", "4242", "python3", "90s", "3m", "4200", local(now.Add(-time.Hour)), local(now.Add(-90 * time.Second))},
		{"l-dns", "dns", "ci", "5353", "tcp+udp", "77", "-", "2d", "-", "-", local(now.Add(-50 * time.Hour)), local(now.Add(-49 * time.Hour))},
	}
	if diff := cmp.Diff(want, lines(r.stdout)); diff != "" {
		t.Errorf("wide table (-want +got):\n%s\n%s", diff, r.stdout)
	}
}

func TestLeasesJSON(t *testing.T) {
	addr := listServer(t, nil)
	r := brokerctl(t, "--addr", addr, "leases", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var got brokerpb.ListLeasesResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not a ListLeasesResponse: %v\n%s", err, r.stdout)
	}
	if diff := cmp.Diff(&brokerpb.ListLeasesResponse{Leases: twoLeases()}, &got, protocmp.Transform()); diff != "" {
		t.Errorf("leases (-want +got):\n%s", diff)
	}
	// Proto field names, as grpcurl prints them.
	for _, field := range []string{`"owner_pid"`, `"expires_at"`, `"leases"`} {
		if !strings.Contains(r.stdout, field) {
			t.Errorf("output lacks %s:\n%s", field, r.stdout)
		}
	}
}

// emptyList answers ListLeases with no leases, as a watch asks first.
func emptyList(*brokerpb.ListLeasesRequest) (*brokerpb.ListLeasesResponse, error) {
	return &brokerpb.ListLeasesResponse{}, nil
}

func watchServer(t *testing.T, events ...*brokerpb.WatchLeasesResponse) string {
	return clienttest.Serve(t, &clienttest.FakeBroker{List: emptyList, Watch: func(_ *brokerpb.WatchLeasesRequest, s grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error {
		for _, ev := range events {
			if err := s.Send(ev); err != nil {
				return err
			}
		}
		return nil // ends the stream
	}})
}

func TestLeasesWatch(t *testing.T) {
	ev := &brokerpb.WatchLeasesResponse{
		Type: brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RECLAIMED, Lease: twoLeases()[0],
		Reason: brokerpb.ReclaimReason_RECLAIM_REASON_OWNER_EXITED, Time: ts(now),
	}
	addr := watchServer(t, ev)

	r := brokerctl(t, "--addr", addr, "leases", "--watch")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	want := local(now) + " reclaimed default/web port=8000 pid=4242 reason=owner-exited\n"
	if r.stdout != want {
		t.Errorf("watch output = %q, want %q", r.stdout, want)
	}

	r = brokerctl(t, "--addr", addr, "leases", "--watch", "-o", "json")
	if r.code != 0 {
		t.Fatalf("json: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := strings.Count(r.stdout, "\n"); n != 1 {
		t.Fatalf("json watch printed %d lines, want one object on one line:\n%s", n, r.stdout)
	}
	var got brokerpb.WatchLeasesResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("line is not a WatchLeasesResponse: %v\n%s", err, r.stdout)
	}
	if !proto.Equal(ev, &got) {
		t.Errorf("event = %v, want %v", &got, ev)
	}
}

func TestLeasesWatchOverflow(t *testing.T) {
	addr := watchServer(t,
		&brokerpb.WatchLeasesResponse{Type: brokerpb.LeaseEventType_LEASE_EVENT_TYPE_ACQUIRED, Lease: twoLeases()[1], Time: ts(now)},
		&brokerpb.WatchLeasesResponse{Type: brokerpb.LeaseEventType_LEASE_EVENT_TYPE_OVERFLOW, Time: ts(now)},
	)
	r := brokerctl(t, "--addr", addr, "leases", "-w")
	want := local(now) + " acquired ci/dns port=5353 pid=77\n" + local(now) + " overflow\n"
	if r.code != 1 || r.stdout != want || !strings.Contains(r.stderr, "fell behind") {
		t.Errorf("got exit %d, stdout %q, stderr %q; want exit 1, stdout %q and the overflow named", r.code, r.stdout, r.stderr, want)
	}
}

func TestAcquire(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		want     *brokerpb.AcquireLeaseRequest
		fallback string
	}{
		{
			name: "defaults",
			args: []string{"web"},
			want: &brokerpb.AcquireLeaseRequest{
				Name: "web", Namespace: "default", Protocol: brokerpb.Protocol_PROTOCOL_TCP, OwnerCallerParent: true,
			},
		},
		{
			name: "every flag",
			args: []string{"dns", "--port", "8000", "--pid", "123", "--launcher-pid", "99", "--ttl", "90s", "--udp", "--namespace", "ci", "--strict", "--reclaim"},
			want: &brokerpb.AcquireLeaseRequest{
				Name: "dns", Namespace: "ci", Port: 8000, Protocol: brokerpb.Protocol_PROTOCOL_UDP, OwnerPid: 123, LauncherPid: 99,
				Ttl: durationpb.New(90 * time.Second), Strict: true, Reclaim: true,
			},
		},
		{
			name:     "tcp and udp with a fallback",
			args:     []string{"web", "--tcp-udp", "--port", "8000", "--pid", "5"},
			want:     &brokerpb.AcquireLeaseRequest{Name: "web", Namespace: "default", Port: 8000, Protocol: brokerpb.Protocol_PROTOCOL_TCP_UDP, OwnerPid: 5},
			fallback: "port 8000 is held by pid 9 (nginx)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs := make(chan *brokerpb.AcquireLeaseRequest, 1)
			addr := clienttest.Serve(t, &clienttest.FakeBroker{Acquire: func(req *brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
				reqs <- req
				return &brokerpb.AcquireLeaseResponse{Lease: &brokerpb.Lease{Id: "l-1", Port: 8001}, FallbackReason: tt.fallback}, nil
			}})
			r := brokerctl(t, append([]string{"--addr", addr, "acquire"}, tt.args...)...)
			if r.code != 0 || r.stdout != "8001\n" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and just the port", r.code, r.stdout, r.stderr)
			}
			if diff := cmp.Diff(tt.want, <-reqs, protocmp.Transform()); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			if tt.fallback != "" && !strings.Contains(r.stderr, tt.fallback) {
				t.Errorf("stderr %q does not explain the fallback %q", r.stderr, tt.fallback)
			}
			if tt.fallback == "" && r.stderr != "" {
				t.Errorf("stderr = %q, want nothing", r.stderr)
			}
		})
	}
}

func TestAcquireJSON(t *testing.T) {
	resp := &brokerpb.AcquireLeaseResponse{Lease: twoLeases()[0], Existing: true}
	addr := clienttest.Serve(t, &clienttest.FakeBroker{Acquire: func(*brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
		return resp, nil
	}})
	r := brokerctl(t, "--addr", addr, "acquire", "web", "--pid", "1", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var got brokerpb.AcquireLeaseResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not an AcquireLeaseResponse: %v\n%s", err, r.stdout)
	}
	if !proto.Equal(resp, &got) {
		t.Errorf("response = %v, want %v", &got, resp)
	}
}

func TestRelease(t *testing.T) {
	leases := []*brokerpb.Lease{
		{Id: "l-a", Name: "web", Namespace: "default", Port: 8000},
		{Id: "l-b", Name: "api", Namespace: "default", Port: 8001},
		{Id: "l-c", Name: "web", Namespace: "ci", Port: 8002},
		{Id: "l-d", Name: "9999", Namespace: "default", Port: 8003},
		{Id: "l-e", Name: "dns", Namespace: "default", Port: 5353, Protocol: brokerpb.Protocol_PROTOCOL_TCP},
		{Id: "l-f", Name: "mdns", Namespace: "default", Port: 5353, Protocol: brokerpb.Protocol_PROTOCOL_UDP},
		{Id: "8001", Name: "odd", Namespace: "default", Port: 8004},
	}
	tests := []struct {
		name        string
		args        []string
		released    string // empty: nothing released
		errContains string
	}{
		{name: "by id", args: []string{"l-b"}, released: "l-b"},
		{name: "id before port", args: []string{"8001"}, released: "8001"},
		{name: "by port", args: []string{"8002"}, released: "l-c"},
		{name: "by name", args: []string{"web"}, released: "l-a"},
		{name: "by name in namespace", args: []string{"web", "--namespace", "ci"}, released: "l-c"},
		{name: "number that is only a name", args: []string{"9999"}, released: "l-d"},
		{name: "ambiguous port", args: []string{"5353"}, errContains: "port 5353 matches 2 leases (l-e, l-f)"},
		{name: "no match", args: []string{"nope"}, errContains: `no lease has id, port or name "nope"`},
		{name: "name in another namespace", args: []string{"api", "--namespace", "ci"}, errContains: `namespace "ci"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			released := make(chan string, 1)
			addr := clienttest.Serve(t, &clienttest.FakeBroker{
				List: func(*brokerpb.ListLeasesRequest) (*brokerpb.ListLeasesResponse, error) {
					return &brokerpb.ListLeasesResponse{Leases: leases}, nil
				},
				Release: func(req *brokerpb.ReleaseLeaseRequest) (*brokerpb.ReleaseLeaseResponse, error) {
					released <- req.GetLeaseId()
					return &brokerpb.ReleaseLeaseResponse{}, nil
				},
			})
			r := brokerctl(t, append([]string{"--addr", addr, "release"}, tt.args...)...)
			if tt.errContains != "" {
				if r.code != 1 || !strings.Contains(r.stderr, tt.errContains) || len(released) != 0 {
					t.Errorf("exit %d, stderr %q, %d released; want exit 1 saying %q and nothing released", r.code, r.stderr, len(released), tt.errContains)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if got := <-released; got != tt.released {
				t.Errorf("released %q, want %q", got, tt.released)
			}
			if !strings.HasPrefix(r.stdout, "released "+tt.released+" ") {
				t.Errorf("stdout = %q; want it to name %s", r.stdout, tt.released)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	addr := clienttest.Serve(t, &clienttest.FakeBroker{
		List: func(*brokerpb.ListLeasesRequest) (*brokerpb.ListLeasesResponse, error) {
			return &brokerpb.ListLeasesResponse{}, nil
		},
		Acquire: func(*brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
			return nil, status.Error(codes.ResourceExhausted, "no free port in 10000-10009")
		},
		Status: func(*brokerpb.GetStatusRequest) (*brokerpb.GetStatusResponse, error) {
			return nil, status.Error(codes.Internal, "disk\nfull")
		},
	})
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // contained in stderr
	}{
		{"ok", []string{"--addr", addr, "leases"}, 0, ""},
		{"help", []string{"--help"}, 0, ""},
		{"server error", []string{"--addr", addr, "acquire", "web", "--pid", "1"}, 1, "brokerctl: no free port in 10000-10009\n"},
		{"multi-line server error", []string{"--addr", addr, "status"}, 1, "brokerctl: portbrokerd: Internal: disk full\n"},
		{"no daemon", []string{"--addr", clienttest.DeadAddr(t), "leases"}, 1, "brokerctl: no portbrokerd at "},
		{"unknown flag", []string{"leases", "--bogus"}, 2, "unknown flag: --bogus"},
		{"unknown command", []string{"lease"}, 2, `unknown command "lease"`},
		{"missing argument", []string{"acquire"}, 2, "missing NAME: usage: brokerctl acquire NAME"},
		{"extra argument", []string{"release", "a", "b"}, 2, "too many arguments: brokerctl release takes ID|PORT|NAME, got 2 (a b)"},
		{"empty name", []string{"acquire", ""}, 2, "NAME: must not be empty"},
		{"who without ports", []string{"who"}, 2, "missing PORT"},
		{"reclaim a port twice", []string{"reclaim", "8000", "8000"}, 2, "PORT: 8000 is given twice"},
		{"run with a typo before --", []string{"run", "web", "--bogus", "--", "x"}, 2, "unknown flag: --bogus\n"},
		{"run without --", []string{"run", "backend", "python3", "-m", "http.server"}, 2, "unknown shorthand flag: 'm' in -m; put -- before the command: brokerctl run NAME [flags] -- CMD [ARGS...]"},
		{"bad output", []string{"leases", "-o", "yaml"}, 2, "must be one of table, wide, json"},
		{"bad duration", []string{"acquire", "web", "--ttl", "soon"}, 2, `invalid argument "soon"`},
		{"zero timeout", []string{"--timeout", "0s", "leases"}, 2, "--timeout"},
		{"port out of range", []string{"--addr", addr, "acquire", "web", "--port", "70000"}, 2, "--port: must be from 0 to 65535"},
		{"zero pid", []string{"--addr", addr, "acquire", "web", "--pid", "0"}, 2, "--pid: must be a process id"},
		{"udp and tcp-udp", []string{"--addr", addr, "acquire", "web", "--udp", "--tcp-udp"}, 2, "udp"},
		{"non-loopback addr", []string{"--addr", "tcp://192.0.2.1:80", "status"}, 2, "--addr: "},
		{"run without a command", []string{"run", "web"}, 2, "want NAME -- CMD [ARGS...]"},
		{"run with two names", []string{"run", "web", "api", "--", "x"}, 2, "want NAME -- CMD [ARGS...]"},
		{"run strict without port", []string{"run", "web", "--strict", "--", "x"}, 2, "--strict needs --port"},
		{"run port out of range", []string{"run", "web", "--port", "70000", "--", "x"}, 2, "--port: must be from 0 to 65535"},
		{"who without a port", []string{"who", "http"}, 2, `PORT: must be a number from 1 to 65535, not "http"`},
		{"reclaim force without kill", []string{"reclaim", "8000", "--force"}, 2, "--force and --grace need --kill"},
		{"reclaim negative grace", []string{"reclaim", "8000", "--kill", "--grace", "-1s"}, 2, "must be a non-negative duration"},
		{"doctor missing config", []string{"doctor", "--config", "/nonexistent/portbroker.yaml"}, 1, "config /nonexistent/portbroker.yaml: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := brokerctl(t, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			if strings.Contains(r.stderr, "Usage:") || strings.Contains(r.stdout, "Usage:") != (tt.name == "help") {
				t.Errorf("usage printed for %v:\nstdout %q\nstderr %q", tt.args, r.stdout, r.stderr)
			}
			if tt.code == 1 && (strings.Count(r.stderr, "\n") != 1 || r.stdout != "") {
				t.Errorf("failure output: stdout %q, stderr %q; want one line on stderr only", r.stdout, r.stderr)
			}
		})
	}
}

func TestAddrFromEnv(t *testing.T) {
	addr := listServer(t, nil)
	t.Setenv("PORTBROKER_ADDR", addr)
	if r := brokerctl(t, "leases"); r.code != 0 || !strings.Contains(r.stdout, "l-web") {
		t.Errorf("with PORTBROKER_ADDR: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// The flag wins over the environment.
	if r := brokerctl(t, "--addr", clienttest.DeadAddr(t), "leases"); r.code != 1 {
		t.Errorf("--addr over PORTBROKER_ADDR: exit %d, want 1 (nothing there)", r.code)
	}
}

func statusResponse() *brokerpb.GetStatusResponse {
	return &brokerpb.GetStatusResponse{
		Version:           "1.2.3",
		Platform:          "linux/amd64",
		Pid:               99,
		Pool:              &brokerpb.PortRange{First: 10000, Last: 32767},
		EphemeralRange:    &brokerpb.PortRange{First: 32768, Last: 60999},
		ReservedRanges:    []*brokerpb.PortRange{{First: 20000, Last: 20010, Source: "ip_local_reserved_ports"}},
		PoolSize:          22757,
		PoolFree:          22755,
		LeaseCount:        2,
		LeasesByNamespace: map[string]uint32{"default": 1, "ci": 1},
		StartedAt:         ts(now.Add(-5 * time.Minute)),
		StatePath:         "/state/leases.db",
	}
}

func TestStatus(t *testing.T) {
	addr := clienttest.Serve(t, &clienttest.FakeBroker{Status: func(*brokerpb.GetStatusRequest) (*brokerpb.GetStatusResponse, error) {
		return statusResponse(), nil
	}})
	r := brokerctl(t, "--addr", addr, "status")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{
		"daemon:    portbrokerd 1.2.3 (linux/amd64), pid 99\n",
		"address:   " + addr + "\n",
		"started:   " + local(now.Add(-5*time.Minute)) + " (up 5m)\n",
		"state:     /state/leases.db\n",
		"pool:      10000-32767 (22757 ports, 22755 free)\n",
		"ephemeral: 32768-60999\n",
		"reserved:  20000-20010 (ip_local_reserved_ports)\n",
		"excluded:  none\n",
		"leases:    2 (ci 1, default 1)\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}

	r = brokerctl(t, "--addr", addr, "status", "-o", "json")
	var got brokerpb.GetStatusResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("json status: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if !proto.Equal(statusResponse(), &got) {
		t.Errorf("status = %v, want %v", &got, statusResponse())
	}
}

func TestVersion(t *testing.T) {
	addr := clienttest.Serve(t, &clienttest.FakeBroker{Status: func(*brokerpb.GetStatusRequest) (*brokerpb.GetStatusResponse, error) {
		return statusResponse(), nil
	}})
	r := brokerctl(t, "--addr", addr, "version")
	want := "brokerctl:   " + versionString() + "\nportbrokerd: 1.2.3 (linux/amd64) at " + addr + "\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stdout %q; want 0 and %q", r.code, r.stdout, want)
	}

	r = brokerctl(t, "--addr", clienttest.DeadAddr(t), "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "brokerctl:   "+versionString()+"\n") || !strings.Contains(r.stdout, "portbrokerd: unreachable: ") {
		t.Errorf("without a daemon: exit %d, stdout %q; want 0, the client version and the daemon unreachable", r.code, r.stdout)
	}

	r = brokerctl(t, "--addr", addr, "version", "-o", "json")
	var got versionReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("version -o json: exit %d, %v:\n%s", r.code, err, r.stdout)
	}
	if want := (versionReport{Brokerctl: version.Get(), Portbrokerd: &daemonVersion{Version: "1.2.3", Platform: "linux/amd64", Addr: addr}}); !cmp.Equal(got, want) {
		t.Errorf("version -o json: %s", cmp.Diff(want, got))
	}
}

func TestShortDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{119 * time.Second, "119s"},
		{2 * time.Minute, "2m"},
		{119*time.Minute + 59*time.Second, "119m"},
		{2 * time.Hour, "2h"},
		{47 * time.Hour, "47h"},
		{48 * time.Hour, "2d"},
		{400 * 24 * time.Hour, "400d"},
	}
	for _, tt := range tests {
		if got := shortDuration(tt.d); got != tt.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestLeasesWatchInterrupted(t *testing.T) {
	watching := make(chan struct{})
	addr := clienttest.Serve(t, &clienttest.FakeBroker{List: emptyList, Watch: func(_ *brokerpb.WatchLeasesRequest, s grpc.ServerStreamingServer[brokerpb.WatchLeasesResponse]) error {
		close(watching)
		<-s.Context().Done()
		return s.Context().Err()
	}})
	ctx, interrupt := context.WithCancel(t.Context())
	var stdout, stderr bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		c := &cli{stdout: &stdout, stderr: &stderr, now: func() time.Time { return now }}
		exit <- c.run(ctx, []string{"--addr", addr, "leases", "--watch"})
	}()
	<-watching
	interrupt()
	if code := <-exit; code != 0 || stderr.Len() != 0 {
		t.Errorf("interrupted watch: exit %d, stderr %q; want 0 and nothing", code, stderr.String())
	}
}

// A daemon that cannot name brokerctl (loopback TCP on macOS) refuses
// owner_caller_parent; brokerctl then names its parent itself.
func TestAcquireOwnerParentFallback(t *testing.T) {
	if os.Getppid() <= 1 {
		t.Skip("this process has no parent to name (Wine reports none)")
	}
	reqs := make(chan *brokerpb.AcquireLeaseRequest, 2)
	addr := clienttest.Serve(t, &clienttest.FakeBroker{Acquire: func(req *brokerpb.AcquireLeaseRequest) (*brokerpb.AcquireLeaseResponse, error) {
		reqs <- req
		if req.GetOwnerCallerParent() {
			return nil, status.Error(codes.InvalidArgument, "owner_caller_parent: the transport could not name the caller, so neither can its parent; pass owner_pid")
		}
		return &brokerpb.AcquireLeaseResponse{Lease: &brokerpb.Lease{Id: "l-1", Port: 8001}}, nil
	}})
	r := brokerctl(t, "--addr", addr, "acquire", "web")
	if r.code != 0 || r.stdout != "8001\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and the port", r.code, r.stdout, r.stderr)
	}
	if first := <-reqs; !first.GetOwnerCallerParent() || first.GetOwnerPid() != 0 {
		t.Errorf("first request %v; want owner_caller_parent alone", first)
	}
	if second := <-reqs; second.GetOwnerCallerParent() || second.GetOwnerPid() != int32(os.Getppid()) {
		t.Errorf("second request %v; want owner_pid %d (brokerctl's parent)", second, os.Getppid())
	}
}
