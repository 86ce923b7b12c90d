// Package version tells a portbroker binary what it is: the version a
// release build stamped, else the module version go install recorded,
// else the VCS revision of the checkout it was built from.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// stamp is set by release builds:
//
//	go build -ldflags "-X github.com/portbroker/portbroker/internal/version.stamp=v1.2.3" ./cmd/...
var stamp string

// Info is what a binary knows of its own build. Its JSON field names are
// those of brokerctl version -o json.
type Info struct {
	// Version is the stamped or module version, or "dev" for a build from
	// a checkout.
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, when known.
	Revision string `json:"revision,omitempty"`
	// Modified is true when the checkout had uncommitted changes.
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Get reads the running binary's build info.
func Get() Info {
	info, _ := debug.ReadBuildInfo()
	return fromBuildInfo(stamp, info)
}

func fromBuildInfo(stamped string, bi *debug.BuildInfo) Info {
	i := Info{Version: stamped, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		if i.Version == "" {
			i.Version = "dev"
		}
		return i
	}
	i.GoVersion = bi.GoVersion
	if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		i.Version = bi.Main.Version
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		case "GOOS":
			i.Platform = s.Value + i.Platform[strings.IndexByte(i.Platform, '/'):]
		case "GOARCH":
			i.Platform = i.Platform[:strings.IndexByte(i.Platform, '/')+1] + s.Value
		}
	}
	return i
}

// String is the version as one line: "v1.2.3", a pseudo-version such as
// "v0.0.0-20261202161004-0123456789ab+dirty" for a build from a checkout,
// or "dev (0123456789ab, modified)" when go recorded only the revision.
func (i Info) String() string {
	if i.Revision == "" {
		return i.Version
	}
	rev := i.Revision[:min(len(i.Revision), 12)]
	if strings.Contains(i.Version, rev) {
		// A pseudo-version (go 1.24 and later derive one from the
		// checkout) already names the revision, and "+dirty" the changes.
		return i.Version
	}
	if i.Modified {
		rev += ", modified"
	}
	return i.Version + " (" + rev + ")"
}
