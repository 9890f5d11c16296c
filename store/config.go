package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quorumkv/quorumkv/watch"
)

// Config configures one node's store. Zero durations take the values of DefaultConfig.
type Config struct {
	// NodeID is this server's raft ID; unique and stable for the life of the node.
	NodeID string
	// DataDir holds the raft log, stable store and snapshots. Created if missing.
	DataDir string
	// RaftLog is the raft log store of a new DataDir: RaftLogBolt or
	// RaftLogWAL; "" takes DefaultRaftLog. An existing DataDir keeps the store
	// it was created with; naming another one is an error (logstore.go).
	RaftLog string
	// Bootstrap lists the voters of a new cluster, this node included. The
	// cluster is bootstrapped only when DataDir has no raft state; an empty list
	// bootstraps a single-node cluster of this node alone.
	Bootstrap []Peer

	// HeartbeatTimeout and ElectionTimeout: how long a follower waits without
	// hearing from a leader before it starts an election. They bound failover time.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// LeaderLeaseTimeout: how long a leader stays leader without contact with a
	// quorum. Must not exceed HeartbeatTimeout. Not used to serve reads.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout: the longest a follower waits for a heartbeat-carried commit index.
	CommitTimeout time.Duration
	// MaxAppendEntries bounds the entries sent in one AppendEntries and the applies
	// the leader groups into one disk write (group commit).
	MaxAppendEntries int
	// SnapshotThreshold (log entries since the last snapshot) and SnapshotInterval
	// (how often the threshold is checked) control when snapshots are taken.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many log entries stay after a snapshot, so slightly
	// lagging followers catch up from the log instead of a snapshot.
	//
	// Both counts are entries, and under load an entry is a batch of many
	// writes (propose.go): the defaults (4096 and 1024) are a quarter and a
	// tenth of what they were before write batching, which kept the log's
	// size in bytes, and so bbolt's file, from growing with batch size.
	TrailingLogs uint64

	// DisableWriteBatching proposes every client write as its own raft entry.
	// By default the leader packs concurrent writes into one entry (fsm.OpBatch,
	// propose.go). Set it while a rolling upgrade from a build without OpBatch
	// is in progress: such a replica cannot apply a batch and stops.
	DisableWriteBatching bool
	// MaxWriteBatchesInFlight: how many write batches the leader may have
	// proposed and not yet applied. Writes arriving meanwhile wait and form the
	// next batch.
	MaxWriteBatchesInFlight int

	// IdempotencyMaxBytes bounds the dedup table (fsm accounting: key, result,
	// fingerprint and a fixed overhead per entry). This node, while it leads,
	// refuses new idempotent writes that would exceed it with
	// ErrIdempotencyTableFull, since entries are never dropped inside their
	// window. Zero means DefaultIdempotencyMaxBytes.
	IdempotencyMaxBytes int64

	// ExpireInterval: the longest the leader's expiry loop sleeps between scans.
	// An expired key is physically deleted within about this long (plus a commit).
	ExpireInterval time.Duration
	// ExpireBatch: the most keys one expire command removes.
	ExpireBatch int
	// ExpirePipeline: the most expire commands the leader keeps proposed and
	// not yet applied. The loop uses more than one only when one command of
	// ExpireBatch keys per commit cannot remove the backlog within
	// ExpireBudget. 1 never pipelines.
	ExpirePipeline int
	// ExpireBudget: how long after its expiry an entry may stay physically
	// present (reads already hide it). The leader spreads a mass expiry's
	// removals over this budget instead of removing them as fast as it can,
	// so client writes committed meanwhile queue behind less expiry work
	// per commit; once the earliest due entry is older than the budget it
	// removes at full speed (store/DESIGN.md, Expiry).
	ExpireBudget time.Duration
	// ExpireMinChunk: the fewest keys a paced expire command carries when
	// more are due (fewer commands, each with its per-entry cost).
	ExpireMinChunk int

	// DeletePrefixChunk: the most keys one log entry of a bulk delete removes
	// (deleteprefix.go); a larger prefix takes several entries, so applying
	// one never holds the state machine for long.
	DeletePrefixChunk int

	// MaxKeys and MaxDataBytes are storage quotas (quota.go): once the stored
	// entries (expired ones not yet removed included) reach MaxKeys, or a
	// write would take their keys plus values past MaxDataBytes, this node as
	// leader refuses writes that add data with ErrQuotaExceeded. 0 = no limit.
	// The leader's settings are the ones enforced; give every node the same.
	MaxKeys      int64
	MaxDataBytes int64

	// Clock returns the current time. The leader stamps expiry times and evaluates
	// expiry with it. nil means time.Now. Tests use it to skew one node's clock.
	Clock func() time.Time
	// MaxClockOffset: the largest offset between this node's clock and a
	// majority of the voters' under which it still stamps time, leads, and
	// serves as the clock of linearizable reads (clock.go). The cluster's
	// clock assumption: keep it well above what NTP holds the clocks to.
	MaxClockOffset time.Duration
	// ClockPingInterval: how often this node measures every other server's
	// clock over the peer port.
	ClockPingInterval time.Duration

	// Join: when DataDir has no raft state, do not bootstrap; start raft with
	// an empty configuration and wait to be added (see Store.Join). Ignored
	// (and logged) when DataDir has raft state.
	Join bool
	// HTTPAddr is the HTTP API address this node advertises (e.g.
	// "http://10.0.0.4:8080"); recorded in the replicated node table for
	// GET /cluster/nodes. Empty: not advertised.
	HTTPAddr string
	// PromoteLag: the leader promotes a non-voter to voter once the node's
	// applied index is within this many entries of the leader's.
	PromoteLag uint64
	// MonitorInterval: how often the leader probes every server's applied
	// index (for promotion and GET /cluster/nodes).
	MonitorInterval time.Duration

	// MaxValueBytes is the largest value a write may store, in bytes of
	// compact JSON; the leader refuses larger ones whoever sent them. Every
	// node should have the same limit. 0 means DefaultMaxValueBytes (1 MiB);
	// at most MaxMaxValueBytes. The peer port's frame limit must fit a write
	// of this size (FrameBytesFor); Open checks it.
	MaxValueBytes int64

	// MaxTxnOps and MaxTxnChecks bound a transaction's operations and checks
	// (txn.go). 0 means DefaultMaxTxnItems; at most MaxTxnItems.
	MaxTxnOps    int
	MaxTxnChecks int

	// PeerAuth reports the member identity the peer port authenticated for
	// the connection an RPC arrived on (ctx is the RPC handler's context); ok
	// is false when the connection is not authenticated. Membership RPCs
	// (join, register, remove, leadership transfer) from a connection it
	// does not vouch for are refused with ErrPeerUnauthenticated, unless
	// AllowUnauthenticatedPeers. nil: no connection is authenticated.
	PeerAuth func(ctx context.Context) (id string, ok bool)
	// AllowUnauthenticatedPeers serves membership RPCs from any peer
	// connection: for a deliberately insecure (plaintext) peer port only.
	AllowUnauthenticatedPeers bool

	// Logger receives the store's and raft's logs. nil means slog.Default().
	Logger *slog.Logger

	// Metrics, when set, receives the store's Prometheus metrics (metrics.go):
	// registered by Open, unregistered by Close. A registry per node keeps
	// in-process clusters apart. nil means the metrics are kept but not exported.
	Metrics prometheus.Registerer

	// ReportMetrics, when set, is the registry a node report's traffic
	// summary is read from (report.go: the HTTP request counters and
	// latencies live there, outside the store). nil: reports carry no traffic.
	ReportMetrics prometheus.Gatherer

	// InsecurePeer allows a peer port without mutual TLS (a Mux whose
	// transport.Config has no TLS): Open refuses one otherwise, because
	// anyone who reaches such a port can append to the raft log. Tests and
	// kvnode --insecure-peer set it.
	InsecurePeer bool

	// Watch bounds this node's change history and watchers (package watch);
	// zero fields take watch.DefaultConfig's values.
	Watch watch.Config
	// Version, when set, replaces the binary's version (internal/version) in
	// what this node reports to its peers; tests use it to run mixed versions.
	Version string

	// WrapRaftLayer, when set, wraps the raft stream layer. Tests use it to cut
	// raft traffic between nodes; production leaves it nil.
	WrapRaftLayer func(raft.StreamLayer) raft.StreamLayer
	// WrapRaftStores, when set, wraps the log store and stable store as
	// opened from disk, beneath everything the store adds. Tests use it to
	// inject storage errors; production leaves it nil.
	WrapRaftStores func(raft.LogStore, raft.StableStore) (raft.LogStore, raft.StableStore)
}

// DefaultIdempotencyMaxBytes (64 MiB) holds about 230,000 entries of a
// UUID-sized key (~290 accounted bytes each, which is what one costs in heap):
// ten minutes of ~390 new idempotent writes a second, in somewhat less memory
// than the table's former cap of 262,144 entries (~72 MiB) took. A cluster
// that sustains more keyed writes needs rate × 600 s × ~290 bytes.
const DefaultIdempotencyMaxBytes = 64 << 20

// DefaultConfig returns the settings used when a field is left zero.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:        1000 * time.Millisecond,
		ElectionTimeout:         1000 * time.Millisecond,
		LeaderLeaseTimeout:      500 * time.Millisecond,
		CommitTimeout:           50 * time.Millisecond,
		MaxAppendEntries:        256,
		SnapshotThreshold:       4096,
		SnapshotInterval:        30 * time.Second,
		TrailingLogs:            1024,
		MaxWriteBatchesInFlight: 1,
		DeletePrefixChunk:       1000,
		ExpireInterval:          100 * time.Millisecond,
		ExpireBatch:             1000,
		ExpirePipeline:          4,
		ExpireBudget:            2 * time.Second,
		ExpireMinChunk:          100,
		PromoteLag:              100,
		MonitorInterval:         250 * time.Millisecond,
		IdempotencyMaxBytes:     DefaultIdempotencyMaxBytes,
		MaxClockOffset:          500 * time.Millisecond,
		ClockPingInterval:       250 * time.Millisecond,
	}
}

// withDefaults returns c with zero fields filled from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = d.ElectionTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = min(d.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = d.CommitTimeout
	}
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = d.MaxAppendEntries
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.MaxWriteBatchesInFlight == 0 {
		c.MaxWriteBatchesInFlight = d.MaxWriteBatchesInFlight
	}
	if c.DeletePrefixChunk == 0 {
		c.DeletePrefixChunk = d.DeletePrefixChunk
	}
	if c.ExpireInterval == 0 {
		c.ExpireInterval = d.ExpireInterval
	}
	if c.ExpireBatch == 0 {
		c.ExpireBatch = d.ExpireBatch
	}
	if c.ExpirePipeline == 0 {
		c.ExpirePipeline = d.ExpirePipeline
	}
	if c.ExpireBudget == 0 {
		c.ExpireBudget = d.ExpireBudget
	}
	if c.ExpireMinChunk == 0 {
		c.ExpireMinChunk = d.ExpireMinChunk
	}
	if c.PromoteLag == 0 {
		c.PromoteLag = d.PromoteLag
	}
	if c.MonitorInterval == 0 {
		c.MonitorInterval = d.MonitorInterval
	}
	if c.IdempotencyMaxBytes == 0 {
		c.IdempotencyMaxBytes = d.IdempotencyMaxBytes
	}
	if c.MaxClockOffset == 0 {
		c.MaxClockOffset = d.MaxClockOffset
	}
	if c.ClockPingInterval == 0 {
		c.ClockPingInterval = d.ClockPingInterval
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = DefaultMaxTxnItems
	}
	if c.MaxTxnChecks == 0 {
		c.MaxTxnChecks = DefaultMaxTxnItems
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = DefaultMaxValueBytes
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first problem with c (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.NodeID == "":
		return errors.New("store: NodeID is required")
	case c.DataDir == "":
		return errors.New("store: DataDir is required")
	case !validRaftLog(c.RaftLog):
		return fmt.Errorf("store: RaftLog must be %q or %q, got %q", RaftLogBolt, RaftLogWAL, c.RaftLog)
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("store: LeaderLeaseTimeout (%s) must not exceed HeartbeatTimeout (%s)", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024:
		return fmt.Errorf("store: MaxAppendEntries must be 1..1024, got %d", c.MaxAppendEntries)
	case c.MaxWriteBatchesInFlight < 1:
		return fmt.Errorf("store: MaxWriteBatchesInFlight must be positive, got %d", c.MaxWriteBatchesInFlight)
	case c.ExpireBatch < 1:
		return fmt.Errorf("store: ExpireBatch must be positive, got %d", c.ExpireBatch)
	case c.ExpirePipeline < 1:
		return fmt.Errorf("store: ExpirePipeline must be positive, got %d", c.ExpirePipeline)
	case c.DeletePrefixChunk < 1:
		return fmt.Errorf("store: DeletePrefixChunk must be positive, got %d", c.DeletePrefixChunk)
	case c.MaxKeys < 0 || c.MaxDataBytes < 0:
		return fmt.Errorf("store: MaxKeys and MaxDataBytes must not be negative (0 = no limit), got %d and %d", c.MaxKeys, c.MaxDataBytes)
	case c.IdempotencyMaxBytes < 0:
		return fmt.Errorf("store: IdempotencyMaxBytes must not be negative, got %d", c.IdempotencyMaxBytes)
	case c.MaxClockOffset < 10*time.Millisecond:
		return fmt.Errorf("store: MaxClockOffset must be at least 10ms, got %s", c.MaxClockOffset)
	case c.ClockPingInterval < 0 || c.ClockPingInterval > c.MaxClockOffset*10:
		return fmt.Errorf("store: ClockPingInterval must be positive and at most 10 x MaxClockOffset, got %s", c.ClockPingInterval)
	case c.MaxTxnOps < 1 || c.MaxTxnOps > MaxTxnItems || c.MaxTxnChecks < 1 || c.MaxTxnChecks > MaxTxnItems:
		return fmt.Errorf("store: MaxTxnOps and MaxTxnChecks must be 1..%d, got %d and %d", MaxTxnItems, c.MaxTxnOps, c.MaxTxnChecks)
	case c.MaxValueBytes < 1 || c.MaxValueBytes > MaxMaxValueBytes:
		return fmt.Errorf("store: MaxValueBytes must be 1..%d, got %d", MaxMaxValueBytes, c.MaxValueBytes)
	case c.ExpireBudget < 0:
		return fmt.Errorf("store: ExpireBudget must not be negative, got %s", c.ExpireBudget)
	case c.ExpireMinChunk < 1:
		return fmt.Errorf("store: ExpireMinChunk must be positive, got %d", c.ExpireMinChunk)
	}
	if err := c.Watch.Validate(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	seen := map[string]bool{}
	self := len(c.Bootstrap) == 0
	for _, p := range c.Bootstrap {
		if p.ID == "" || p.Addr == "" {
			return fmt.Errorf("store: bootstrap peer %q=%q needs an id and an address", p.ID, p.Addr)
		}
		if seen[p.ID] {
			return fmt.Errorf("store: bootstrap peer %q listed twice", p.ID)
		}
		seen[p.ID] = true
		if p.ID == c.NodeID {
			self = true
		}
	}
	if !self {
		return fmt.Errorf("store: bootstrap peers must include this node %q", c.NodeID)
	}
	return nil
}
