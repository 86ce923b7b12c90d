package project

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrNoProject is returned by Find when no directory up from the start
// has a project file.
var ErrNoProject = errors.New("no Procfile or portbroker.yaml here or in any parent directory; write one, or name it with -f FILE")

// maxFileSize bounds what is read: a project file is a few lines.
const maxFileSize = 1 << 20

// Found is the project file Find chose.
type Found struct {
	// Path is absolute.
	Path string
	// Ignored is the other file in the same directory, which is not read.
	Ignored string
}

// Find looks for a project file in dir and then in each parent, and
// returns the first found. When a directory has both, portbroker.yaml is
// used and Ignored names the Procfile.
//
// A portbroker.yaml in the daemon's own config directory is skipped:
// that is portbrokerd's config, not a project.
func Find(dir string) (Found, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Found{}, fmt.Errorf("find a project file: %w", err)
	}
	for {
		yml, proc := filepath.Join(dir, YAMLName), filepath.Join(dir, ProcfileName)
		hasYAML, hasProc := isFile(yml) && !isDaemonConfig(yml), isFile(proc)
		switch {
		case hasYAML && hasProc:
			return Found{Path: yml, Ignored: proc}, nil
		case hasYAML:
			return Found{Path: yml}, nil
		case hasProc:
			return Found{Path: proc}, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return Found{}, ErrNoProject
		}
		dir = parent
	}
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// isDaemonConfig reports whether path is portbrokerd's default config.
func isDaemonConfig(path string) bool {
	cfg, err := os.UserConfigDir()
	if err != nil {
		return false
	}
	return path == filepath.Join(cfg, "portbroker", YAMLName)
}

// Load reads and validates the project file at path: a portbroker.yaml
// when its name ends in .yaml or .yml, else a Procfile.
func Load(path string) (*Project, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("project file %s: %w", path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("project file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("project file %s: %w", abs, err)
	}
	if len(data) > maxFileSize {
		return nil, &Error{File: abs, Msg: fmt.Sprintf("larger than %d bytes; a project file is a few lines", maxFileSize)}
	}
	return Parse(abs, data)
}

// Parse validates data read from file, an absolute path whose directory
// is the project's.
func Parse(file string, data []byte) (*Project, error) {
	dir := filepath.Dir(file)
	var (
		p   *Project
		err error
	)
	if ext := strings.ToLower(filepath.Ext(file)); ext == ".yaml" || ext == ".yml" {
		p, err = parseYAML(file, data, dir)
	} else {
		p, err = parseProcfile(file, data, dir)
	}
	if err != nil {
		return nil, err
	}
	if err := validate(p); err != nil {
		return nil, err
	}
	return p, nil
}

// Namespace is the lease namespace of one checkout of the project: its
// name (the file's name:, else the name given with -p, else the
// directory's base name) and a short hash of the checkout's absolute path,
// so that two checkouts of one project, even in directories of the same
// name, never share leases, and each keeps its own sticky ports.
func (p *Project) Namespace(given string) string {
	name := p.Name
	if name == "" {
		name = given
	}
	if name == "" {
		return DirNamespace(p.Dir)
	}
	return checkoutNamespace(name, p.Dir)
}

// ConflictingName reports the -p that the file's name: overrides, so that
// up can refuse it rather than ignore it.
func (p *Project) ConflictingName(given string) error {
	if given != "" && p.Name != "" && given != p.Name {
		return fmt.Errorf("-p %s: %s sets name: %s, which names the project; drop one of them", given, p.File, p.Name)
	}
	return nil
}

// DirNamespace is the namespace derived from a project directory.
func DirNamespace(dir string) string {
	base := strings.TrimSpace(filepath.Base(dir))
	if base == "" || base == string(filepath.Separator) || base == "." {
		base = "root"
	}
	return checkoutNamespace(base, dir)
}

// checkoutNamespace is name, cut to fit a namespace and made printable,
// then a dash and 8 hex digits of the checkout's resolved path.
func checkoutNamespace(name, dir string) string {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	sum := sha256.Sum256([]byte(dir))
	const maxName = 128 - 1 - 8 // a namespace is at most 128 bytes
	for len(name) > maxName {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, name)
	return name + "-" + hex.EncodeToString(sum[:])[:8]
}

// CheckName is the rule for a project name given with -p or name:: a
// lease namespace, and not "default", which is everyone else's.
func CheckName(name string) error { return checkProjectName(name) }

func checkProjectName(name string) error {
	switch {
	case name == "" || len(name) > 128:
		return fmt.Errorf("a project name must be 1 to 128 bytes, not %d", len(name))
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("project name %q: no leading or trailing space", name)
	case name == "default":
		return errors.New(`project name "default" is the namespace of leases outside any project; pick another`)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("project name %q: must be UTF-8", name)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) && r != ' ' {
			return fmt.Errorf("project name %q: only printable characters", name)
		}
	}
	return nil
}
