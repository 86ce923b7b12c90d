package project

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// daemonKeys are portbrokerd's settings, which a project file must not
// carry: they would silently do nothing there.
var daemonKeys = []string{"addr", "state_dir", "socket_group", "range", "pool", "exclude", "reclaim", "limits", "log_level", "log_format"}

var (
	topKeys     = []string{"name", "grace", "services"}
	serviceKeys = []string{"run", "port", "strict", "protocol", "env", "cwd", "after", "ready", "grace"}
	readyKeys   = []string{"http", "log", "timeout"}
)

// parser reads one portbroker.yaml, keeping the file name for errors.
type parser struct{ file, dir string }

func (p *parser) errorf(n *yaml.Node, key, format string, a ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: p.file, Line: line, Key: key, Msg: fmt.Sprintf(format, a...)}
}

func parseYAML(file string, data []byte, dir string) (*Project, error) {
	p := &parser{file: file, dir: dir}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, p.yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, p.errorf(&extra, "", "a second YAML document; a project file holds one")
	}
	if len(doc.Content) == 0 {
		return nil, p.errorf(nil, "", "empty; want services:")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, p.errorf(root, "", "want a mapping with services:, not %s", kindName(root))
	}
	proj := &Project{File: file, Dir: dir}
	grace := DefaultGrace
	var services *yaml.Node
	err := p.each(root, "", topKeys, func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "name":
			proj.Name, err = p.str(v, key)
			if err == nil {
				err = checkProjectName(proj.Name)
				if err != nil {
					err = p.errorf(v, key, "%v", err)
				}
			}
		case "grace":
			grace, err = p.duration(v, key)
		case "services":
			services = v
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if services == nil {
		return nil, p.errorf(root, "services", "missing; a project file lists its services under services:")
	}
	if services.Kind != yaml.MappingNode || len(services.Content) == 0 {
		return nil, p.errorf(services, "services", "want a mapping of service names to their settings")
	}
	seen := map[string]int{}
	for i := 0; i < len(services.Content); i += 2 {
		k, v := services.Content[i], services.Content[i+1]
		if line, dup := seen[k.Value]; dup {
			return nil, p.errorf(k, "services."+k.Value, "given twice (first on line %d)", line)
		}
		seen[k.Value] = k.Line
		if err := checkName(k.Value); err != nil {
			return nil, p.errorf(k, "services."+k.Value, "%v", err)
		}
		s, err := p.service(k, v, grace)
		if err != nil {
			return nil, err
		}
		proj.Services = append(proj.Services, s)
	}
	return proj, nil
}

// each calls fn for every key of mapping n in order, refusing duplicates,
// daemon keys and keys not in allowed.
func (p *parser) each(n *yaml.Node, prefix string, allowed []string, fn func(key string, k, v *yaml.Node) error) error {
	seen := map[string]int{}
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := prefix + k.Value
		if k.Kind != yaml.ScalarNode {
			return p.errorf(k, prefix, "a key must be a plain name, not %s", kindName(k))
		}
		if line, dup := seen[k.Value]; dup {
			return p.errorf(k, path, "given twice (first on line %d)", line)
		}
		seen[k.Value] = k.Line
		if !slices.Contains(allowed, k.Value) {
			if prefix == "" && slices.Contains(daemonKeys, k.Value) {
				return p.errorf(k, path, "is portbrokerd's setting, not a project's: it belongs in the daemon's config file, portbroker.yaml in the user config dir (~/.config/portbroker/portbroker.yaml on Linux) or portbrokerd --config")
			}
			return p.errorf(k, path, "unknown key; want one of %s", strings.Join(allowed, ", "))
		}
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) service(k, v *yaml.Node, grace time.Duration) (*Service, error) {
	prefix := "services." + k.Value
	s := &Service{
		Name: k.Value, Protocol: TCP, Cwd: p.dir, Grace: grace,
		Ready: Ready{Timeout: DefaultReadyTimeout}, Line: k.Line, Lines: map[string]int{},
	}
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		// backend: uvicorn app:app --port {port}, as in a Procfile.
		s.Run = strings.TrimSpace(v.Value)
		if s.Run == "" {
			return nil, p.errorf(v, prefix, "an empty command")
		}
		return s, nil
	}
	if v.Kind != yaml.MappingNode {
		return nil, p.errorf(k, prefix, "want the service's settings (run: and more) or its command line, not %s", kindName(v))
	}
	var strictNode *yaml.Node
	err := p.each(v, prefix+".", serviceKeys, func(key string, kn, vn *yaml.Node) error {
		path := prefix + "." + key
		s.Lines[key] = kn.Line
		var err error
		switch key {
		case "run":
			if s.Run, err = p.str(vn, path); err == nil && strings.TrimSpace(s.Run) == "" {
				err = p.errorf(vn, path, "an empty command")
			}
		case "port":
			s.Port, err = p.port(vn, path)
		case "strict":
			strictNode = kn
			s.Strict, err = p.boolean(vn, path)
		case "protocol":
			var proto string
			if proto, err = p.str(vn, path); err == nil {
				switch Protocol(strings.ToLower(proto)) {
				case TCP, UDP, TCPUDP:
					s.Protocol = Protocol(strings.ToLower(proto))
				default:
					err = p.errorf(vn, path, "want tcp, udp or tcp+udp, not %q", proto)
				}
			}
		case "env":
			s.Env, err = p.env(vn, path, s.Lines)
		case "cwd":
			var dir string
			if dir, err = p.str(vn, path); err == nil {
				if !filepath.IsAbs(dir) {
					dir = filepath.Join(p.dir, dir)
				}
				s.Cwd = filepath.Clean(dir)
			}
		case "after":
			s.After, err = p.names(vn, path)
		case "ready":
			err = p.ready(vn, path, &s.Ready)
		case "grace":
			s.Grace, err = p.duration(vn, path)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.Run == "" {
		return nil, p.errorf(k, prefix+".run", "missing: every service needs the command that starts it (services: in the daemon's config file only sets ports)")
	}
	if s.Strict && s.Port == 0 {
		return nil, p.errorf(strictNode, prefix+".strict", "needs port: strict holds a service to the port it names")
	}
	return s, nil
}

func (p *parser) ready(n *yaml.Node, path string, r *Ready) error {
	if n.Kind != yaml.MappingNode {
		return p.errorf(n, path, "want a mapping such as {http: /health} or {log: \"listening on\"}, not %s", kindName(n))
	}
	err := p.each(n, path+".", readyKeys, func(key string, _, vn *yaml.Node) error {
		sub := path + "." + key
		var err error
		switch key {
		case "http":
			if r.HTTP, err = p.str(vn, sub); err == nil && !strings.HasPrefix(r.HTTP, "/") {
				err = p.errorf(vn, sub, "want a path starting with /, not %q", r.HTTP)
			}
		case "log":
			var expr string
			if expr, err = p.str(vn, sub); err == nil {
				if r.Log, err = regexp.Compile(expr); err != nil {
					err = p.errorf(vn, sub, "not a regular expression: %v", err)
				}
			}
		case "timeout":
			if r.Timeout, err = p.duration(vn, sub); err == nil && r.Timeout == 0 {
				err = p.errorf(vn, sub, "must be more than 0")
			}
		}
		return err
	})
	if err == nil && r.HTTP != "" && r.Log != nil {
		err = p.errorf(n, path, "give http or log, not both")
	}
	return err
}

func (p *parser) env(n *yaml.Node, path string, lines map[string]int) ([]EnvVar, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errorf(n, path, "want a mapping of variable names to values, not %s", kindName(n))
	}
	var env []EnvVar
	seen := map[string]int{}
	for i := 0; i < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		sub := path + "." + k.Value
		if !validEnvName(k.Value) {
			return nil, p.errorf(k, sub, "not a variable name: want letters, digits and _, not starting with a digit")
		}
		if k.Value == "PORT" || k.Value == "PORTBROKER_PORT" || strings.HasPrefix(k.Value, "PORT_") {
			return nil, p.errorf(k, sub, "is set by brokerctl up (PORT, PORTBROKER_PORT and PORT_<SERVICE>); use {port} or {port:NAME} in another variable")
		}
		if line, dup := seen[k.Value]; dup {
			return nil, p.errorf(k, sub, "given twice (first on line %d)", line)
		}
		seen[k.Value] = k.Line
		lines["env."+k.Value] = k.Line
		if v.Kind != yaml.ScalarNode {
			return nil, p.errorf(v, sub, "want a string, number or boolean, not %s", kindName(v))
		}
		val := v.Value
		if v.Tag == "!!null" {
			val = ""
		}
		env = append(env, EnvVar{Key: k.Value, Value: val})
	}
	return env, nil
}

func (p *parser) names(n *yaml.Node, path string) ([]string, error) {
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	var out []string
	for _, it := range items {
		name, err := p.str(it, path)
		if err != nil {
			return nil, err
		}
		if err := checkName(name); err != nil {
			return nil, p.errorf(it, path, "%v", err)
		}
		out = append(out, name)
	}
	return out, nil
}

func (p *parser) str(n *yaml.Node, path string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errorf(n, path, "want a string, not %s", kindName(n))
	}
	return n.Value, nil
}

func (p *parser) port(n *yaml.Node, path string) (int, error) {
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || v < 1 || v > 65535 {
		return 0, p.errorf(n, path, "want a port from 1 to 65535, not %s", kindName(n))
	}
	return v, nil
}

func (p *parser) boolean(n *yaml.Node, path string) (bool, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, nil
		}
	}
	return false, p.errorf(n, path, "want true or false, not %s", kindName(n))
}

func (p *parser) duration(n *yaml.Node, path string) (time.Duration, error) {
	if n.Kind == yaml.ScalarNode {
		if d, err := time.ParseDuration(n.Value); err == nil && d >= 0 {
			return d, nil
		}
	}
	return 0, p.errorf(n, path, "want a duration such as 5s or 1m30s, not %s", kindName(n))
}

// yamlError turns the decoder's error into one naming the file and line.
func (p *parser) yamlError(err error) error {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ":"); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, strings.TrimSpace(after)
			}
		}
	}
	return &Error{File: p.file, Line: line, Msg: "not valid YAML: " + msg}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "nothing"
	}
	return strconv.Quote(n.Value)
}

func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
