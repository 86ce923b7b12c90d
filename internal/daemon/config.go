package daemon

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portbroker/portbroker/broker"
)

// Config is the daemon's resolved configuration.
type Config struct {
	// Addr is where to serve; empty means the per-user default.
	Addr string
	// StateDir holds the lease store; empty means the per-user default.
	StateDir string
	// Range is the pool's range; zero means the default below the OS
	// ephemeral range.
	Range    broker.PortRange
	Exclude  []broker.PortRange
	Services map[string]broker.Service
	// PollInterval is how often owners are polled where the OS cannot
	// report exits as events.
	PollInterval time.Duration
	// Recover moves an unreadable store aside and starts empty.
	Recover bool
	Version string
}

// Settings are the raw values a config file, the environment and flags
// give, before validation. Keys in the config file use these names.
type Settings struct {
	Addr         string
	StateDir     string
	Range        string
	Exclude      []string
	Services     map[string]ServiceSettings
	PollInterval string
	Recover      bool
}

// ServiceSettings is one entry under services: in the config file.
type ServiceSettings struct {
	Port     int
	Protocol string
}

// Keys are the settings a config file may hold; anything else is a typo
// worth an error rather than a silent default.
var Keys = []string{"addr", "state_dir", "range", "exclude", "services", "poll_interval", "log_level", "log_format"}

// CheckKeys rejects keys that are not settings. keys are as viper reports
// them: lower case, dotted for nesting.
func CheckKeys(keys []string) error {
	for _, k := range keys {
		top, rest, _ := strings.Cut(k, ".")
		if !slices.Contains(Keys, top) {
			return fmt.Errorf("unknown setting %q: want one of %s", k, strings.Join(Keys, ", "))
		}
		if top == "services" && rest != "" {
			name, field, _ := strings.Cut(rest, ".")
			if field != "" && field != "port" && field != "protocol" {
				return fmt.Errorf("services.%s: unknown field %q: want port or protocol", name, field)
			}
		}
	}
	return nil
}

// Resolve validates settings into a Config. Errors name the setting and
// the rule.
func (s Settings) Resolve() (Config, error) {
	cfg := Config{Addr: s.Addr, StateDir: s.StateDir, Recover: s.Recover}
	if strings.TrimSpace(s.Range) != "" {
		r, err := broker.ParseRange(s.Range)
		if err != nil {
			return Config{}, fmt.Errorf("range: %w", err)
		}
		cfg.Range = r
	}
	for _, item := range s.Exclude {
		rs, err := broker.ParseRanges(item)
		if err != nil {
			return Config{}, fmt.Errorf("exclude: %w", err)
		}
		for i := range rs {
			rs[i].Source = "config"
		}
		cfg.Exclude = append(cfg.Exclude, rs...)
	}
	cfg.Exclude = broker.MergeRanges(cfg.Exclude)
	cfg.PollInterval = time.Second
	if s.PollInterval != "" {
		d, err := time.ParseDuration(s.PollInterval)
		if err != nil || d < 10*time.Millisecond || d > time.Hour {
			return Config{}, fmt.Errorf("poll_interval: %q must be a duration from 10ms to 1h, such as 1s", s.PollInterval)
		}
		cfg.PollInterval = d
	}
	if len(s.Services) > 0 {
		cfg.Services = make(map[string]broker.Service, len(s.Services))
	}
	for name, svc := range s.Services {
		if name == "" || len(name) > broker.MaxNameLen {
			return Config{}, fmt.Errorf("services: name %q must be 1 to %d bytes", name, broker.MaxNameLen)
		}
		if svc.Port < 1 || svc.Port > 65535 {
			return Config{}, fmt.Errorf("services.%s.port: must be from 1 to 65535, got %d", name, svc.Port)
		}
		proto, err := parseProtocol(svc.Protocol)
		if err != nil {
			return Config{}, fmt.Errorf("services.%s.protocol: %w", name, err)
		}
		cfg.Services[name] = broker.Service{Port: uint16(svc.Port), Protocol: proto}
	}
	return cfg, nil
}

func parseProtocol(s string) (broker.Protocol, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "tcp":
		return broker.TCP, nil
	case "udp":
		return broker.UDP, nil
	case "tcp+udp", "tcp_udp", "both":
		return broker.TCPUDP, nil
	}
	return 0, fmt.Errorf("%s: want tcp, udp or tcp+udp", strconv.Quote(s))
}
