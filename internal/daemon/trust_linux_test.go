package daemon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portbroker/portbroker/broker"
	"github.com/portbroker/portbroker/internal/ipc"
	"github.com/portbroker/portbroker/internal/testuser"
	"github.com/portbroker/portbroker/platform/unix"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc/status"
)

func init() {
	// hold-and-ask holds a port and runs reclaim-port as its child, which
	// asks the daemon to kill the port's holder: its own parent.
	childModes["hold-and-ask"] = func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.Exit(3)
		}
		child := exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD=reclaim-port",
			"PORTBROKER_TEST_PORT="+strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		out, err := child.CombinedOutput()
		if err != nil {
			fmt.Printf("child: %v: %s", err, out)
			os.Exit(4)
		}
		os.Stdout.Write(out)
	}
	// reclaim-port asks the daemon to kill the holder of
	// $PORTBROKER_TEST_PORT, forcefully, and prints the outcome.
	childModes["reclaim-port"] = func() {
		conn, err := newTestConn(os.Getenv("PORTBROKER_TEST_ADDR"))
		if err != nil {
			os.Exit(5)
		}
		port, _ := strconv.Atoi(os.Getenv("PORTBROKER_TEST_PORT"))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = brokerpb.NewBrokerServiceClient(conn).ReclaimPort(ctx, &brokerpb.ReclaimPortRequest{
			Port: uint32(port), Kill: true, Force: true,
		})
		st := status.Convert(err)
		fmt.Printf("%s %s\n", st.Code(), st.Message())
	}
}

// tcpConfig serves loopback TCP; clients find the token and the
// certificate in the state dir.
func tcpConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.Addr = "tcp://127.0.0.1:0"
	t.Setenv(ipc.EnvStateDir, cfg.StateDir)
	t.Setenv(ipc.EnvToken, "")
	t.Setenv(ipc.EnvTokenFile, "")
	t.Setenv(ipc.EnvCertFile, "")
	return cfg
}

// TestTCPCallerCannotKillItsAncestorOrItself: over loopback TCP the daemon
// names the caller from the kernel's socket table, so a caller holding a
// port (or whose parent holds it) asking to kill its holder is refused as
// over the unix socket, and nobody is killed.
func TestTCPCallerCannotKillItsAncestorOrItself(t *testing.T) {
	d := startDaemon(t, tcpConfig(t))
	for _, tt := range []struct{ mode, reason string }{
		{"hold-and-ask", "ancestor of the caller"},
		{"reclaim-self", "it is the caller"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD="+tt.mode, "PORTBROKER_TEST_ADDR="+d.addr)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("client: %v: %s", err, out)
			}
			if got := string(out); !strings.HasPrefix(got, "PermissionDenied ") || !strings.Contains(got, tt.reason) {
				t.Errorf("reclaim --kill --force over TCP = %q; want PermissionDenied saying %q", got, tt.reason)
			}
		})
	}
}

// TestTCPOwnerDefaultsToCaller: the OS names a TCP caller, so owner_pid 0
// means the caller over TCP too.
func TestTCPOwnerDefaultsToCaller(t *testing.T) {
	d := startDaemon(t, tcpConfig(t))
	res, err := brokerpb.NewBrokerServiceClient(dial(t, d.addr)).AcquireLease(ctxT(t), &brokerpb.AcquireLeaseRequest{Name: "self"})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.GetLease().GetOwnerPid(); got != int32(os.Getpid()) {
		t.Errorf("owner over TCP = %d; want the caller, %d", got, os.Getpid())
	}
}

// TestTCPRestartRotatesTokenAndCertificate: a token or certificate from
// an earlier run is worth nothing against the next.
func TestTCPRestartRotatesTokenAndCertificate(t *testing.T) {
	cfg := tcpConfig(t)
	read := func() (tok, cert []byte) {
		tok, err := os.ReadFile(filepath.Join(cfg.StateDir, ipc.TokenFile))
		if err != nil {
			t.Fatal(err)
		}
		cert, err = os.ReadFile(filepath.Join(cfg.StateDir, ipc.CertFile))
		if err != nil {
			t.Fatal(err)
		}
		return tok, cert
	}
	d := startDaemon(t, cfg)
	tok1, cert1 := read()
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	cfg.Addr = "tcp://127.0.0.1:0"
	d = startDaemon(t, cfg)
	tok2, cert2 := read()
	if bytes.Equal(tok1, tok2) || bytes.Equal(cert1, cert2) {
		t.Error("a restart kept the token or the certificate")
	}
	t.Setenv(ipc.EnvToken, strings.TrimSpace(string(tok1)))
	_, err := brokerpb.NewBrokerServiceClient(dial(t, d.addr)).GetStatus(ctxT(t), &brokerpb.GetStatusRequest{})
	if status.Code(err).String() != "Unauthenticated" {
		t.Errorf("GetStatus with the old token: %v; want Unauthenticated", err)
	}
}

// TestStateOwnedByAnotherUserIsRefused: a state dir, or a store in it,
// owned by another real user is refused before anything is read from it,
// naming the owner and the fix.
func TestStateOwnedByAnotherUserIsRefused(t *testing.T) {
	testuser.Skip(t)
	u := testuser.Add(t)
	for _, what := range []string{"state dir", "store"} {
		t.Run(what, func(t *testing.T) {
			cfg := testConfig(t)
			if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			victim := cfg.StateDir
			if what == "store" {
				victim = filepath.Join(cfg.StateDir, StoreFile)
				if err := os.WriteFile(victim, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chown(victim, int(u.UID), int(u.GID)); err != nil {
				t.Fatal(err)
			}
			_, err := New(ctxT(t), cfg, testHost(), nil)
			if err == nil {
				t.Fatal("daemon started on state owned by another user")
			}
			for _, want := range []string{what + " " + victim, "owned by " + u.Name, "chown"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			sock := strings.TrimPrefix(cfg.Addr, "unix://")
			if _, err := os.Lstat(sock); err == nil {
				t.Errorf("the refused daemon left its socket %s", sock)
			}
		})
	}
}

// TestFailedStartStopsNoOrphan: a start that fails because another
// process serves the address stops nothing, although the store holds an
// orphaned service; the next start that succeeds stops it.
func TestFailedStartStopsNoOrphan(t *testing.T) {
	cfg := testConfig(t)
	cfg.Grace = time.Second
	d := startDaemon(t, cfg)
	launcher, tree := startTree(t, "launcher")
	_, err := brokerpb.NewBrokerServiceClient(dial(t, d.addr)).AcquireLease(ctxT(t), &brokerpb.AcquireLeaseRequest{
		Name: "backend", Port: uint32(tree.port), OwnerPid: int32(tree.pid), LauncherPid: int32(launcher.Process.Pid),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	launcher.Process.Kill()
	launcher.Wait()

	// Someone else serves the address now.
	blocker, err := ipc.Listen(cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctxT(t), cfg, testHost(), nil); err == nil {
		t.Fatal("daemon started on an address another process serves")
	}
	// Give a stop, had one begun, time to act (its grace is a second).
	time.Sleep(2 * cfg.Grace)
	if gone(tree.pid) || gone(tree.grandchild) {
		t.Fatal("a daemon whose start failed stopped the orphaned service")
	}
	blocker.Close()
	startDaemon(t, cfg)
	waitGone(t, tree.pid, tree.grandchild)
}

// storeWithCommits runs a daemon that makes n lease changes, stops it and
// returns the store's path.
func storeWithCommits(t *testing.T, cfg Config, n int) string {
	t.Helper()
	d := startDaemon(t, cfg)
	rpc := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	owner := startChild(t)
	for i := range n {
		if _, err := rpc.AcquireLease(ctxT(t), &brokerpb.AcquireLeaseRequest{Name: fmt.Sprintf("svc-%d", i), OwnerPid: int32(owner.Process.Pid)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(cfg.StateDir, StoreFile)
}

// zeroMetaPage zeroes the meta page of the bbolt file at path whose
// transaction is the newest (newest=true) or the older one.
func zeroMetaPage(t *testing.T, path string, newest bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m0, ok0 := readMeta(f, 0)
	if !ok0 {
		t.Fatal("first meta page unreadable")
	}
	m1, ok1 := readMeta(f, int64(m0.pageSize))
	if !ok1 {
		t.Fatal("second meta page unreadable")
	}
	page := int64(0)
	if (m1.txid > m0.txid) == newest {
		page = 1
	}
	if _, err := f.WriteAt(make([]byte, m0.pageSize), page*int64(m0.pageSize)); err != nil {
		t.Fatal(err)
	}
}

// TestStoreRollbackWarns: a store that opens older than the daemon last
// saw it (one meta page lost), or empty where it held leases, is reported
// loudly; losing the older meta page changes nothing and says nothing.
func TestStoreRollbackWarns(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
		want   string // in the warning; "" for none
	}{
		{"newest meta page zeroed", func(t *testing.T, path string) { zeroMetaPage(t, path, true) }, "rolled back"},
		{"older meta page zeroed", func(t *testing.T, path string) { zeroMetaPage(t, path, false) }, ""},
		{"zero-length store", func(t *testing.T, path string) {
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
		}, "is empty but held committed leases"},
		{"untouched", func(*testing.T, string) {}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			path := storeWithCommits(t, cfg, 5)
			tt.damage(t, path)
			var logged bytes.Buffer
			d, err := New(ctxT(t), cfg, unix.New(), slog.New(slog.NewTextHandler(&logged, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			warnings := d.Warnings()
			if tt.want == "" {
				if len(warnings) != 0 {
					t.Errorf("warnings = %q; want none", warnings)
				}
				return
			}
			if len(warnings) != 1 || !strings.Contains(warnings[0], tt.want) {
				t.Errorf("warnings = %q; want one saying %q", warnings, tt.want)
			}
			if !strings.Contains(logged.String(), "level=ERROR") || !strings.Contains(logged.String(), tt.want) {
				t.Errorf("log does not say %q at error level:\n%s", tt.want, logged.String())
			}
			// status shows it to whoever asks, not only to the log.
			ctx, cancel := context.WithCancel(ctxT(t))
			done := make(chan error, 1)
			go func() { done <- d.Serve(ctx, nil) }()
			defer func() { cancel(); <-done }()
			st, err := brokerpb.NewBrokerServiceClient(dial(t, d.Addr())).GetStatus(ctxT(t), &brokerpb.GetStatusRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if got := st.GetWarnings(); len(got) != 1 || got[0] != warnings[0] {
				t.Errorf("status warnings = %q; want %q", got, warnings)
			}
		})
	}
}

func init() {
	// ns-acquire runs as PID 1 of a new PID namespace: it leases with its
	// own namespace-local PID, with owner_pid 0, and with a PID nothing in
	// its namespace has, prints each lease's owner_pid (or error) and
	// waits for stdin to close, so the test can inspect it alive.
	childModes["ns-acquire"] = func() {
		conn, err := newTestConn(os.Getenv("PORTBROKER_TEST_ADDR"))
		if err != nil {
			os.Exit(5)
		}
		rpc := brokerpb.NewBrokerServiceClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i, pid := range []int32{int32(os.Getpid()), 0, 4321} {
			res, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: fmt.Sprintf("ns-%d", i), OwnerPid: pid})
			if err != nil {
				st := status.Convert(err)
				fmt.Printf("%s %s\n", st.Code(), st.Message())
				continue
			}
			fmt.Printf("owner %d\n", res.GetLease().GetOwnerPid())
		}
		os.Stdin.Read(make([]byte, 1))
	}
}

// TestPIDNamespaceCallerIsTranslated: a caller in its own PID namespace
// (unshare -pf) names itself as PID 1; the lease is owned by the same
// process as the daemon sees it, never by host PID 1 or whatever else
// has the caller's local PID, and a PID absent from its namespace is
// refused naming the field.
func TestPIDNamespaceCallerIsTranslated(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("needs unshare(1): %v", err)
	}
	if out, err := exec.Command("unshare", "-pf", "true").CombinedOutput(); err != nil {
		t.Skipf("the kernel or sandbox forbids new PID namespaces (unshare -pf true: %v: %s)", err, out)
	}
	d := startDaemon(t, testConfig(t))
	cmd := exec.Command("unshare", "-pf", "--kill-child", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD=ns-acquire", "PORTBROKER_TEST_ADDR="+d.addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	var got []string
	for len(got) < 3 && lines.Scan() {
		got = append(got, lines.Text())
	}
	if len(got) != 3 {
		t.Fatalf("child printed %q", got)
	}
	var owners [2]int
	for i := range 2 {
		if _, err := fmt.Sscanf(got[i], "owner %d", &owners[i]); err != nil {
			t.Fatalf("lease %d: %q", i, got[i])
		}
	}
	if owners[0] != owners[1] {
		t.Errorf("owner_pid 1 in the namespace gave owner %d, owner_pid 0 gave %d; want the same process", owners[0], owners[1])
	}
	self, _ := os.Readlink("/proc/self/ns/pid")
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", owners[0]))
	if err != nil || ns == self {
		t.Errorf("owner %d lives in PID namespace %q (%v); want the child's, not the daemon's %q", owners[0], ns, err, self)
	}
	if nspid := readNSpidLine(t, owners[0]); !strings.HasSuffix(nspid, "\t1") {
		t.Errorf("owner %d has NSpid %q; want it to be PID 1 in its namespace", owners[0], nspid)
	}
	if !strings.HasPrefix(got[2], "InvalidArgument owner_pid: ") {
		t.Errorf("a PID absent from the caller's namespace: %q; want InvalidArgument naming owner_pid", got[2])
	}
}

func readNSpidLine(t *testing.T, pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "NSpid:") {
			return line
		}
	}
	return ""
}

func init() {
	// flood opens $PORTBROKER_TEST_FLOOD idle connections to the daemon's
	// socket, prints how many connected, and holds them until killed.
	childModes["flood"] = func() {
		n, _ := strconv.Atoi(os.Getenv("PORTBROKER_TEST_FLOOD"))
		path := strings.TrimPrefix(os.Getenv("PORTBROKER_TEST_ADDR"), "unix://")
		var conns []net.Conn
		for range n {
			c, err := net.DialTimeout("unix", path, 5*time.Second)
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		fmt.Println(len(conns))
		time.Sleep(time.Hour)
	}
}

// TestIdleConnectionFloodLeavesOwnerServed: another user in the socket's
// group opens many more idle connections than the daemon has descriptors
// (RLIMIT_NOFILE lowered to 128); the per-user cap closes the excess at
// accept, and the owner's calls, on new connections, still succeed.
func TestIdleConnectionFloodLeavesOwnerServed(t *testing.T) {
	testuser.Skip(t)
	other := testuser.Add(t)
	base, exe := testuser.SharedDir(t)
	cfg := Config{
		Addr:        "unix://" + filepath.Join(base, "run", "s.sock"),
		StateDir:    filepath.Join(base, "state"),
		SocketGroup: other.Name,
	}
	daemon := startDaemonProcess(t, cfg)
	limit := syscall.Rlimit{Cur: 128, Max: 128}
	if err := prlimitNOFILE(daemon.Process.Pid, &limit); err != nil {
		t.Fatalf("lower the daemon's RLIMIT_NOFILE: %v", err)
	}

	flood := exec.Command(exe, "-test.run=^$")
	flood.Dir = base
	flood.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD=flood", "PORTBROKER_TEST_ADDR="+cfg.Addr, "PORTBROKER_TEST_FLOOD=600")
	flood.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other.UID, Gid: other.GID, Groups: []uint32{}}}
	connected := startReporting(t, flood, "flooding client")
	if connected < 200 {
		t.Fatalf("the flood opened only %d connections; want more than the daemon's 128 descriptors", connected)
	}
	for i := range 3 {
		conn, err := newTestConn(cfg.Addr)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = brokerpb.NewBrokerServiceClient(conn).GetStatus(ctx, &brokerpb.GetStatusRequest{})
		cancel()
		conn.Close()
		if err != nil {
			t.Fatalf("owner's call %d during the flood: %v", i, err)
		}
	}
}

func init() {
	// shared-user runs as the second user of a shared daemon: it leases
	// until the pool refuses, asks for the first user's name, names the
	// first user's process as its launcher and inspects the first user's
	// port, printing one line each.
	childModes["shared-user"] = func() {
		env := func(k string) string { return os.Getenv("PORTBROKER_TEST_" + k) }
		num := func(k string) int { n, _ := strconv.Atoi(env(k)); return n }
		conn, err := newTestConn(env("ADDR"))
		if err != nil {
			os.Exit(2)
		}
		rpc := brokerpb.NewBrokerServiceClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got := 0
		var last error
		for i := range 100 {
			if _, last = rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: fmt.Sprintf("mine-%d", i)}); last != nil {
				break
			}
			got++
		}
		st := status.Convert(last)
		fmt.Printf("leased %d then %s %s\n", got, st.Code(), st.Message())
		_, err = rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "backend"})
		st = status.Convert(err)
		fmt.Printf("name %s %s\n", st.Code(), st.Message())
		_, err = rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "launched", LauncherPid: int32(num("ROOT_PID"))})
		st = status.Convert(err)
		fmt.Printf("launcher %s %s\n", st.Code(), st.Message())
		res, err := rpc.InspectPort(ctx, &brokerpb.InspectPortRequest{Port: uint32(num("ROOT_PORT"))})
		if err != nil || len(res.GetHolders()) == 0 {
			fmt.Printf("inspect failed %v\n", err)
			return
		}
		h := res.GetHolders()[0]
		fmt.Printf("inspect pid=%d exe=%q args=%d\n", h.GetPid(), h.GetExe(), len(h.GetCmdline()))
	}
}

// TestSharedModeFairness: two users share a daemon (a socket group) with
// a pool of 8 ports. The second user gets half the pool and is refused
// the rest, naming the share; the first user can still lease; a name the
// first user holds is refused naming that user; the second user cannot
// name the first user's process as a launcher, and sees neither its
// executable nor its arguments, which the first user (root) sees.
func TestSharedModeFairness(t *testing.T) {
	testuser.Skip(t)
	other := testuser.Add(t)
	base, exe := testuser.SharedDir(t)
	cfg := Config{
		Addr:         "unix://" + filepath.Join(base, "run", "s.sock"),
		StateDir:     filepath.Join(base, "state"),
		PollInterval: time.Second,
		SocketGroup:  other.Name,
		Range:        broker.PortRange{First: 31900, Last: 31907},
	}
	d := startDaemon(t, cfg)
	ctx := ctxT(t)
	rpc := brokerpb.NewBrokerServiceClient(dial(t, d.addr))
	owner := startChild(t)
	if _, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: "backend", OwnerPid: int32(owner.Process.Pid)}); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(os.Args[0], "-test.run=^$", "--secret=hunter2")
	holder.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD=listen")
	heldPort := startReporting(t, holder, "listening child")

	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Dir = base
	cmd.Env = append(os.Environ(), "PORTBROKER_TEST_CHILD=shared-user", "PORTBROKER_TEST_ADDR="+d.addr,
		"PORTBROKER_TEST_ROOT_PID="+strconv.Itoa(owner.Process.Pid), "PORTBROKER_TEST_ROOT_PORT="+strconv.Itoa(heldPort))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: other.UID, Gid: other.GID, Groups: []uint32{}}}
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("second user's client: %v: %s", err, got)
	}
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	if len(lines) != 4 {
		t.Fatalf("second user printed %q", got)
	}
	if !strings.HasPrefix(lines[0], "leased 4 then ResourceExhausted ") || !strings.Contains(lines[0], "share of the shared pool") {
		t.Errorf("second user's leases: %q; want 4 (half of 8) then ResourceExhausted naming the share", lines[0])
	}
	if !strings.HasPrefix(lines[1], "name AlreadyExists ") || !strings.Contains(lines[1], "leased by user 0") {
		t.Errorf("second user asking for the first user's name: %q; want AlreadyExists naming user 0", lines[1])
	}
	if !strings.HasPrefix(lines[2], "launcher PermissionDenied launcher_pid: ") {
		t.Errorf("second user naming the first user's process as launcher: %q; want PermissionDenied on launcher_pid", lines[2])
	}
	if want := fmt.Sprintf("inspect pid=%d exe=\"\" args=0", holder.Process.Pid); lines[3] != want {
		t.Errorf("second user's view of the first user's holder: %q; want %q", lines[3], want)
	}
	// The first user still has its part of the pool.
	for i := range 3 {
		if _, err := rpc.AcquireLease(ctx, &brokerpb.AcquireLeaseRequest{Name: fmt.Sprintf("root-%d", i), OwnerPid: int32(owner.Process.Pid)}); err != nil {
			t.Errorf("first user's lease %d after the second user took its share: %v", i, err)
		}
	}
	res, err := rpc.InspectPort(ctx, &brokerpb.InspectPortRequest{Port: uint32(heldPort)})
	if err != nil || len(res.GetHolders()) == 0 || !slices.Contains(res.GetHolders()[0].GetCmdline(), "--secret=hunter2") {
		t.Errorf("the first user's own view of its holder: %v, %v; want its command line", res.GetHolders(), err)
	}
}
