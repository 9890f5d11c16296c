package benchrun

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/quorumkv/quorumkv/internal/devcluster"
)

// startCluster starts a fresh three-node devcluster in dir on the given
// ports, with extra environment for the nodes; its start output goes to log.
// The caller stops it (Stop) when done.
func startCluster(e Env, dir string, httpBase, peerBase int, nodeEnv []string, log *strings.Builder) (*devcluster.Cluster, error) {
	env := map[string]string{"KV_CLUSTER_DIR": dir, "KV_CLUSTER_HTTP_BASE": strconv.Itoa(httpBase),
		"KV_CLUSTER_PEER_BASE": strconv.Itoa(peerBase), "KV_API_KEY": ""}
	cfg, err := devcluster.FromEnv(func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return e.Getenv(k)
	}, e.Repo)
	if err != nil {
		return nil, err
	}
	cfg.Env = append(cfg.Env, nodeEnv...)
	cfg.Out, cfg.Err = log, log
	cl, err := devcluster.Open(cfg)
	if err != nil {
		return nil, err
	}
	if err := cl.Start(false); err != nil {
		_ = cl.Stop()
		return nil, fmt.Errorf("cluster did not start: %w\n%s", err, log.String())
	}
	return cl, nil
}

// nodeState is the part of a node's /cluster/status these procedures read.
type nodeState struct {
	State   string `json:"state"`
	RaftLog string `json:"raftLog"`
}

func clusterNodeState(ctx context.Context, cl *devcluster.Cluster, n int) (nodeState, error) {
	key, err := cl.APIKey()
	if err != nil {
		return nodeState{}, err
	}
	body, err := getBody(ctx, cl.URL(n)+"/cluster/status", key, 2e9)
	if err != nil {
		return nodeState{}, err
	}
	var env struct {
		Data nodeState `json:"data"`
	}
	err = json.Unmarshal(body, &env)
	return env.Data, err
}

func mkdirTemp(pattern string) (string, error) { return os.MkdirTemp("", pattern) }

// leaderOf asks node 1 of cl for the leader: its number and raft id.
func leaderOf(cl *devcluster.Cluster) (int, string, error) {
	st, err := cl.Status(1)
	if err != nil {
		return 0, "", err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(st.LeaderID, "n"))
	if err != nil || n < 1 || n > devcluster.MaxNode {
		return 0, "", fmt.Errorf("no leader (%q)", st.LeaderID)
	}
	return n, st.LeaderID, nil
}

// envOnly handles the arguments of a procedure that takes none: --help
// prints usage (done), anything else is a usage error.
func envOnly(e Env, args []string, usage string) (done bool, err error) {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(e.Out, usage)
		return true, nil
	}
	if len(args) > 0 {
		return false, fmt.Errorf("%w: unknown argument '%s' (settings are environment variables; see --help)", errUsage, args[0])
	}
	return false, nil
}

// outputDir is dir, created, or a new temporary directory when dir is "".
func outputDir(dir, pattern string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", pattern)
	}
	return dir, os.MkdirAll(dir, 0o755)
}
