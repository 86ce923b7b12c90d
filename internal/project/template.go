package project

import (
	"fmt"
	"strconv"
	"strings"
)

// A template is a run line or env value in which {port} stands for the
// service's own port and {port:NAME} for service NAME's. Other braces are
// the shell's and are left alone.

// references returns the services a template names, in order, or an error
// for a malformed {port:...}.
func references(s string) ([]string, error) {
	var names []string
	_, err := expand(s, func(name string) (string, error) {
		if name != "" {
			names = append(names, name)
		}
		return "", nil
	})
	return names, err
}

// Expand replaces {port} in s by self's port and {port:NAME} by NAME's,
// from ports.
func Expand(s, self string, ports map[string]int) (string, error) {
	return expand(s, func(name string) (string, error) {
		if name == "" {
			name = self
		}
		p, ok := ports[name]
		if !ok {
			return "", fmt.Errorf("{port:%s}: no such service in the stack", name)
		}
		return strconv.Itoa(p), nil
	})
}

// expand replaces each {port} (lookup of "") and {port:NAME} in s.
func expand(s string, lookup func(name string) (string, error)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "{port")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		rest := s[i+len("{port"):]
		var name string
		switch {
		case strings.HasPrefix(rest, "}"):
			rest = rest[1:]
		case strings.HasPrefix(rest, ":"):
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return "", fmt.Errorf("%q: {port:NAME} is not closed with }", s[i:])
			}
			name = rest[1:end]
			if err := checkName(name); err != nil {
				return "", fmt.Errorf("{port:%s}: %w", name, err)
			}
			rest = rest[end+1:]
		default:
			// Not ours, such as {ports} or {portal}.
			b.WriteString("{port")
			s = rest
			continue
		}
		v, err := lookup(name)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		s = rest
	}
}

// EnvName is the variable that carries service name's port: PORT_ and the
// name upper-cased, with every character other than a letter or digit
// made _.
func EnvName(name string) string {
	b := []byte("PORT_" + strings.ToUpper(name))
	for i := len("PORT_"); i < len(b); i++ {
		c := b[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// checkName enforces the rule for service names, which are lease names and
// part of variable names.
func checkName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("a service name must be 1 to 63 characters, not %d", len(name))
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("service name %q: only letters, digits, '-', '_' and '.' are allowed", name)
		}
	}
	return nil
}
