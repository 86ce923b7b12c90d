package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The version comes from what the build recorded: the revision of the
// checkout (and whether it has changes), or the version a release stamps.
// The builds run in a fresh clone, since go records no revision in a git
// worktree.
func TestVersionFromBuildInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("clones the repository and builds the daemon twice")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	clone := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("git", "clone", "--quiet", "--shared", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	head, err := exec.Command("git", "-C", clone, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	rev := strings.TrimSpace(string(head))[:12]
	version := func(flags ...string) string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "portbrokerd")
		build := exec.Command("go", append(append([]string{"build", "-buildvcs=true", "-o", bin}, flags...), "./cmd/portbrokerd")...)
		build.Dir = clone
		build.Env = append(os.Environ(), "GOFLAGS=")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", build.Args, err, out)
		}
		out, err := exec.Command(bin, "--version").Output()
		if err != nil {
			t.Fatalf("portbrokerd --version: %v", err)
		}
		return string(out)
	}

	// go names a checkout's build with a pseudo-version ending in the
	// revision, or its tag, to which the revision is added ("+dirty" for
	// changes, which TestFromBuildInfo covers).
	if got := version(); !strings.HasPrefix(got, "portbrokerd v") || !strings.Contains(got, rev) || strings.Contains(got, "dirty") || strings.Contains(got, "modified") {
		t.Errorf("--version of a clean checkout = %q, want a version naming revision %s, unmodified", got, rev)
	}
	if got, want := version("-ldflags", "-X github.com/portbroker/portbroker/internal/version.stamp=v9.8.7"), "portbrokerd v9.8.7 ("+rev+")\n"; got != want {
		t.Errorf("--version of a stamped build = %q, want %q", got, want)
	}
}
