package project

import (
	"bytes"
	"fmt"
	"strings"
)

// parseProcfile reads foreman's format: one "name: command" a line; blank
// lines and lines starting with # are skipped.
func parseProcfile(file string, data []byte, dir string) (*Project, error) {
	p := &Project{File: file, Dir: dir}
	for i, raw := range bytes.Split(data, []byte("\n")) {
		line := strings.TrimSpace(strings.TrimSuffix(string(raw), "\r"))
		n := i + 1
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, cmd, ok := strings.Cut(line, ":")
		name, cmd = strings.TrimSpace(name), strings.TrimSpace(cmd)
		if !ok {
			return nil, &Error{File: file, Line: n, Msg: fmt.Sprintf("want \"name: command\", not %q", line)}
		}
		if err := checkName(name); err != nil {
			return nil, &Error{File: file, Line: n, Key: name, Msg: err.Error()}
		}
		if cmd == "" {
			return nil, &Error{File: file, Line: n, Key: name, Msg: "no command after the colon"}
		}
		if prev := p.Service(name); prev != nil {
			return nil, &Error{File: file, Line: n, Key: name, Msg: fmt.Sprintf("defined twice (first on line %d)", prev.Line)}
		}
		p.Services = append(p.Services, &Service{
			Name: name, Run: cmd, Protocol: TCP, Cwd: dir, Grace: DefaultGrace,
			Ready: Ready{Timeout: DefaultReadyTimeout}, Line: n,
		})
	}
	if len(p.Services) == 0 {
		return nil, &Error{File: file, Msg: "no services: want lines of \"name: command\""}
	}
	return p, nil
}
