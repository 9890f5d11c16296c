package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
)

// TestNodesShowEveryNodesVersion runs a cluster in the middle of a rolling
// upgrade (n1 on an older version) and checks that every node's Nodes, a
// follower's included, shows each node's own version and formats.
func TestNodesShowEveryNodesVersion(t *testing.T) {
	want := map[string]string{"n1": "0.1.0", "n2": "0.2.0", "n3": "0.2.0"}
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.Version = want[cfg.NodeID] })
	leader := c.leader()
	formats := fsm.SupportedFormats()
	for _, via := range c.nodes {
		waitFor(t, 15*time.Second, fmt.Sprintf("%s to show every node's version", via.id), func() bool {
			nodes := nodesByID(t, via)
			for id, v := range want {
				if b := nodes[id].Build; b.Version != v || b.Formats != formats {
					return false
				}
			}
			return true
		})
	}
	if st, err := leader.store.Status(ctxTimeout(t, 5*time.Second)); err != nil || st.Build.Version != want[leader.id] {
		t.Fatalf("status of %s: %+v %v", leader.id, st.Build, err)
	}
}
