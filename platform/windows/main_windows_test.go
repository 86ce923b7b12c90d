package windows

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
)

// helperEnv switches the test binary into a helper child process.
const helperEnv = "PORTBROKER_WINDOWS_TEST_HELPER"

func TestMain(m *testing.M) {
	switch mode := os.Getenv(helperEnv); mode {
	case "":
		os.Exit(m.Run())
	case "block":
		// Live until the parent closes stdin or kills us.
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "sleep", "tree", "window", "interrupt":
		os.Exit(runHelper(mode))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", helperEnv, mode)
		os.Exit(2)
	}
}

// startChild starts a helper child that runs until killed, and kills it when
// the test ends.
func startChild(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=block")
	stdin, err := cmd.StdinPipe()
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
	return cmd
}

// kill kills the child and waits for it, so its process is gone once every
// handle to it is closed.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill child %d: %v", cmd.Process.Pid, err)
	}
	cmd.Wait()
}
