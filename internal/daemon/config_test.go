package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/portbroker/portbroker/broker"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		in      Settings
		want    Config
		wantErr string
	}{
		{name: "empty", in: Settings{}, want: Config{PollInterval: time.Second, Grace: broker.DefaultGrace}},
		{
			name: "full",
			in: Settings{
				Addr: "tcp://127.0.0.1:7000", StateDir: "/s", Range: "21000-22000", Exclude: []string{"21500-21510", "21600"},
				Services: map[string]ServiceSettings{"backend": {Port: 8000}, "dns": {Port: 5353, Protocol: "udp"}},
				Reclaim:  ReclaimSettings{PollInterval: "250ms", Orphans: "keep", Grace: "2s"},
				Limits:   broker.Limits{Leases: 100},
			},
			want: Config{
				Addr: "tcp://127.0.0.1:7000", StateDir: "/s", Range: broker.PortRange{First: 21000, Last: 22000},
				Exclude: []broker.PortRange{{First: 21500, Last: 21510, Source: "config"}, {First: 21600, Last: 21600, Source: "config"}},
				Services: map[string]broker.Service{
					"backend": {Port: 8000, Protocol: broker.TCP},
					"dns":     {Port: 5353, Protocol: broker.UDP},
				},
				PollInterval: 250 * time.Millisecond,
				Orphans:      broker.OrphanKeep,
				Grace:        2 * time.Second,
				Limits:       broker.Limits{Leases: 100},
			},
		},
		{name: "bad range", in: Settings{Range: "30000-20000"}, wantErr: "range: "},
		{name: "two ranges", in: Settings{Range: "1-2,4-5"}, wantErr: "range: "},
		{name: "bad exclude", in: Settings{Exclude: []string{"x"}}, wantErr: "exclude: "},
		{name: "service port", in: Settings{Services: map[string]ServiceSettings{"backend": {Port: 70000}}}, wantErr: "services.backend.port: must be from 1 to 65535"},
		{name: "service protocol", in: Settings{Services: map[string]ServiceSettings{"backend": {Port: 80, Protocol: "sctp"}}}, wantErr: "services.backend.protocol"},
		{name: "poll interval", in: Settings{Reclaim: ReclaimSettings{PollInterval: "1ns"}}, wantErr: "reclaim.poll_interval"},
		{name: "grace", in: Settings{Reclaim: ReclaimSettings{Grace: "soon"}}, wantErr: "reclaim.grace"},
		{name: "zero grace", in: Settings{Reclaim: ReclaimSettings{Grace: "0s"}}, wantErr: "reclaim.grace: \"0s\": must be more than 0"},
		{name: "orphans", in: Settings{Reclaim: ReclaimSettings{Orphans: "maim"}}, wantErr: "reclaim.orphans"},
		{name: "limits", in: Settings{Limits: broker.Limits{Watchers: -1}}, wantErr: "limits.watchers"},
		{name: "user share", in: Settings{Limits: broker.Limits{UserShare: -1}}, wantErr: "limits.user_share"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Resolve()
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckKeys(t *testing.T) {
	good := []string{"addr", "services.backend.port", "services.auth.protocol", "log_level", "range", "reclaim.grace", "limits.watchers"}
	if err := CheckKeys(good); err != nil {
		t.Errorf("CheckKeys(%v) = %v", good, err)
	}
	for _, bad := range []string{"service.backend.port", "services.backend.prot", "rnage", "reclaim.orphan", "limits.lease"} {
		if err := CheckKeys([]string{bad}); err == nil {
			t.Errorf("CheckKeys(%q) accepted a typo", bad)
		}
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("20000-30000", "25000,26000-26010", "8000", "tcp", "1s")
	f.Add("", "", "0", "", "")
	f.Add("1-65535", "1-65535", "65536", "udp", "-1s")
	f.Fuzz(func(t *testing.T, rng, exclude string, port, proto, poll string) {
		n := 0
		for _, c := range port {
			if c < '0' || c > '9' || n > 1e6 {
				break
			}
			n = n*10 + int(c-'0')
		}
		cfg, err := Settings{
			Range: rng, Exclude: []string{exclude}, Reclaim: ReclaimSettings{PollInterval: poll},
			Services: map[string]ServiceSettings{"svc": {Port: n, Protocol: proto}},
		}.Resolve()
		if err != nil {
			return
		}
		if cfg.Range != (broker.PortRange{}) && (cfg.Range.First == 0 || cfg.Range.Last < cfg.Range.First) {
			t.Fatalf("accepted range %v", cfg.Range)
		}
		if s := cfg.Services["svc"]; s.Port == 0 || !s.Protocol.Valid() {
			t.Fatalf("accepted service %+v", s)
		}
		if cfg.PollInterval < 10*time.Millisecond {
			t.Fatalf("accepted poll interval %v", cfg.PollInterval)
		}
	})
}

func TestCheckKeySuggests(t *testing.T) {
	tests := []struct{ key, want string }{
		{"grace", `did you mean "reclaim.grace"?`},
		{"poll_interval", `did you mean "reclaim.poll_interval"?`},
		{"watchers", `did you mean "limits.watchers"?`},
		{"servics.backend.port", `did you mean "services"?`},
		{"reclaim.grase", `did you mean "reclaim.grace"?`},
		{"limits.lease", `did you mean "limits.leases"?`},
		{"state-dir", `did you mean "state_dir"?`},
		{"services.web.prot", `did you mean "services.web.port"?`},
		{"colour", ""},
	}
	for _, tt := range tests {
		err := CheckKey(tt.key)
		if err == nil {
			t.Errorf("CheckKey(%q) accepted it", tt.key)
			continue
		}
		if tt.want == "" {
			if strings.Contains(err.Error(), "did you mean") {
				t.Errorf("CheckKey(%q) = %v; want no suggestion", tt.key, err)
			}
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckKey(%q) = %v; want %s", tt.key, err, tt.want)
		}
	}
	for _, k := range LeafKeys() {
		if err := CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) refused a setting: %v", k, err)
		}
	}
}
