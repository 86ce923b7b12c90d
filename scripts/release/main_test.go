package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},                                  // no version
		{"-version", "1.2.3"},               // no v
		{"-version", "v1.2.3", "plan9/386"}, // not a target
		{"-bogus"},
	} {
		err := run(t.Context(), args, io.Discard)
		if _, ok := err.(usageError); !ok {
			t.Errorf("run(%q) = %v; want a usage error", args, err)
		}
	}
}

// A release for this machine's platform: an archive holding both binaries
// with the version stamped, and its checksum in SHA256SUMS.
func TestReleaseForThisPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries")
	}
	target := runtime.GOOS + "/" + runtime.GOARCH
	if !slices.Contains(targets, target) {
		t.Skipf("%s is not a release target", target)
	}
	out := t.TempDir()
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"-version", "v0.0.0-test.1", "-out", out, target}, &stdout); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("portbroker_0.0.0-test.1_%s_%s", runtime.GOOS, runtime.GOARCH)
	name, exe := base+".tar.gz", ""
	if runtime.GOOS == "windows" {
		name, exe = base+".zip", ".exe"
	}
	data, err := os.ReadFile(filepath.Join(out, name))
	if err != nil {
		t.Fatalf("archive: %v (release said %q)", err, stdout.String())
	}
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if want := fmt.Sprintf("%x  %s\n", sha256.Sum256(data), name); err != nil || string(sums) != want {
		t.Errorf("SHA256SUMS = %q, %v; want %q", sums, err, want)
	}
	files := unpack(t, name, data, filepath.Join(out, "x"))
	for _, want := range []string{"portbrokerd" + exe, "brokerctl" + exe, "README.md", "contrib/systemd/portbrokerd.service", "contrib/launchd/dev.portbroker.portbrokerd.plist"} {
		if !slices.Contains(files, base+"/"+want) {
			t.Errorf("archive lacks %s; has %q", want, files)
		}
	}
	got, err := exec.Command(filepath.Join(out, "x", base, "portbrokerd"+exe), "--version").Output()
	if err != nil || string(got) != "portbrokerd v0.0.0-test.1\n" {
		t.Errorf("portbrokerd --version from the archive = %q, %v; want the stamped v0.0.0-test.1", got, err)
	}
}

// unpack extracts the archive into dir and lists its files.
func unpack(t *testing.T, name string, data []byte, dir string) []string {
	t.Helper()
	var names []string
	write := func(n string, mode os.FileMode, r io.Reader) {
		names = append(names, n)
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	if strings.HasSuffix(name, ".zip") {
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			write(f.Name, f.Mode(), rc)
			rc.Close()
		}
		return names
	}
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		write(hdr.Name, os.FileMode(hdr.Mode), tr)
	}
}

func TestFillManifests(t *testing.T) {
	out := t.TempDir()
	fill := strings.NewReplacer("{{VERSION}}", "1.2.3", "{{SHA256_WINDOWS_AMD64}}", strings.Repeat("a", 64),
		"{{SHA256_WINDOWS_ARM64}}", strings.Repeat("b", 64), "{{LICENSE}}", "MIT")
	if err := fillManifests(filepath.Join("..", "..", "packaging"), out, fill, io.Discard); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "scoop", "portbroker.json"))
	if err != nil {
		t.Fatal(err)
	}
	var scoop struct {
		Version      string
		Architecture map[string]struct{ URL, Hash string }
	}
	if err := json.Unmarshal(raw, &scoop); err != nil {
		t.Fatalf("scoop manifest is not JSON: %v", err)
	}
	if x := scoop.Architecture["64bit"]; scoop.Version != "1.2.3" || x.Hash != strings.Repeat("a", 64) ||
		x.URL != "https://github.com/portbroker/portbroker/releases/download/v1.2.3/portbroker_1.2.3_windows_amd64.zip" {
		t.Errorf("scoop manifest: version %q, 64bit %+v", scoop.Version, x)
	}
	installer, err := os.ReadFile(filepath.Join(out, "winget", "Portbroker.Portbroker.installer.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"InstallerSha256: " + strings.Repeat("b", 64), `portbroker_1.2.3_windows_arm64\brokerctl.exe`} {
		if !strings.Contains(string(installer), want) {
			t.Errorf("winget installer manifest lacks %q", want)
		}
	}
	for _, f := range []string{"scoop/portbroker.json", "winget/Portbroker.Portbroker.yaml", "winget/Portbroker.Portbroker.installer.yaml", "winget/Portbroker.Portbroker.locale.en-US.yaml"} {
		data, err := os.ReadFile(filepath.Join(out, f))
		if err != nil || strings.Contains(string(data), "{{") {
			t.Errorf("%s: %v; placeholders left: %v", f, err, strings.Contains(string(data), "{{"))
		}
	}
}
