package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"},
	}}
	tagged := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v0.3.1"}}
	for _, tc := range []struct {
		name       string
		stamp, rev string
		bi         *debug.BuildInfo
		want       Info
		wantString string
	}{
		{"stamped wins", "v0.2.0", "feed", vcs, Info{Version: "0.2.0", GoVersion: "go1.99.1", Revision: "feed", Modified: true}, "0.2.0 (go1.99.1, revision feed, modified)"},
		{"checkout", "", "", vcs, Info{Version: Devel, GoVersion: "go1.99.1", Revision: "abc123", Modified: true}, "devel (go1.99.1, revision abc123, modified)"},
		{"go install module@version", "", "", tagged, Info{Version: "0.3.1", GoVersion: "go1.99.1"}, "0.3.1 (go1.99.1)"},
	} {
		got := resolve(tc.stamp, tc.rev, tc.bi)
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
		if s := got.String(); s != tc.wantString {
			t.Errorf("%s: String() = %q, want %q", tc.name, s, tc.wantString)
		}
	}
	if got := resolve("", "", nil); got.Version != Devel || got.GoVersion == "" {
		t.Errorf("no build info: %+v", got)
	}
}
