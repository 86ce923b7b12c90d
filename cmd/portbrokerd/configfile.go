package main

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/portbroker/portbroker/internal/daemon"
)

// configFile is the config file as written: each key (lower case, dotted
// for nesting, as viper names it) with its node, for errors that name the
// file and the line.
type configFile struct {
	path  string
	nodes map[string]*yaml.Node // key -> its value
	keys  map[string]*yaml.Node // key -> the key itself, for its line
}

// readConfigFile parses path; viper has already read it, so a YAML error
// here is rare, but it is reported the same way.
func readConfigFile(path string) (*configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	f := &configFile{path: path, nodes: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return f, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, f.errorf(root, "the file must be a mapping of settings, such as range: 20000-29999")
	}
	f.walk("", root)
	return f, nil
}

// walk records the keys of a mapping, and of the mappings within it.
func (f *configFile) walk(prefix string, m *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := prefix + strings.ToLower(k.Value)
		f.nodes[key], f.keys[key] = v, k
		if v.Kind == yaml.MappingNode {
			f.walk(key+".", v)
		}
	}
}

func (f *configFile) errorf(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("config %s:%d: %s", f.path, n.Line, fmt.Sprintf(format, args...))
}

// line is "FILE:LINE" of key, or "" when the file does not set it.
func (f *configFile) line(key string) string {
	if f == nil || f.keys[key] == nil {
		return ""
	}
	return fmt.Sprintf("%s:%d", f.path, f.keys[key].Line)
}

// check refuses unknown keys (suggesting the one meant) and values of the
// wrong kind, speaking of the key and the value rather than Go types.
func (f *configFile) check() error {
	keys := make([]string, 0, len(f.keys))
	for k := range f.keys {
		keys = append(keys, k)
	}
	// Report the first problem in the file, top to bottom; on one line (a
	// flow mapping) the outer key first, so a typo is named where it is.
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(f.keys[a].Line-f.keys[b].Line, f.keys[a].Column-f.keys[b].Column, strings.Count(a, ".")-strings.Count(b, "."), strings.Compare(a, b))
	})
	for _, k := range keys {
		if strings.HasPrefix(k, "services.") && strings.Count(k, ".") == 1 {
			if n := f.nodes[k]; n.Kind != yaml.MappingNode {
				return f.errorf(f.keys[k], "%s: want a mapping such as {port: 8000}, not %s", k, describe(n))
			}
			continue
		}
		if err := daemon.CheckKey(k); err != nil {
			return f.errorf(f.keys[k], "%v", err)
		}
		if err := checkKind(k, f.nodes[k]); err != nil {
			return f.errorf(f.keys[k], "%v", err)
		}
	}
	return nil
}

// sections are the keys whose value is a mapping of settings.
var sections = map[string]bool{"reclaim": true, "limits": true}

// checkKind checks that key's value is of the kind the setting takes.
func checkKind(key string, n *yaml.Node) error {
	top, _, _ := strings.Cut(key, ".")
	switch {
	case key == "services":
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("services: want a mapping of names to {port: N}, not %s", describe(n))
		}
	case sections[key]:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s: want a mapping of %s settings, not %s", key, key, describe(n))
		}
	case strings.HasSuffix(key, ".port") && top == "services", top == "limits":
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			return fmt.Errorf("%s: want a whole number, not %s", key, describe(n))
		}
	case key == "exclude":
		if n.Kind == yaml.SequenceNode {
			for _, item := range n.Content {
				if item.Kind != yaml.ScalarNode {
					return fmt.Errorf("exclude: want ports and ranges such as 27017 or 25000-25100, not %s", describe(item))
				}
			}
			return nil
		}
		fallthrough
	default:
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: want a single value, not %s", key, describe(n))
		}
	}
	return nil
}

// describe names a YAML value for an error: the value itself when short.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if len(n.Value) > 40 {
			return fmt.Sprintf("%q...", n.Value[:40])
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}
