//go:build unix

package daemon

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func init() {
	// launcher starts a service child, prints "pid port grandchild", and
	// sleeps: a dev launcher whose service outlives it when it is killed.
	childModes["launcher"] = func() {
		svc := exec.Command(os.Args[0], "-test.run=^$")
		svc.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD=service")
		svc.Stdout = os.Stdout
		if err := svc.Start(); err != nil {
			os.Exit(3)
		}
		time.Sleep(time.Hour)
	}
	// service listens on a port and starts a grandchild, then prints
	// "pid port grandchild-pid". With PORTBROKER_TEST_STUBBORN it ignores
	// SIGTERM.
	childModes["service"] = func() {
		if os.Getenv("PORTBROKER_TEST_STUBBORN") != "" {
			signal.Ignore(syscall.SIGTERM)
		}
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			os.Exit(3)
		}
		gc := exec.Command(os.Args[0], "-test.run=^$")
		gc.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD=sleep")
		if err := gc.Start(); err != nil {
			os.Exit(3)
		}
		fmt.Printf("%d %d %d\n", os.Getpid(), ln.Addr().(*net.TCPAddr).Port, gc.Process.Pid)
		time.Sleep(time.Hour)
	}
}

// serviceTree is a service process with a grandchild, as its launcher
// printed it.
type serviceTree struct {
	pid, port, grandchild int
}

// startTree runs mode (launcher or service) and reads the service line.
// Cleanup kills whatever is left.
func startTree(t *testing.T, mode string, env ...string) (*exec.Cmd, serviceTree) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "PORTBROKER_TEST_CHILD="+mode), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var tree serviceTree
	line, err := bufio.NewReader(out).ReadString('\n')
	if err == nil {
		_, err = fmt.Sscan(line, &tree.pid, &tree.port, &tree.grandchild)
	}
	t.Cleanup(func() {
		for _, pid := range []int{tree.grandchild, tree.pid} {
			if pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	if err != nil {
		t.Fatalf("%s child: %v", mode, err)
	}
	return cmd, tree
}

// gone reports whether pid no longer runs (or is a zombie nobody reaped).
func gone(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, pid := range pids {
		for !gone(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d still running", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestOrphanedServiceTreeIsStopped kills a launcher whose service lives
// on: the broker stops the service and its grandchild and frees the port.
func TestOrphanedServiceTreeIsStopped(t *testing.T) {
	cfg := testConfig(t)
	cfg.Grace = 2 * time.Second
	d := startDaemon(t, cfg)
	ctx := ctxT(t)
	rpc := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	launcher, tree := startTree(t, "launcher")

	res, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{
		Name: "backend", Port: uint32(tree.port), OwnerPid: int32(tree.pid), LauncherPid: int32(launcher.Process.Pid),
	})
	if err != nil {
		t.Fatal(err)
	}
	watch, err := rpc.WatchLeases(ctx, &brokerpb.WatchLeasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Header(); err != nil { // the watch is in place
		t.Fatal(err)
	}
	launcher.Process.Kill()
	launcher.Wait()
	for {
		ev, err := watch.Recv()
		if err != nil {
			t.Fatalf("no reclaim event: %v", err)
		}
		if ev.GetType() == brokerpb.LeaseEventType_LEASE_EVENT_TYPE_RECLAIMED {
			if ev.GetReason() != brokerpb.ReclaimReason_RECLAIM_REASON_LAUNCHER_EXITED || ev.GetLease().GetId() != res.GetLease().GetId() {
				t.Errorf("event = %v, want reclaimed/launcher exited", ev)
			}
			break
		}
	}
	waitGone(t, tree.pid, tree.grandchild)
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", tree.port))
	if err != nil {
		t.Fatalf("port %d not free after the orphan was stopped: %v", tree.port, err)
	}
	ln.Close()
}

// TestReclaimForcesAfterGrace stops a holder that ignores SIGTERM.
func TestReclaimForcesAfterGrace(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	ctx := ctxT(t)
	rpc := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	_, tree := startTree(t, "service", "PORTBROKER_TEST_STUBBORN=1")

	rep, err := rpc.InspectPort(ctx, &brokerpb.InspectPortRequest{Port: uint32(tree.port)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.GetHolders()) != 1 || rep.GetHolders()[0].GetPid() != int32(tree.pid) || rep.GetBind() != brokerpb.BindResult_BIND_RESULT_IN_USE {
		t.Fatalf("InspectPort = %v, want pid %d holding it", rep, tree.pid)
	}
	res, err := rpc.ReclaimPort(ctx, &brokerpb.ReclaimPortRequest{Port: uint32(tree.port), Kill: true, Grace: durationpb.New(300 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	methods := map[int32]brokerpb.StopMethod{}
	for _, s := range res.GetStopped() {
		methods[s.GetProcess().GetPid()] = s.GetMethod()
	}
	if methods[int32(tree.pid)] != brokerpb.StopMethod_STOP_METHOD_FORCED {
		t.Errorf("stubborn service stopped %v, want forced (all: %v)", methods[int32(tree.pid)], res.GetStopped())
	}
	// The grandchild inherits the ignored SIGTERM until its runtime starts,
	// so either step may have stopped it; it must be in the list.
	if m := methods[int32(tree.grandchild)]; m != brokerpb.StopMethod_STOP_METHOD_FORCED && m != brokerpb.StopMethod_STOP_METHOD_GRACEFUL {
		t.Errorf("grandchild stopped %v, want graceful or forced", m)
	}
	if !res.GetFree() {
		t.Errorf("port not free: %s", res.GetDetail())
	}
	waitGone(t, tree.pid, tree.grandchild)
}

// TestReclaimRefusesToKillTheCaller: a client asking to kill the holder of
// a port it holds itself is refused, and keeps running.
func TestReclaimRefusesToKillTheCaller(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD=reclaim-self", "PORTBROKER_TEST_ADDR="+d.addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v: %s", err, out)
	}
	if got := string(out); !strings.HasPrefix(got, "PermissionDenied ") || !strings.Contains(got, "it is the caller") {
		t.Errorf("reclaim of the caller's own port = %q, want PermissionDenied naming the caller", got)
	}
}

func init() {
	// reclaim-self holds a port and asks the daemon to kill its holder.
	childModes["reclaim-self"] = func() {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			os.Exit(3)
		}
		conn, err := newTestConn(os.Getenv("PORTBROKER_TEST_ADDR"))
		if err != nil {
			os.Exit(4)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = brokerpb.NewBrokerServiceClient(conn).ReclaimPort(ctx, &brokerpb.ReclaimPortRequest{
			Port: uint32(ln.Addr().(*net.TCPAddr).Port), Kill: true, Force: true,
		})
		st := status.Convert(err)
		fmt.Printf("%s %s\n", st.Code(), st.Message())
	}
}
