package project

import (
	"fmt"
	"strings"
)

// validate checks what spans services: after names known services and
// has no cycle, {port:NAME} names a known service, and no two services
// share a PORT_<NAME> variable.
func validate(p *Project) error {
	vars := map[string]*Service{}
	for _, s := range p.Services {
		v := EnvName(s.Name)
		if other := vars[v]; other != nil {
			return &Error{File: p.File, Line: s.Line, Key: key(p, s, ""), Msg: fmt.Sprintf("its port variable %s is also %s's; rename one", v, other.Name)}
		}
		vars[v] = s
	}
	for _, s := range p.Services {
		for _, dep := range s.After {
			if p.Service(dep) == nil {
				return &Error{File: p.File, Line: s.lineOf("after"), Key: key(p, s, "after"), Msg: fmt.Sprintf("no service %q in %s", dep, p.File)}
			}
		}
		check := func(what, tmpl string) error {
			names, err := references(tmpl)
			if err != nil {
				return &Error{File: p.File, Line: s.lineOf(what), Key: key(p, s, what), Msg: err.Error()}
			}
			for _, n := range names {
				if p.Service(n) == nil {
					return &Error{File: p.File, Line: s.lineOf(what), Key: key(p, s, what), Msg: fmt.Sprintf("{port:%s}: no service %q in %s", n, n, p.File)}
				}
			}
			return nil
		}
		if err := check("run", s.Run); err != nil {
			return err
		}
		for _, e := range s.Env {
			if err := check("env."+e.Key, e.Value); err != nil {
				return err
			}
		}
	}
	if cycle := findCycle(p); cycle != nil {
		s := p.Service(cycle[0])
		return &Error{File: p.File, Line: s.lineOf("after"), Key: key(p, s, "after"), Msg: "a cycle: " + strings.Join(cycle, " → ") + "; none of them could ever start"}
	}
	return nil
}

// key is the dotted key of a service's setting as the file spells it.
func key(p *Project, s *Service, sub string) string {
	k := s.Name
	if strings.HasSuffix(p.File, ".yaml") || strings.HasSuffix(p.File, ".yml") {
		k = "services." + k
	}
	if sub != "" && (sub != "run" || k != s.Name) {
		k += "." + sub
	}
	return k
}

// findCycle returns a cycle of after, starting and ending at the same
// service, or nil.
func findCycle(p *Project) []string {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(name string) []string
	visit = func(name string) []string {
		switch state[name] {
		case onPath:
			for i, n := range path {
				if n == name {
					return append(append([]string{}, path[i:]...), name)
				}
			}
		case done:
			return nil
		}
		state[name] = onPath
		path = append(path, name)
		for _, dep := range p.Service(name).After {
			if c := visit(dep); c != nil {
				return c
			}
		}
		path = path[:len(path)-1]
		state[name] = done
		return nil
	}
	for _, s := range p.Services {
		if c := visit(s.Name); c != nil {
			return c
		}
	}
	return nil
}

// Select returns the services to start for names (all when empty): the
// ones named, and every service they wait for (after) or whose port they
// use ({port:NAME}), in file order.
func (p *Project) Select(names []string) ([]*Service, error) {
	if len(names) == 0 {
		return p.Services, nil
	}
	want := map[string]bool{}
	var add func(name string)
	add = func(name string) {
		if want[name] {
			return
		}
		want[name] = true
		s := p.Service(name)
		deps := append([]string{}, s.After...)
		refs, _ := references(s.Run)
		deps = append(deps, refs...)
		for _, e := range s.Env {
			refs, _ := references(e.Value)
			deps = append(deps, refs...)
		}
		for _, d := range deps {
			add(d)
		}
	}
	for _, n := range names {
		if p.Service(n) == nil {
			return nil, fmt.Errorf("no service %q in %s; it has %s", n, p.File, strings.Join(p.names(), ", "))
		}
		add(n)
	}
	var out []*Service
	for _, s := range p.Services {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out, nil
}

func (p *Project) names() []string {
	out := make([]string, len(p.Services))
	for i, s := range p.Services {
		out[i] = s.Name
	}
	return out
}
