package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portbroker/portbroker/broker"
	"github.com/spf13/viper"
)

// loadArgs resolves the daemon's configuration as main would, without
// starting it.
func loadArgs(t *testing.T, args ...string) (string, error) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no user config file
	var stderr bytes.Buffer
	v := viper.New()
	cmd := newRootCmd(v, &stderr)
	if err := cmd.ParseFlags(args); err != nil {
		return "", err
	}
	cfg, _, err := loadConfig(cmd, v, &stderr)
	if err != nil {
		return "", err
	}
	return strings.Join([]string{
		cfg.Addr, cfg.Range.String(), broker.FormatRanges(cfg.Exclude), cfg.Grace.String(),
		cfg.PollInterval.String(), strings.Join(sortedServices(cfg.Services), " "),
	}, "|"), nil
}

func sortedServices(m map[string]broker.Service) []string {
	var out []string
	for _, name := range []string{"auth", "backend", "frontend"} {
		if s, ok := m[name]; ok {
			out = append(out, name+"="+s.Protocol.String()+"/"+strconv.Itoa(int(s.Port)))
		}
	}
	return out
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portbroker.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFileFlagsAndEnv(t *testing.T) {
	file := writeConfig(t, `
range: 21000-21999
exclude: ["21500-21510"]
services:
  backend: {port: 8000}
  frontend: {port: 3000}
  auth: {port: 8081, protocol: udp}
reclaim:
  grace: 2s
`)
	got, err := loadArgs(t, "--config", file)
	if err != nil {
		t.Fatal(err)
	}
	want := "|21000-21999|21500-21510|2s|1s|auth=udp/8081 backend=tcp/8000 frontend=tcp/3000"
	if got != want {
		t.Errorf("from the file:\n got %s\nwant %s", got, want)
	}

	// The environment beats the file, and a flag beats both.
	t.Setenv("PORTBROKER_RECLAIM_GRACE", "3s")
	t.Setenv("PORTBROKER_RANGE", "22000-22999")
	got, err = loadArgs(t, "--config", file, "--range", "23000-23999", "--poll-interval", "250ms")
	if err != nil {
		t.Fatal(err)
	}
	want = "|23000-23999|21500-21510|3s|250ms|auth=udp/8081 backend=tcp/8000 frontend=tcp/3000"
	if got != want {
		t.Errorf("with env and flags:\n got %s\nwant %s", got, want)
	}
}

func TestConfigFileErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"empty file is fine", "", ""},
		{"typo", "servics: {backend: {port: 8000}}\n", `config FILE:1: unknown setting "servics"; did you mean "services"?`},
		{"section field at top level", "range: 20000-29999\ngrace: 2s\n", `config FILE:2: unknown setting "grace"; did you mean "reclaim.grace"?`},
		{"bad port", "services:\n  backend: {port: 70000}\n", "config FILE:2: services.backend.port: must be from 1 to 65535"},
		{"port not a number", "services:\n  backend:\n    port: eight\n", `config FILE:3: services.backend.port: want a whole number, not "eight"`},
		{"service not a mapping", "services:\n  backend: 8000\n", `config FILE:2: services.backend: want a mapping such as {port: 8000}, not "8000"`},
		{"limit not a number", "limits:\n  leases: lots\n", `config FILE:2: limits.leases: want a whole number, not "lots"`},
		{"section not a mapping", "reclaim: 5s\n", `config FILE:1: reclaim: want a mapping of reclaim settings, not "5s"`},
		{"bad section field", "reclaim: {grace: 1s, orphan: kill}\n", `config FILE:1: reclaim: unknown field "orphan"; did you mean "reclaim.orphans"?`},
		{"bad grace", "log_level: info\nreclaim:\n  grace: soon\n", "config FILE:3: reclaim.grace: "},
		{"bad range", "range: 30000-20000\n", "config FILE:1: range: "},
		{"not yaml", "range: [\n", "config FILE: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeConfig(t, tt.body)
			tt.want = strings.ReplaceAll(tt.want, "FILE", file)
			_, err := loadArgs(t, "--config", file, "--recover")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := loadArgs(t, "--config", filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing --config file was accepted")
	}
}

func TestExitCodes(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"--bogus"}, &stderr); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	stderr.Reset()
	if code := run(t.Context(), []string{"--log-level", "loud"}, &stderr); code != 2 || !strings.Contains(stderr.String(), "log_level") {
		t.Errorf("bad log level: exit %d, %q", code, stderr.String())
	}
}
