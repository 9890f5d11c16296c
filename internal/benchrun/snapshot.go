package benchrun

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/quorumkv/quorumkv/internal/devcluster"
)

const snapshotUsage = `snapshot-p99.sh measures what a raft snapshot does to write latency on a
running scripts/cluster.sh cluster.

Usage: scripts/snapshot-p99.sh KVBENCH SECONDS RATE

Runs back-to-back open-loop kvbench write windows (-rate RATE, 2 s measured
after 0.5 s of warmup each) against the leader for about SECONDS, while the
nodes take raft snapshots on their own schedule (SnapshotThreshold entries,
checked every SnapshotInterval). Afterwards it reads each node's log for
"starting snapshot up to" / "snapshot complete up to" and sorts every window
into: leader snapshotting, a follower snapshotting (leader not), or none.
Prints one line per window and, per class, the number of windows and the
median and max of their p99 (ms). Uses the same environment as cluster.sh
(KV_CLUSTER_DIR, KV_CLUSTER_HTTP_BASE). Writes under the key prefix snapw-,
over the keys session-* of the data set it does not touch.
`

// snapWindow is one measured write window (epoch seconds) and its p99.
type snapWindow struct {
	start, end float64
	p99        float64
}

// snapInterval is one snapshot a node took (epoch seconds).
type snapInterval struct {
	node       string
	start, end float64
}

// snapshotIntervals pairs a node log's "starting snapshot up to" with the
// next "snapshot complete up to" (slog JSON lines; others are skipped).
func snapshotIntervals(node string, log io.Reader) []snapInterval {
	var out []snapInterval
	started := -1.0
	sc := bufio.NewScanner(log)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l struct {
			Msg  string    `json:"msg"`
			Time time.Time `json:"time"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		t := float64(l.Time.UnixNano()) / 1e9
		switch {
		case l.Msg == "starting snapshot up to":
			started = t
		case l.Msg == "snapshot complete up to" && started >= 0:
			out = append(out, snapInterval{node, started, t})
			started = -1
		}
	}
	return out
}

// snapshotReport classifies every window (leader snapshotting, a follower
// snapshotting, none) and prints one line per window and one per class.
func snapshotReport(w io.Writer, windows []snapWindow, intervals []snapInterval, leader string) {
	byClass := map[string][]float64{}
	for _, win := range windows {
		cls := "none"
		for _, iv := range intervals {
			if iv.start < win.end && iv.end > win.start {
				if iv.node == leader {
					cls = "leader"
				} else if cls == "none" {
					cls = "follower"
				}
			}
		}
		fmt.Fprintf(w, "window %.1f-%.1f p99 %s ms (%s snapshot)\n", win.start, win.end, strconv.FormatFloat(win.p99, 'f', -1, 64), cls)
		byClass[cls] = append(byClass[cls], win.p99)
	}
	for _, cls := range []string{"none", "leader", "follower"} {
		v := byClass[cls]
		if len(v) == 0 {
			continue
		}
		sort.Float64s(v)
		// the lower median, as the report always gave it
		fmt.Fprintf(w, "%s: %d windows, p99 median %.2f ms, max %.2f ms\n", cls, len(v), v[(len(v)+1)/2-1], v[len(v)-1])
	}
}

// SnapshotP99 is scripts/snapshot-p99.sh.
func SnapshotP99(ctx context.Context, e Env, args []string) error {
	if len(args) != 3 {
		fmt.Fprint(e.Err, snapshotUsage)
		return fmt.Errorf("%w: needs KVBENCH SECONDS RATE", errUsage)
	}
	seconds, err := strconv.Atoi(args[1])
	if err != nil || seconds < 1 {
		return fmt.Errorf("%w: SECONDS must be a whole number >= 1, got %q", errUsage, args[1])
	}
	if r, err := strconv.ParseFloat(args[2], 64); err != nil || r <= 0 {
		return fmt.Errorf("%w: RATE must be a positive number, got %q", errUsage, args[2])
	}
	cfg, err := devcluster.FromEnv(e.Getenv, e.Repo)
	if err != nil {
		return err
	}
	cl, err := devcluster.Open(cfg)
	if err != nil {
		return err
	}
	return snapshotP99(ctx, e.Out, &kvbench{path: args[0]}, cl, time.Duration(seconds)*time.Second, args[2])
}

// snapshotP99 runs the windows against cl's leader and prints the report.
func snapshotP99(ctx context.Context, out io.Writer, kb *kvbench, cl *devcluster.Cluster, d time.Duration, rate string) error {
	ln, leaderID, err := leaderOf(cl)
	if err != nil {
		return err
	}
	keyFile := filepath.Join(cl.Dir(), "api-key")
	var windows []snapWindow
	for end := time.Now().Add(d); time.Now().Before(end); {
		t0 := time.Now()
		r, err := kb.run(ctx, "", "-endpoints", cl.URL(ln), "-api-key-file", keyFile, "-workload", "write", "-key-prefix", "snapw-",
			"-keys", "10000", "-rate", rate, "-c", "64", "-warmup", "500ms", "-d", "2s")
		if err != nil {
			return err
		}
		windows = append(windows, snapWindow{start: float64(t0.UnixNano())/1e9 + 0.5, end: float64(time.Now().UnixNano()) / 1e9, p99: r.Total.Latency.P99})
	}
	var intervals []snapInterval
	dirs, _ := filepath.Glob(filepath.Join(cl.Dir(), "n[0-9]"))
	for _, dir := range dirs {
		f, err := os.Open(filepath.Join(dir, "kvnode.log"))
		if err != nil {
			continue
		}
		intervals = append(intervals, snapshotIntervals(filepath.Base(dir), f)...)
		f.Close()
	}
	snapshotReport(out, windows, intervals, leaderID)
	return nil
}
