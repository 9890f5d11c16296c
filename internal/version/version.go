// Package version owns the build's identity: the release version, the Go
// toolchain and the source revision a binary was built from, as kvnode
// --version, kvctl version, the cluster status and the build-info metric
// report them.
//
// A release build stamps the version (and the revision, when the build runs
// without VCS information) with the linker:
//
//	go build -ldflags "-X github.com/quorumkv/quorumkv/internal/version.version=0.2.0 \
//	    -X github.com/quorumkv/quorumkv/internal/version.revision=$(git rev-parse HEAD)" ./cmd/kvnode
//
// Without a stamp the module version and the vcs.revision / vcs.modified
// settings Go records in the binary are used (go install module@v0.2.0 gives
// the module version; a build inside a git checkout gives the revision).
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker (-ldflags -X); empty in an unstamped build.
var (
	version  string
	revision string
)

// Devel is the version of a build that was neither stamped nor built from a
// tagged module: a developer's checkout.
const Devel = "devel"

// Info describes one binary.
type Info struct {
	Version   string `json:"version"`   // "0.2.0", or Devel
	GoVersion string `json:"goVersion"` // the toolchain, e.g. "go1.26.8"
	Revision  string `json:"revision"`  // the source commit; "" when unknown
	Modified  bool   `json:"modified"`  // built from a checkout with uncommitted changes
}

// Get returns this binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, revision, bi)
}

// resolve prefers the linker's stamp, then the module version and VCS
// settings recorded in bi (nil when the binary carries none).
func resolve(stampVersion, stampRevision string, bi *debug.BuildInfo) Info {
	info := Info{Version: strings.TrimPrefix(stampVersion, "v"), Revision: stampRevision, GoVersion: runtime.Version()}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = strings.TrimPrefix(bi.Main.Version, "v")
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Revision == "" {
					info.Revision = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = Devel
	}
	return info
}

// String is the one-line form --version prints:
// "0.2.0 (go1.26.8, revision 0123abcd…, modified)".
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	b.WriteString(" (")
	b.WriteString(i.GoVersion)
	if i.Revision != "" {
		b.WriteString(", revision ")
		b.WriteString(i.Revision)
	}
	if i.Modified {
		b.WriteString(", modified")
	}
	b.WriteString(")")
	return b.String()
}
