package main

import (
	"io"
	"strings"
	"testing"
)

// --raft-log takes bolt or wal, from the flag or KV_RAFT_LOG (the flag wins);
// anything else is refused before the node touches its data dir.
func TestRaftLogFlag(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		env     string
		want    string
		wantErr string
	}{
		{want: ""},
		{args: []string{"--raft-log", "wal"}, want: "wal"},
		{env: "wal", want: "wal"},
		{args: []string{"--raft-log", "bolt"}, env: "wal", want: "bolt"},
		{args: []string{"--raft-log", "rocks"}, wantErr: `--raft-log "rocks": want bolt or wal`},
		{env: "WAL", wantErr: `--raft-log "WAL"`},
	} {
		o, err := parseFlags(tc.args, func(k string) string {
			if k == "KV_RAFT_LOG" {
				return tc.env
			}
			return ""
		}, io.Discard)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v env %q: err %v, want %q", tc.args, tc.env, err, tc.wantErr)
			}
			continue
		}
		if err != nil || o.raftLog != tc.want {
			t.Errorf("%v env %q: raftLog %q, %v; want %q", tc.args, tc.env, o.raftLog, err, tc.want)
		}
	}
}
