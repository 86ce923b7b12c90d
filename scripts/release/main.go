// Command release builds the release archives of portbroker: portbrokerd
// and brokerctl for each target, with the version stamped, the README, the
// licence (when there is one) and contrib/, as a .tar.gz (a .zip for
// Windows), and a SHA256SUMS file over the archives.
//
//	go run ./scripts/release -version v1.2.3                    # every target, into dist/
//	go run ./scripts/release -version v1.2.3 -out /tmp/d linux/amd64
//
// Archives are reproducible: built with -trimpath and without VCS
// stamping, and packed in name order with a fixed time and modes.
package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// targets are the platforms a release covers.
var targets = []string{
	"linux/amd64", "linux/arm64",
	"darwin/amd64", "darwin/arm64",
	"windows/amd64", "windows/arm64",
}

// stampVar is where the version goes (internal/version reads it).
const stampVar = "github.com/portbroker/portbroker/internal/version.stamp"

// modTime is every archived file's time, so that the same source gives the
// same bytes.
var modTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var versionRE = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "release: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("release", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	version := flags.String("version", "", "version to stamp and name the archives by, such as v1.2.3 (required)")
	out := flags.String("out", "dist", "directory for the archives and SHA256SUMS")
	license := flags.String("license", "", "SPDX licence for the Scoop and winget manifests (left as {{LICENSE}} when empty)")
	if err := flags.Parse(args); err != nil {
		return usageError{fmt.Errorf("%w; usage: release -version vX.Y.Z [-out DIR] [GOOS/GOARCH...]", err)}
	}
	if !versionRE.MatchString(*version) {
		return usageError{fmt.Errorf("-version: want a semantic version such as v1.2.3, not %q", *version)}
	}
	want := flags.Args()
	if len(want) == 0 {
		want = targets
	}
	for _, t := range want {
		if !slices.Contains(targets, t) {
			return usageError{fmt.Errorf("target %q: want one of %s", t, strings.Join(targets, ", "))}
		}
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	var sums []string
	hashes := map[string]string{}
	for _, t := range want {
		name, err := buildArchive(ctx, root, *out, *version, t)
		if err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		sum, err := sha256File(filepath.Join(*out, name))
		if err != nil {
			return err
		}
		sums = append(sums, sum+"  "+name+"\n")
		hashes[t] = sum
		fmt.Fprintln(stdout, filepath.Join(*out, name))
	}
	slices.Sort(sums)
	sumsPath := filepath.Join(*out, "SHA256SUMS")
	if err := os.WriteFile(sumsPath, []byte(strings.Join(sums, "")), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(stdout, sumsPath)
	amd, arm := hashes["windows/amd64"], hashes["windows/arm64"]
	if amd == "" || arm == "" {
		return nil
	}
	// The Windows package manifests name both Windows archives.
	fill := strings.NewReplacer("{{VERSION}}", strings.TrimPrefix(*version, "v"),
		"{{SHA256_WINDOWS_AMD64}}", amd, "{{SHA256_WINDOWS_ARM64}}", arm)
	if *license != "" {
		fill = strings.NewReplacer("{{VERSION}}", strings.TrimPrefix(*version, "v"),
			"{{SHA256_WINDOWS_AMD64}}", amd, "{{SHA256_WINDOWS_ARM64}}", arm, "{{LICENSE}}", *license)
	}
	return fillManifests(filepath.Join(root, "packaging"), *out, fill, stdout)
}

// fillManifests writes the Scoop and winget templates under dir into out,
// placeholders filled.
func fillManifests(dir, out string, fill *strings.Replacer, stdout io.Writer) error {
	for _, tmpl := range []string{
		"scoop/portbroker.json",
		"winget/Portbroker.Portbroker.yaml",
		"winget/Portbroker.Portbroker.installer.yaml",
		"winget/Portbroker.Portbroker.locale.en-US.yaml",
	} {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(tmpl)))
		if err != nil {
			return err
		}
		dst := filepath.Join(out, filepath.FromSlash(tmpl))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, []byte(fill.Replace(string(data))), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, dst)
	}
	return nil
}

// moduleRoot is the directory of portbroker's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/portbroker/portbroker").Output()
	if err != nil {
		return "", fmt.Errorf("find the portbroker module (run from inside it): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// buildArchive builds both binaries for target and packs them; it returns
// the archive's file name.
func buildArchive(ctx context.Context, root, out, version, target string) (string, error) {
	goos, goarch, _ := strings.Cut(target, "/")
	base := fmt.Sprintf("portbroker_%s_%s_%s", strings.TrimPrefix(version, "v"), goos, goarch)
	tmp, err := os.MkdirTemp("", "pbrelease")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	exe := ""
	if goos == "windows" {
		exe = ".exe"
	}
	files := map[string]string{} // name in the archive -> path on disk
	for _, cmd := range []string{"portbrokerd", "brokerctl"} {
		bin := filepath.Join(tmp, cmd+exe)
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
			"-ldflags", "-s -w -X "+stampVar+"="+version, "-o", bin, "./cmd/"+cmd)
		build.Dir = root
		build.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=")
		if msg, err := build.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./cmd/%s: %w\n%s", cmd, err, msg)
		}
		files[cmd+exe] = bin
	}
	for _, doc := range []string{"README.md", "LICENSE"} {
		if _, err := os.Stat(filepath.Join(root, doc)); err == nil {
			files[doc] = filepath.Join(root, doc)
		}
	}
	err = filepath.WalkDir(filepath.Join(root, "contrib"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = p
		return err
	})
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	name := base + ".tar.gz"
	if goos == "windows" {
		name = base + ".zip"
		err = writeZip(&buf, base, files)
	} else {
		err = writeTarGz(&buf, base, files)
	}
	if err != nil {
		return "", err
	}
	return name, os.WriteFile(filepath.Join(out, name), buf.Bytes(), 0o644)
}

// mode is an archived file's mode: executables 0755, the rest 0644.
func mode(name string) int64 {
	if n := path.Base(name); n == "portbrokerd" || n == "brokerctl" || strings.HasSuffix(n, ".exe") {
		return 0o755
	}
	return 0o644
}

func writeTarGz(w io.Writer, dir string, files map[string]string) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data, err := os.ReadFile(files[name])
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: dir + "/" + name, Mode: mode(name), Size: int64(len(data)), ModTime: modTime, Format: tar.FormatPAX, Uname: "root", Gname: "root"}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeZip(w io.Writer, dir string, files map[string]string) error {
	zw := zip.NewWriter(w)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data, err := os.ReadFile(files[name])
		if err != nil {
			return err
		}
		hdr := &zip.FileHeader{Name: dir + "/" + name, Method: zip.Deflate, Modified: modTime}
		hdr.SetMode(fs.FileMode(mode(name)))
		f, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			return err
		}
	}
	return zw.Close()
}

func sha256File(p string) (string, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", sha256.Sum256(data)), nil
}
