//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/portbroker/portbroker/client/clienttest"
)

func TestRunChurn(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"--daemon", clienttest.Binary(t), "--churn", "--churn-for", "1s", "--churn-clients", "4", "--churn-owners", "3",
		"--leases", "300", "--range-start", "21400", "--state-dir", t.TempDir(), "-o", "json"}
	if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	var c Churn
	if err := json.Unmarshal(stdout.Bytes(), &c); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if c.Clients != 4 || c.Owners != 3 || c.Acquires <= 0 || c.Releases <= 0 || c.Releases > c.Acquires {
		t.Errorf("churn = %+v, want 4 clients, 3 owners, some acquires and fewer releases", c)
	}
	// At most 4 clients x 3 owners x churnNames names, plus the probes.
	if c.Held <= 0 || c.Reclaimed != c.Held || c.Left != 0 {
		t.Errorf("churn = %+v, want every held lease reclaimed and none left", c)
	}
	checkLatency(t, "churn kill to event", c.Latency)
}

// fakePortserver answers as portserver.py does: a port per request, read
// from a connection that it then closes.
const fakePortserver = `
import asyncio, socket, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
next_port = [int(args["--portserver_static_pool"].split("-")[0])]
async def handle(reader, writer):
    data = await reader.read(100)
    int(data)
    writer.write(("%d\n" % next_port[0]).encode())
    next_port[0] += 1
    writer.close()
async def main():
    server = await asyncio.start_unix_server(handle, path=args["--portserver_address"].replace("@", "\0", 1))
    await server.serve_forever()
asyncio.run(main())
`

func TestRunVersus(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("portserver listens on an abstract socket: Linux only")
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 to run a portserver with")
	}
	script := filepath.Join(t.TempDir(), "portserver.py")
	if err := os.WriteFile(script, []byte(fakePortserver), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"--daemon", clienttest.Binary(t), "--versus", "--versus-calls", "400", "--clients", "1,3",
		"--portserver", script, "--python", python,
		"--leases", "300", "--range-start", "21700", "--state-dir", t.TempDir(), "-o", "json"}
	if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	var v Versus
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if v.Portserver != script || len(v.Levels) != 2 || v.Levels[0].Clients != 1 || v.Levels[1].Clients != 3 {
		t.Fatalf("versus = %+v, want levels 1 and 3 against %s", v, script)
	}
	for _, l := range v.Levels {
		if l.Acquire.Calls != 400 || l.Empty.Calls != 400 || l.Portserver == nil || l.Portserver.Calls != 400 {
			t.Errorf("%d clients: %+v, want 400 calls of each kind", l.Clients, l)
			continue
		}
		if l.RatioEmpty <= 0 || l.RatioPortserver <= 0 {
			t.Errorf("%d clients: ratios %v and %v, want both > 0", l.Clients, l.RatioEmpty, l.RatioPortserver)
		}
		checkLatency(t, "versus acquire", l.Acquire.Latency)
		checkLatency(t, "versus portserver", l.Portserver.Latency)
	}
}
