package client_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The client is a public package: it must not drag in the daemon's
// domain, host code or server.
func TestClientDoesNotImportDaemonPackages(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("needs the go command: %v", err)
	}
	forbidden := []string{
		"github.com/portbroker/portbroker/broker",
		"github.com/portbroker/portbroker/platform",
		"github.com/portbroker/portbroker/internal/rpcserver",
		"github.com/portbroker/portbroker/internal/daemon",
	}
	for _, goos := range []string{"linux", "darwin", "windows"} {
		cmd := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", "github.com/portbroker/portbroker/client")
		cmd.Env = append(os.Environ(), "GOOS="+goos)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("GOOS=%s go list: %v", goos, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 {
			t.Fatalf("GOOS=%s: go list printed no dependencies", goos)
		}
		for _, dep := range deps {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("GOOS=%s: client depends on %s", goos, dep)
				}
			}
		}
	}
}
