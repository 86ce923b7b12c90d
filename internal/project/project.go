// Package project reads the file a dev stack is described in, for brokerctl
// up: a Procfile (foreman's format) or a project portbroker.yaml. It finds
// the file, validates it with errors that name the file, line and key, and
// names the project's lease namespace.
package project

import (
	"fmt"
	"regexp"
	"time"
)

// File names looked for, in order of preference when both exist.
const (
	YAMLName     = "portbroker.yaml"
	ProcfileName = "Procfile"
)

// Defaults for what a file does not set.
const (
	DefaultGrace        = 5 * time.Second
	DefaultReadyTimeout = 60 * time.Second
)

// Project is a validated project file.
type Project struct {
	// File is the absolute path of the file read; Dir is its directory.
	File, Dir string
	// Name is the name: key of a portbroker.yaml, empty otherwise.
	Name string
	// Services are in file order.
	Services []*Service
}

// Protocol is a service's transport.
type Protocol string

const (
	TCP    Protocol = "tcp"
	UDP    Protocol = "udp"
	TCPUDP Protocol = "tcp+udp"
)

// Service is one process of the stack.
type Service struct {
	Name string
	// Run is a shell command line, with {port} and {port:NAME} not yet
	// replaced.
	Run string
	// Port is the preferred port, 0 for none.
	Port     int
	Strict   bool
	Protocol Protocol
	// Env values may hold {port} and {port:NAME} too. Keys are in file
	// order.
	Env []EnvVar
	// Cwd is absolute: the project's directory unless the file says.
	Cwd string
	// After names the services that must be ready before this one starts.
	After []string
	Ready Ready
	// Grace is the time between the graceful and the forced stop.
	Grace time.Duration
	// Line is where the service is defined; Lines has the line of each of
	// its keys ("after", "env.API_URL", ...) that the file gives.
	Line  int
	Lines map[string]int
}

// lineOf is the line of a service's key, else of the service.
func (s *Service) lineOf(key string) int {
	if n, ok := s.Lines[key]; ok {
		return n
	}
	return s.Line
}

// EnvVar is one variable of a service's environment.
type EnvVar struct{ Key, Value string }

// Ready is how brokerctl up tells that a service is ready. With neither
// HTTP nor Log set, a TCP service is ready when its port accepts a
// connection and a UDP one when it has started.
type Ready struct {
	// HTTP is a path that must answer with a status below 400.
	HTTP string
	// Log matches a line of the service's output.
	Log *regexp.Regexp
	// Timeout bounds the wait.
	Timeout time.Duration
}

// Error is a problem in a project file at a line and key.
type Error struct {
	File string
	Line int // 0 when the problem is the file as a whole
	// Key is the dotted path of the key, such as services.web.port; empty
	// for a Procfile line.
	Key string
	Msg string
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key == "" {
		return where + ": " + e.Msg
	}
	return where + ": " + e.Key + ": " + e.Msg
}

// Service returns the service called name, or nil.
func (p *Project) Service(name string) *Service {
	for _, s := range p.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}
