//go:build unix

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

func TestWhoAndReclaimSeveralPorts(t *testing.T) {
	d, _ := realDaemon(t)
	a, b := helperChild(t, "listen"), helperChild(t, "listen")
	fa, fb := ints(t, a.line), ints(t, b.line)
	pa, pb := strconv.Itoa(fa[1]), strconv.Itoa(fb[1])

	r := brokerctl(t, "--addr", d.Addr, "who", pa, pb)
	for _, want := range []string{
		"port " + pa + "/tcp\n", fmt.Sprintf("holder:    pid %d (", fa[0]),
		"\n\nport " + pb + "/tcp\n", fmt.Sprintf("holder:    pid %d (", fb[0]),
	} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("who %s %s: exit %d, output lacks %q:\n%s%s", pa, pb, r.code, want, r.stdout, r.stderr)
		}
	}
	if i, j := strings.Index(r.stdout, "port "+pa+"/"), strings.Index(r.stdout, "port "+pb+"/"); i < 0 || j < i {
		t.Errorf("who: ports not described in the order given:\n%s", r.stdout)
	}

	r = brokerctl(t, "--addr", d.Addr, "who", pa, pb, "-o", "json")
	dec := strings.Split(strings.TrimSpace(r.stdout), "\n}\n")
	if r.code != 0 || len(dec) != 2 {
		t.Fatalf("who -o json: exit %d, %d documents, want 2:\n%s%s", r.code, len(dec), r.stdout, r.stderr)
	}
	for i, doc := range dec {
		if i == 0 {
			doc += "\n}"
		}
		var resp brokerpb.InspectPortResponse
		if err := protojson.Unmarshal([]byte(doc), &resp); err != nil || len(resp.GetHolders()) != 1 || int(resp.GetHolders()[0].GetPid()) != []int{fa[0], fb[0]}[i] {
			t.Errorf("who -o json document %d: %v; holders %v", i, err, resp.GetHolders())
		}
	}

	r = brokerctl(t, "--addr", d.Addr, "reclaim", pa, pb, "--kill")
	if r.code != 0 || !strings.Contains(r.stdout, "port "+pa+" is free\n") || !strings.HasSuffix(r.stdout, "port "+pb+" is free\n") {
		t.Errorf("reclaim --kill of two ports: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	a.Wait()
	b.Wait()
}

// Refusals name the process holding the port even when no lease does.
func TestStrictRefusalNamesTheHolder(t *testing.T) {
	d, _ := realDaemon(t)
	stray := helperChild(t, "listen")
	f := ints(t, stray.line)
	port := strconv.Itoa(f[1])
	self := strconv.Itoa(os.Getpid())

	r := brokerctl(t, "--addr", d.Addr, "acquire", "web", "--port", port, "--strict", "--pid", self)
	if want := fmt.Sprintf("held by pid %d (", f[0]); r.code != 1 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("acquire --strict on a held port: exit %d, stderr %q; want 1 and one line with %q", r.code, r.stderr, want)
	}
	r = brokerctl(t, "--addr", d.Addr, "acquire", "web", "--port", port, "--pid", self)
	if want := fmt.Sprintf("held by pid %d (", f[0]); r.code != 0 || !strings.Contains(r.stderr, "port "+port+" not granted") || !strings.Contains(r.stderr, want) {
		t.Errorf("acquire falling back from a held port: exit %d, stderr %q; want the holder %q named", r.code, r.stderr, want)
	}
}

// Values only the daemon checks are still usage errors: exit 2, naming the
// flag or argument.
func TestDaemonRefusedValuesAreUsageErrors(t *testing.T) {
	d, _ := realDaemon(t)
	self := strconv.Itoa(os.Getpid())
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"acquire", "web", "--ttl", "500ms", "--pid", self}, "brokerctl: --ttl: "},
		{[]string{"acquire", " web", "--pid", self}, "brokerctl: NAME: "},
		{[]string{"acquire", "web", "--namespace", " ci", "--pid", self}, "brokerctl: --namespace: "},
	} {
		r := brokerctl(t, append([]string{"--addr", d.Addr}, tt.args...)...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}
