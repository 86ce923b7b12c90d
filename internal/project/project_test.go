package project

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

const dir = "/proj"

func TestParseYAML(t *testing.T) {
	src := `name: myapp
grace: 3s
services:
  backend:
    run: uvicorn app:app --port {port}
    port: 8000
    strict: true
    env: {LOG_LEVEL: debug, WORKERS: 2}
    ready: {http: /health, timeout: 10s}
  frontend:
    run: npm run dev -- --port {port}
    port: 3000
    cwd: web
    env:
      API_URL: http://127.0.0.1:{port:backend}
    after: [backend]
    grace: 1s
  dns:
    run: ./dns --port {port}
    protocol: UDP
    after: backend
    ready: {log: "^listening"}
  auth: ./auth --port {port}
`
	p, err := Parse(dir+"/portbroker.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "myapp" || p.Dir != dir || len(p.Services) != 4 {
		t.Fatalf("project %+v", p)
	}
	type flat struct {
		Name, Run string
		Port      int
		Strict    bool
		Protocol  Protocol
		Env       []EnvVar
		Cwd       string
		After     []string
		HTTP, Log string
		Timeout   time.Duration
		Grace     time.Duration
		Line      int
	}
	var got []flat
	for _, s := range p.Services {
		f := flat{s.Name, s.Run, s.Port, s.Strict, s.Protocol, s.Env, s.Cwd, s.After, s.Ready.HTTP, "", s.Ready.Timeout, s.Grace, s.Line}
		if s.Ready.Log != nil {
			f.Log = s.Ready.Log.String()
		}
		got = append(got, f)
	}
	want := []flat{
		{"backend", "uvicorn app:app --port {port}", 8000, true, TCP, []EnvVar{{"LOG_LEVEL", "debug"}, {"WORKERS", "2"}}, dir, nil, "/health", "", 10 * time.Second, 3 * time.Second, 4},
		{"frontend", "npm run dev -- --port {port}", 3000, false, TCP, []EnvVar{{"API_URL", "http://127.0.0.1:{port:backend}"}}, dir + "/web", []string{"backend"}, "", "", DefaultReadyTimeout, time.Second, 10},
		{"dns", "./dns --port {port}", 0, false, UDP, nil, dir, []string{"backend"}, "", "^listening", DefaultReadyTimeout, 3 * time.Second, 18},
		{"auth", "./auth --port {port}", 0, false, TCP, nil, dir, nil, "", "", DefaultReadyTimeout, 3 * time.Second, 23},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
}

func TestParseProcfile(t *testing.T) {
	src := "# the stack\r\nweb: python3 -m http.server $PORT\r\n\r\nworker:   ./work --api http://localhost:{port:web}  \n"
	p, err := Parse(dir+"/Procfile", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got [][2]string
	for _, s := range p.Services {
		got = append(got, [2]string{s.Name, s.Run})
		if s.Cwd != dir || s.Protocol != TCP || s.Grace != DefaultGrace || s.Ready.Timeout != DefaultReadyTimeout {
			t.Errorf("%s: defaults %+v", s.Name, s)
		}
	}
	want := [][2]string{{"web", "python3 -m http.server $PORT"}, {"worker", "./work --api http://localhost:{port:web}"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	if p.Services[1].Line != 4 {
		t.Errorf("worker on line %d, want 4", p.Services[1].Line)
	}
}

// Every bad file is refused with the file, the line and the key at fault.
func TestBadFiles(t *testing.T) {
	tests := []struct {
		name, file, src string
		want            string // the whole message after the file name
	}{
		{"unknown key", "portbroker.yaml", "services:\n  web:\n    run: x\n    prot: tcp\n", ":4: services.web.prot: unknown key; want one of run, port, strict, protocol, env, cwd, after, ready, grace"},
		{"unknown top key", "portbroker.yaml", "servces:\n  web: x\n", ":1: servces: unknown key; want one of name, grace, services"},
		{"daemon key", "portbroker.yaml", "services:\n  web: x\nreclaim:\n  grace: 1s\n", ":3: reclaim: is portbrokerd's setting, not a project's: it belongs in the daemon's config file"},
		{"daemon key range", "portbroker.yaml", "range: 20000-30000\nservices:\n  web: x\n", ":1: range: is portbrokerd's setting"},
		{"cycle", "portbroker.yaml", "services:\n  a:\n    run: x\n    after: [c]\n  b:\n    run: x\n    after: [a]\n  c:\n    run: x\n    after: b\n", ":4: services.a.after: a cycle: a → c → b → a; none of them could ever start"},
		{"self cycle", "portbroker.yaml", "services:\n  a:\n    run: x\n    after: [a]\n", ":4: services.a.after: a cycle: a → a"},
		{"after unknown", "portbroker.yaml", "services:\n  a:\n    run: x\n    after: [nope]\n", `:4: services.a.after: no service "nope" in`},
		{"port unknown service in env", "portbroker.yaml", "services:\n  a:\n    run: x\n    env:\n      URL: http://h:{port:bakend}/\n", `:5: services.a.env.URL: {port:bakend}: no service "bakend" in`},
		{"port unknown service in run", "portbroker.yaml", "services:\n  a:\n    run: x --to {port:b}\n", `:3: services.a.run: {port:b}: no service "b" in`},
		{"port unknown service in Procfile", "Procfile", "a: x\n\nb: y {port:c}\n", `:3: b: {port:c}: no service "c" in`},
		{"unclosed template", "Procfile", "a: x {port:a\n", `:1: a: "{port:a": {port:NAME} is not closed with }`},
		{"bad port", "portbroker.yaml", "services:\n  a:\n    run: x\n    port: 70000\n", `:4: services.a.port: want a port from 1 to 65535, not "70000"`},
		{"port not a number", "portbroker.yaml", "services:\n  a:\n    run: x\n    port: [1]\n", `:4: services.a.port: want a port from 1 to 65535, not a list`},
		{"strict without port", "portbroker.yaml", "services:\n  a:\n    run: x\n    strict: true\n", `:4: services.a.strict: needs port`},
		{"strict not bool", "portbroker.yaml", "services:\n  a:\n    run: x\n    strict: yes please\n", `:4: services.a.strict: want true or false, not "yes please"`},
		{"protocol", "portbroker.yaml", "services:\n  a:\n    run: x\n    protocol: sctp\n", `:4: services.a.protocol: want tcp, udp or tcp+udp, not "sctp"`},
		{"missing run", "portbroker.yaml", "services:\n  backend:\n    port: 8000\n", `:2: services.backend.run: missing: every service needs the command`},
		{"no services", "portbroker.yaml", "name: x\n", `:1: services: missing`},
		{"duplicate key", "portbroker.yaml", "services:\n  a:\n    run: x\n    run: y\n", `:4: services.a.run: given twice (first on line 3)`},
		{"duplicate service", "portbroker.yaml", "services:\n  a: x\n  a: y\n", `:3: services.a: given twice (first on line 2)`},
		{"env sets PORT", "portbroker.yaml", "services:\n  a:\n    run: x\n    env: {PORT: 1}\n", `:4: services.a.env.PORT: is set by brokerctl up`},
		{"env bad name", "portbroker.yaml", "services:\n  a:\n    run: x\n    env: {1A: 1}\n", `:4: services.a.env.1A: not a variable name`},
		{"env list value", "portbroker.yaml", "services:\n  a:\n    run: x\n    env: {A: [1]}\n", `:4: services.a.env.A: want a string, number or boolean, not a list`},
		{"bad regexp", "portbroker.yaml", "services:\n  a:\n    run: x\n    ready: {log: \"(\"}\n", `:4: services.a.ready.log: not a regular expression`},
		{"ready unknown", "portbroker.yaml", "services:\n  a:\n    run: x\n    ready: {tcp: 1}\n", `:4: services.a.ready.tcp: unknown key; want one of http, log, timeout`},
		{"ready http path", "portbroker.yaml", "services:\n  a:\n    run: x\n    ready: {http: health}\n", `:4: services.a.ready.http: want a path starting with /`},
		{"bad grace", "portbroker.yaml", "grace: soon\nservices:\n  a: x\n", `:1: grace: want a duration such as 5s or 1m30s, not "soon"`},
		{"bad service name", "portbroker.yaml", "services:\n  a b: x\n", `:2: services.a b: service name "a b": only letters`},
		{"PORT_ clash", "Procfile", "a-b: x\na_b: y\n", `:2: a_b: its port variable PORT_A_B is also a-b's; rename one`},
		{"default project name", "portbroker.yaml", "name: default\nservices:\n  a: x\n", `:1: name: project name "default" is the namespace`},
		{"not yaml", "portbroker.yaml", "services: [\n", `:1: not valid YAML: did not find expected node content`},
		{"procfile no colon", "Procfile", "web python\n", `:1: want "name: command", not "web python"`},
		{"procfile empty command", "Procfile", "web:\n", `:1: web: no command after the colon`},
		{"procfile twice", "Procfile", "web: a\nweb: b\n", `:2: web: defined twice (first on line 1)`},
		{"procfile empty", "Procfile", "# nothing\n", `: no services`},
		{"second document", "portbroker.yaml", "services:\n  a: x\n---\nb: 1\n", `:3: a second YAML document`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := dir + "/" + tt.file
			_, err := Parse(file, []byte(tt.src))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = %v, want an *Error", err)
			}
			if !strings.HasPrefix(err.Error(), file+tt.want) {
				t.Errorf("error\n  %s\nwant it to start\n  %s", err, file+tt.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	ports := map[string]int{"web": 8000, "api": 8081}
	tests := []struct{ in, want, err string }{
		{"--port {port}", "--port 8000", ""},
		{"{port:api}/{port}", "8081/8000", ""},
		{"${PORT} {ports} {portal} {port", "${PORT} {ports} {portal} {port", ""},
		{"{port:nope}", "", "{port:nope}: no such service in the stack"},
		{"{port:}", "", "{port:}: a service name must be 1 to 63 characters, not 0"},
		{"{port:a b}", "", `{port:a b}: service name "a b"`},
	}
	for _, tt := range tests {
		got, err := Expand(tt.in, "web", ports)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("Expand(%q) = %q, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"backend": "PORT_BACKEND", "auth-v2": "PORT_AUTH_V2", "a.b_c": "PORT_A_B_C"} {
		if got := EnvName(in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSelect(t *testing.T) {
	src := "services:\n  db: x\n  api:\n    run: x\n    after: [db]\n  web:\n    run: x {port:api}\n  docs: x\n"
	p, err := Parse(dir+"/portbroker.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		names []string
		want  []string
	}{
		{nil, []string{"db", "api", "web", "docs"}},
		{[]string{"web"}, []string{"db", "api", "web"}},
		{[]string{"docs", "db"}, []string{"db", "docs"}},
	} {
		got, err := p.Select(tt.names)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range got {
			names = append(names, s.Name)
		}
		if !cmp.Equal(names, tt.want) {
			t.Errorf("Select(%v) = %v, want %v", tt.names, names, tt.want)
		}
	}
	if _, err := p.Select([]string{"nope"}); err == nil || !strings.Contains(err.Error(), `no service "nope"`) {
		t.Errorf("Select(nope) = %v", err)
	}
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Find(sub); !errors.Is(err, ErrNoProject) {
		t.Fatalf("Find in an empty tree = %v, want ErrNoProject", err)
	}
	write := func(path string) {
		if err := os.WriteFile(path, []byte("web: x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "Procfile"))
	if f, err := Find(sub); err != nil || f.Path != filepath.Join(root, "Procfile") || f.Ignored != "" {
		t.Errorf("Find = %+v, %v; want the root's Procfile", f, err)
	}
	write(filepath.Join(root, "a", "Procfile"))
	write(filepath.Join(root, "a", "portbroker.yaml"))
	if f, err := Find(sub); err != nil || f.Path != filepath.Join(root, "a", "portbroker.yaml") || f.Ignored != filepath.Join(root, "a", "Procfile") {
		t.Errorf("Find = %+v, %v; want a/portbroker.yaml, ignoring a/Procfile", f, err)
	}
}

func TestNamespace(t *testing.T) {
	one, two := filepath.Join(t.TempDir(), "app"), filepath.Join(t.TempDir(), "app")
	a, b := DirNamespace(one), DirNamespace(two)
	if a == b || !strings.HasPrefix(a, "app-") || !strings.HasPrefix(b, "app-") {
		t.Errorf("namespaces of two app checkouts: %q and %q; want two, both app-HASH", a, b)
	}
	if DirNamespace(one) != a {
		t.Error("the namespace of a directory changed from one call to the next")
	}
	p := &Project{Dir: one, Name: "named", File: "portbroker.yaml"}
	named := p.Namespace("")
	if !strings.HasPrefix(named, "named-") || named == (&Project{Dir: two, Name: "named"}).Namespace("") {
		t.Errorf("Namespace with name: = %q; want named-HASH, differing between checkouts", named)
	}
	if got := p.Namespace("flag"); got != named {
		t.Errorf("Namespace with name: and -p = %q, want name: to win (%q)", got, named)
	}
	if err := p.ConflictingName("flag"); err == nil || !strings.Contains(err.Error(), "name: named") {
		t.Errorf("ConflictingName(flag) = %v; want an error naming name: named", err)
	}
	if err := p.ConflictingName("named"); err != nil {
		t.Errorf("ConflictingName(named) = %v, want nil", err)
	}
	long := &Project{Dir: one, Name: strings.Repeat("é", 100)}
	if got := long.Namespace(""); len(got) > 128 || !utf8.ValidString(got) {
		t.Errorf("Namespace of a long name = %q (%d bytes); want at most 128 bytes of UTF-8", got, len(got))
	}
	p.Name = ""
	if got := p.Namespace("flag"); !strings.HasPrefix(got, "flag-") {
		t.Errorf("Namespace with -p = %q, want flag-HASH", got)
	}
	p.Name = ""
	if got := p.Namespace(""); got != a {
		t.Errorf("Namespace derived = %q, want %q", got, a)
	}
}
