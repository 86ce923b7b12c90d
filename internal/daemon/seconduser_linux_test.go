package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/internal/testuser"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func init() {
	childModes["second-user"] = secondUserCalls
	childModes["listen"] = func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.Exit(3)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		time.Sleep(time.Hour)
	}
}

// secondUserCalls runs as the second user: it tries everything it must
// not be allowed and prints one "call=code" line each.
func secondUserCalls() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := func(k string) string { return os.Getenv("PORTBROKER_TEST_" + k) }
	num := func(k string) int { n, _ := strconv.Atoi(env(k)); return n }
	conn, err := newTestConn(env("ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer conn.Close()
	rpc := brokerpb.NewBrokerServiceClient(conn)
	id := env("LEASE")
	report := func(name string, err error) { fmt.Printf("%s=%s\n", name, status.Code(err)) }
	_, err = rpc.ReleaseLease(ctx, &brokerpb.ReleaseLeaseRequest{LeaseId: id})
	report("release", err)
	_, err = rpc.RenewLease(ctx, &brokerpb.RenewLeaseRequest{LeaseId: id, Ttl: durationpb.New(time.Minute)})
	report("renew", err)
	_, err = rpc.ReclaimPort(ctx, &brokerpb.ReclaimPortRequest{Port: uint32(num("LEASE_PORT"))})
	report("reclaim-lease", err)
	_, err = rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "stolen", OwnerPid: int32(num("ROOT_PID"))})
	report("acquire-for-root", err)
	_, err = rpc.ReclaimPort(ctx, &brokerpb.ReclaimPortRequest{Port: uint32(num("HELD_PORT")), Kill: true, Force: true})
	report("kill-root-holder", err)
	_, err = rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "mine"})
	report("acquire-own", err)
}

// TestSecondUserCannotTouchFirstUsersLeases runs a real second user
// against a daemon whose socket is open to that user's group.
func TestSecondUserCannotTouchFirstUsersLeases(t *testing.T) {
	testuser.Skip(t)
	other := testuser.Add(t)
	base, exe := testuser.SharedDir(t)
	cfg := Config{
		Addr:         "unix://" + filepath.Join(base, "run", "s.sock"),
		StateDir:     filepath.Join(base, "state"),
		PollInterval: time.Second,
		SocketGroup:  other.Name,
	}
	d := startDaemon(t, cfg)
	ctx := ctxT(t)
	rpc := brokerpb.NewBrokerServiceClient(dial(t, d.addr))

	owner := startChild(t)
	lease, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "root-svc", OwnerPid: int32(owner.Process.Pid)})
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD=listen")
	heldPort := startReporting(t, holder, "listening child")

	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Dir = base
	cmd.Env = append(os.Environ(),
		"PORTBROKER_TEST_CHILD=second-user",
		"PORTBROKER_TEST_ADDR="+d.addr,
		"PORTBROKER_TEST_LEASE="+lease.GetLease().GetId(),
		"PORTBROKER_TEST_LEASE_PORT="+strconv.Itoa(int(lease.GetLease().GetPort())),
		"PORTBROKER_TEST_ROOT_PID="+strconv.Itoa(owner.Process.Pid),
		"PORTBROKER_TEST_HELD_PORT="+strconv.Itoa(heldPort),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other.UID, Gid: other.GID, Groups: []uint32{}}}
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("second user's client: %v: %s", err, got)
	}
	want := "release=PermissionDenied\nrenew=PermissionDenied\nreclaim-lease=PermissionDenied\n" +
		"acquire-for-root=PermissionDenied\nkill-root-holder=PermissionDenied\nacquire-own=OK\n"
	if string(got) != want {
		t.Errorf("second user's calls:\n%s\nwant:\n%s", got, want)
	}

	list, err := listAll(ctx, rpc, &brokerpb.ListLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The second user's own lease ends with its process, so only the first
	// user's lease is certain to be listed; no lease may name root's process
	// for the second user.
	var kept bool
	for _, l := range list.GetLeases() {
		switch {
		case l.GetName() == "root-svc" && l.GetOwnerUser() == "0" && l.GetId() == lease.GetLease().GetId():
			kept = true
		case l.GetName() == "stolen":
			t.Errorf("the second user leased %v", l)
		}
	}
	if !kept {
		t.Errorf("the first user's lease is gone: %v", list.GetLeases())
	}
	if err := holder.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the first user's port holder was stopped: %v", err)
	}
}
