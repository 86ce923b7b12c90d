package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// Fields after the name: state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime ...
	const tail = " S 1 2 3 0 -1 4194560 10 0 0 0 %s %s 0 0 20 0 1 0 100 0 0"
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr string
	}{
		{name: "plain", stat: "42 (portbrokerd)" + strings.NewReplacer("%s %s", "150 50").Replace(tail), want: 2 * time.Second},
		{name: "name with spaces and parens", stat: "42 (a) b (c)" + strings.NewReplacer("%s %s", "1 2").Replace(tail), want: 30 * time.Millisecond},
		{name: "no name", stat: "42 portbrokerd S 1", wantErr: "no parenthesised command name"},
		{name: "short", stat: "42 (x) S 1 2 3", wantErr: "want at least 13"},
		{name: "not a number", stat: "42 (x)" + strings.NewReplacer("%s %s", "x 2").Replace(tail), wantErr: "field 14"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseStatCPU(%q) = %v, %v; want an error containing %q", tt.stat, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStatCPU(%q) = %v, %v; want %v", tt.stat, got, err, tt.want)
			}
		})
	}
}

func TestSampleProcSelf(t *testing.T) {
	s, err := sampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The kernel reads the parts one by one, so a busy process may move a
	// page or two between them.
	if parts := s.anon + s.file + s.shmem; s.rss <= 0 || s.anon <= 0 || s.file <= 0 || parts < s.rss-1<<20 || parts > s.rss+1<<20 {
		t.Errorf("sample of this process = %+v: want RSS > 0 made of anon, file and shmem", s)
	}
	if _, err := sampleProc(-1); err == nil {
		t.Error("sampleProc(-1) succeeded")
	}
}
