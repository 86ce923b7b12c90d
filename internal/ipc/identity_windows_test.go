package ipc

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/windows"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestProcessUserIsCurrentUser(t *testing.T) {
	want, err := currentUserSID()
	if err != nil {
		t.Fatal(err)
	}
	sid, _, err := processUser(uint32(os.Getpid()))
	if err != nil || sid != want {
		t.Errorf("processUser(self) = %q, %v; want %q", sid, err, want)
	}
}

// A client's identity is its own, whether the pipe is its user's alone or
// the service's, open to every interactive user.
func TestIdentityOverPipe(t *testing.T) {
	if os.Getenv("PORTBROKER_UNDER_WINE") != "" {
		t.Skip("Wine does not implement go-winio's pipe Accept")
	}
	sid, err := currentUserSID()
	if err != nil {
		t.Fatal(err)
	}
	tok := windows.GetCurrentProcessToken()
	if !tok.IsElevated() {
		t.Log("unelevated: the service pipe, owned by Administrators, is left out")
	}
	for _, service := range []bool{false, true} {
		if service && !tok.IsElevated() {
			continue
		}
		t.Run(map[bool]string{false: "per-user", true: "service"}[service], func(t *testing.T) {
			noClientToken(t)
			addr, path := testPipePath()
			sddl := pipeSDDL(path, sid)
			if service {
				sddl = pipeSDDL(servicePipe, sid)
			}
			ln, err := listenPipeSDDL(addr, path, sddl)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			rec := serve(t, ln, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "/state/token")
			conn := dialTest(t, addr)
			if _, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatalf("health check: %v", err)
			}
			if unaryErr, streamErr := callBroker(t.Context(), conn); unaryErr != nil || streamErr != nil {
				t.Fatalf("broker calls over a pipe without a token: %v, %v; want both to pass", unaryErr, streamErr)
			}
			want := Identity{PID: os.Getpid(), UID: sid, Admin: tok.IsElevated(), Known: true}
			for _, c := range rec.all() {
				if !c.ok || c.id != want {
					t.Errorf("%s: IdentityFrom = %+v, %v; want %+v, true", c.method, c.id, c.ok, want)
				}
			}
		})
	}
}

func TestRotateTokenFileDACL(t *testing.T) {
	if os.Getenv("PORTBROKER_UNDER_WINE") != "" {
		// Measured with Wine 10.0: the DACL given at creation and one set
		// later with SetSecurityInfo both read back as Wine's default.
		t.Skip("Wine keeps no file DACLs, given at creation or set later")
	}
	_, path, err := RotateToken(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := currentUserSID()
	if err != nil {
		t.Fatal(err)
	}
	// A protected DACL with one entry: full access for this user.
	got := sd.String()
	if !strings.HasPrefix(got, "D:P") || strings.Count(got, "(") != 1 || !strings.Contains(got, ";;;"+sid+")") {
		t.Errorf("token file DACL = %s; want D:P(A;;FA;;;%s)", got, sid)
	}
}
