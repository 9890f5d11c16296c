package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/transport"
	"github.com/quorumkv/quorumkv/watch"
)

// Store is one node of the replicated key-value store.
type Store struct {
	cfg  Config
	log  *slog.Logger
	fsm  *fsm.FSM
	raft *raft.Raft
	mux  *transport.Mux
	rpc  *transport.Client
	// handlers serves the peer RPC methods (methods.go).
	handlers map[uint8]rpcHandler

	logStore logStore // the raft log and stable store (logstore.go)
	stable   *shutdownSafeStable
	// disk stands between raft and both stores and records the first
	// storage error (diskguard.go).
	disk     *diskGuard
	netTrans *raft.NetworkTransport

	metrics *metrics // Prometheus metrics (metrics.go)
	// hub holds the changes this node applied and its watchers (watch.go).
	hub   *watch.Hub
	clock *clockState

	// reads carries linearizable read-index requests to readLoop (leader only).
	reads chan *readIndexRequest
	// remoteReads carries a follower's read-index requests to
	// remoteReadLoop, which asks the leader once per batch.
	remoteReads chan *readIndexRequest
	// echo is the state behind leader reads confirmed by followers' calls
	// (readvouch.go, "A follower's next call confirms the leader's reads").
	echo echoState

	// readyTerm is the term in which this node, as leader, has committed its
	// barrier command; 0 when it is not a ready leader. Read by readLoop.
	readyTerm atomic.Uint64

	// leaderChanged is closed and replaced whenever raft observes a leader change,
	// waking requests that wait for a leader.
	changeMu      sync.Mutex
	leaderChanged chan struct{}

	observerCh chan raft.Observation
	observer   *raft.Observer
	notifyCh   chan bool

	// restoring is set while this node runs an online restore (restore.go).
	restoring atomic.Bool

	// joining: opened with no raft state and Config.Join, so not bootstrapped.
	joining bool
	// mon is the leader's membership monitor (promote.go).
	mon memberMonitor
	// repl is the leader's own view of each server's log (replication.go),
	// from which non-voters are promoted.
	repl *replicationView

	// proposals queues client writes for the proposer, and batchSlots holds
	// one token per write batch in flight (propose.go).
	proposals  chan *proposal
	batchSlots chan struct{}

	// idem reserves room in the dedup table for admitted idempotent writes
	// (idempotency.go).
	idem idemAdmission

	closing chan struct{}
	// ctx is cancelled by Close: calls that must give up when the store
	// closes derive from it (tasks.go).
	ctx    context.Context
	cancel context.CancelFunc
	// tasks counts the goroutines spawn started (tasks.go).
	tasksMu     sync.Mutex
	tasksClosed bool
	tasks       sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// Open starts the node: it opens (or creates) the data directory, bootstraps a
// new cluster when the directory holds no raft state and cfg.Bootstrap says so,
// starts raft on mux's raft layer, and serves forwarding RPCs on mux.
func Open(cfg Config, mux *transport.Mux) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if mux.PeerTLS() == nil && !cfg.InsecurePeer {
		return nil, errors.New("store: the peer port has no mutual TLS; configure it, or set InsecurePeer to run an unauthenticated peer port on purpose")
	}
	if need := FrameBytesFor(cfg.MaxValueBytes); mux.MaxFrameBytes() < need {
		return nil, fmt.Errorf("store: the peer port's frame limit (%d bytes) cannot carry a write of the largest value (%d bytes); it must be at least %d", mux.MaxFrameBytes(), cfg.MaxValueBytes, need)
	}
	s := &Store{
		cfg:           cfg,
		log:           cfg.Logger.With("component", "store"),
		fsm:           fsm.New(),
		metrics:       newMetrics(),
		mux:           mux,
		rpc:           transport.NewClient(transport.ClientConfig{Logger: cfg.Logger, TLS: mux.PeerTLS(), MaxFrameBytes: mux.MaxFrameBytes()}),
		reads:         make(chan *readIndexRequest, 1024),
		remoteReads:   make(chan *readIndexRequest, 1024),
		echo:          echoState{wake: make(chan struct{}, 1)},
		leaderChanged: make(chan struct{}),
		observerCh:    make(chan raft.Observation, 64),
		notifyCh:      make(chan bool, 16),
		proposals:     make(chan *proposal, 4096),
		batchSlots:    make(chan struct{}, cfg.MaxWriteBatchesInFlight),
		closing:       make(chan struct{}),
		mon:           memberMonitor{changes: make(chan struct{}, 1)},
		clock:         newClockState(),
		repl:          newReplicationView(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	hub, err := watch.New(cfg.Watch)
	if err != nil {
		s.rpc.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	s.hub = hub
	s.fsm.SetChangeObserver(hub) // before raft restores or applies anything
	if err := s.openRaft(); err != nil {
		s.cancel()
		s.rpc.Close()
		return nil, err
	}
	if ptls := mux.PeerTLS(); ptls != nil {
		ptls.ExpectPeers(s.peerIDAt) // dialers check who answers (peerauth.go)
	}
	if err := s.metrics.register(cfg.Metrics, s); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: register metrics: %w", err)
	}
	s.handlers = s.peerHandlers()
	mux.SetRPCHandler(s.handleRPC)

	s.wg.Add(9)
	go s.watchDisk()
	go s.clockLoop()
	go s.clockGuardLoop()
	go s.runProposer()
	go s.watchLeadership()
	go s.watchObservations()
	go s.readLoop()
	go s.remoteReadLoop()
	go s.registerLoop()
	return s, nil
}

// watchObservations wakes waiters whenever raft reports a new (or no) leader.
func (s *Store) watchObservations() {
	defer s.wg.Done()
	for {
		select {
		case <-s.closing:
			return
		case o := <-s.observerCh:
			if lo, ok := o.Data.(raft.LeaderObservation); ok {
				s.log.Info("leader changed", "leader", string(lo.LeaderID), "addr", string(lo.LeaderAddr))
			}
			s.changeMu.Lock()
			close(s.leaderChanged)
			s.leaderChanged = make(chan struct{})
			s.changeMu.Unlock()
		}
	}
}

// changed returns a channel closed at the next leader change.
func (s *Store) changed() <-chan struct{} {
	s.changeMu.Lock()
	defer s.changeMu.Unlock()
	return s.leaderChanged
}

// watchLeadership runs the leader's duties (barrier, expiry loop) for exactly the
// time this node is leader. raft's NotifyCh is buffered and must be drained.
func (s *Store) watchLeadership() {
	defer s.wg.Done()
	stopLeading := func() {}
	defer func() { stopLeading() }()
	for {
		select {
		case <-s.closing:
			return
		case leader := <-s.notifyCh:
			stopLeading()
			stopLeading = func() {}
			if !leader {
				s.log.Info("lost leadership")
				continue
			}
			stopLeading = s.startLeading()
		}
	}
}

// startLeading runs lead in a goroutine and returns the function that stops it
// and waits for it to return.
func (s *Store) startLeading() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.lead(ctx)
	}()
	return func() {
		s.readyTerm.Store(0)
		cancel()
		<-done
	}
}

// lead runs while this node is leader: it commits a barrier command in its
// term, which makes every entry of earlier terms applied here and marks the term
// in every replica's state machine, then serves reads and runs the expiry loop.
func (s *Store) lead(ctx context.Context) {
	term := s.raft.CurrentTerm()
	s.log.Info("became leader", "term", term)
	for {
		// The barrier carries time like every command (the state machine
		// prunes its dedup table by it): a leader whose clock is out of
		// bound proposes nothing until it agrees again or hands leadership
		// over (clockGuardLoop).
		now, err := s.commandNow()
		if err == nil {
			_, err = s.applyLocal(ctx, fsm.Command{Op: fsm.OpBarrier, Now: now})
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil || s.raft.State() != raft.Leader {
			return
		}
		if errors.Is(err, ErrClockOffset) {
			s.log.Debug("leader barrier waits for the clock to be within bound", "err", err)
		} else {
			s.log.Warn("leader barrier failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	if !s.recordClusterID(ctx) || s.raft.CurrentTerm() != term || s.raft.State() != raft.Leader {
		return
	}
	s.readyTerm.Store(term)
	s.log.Info("leader ready", "term", term, "applied", s.fsm.AppliedIndex())
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		s.monitorLoop(ctx)
	}()
	s.expireLoop(ctx)
	<-monitorDone
}

func (s *Store) nowMs() int64 { return s.cfg.Clock().UnixMilli() }

// TransferLeadership hands leadership to another voter if this node leads, so a
// graceful stop does not leave the cluster without a leader for an election
// timeout. It returns once the transfer finished or ctx ended.
func (s *Store) TransferLeadership(ctx context.Context) error {
	if s.raft.State() != raft.Leader {
		return nil
	}
	if _, err := s.waitFuture(ctx, s.leadershipTransfer()); err != nil {
		return fmt.Errorf("store: leadership transfer: %w", err)
	}
	s.log.Info("leadership transferred")
	return nil
}

// Close stops the node: background loops, raft (waiting for it to finish),
// every goroutine the store started (tasks.go), the forwarding client and the
// log store. The transport Mux is the caller's to close. After a disk
// failure it gives up waiting after diskCloseGrace (diskclose.go).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.hub.Close() // ends every watch stream first
		s.cancel()
		s.raft.DeregisterObserver(s.observer)
		s.closeErr = s.boundAfterDiskFailure(func(step func(string)) error {
			step("raft's shutdown")
			err := s.raft.Shutdown().Error()
			step("the store's loops (watchDisk among them waits for raft's shutdown)")
			s.wg.Wait()
			step("the goroutines waiting on raft futures")
			s.waitTasks()
			step("the peer connections")
			s.rpc.Close()
			if cerr := s.netTrans.Close(); err == nil {
				err = cerr
			}
			step("the stable store's writers")
			s.stable.close()
			step("closing the raft log store")
			if cerr := s.logStore.closer.Close(); err == nil {
				err = cerr
			}
			return err
		})
		s.metrics.unregister()
		s.log.Info("store closed")
	})
	return s.closeErr
}
