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
	Orphans      broker.OrphanPolicy
	Grace        time.Duration
	Limits       broker.Limits
	// Protected names processes never stopped, from the platform.
	Protected []string
	// Recover moves an unreadable store aside and starts empty.
	Recover bool
	// SocketGroup, when set, opens the unix socket to that group (0660).
	SocketGroup string
	Version     string
	// ConfigFile is the config file the settings came from, if any, for
	// GetStatus to name.
	ConfigFile string
	// Service is set when the daemon runs as the Windows service. On
	// loopback TCP it then shares its token and certificate with the
	// users its pipe admits, records its address for their clients
	// (ipc.WriteServiceAddr) and lets any of them call with the token.
	Service bool
}

// Settings are the raw values a config file, the environment and flags
// give, before validation. Keys in the config file use these names.
type Settings struct {
	Addr     string
	StateDir string
	Range    string
	Exclude  []string
	Services map[string]ServiceSettings
	Reclaim  ReclaimSettings
	Limits   broker.Limits
	Recover  bool
	// SocketGroup opens the unix socket to a group: socket_group in the file.
	SocketGroup string
}

// ReclaimSettings is the reclaim: section of the config file.
type ReclaimSettings struct {
	// Orphans is "kill" (the default) or "keep".
	Orphans      string
	Grace        string
	PollInterval string
}

// ServiceSettings is one entry under services: in the config file.
type ServiceSettings struct {
	Port     int
	Protocol string
}

// Keys are the settings a config file may hold; anything else is a typo
// worth an error rather than a silent default.
var Keys = []string{"addr", "state_dir", "socket_group", "range", "exclude", "services", "reclaim", "limits", "log_level", "log_format"}

// nested lists the fields of the sections that have fixed fields.
var nested = map[string][]string{
	"reclaim": {"orphans", "grace", "poll_interval"},
	"limits":  {"leases", "leases_per_user", "watchers", "user_share"},
}

// CheckKeys rejects keys that are not settings. keys are as viper reports
// them: lower case, dotted for nesting.
func CheckKeys(keys []string) error {
	for _, k := range keys {
		if err := CheckKey(k); err != nil {
			return err
		}
	}
	return nil
}

// CheckKey rejects one key that is not a setting, suggesting the setting
// most likely meant (grace: reclaim.grace).
func CheckKey(k string) error {
	top, rest, _ := strings.Cut(k, ".")
	if !slices.Contains(Keys, top) {
		return fmt.Errorf("unknown setting %q%s; the settings are %s", k, didYouMean(k), strings.Join(LeafKeys(), ", "))
	}
	if fields, ok := nested[top]; ok && rest != "" && !slices.Contains(fields, rest) {
		return fmt.Errorf("%s: unknown field %q%s; want one of %s", top, rest, didYouMean(k), strings.Join(fields, ", "))
	}
	if top == "services" && rest != "" {
		name, field, _ := strings.Cut(rest, ".")
		if field != "" && field != "port" && field != "protocol" {
			hint := ""
			if s := nearest(field, []string{"port", "protocol"}); s != "" {
				hint = fmt.Sprintf("; did you mean %q?", "services."+name+"."+s)
			}
			return fmt.Errorf("services.%s: unknown field %q%s; want port or protocol", name, field, hint)
		}
	}
	return nil
}

// LeafKeys are every setting's full key, sections spelt out.
func LeafKeys() []string {
	var out []string
	for _, k := range Keys {
		if fields, ok := nested[k]; ok {
			for _, f := range fields {
				out = append(out, k+"."+f)
			}
			continue
		}
		out = append(out, k)
	}
	return out
}

// didYouMean is "; did you mean "KEY"?" for the setting nearest to k, or
// "" when none is near.
func didYouMean(k string) string {
	if s := nearest(k, LeafKeys()); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}

// nearest is the candidate k most likely stands for: one whose last part
// is k's last part (grace: reclaim.grace), else the closest in edit
// distance to k, else to its last part, else to its first, within two
// edits or a third of that form's length.
func nearest(k string, candidates []string) string {
	last := k[strings.LastIndexByte(k, '.')+1:]
	for _, c := range candidates {
		if c != k && c[strings.LastIndexByte(c, '.')+1:] == last {
			return c
		}
	}
	top, _, _ := strings.Cut(k, ".")
	for _, form := range []string{k, last, top} {
		best, bestD := "", max(2, len(form)/3)+1
		for _, c := range candidates {
			// A section's name alone (reclaim for reclaim.grace) counts too.
			cTop, _, _ := strings.Cut(c, ".")
			for _, cf := range []string{c, cTop} {
				if d := editDistance(form, cf); d < bestD {
					best, bestD = c, d
				}
			}
		}
		if best != "" {
			return best
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Resolve validates settings into a Config. Errors name the setting and
// the rule.
func (s Settings) Resolve() (Config, error) {
	cfg := Config{Addr: s.Addr, StateDir: s.StateDir, Recover: s.Recover, SocketGroup: s.SocketGroup}
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
	var err error
	if cfg.PollInterval, err = parseDuration("reclaim.poll_interval", s.Reclaim.PollInterval, time.Second, 10*time.Millisecond, time.Hour); err != nil {
		return Config{}, err
	}
	if cfg.Grace, err = parseDuration("reclaim.grace", s.Reclaim.Grace, broker.DefaultGrace, 0, 10*time.Minute); err != nil {
		return Config{}, err
	}
	if cfg.Grace == 0 {
		// Zero would read as "no grace"; the broker never skips one.
		return Config{}, fmt.Errorf("reclaim.grace: %q: must be more than 0; a stop always gives its grace (reclaim --force stops at once)", s.Reclaim.Grace)
	}
	switch strings.ToLower(strings.TrimSpace(s.Reclaim.Orphans)) {
	case "", "kill":
		cfg.Orphans = broker.OrphanKill
	case "keep":
		cfg.Orphans = broker.OrphanKeep
	default:
		return Config{}, fmt.Errorf("reclaim.orphans: %q: want kill or keep", s.Reclaim.Orphans)
	}
	for _, l := range []struct {
		name string
		n    int
	}{{"limits.leases", s.Limits.Leases}, {"limits.leases_per_user", s.Limits.LeasesPerUser}, {"limits.watchers", s.Limits.Watchers}, {"limits.user_share", s.Limits.UserShare}} {
		if l.n < 0 || l.n > 1<<20 {
			return Config{}, fmt.Errorf("%s: must be from 0 (the default) to %d, got %d", l.name, 1<<20, l.n)
		}
	}
	cfg.Limits = s.Limits
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

// parseDuration reads an optional duration setting within [lo, hi].
func parseDuration(name, s string, def, lo, hi time.Duration) (time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("%s: %q must be a duration from %s to %s, such as %s", name, s, lo, hi, def)
	}
	return d, nil
}
