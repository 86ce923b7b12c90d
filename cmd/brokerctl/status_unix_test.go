//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/portbroker/portbroker/client/clienttest"
	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
)

// status names the config file the daemon read and the services it
// configures.
func TestStatusShowsConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "portbroker.yaml")
	if err := os.WriteFile(file, []byte("services:\n  backend: {port: 8000}\n  dns: {port: 5353, protocol: udp}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := clienttest.Start(t, clienttest.Binary(t), "--config", file)
	r := brokerctl(t, "--addr", d.Addr, "status")
	for _, want := range []string{"\nconfig:    " + file + "\n", "\nservices:  backend 8000/tcp, dns 5353/udp\n"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("status: exit %d, output lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	r = brokerctl(t, "--addr", d.Addr, "status", "-o", "json")
	var st brokerpb.GetStatusResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &st); err != nil || st.GetConfigFile() != file || len(st.GetServices()) != 2 {
		t.Errorf("status -o json: %v; config_file %q, services %v", err, st.GetConfigFile(), st.GetServices())
	}

	bare := clienttest.Start(t, clienttest.Binary(t))
	r = brokerctl(t, "--addr", bare.Addr, "status")
	if !strings.Contains(r.stdout, "\nconfig:    none\n") || !strings.Contains(r.stdout, "\nservices:  none\n") {
		t.Errorf("status of a daemon without a config file:\n%s", r.stdout)
	}
}
