//go:build unix

package main

import "testing"

func TestExecSimple(t *testing.T) {
	for in, want := range map[string]string{
		"python3 -m http.server 8000":  "exec python3 -m http.server 8000",
		"./bin/api --port $PORT":       "exec ./bin/api --port $PORT",
		"npm run dev -- --port 3000":   "exec npm run dev -- --port 3000",
		"A=1 python3 app.py":           "A=1 python3 app.py",
		"cd web && npm start":          "cd web && npm start",
		"trap '' TERM; sleep 9":        "trap '' TERM; sleep 9",
		"python3 app.py > log":         "python3 app.py > log",
		"echo $(date)":                 "echo $(date)",
		"if true; then x; fi":          "if true; then x; fi",
		"exec already":                 "exec already",
		"ls *.go":                      "ls *.go",
		"'quoted prog' arg":            "'quoted prog' arg",
		"python3 app.py # a comment":   "python3 app.py # a comment",
		"uvicorn app:app --port 20001": "exec uvicorn app:app --port 20001",
	} {
		if got := execSimple(in); got != want {
			t.Errorf("execSimple(%q) = %q, want %q", in, got, want)
		}
	}
}
