package project

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: any input is either a project whose every template expands
// with the ports of its services, or an *Error naming the file; never a
// panic.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"web: python3 -m http.server {port}\napi: x {port:web}\n",
		"services:\n  a:\n    run: x {port:b}\n    after: [b]\n  b: y\n",
		"name: app\ngrace: 2s\nservices:\n  a:\n    run: x\n    port: 8000\n    strict: true\n    env: {A: '{port}'}\n    ready: {log: '^ok'}\n",
		"services: &a\n  x: *a\n",
		"services:\n  a:\n    run: x\n    after: [a]\n",
	} {
		f.Add("portbroker.yaml", seed)
		f.Add("Procfile", seed)
	}
	f.Fuzz(func(t *testing.T, name, src string) {
		file := "/p/Procfile"
		if strings.HasSuffix(name, "yaml") {
			file = "/p/portbroker.yaml"
		}
		p, err := Parse(file, []byte(src))
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.File != file || !strings.HasPrefix(err.Error(), file) {
				t.Fatalf("error %v does not name %s", err, file)
			}
			return
		}
		if len(p.Services) == 0 {
			t.Fatal("a project with no services")
		}
		ports := map[string]int{}
		for i, s := range p.Services {
			ports[s.Name] = 20000 + i
		}
		for _, s := range p.Services {
			if _, err := Expand(s.Run, s.Name, ports); err != nil {
				t.Fatalf("%s: run %q passed validation but does not expand: %v", s.Name, s.Run, err)
			}
			for _, e := range s.Env {
				if _, err := Expand(e.Value, s.Name, ports); err != nil {
					t.Fatalf("%s: env %s=%q passed validation but does not expand: %v", s.Name, e.Key, e.Value, err)
				}
			}
			for _, d := range s.After {
				if p.Service(d) == nil {
					t.Fatalf("%s: after %q, no such service", s.Name, d)
				}
			}
		}
		if c := findCycle(p); c != nil {
			t.Fatalf("cycle %v passed validation", c)
		}
	})
}
