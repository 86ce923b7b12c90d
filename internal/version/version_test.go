package version

import (
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}, {Key: "GOOS", Value: "windows"}, {Key: "GOARCH", Value: "arm64"}}
	tests := []struct {
		name    string
		stamped string
		bi      *debug.BuildInfo
		want    string
		plat    string
	}{
		{"no build info", "", nil, "dev", ""},
		{"stamped without build info", "v1.0.0", nil, "v1.0.0", ""},
		{"checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "dev (0123456789ab, modified)", "windows/arm64"},
		{"clean checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs[:1]}, "dev (0123456789ab)", ""},
		{"go install", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.1"}}, "v0.3.1", ""},
		{"pseudo-version names the revision", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261202161004-0123456789ab+dirty"}, Settings: vcs}, "v0.0.0-20261202161004-0123456789ab+dirty", ""},
		{"stamp wins", "v2.0.0", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.1"}, Settings: vcs[:1]}, "v2.0.0 (0123456789ab)", ""},
	}
	for _, tt := range tests {
		got := fromBuildInfo(tt.stamped, tt.bi)
		if got.String() != tt.want {
			t.Errorf("%s: String() = %q, want %q", tt.name, got.String(), tt.want)
		}
		if tt.plat != "" && got.Platform != tt.plat {
			t.Errorf("%s: Platform = %q, want %q", tt.name, got.Platform, tt.plat)
		}
	}
}
