package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"time"
)

// workloadConfig shapes the client mix. Fractions are of all ops; the rest go
// to the register keys.
type workloadConfig struct {
	clients int
	regKeys int
	ackFrac float64 // PUT ack/<client>/<n>
	ttlPut  float64 // PUT ttl/<client>/<n> with a short TTL
	ttlGet  float64 // GET of one of this client's recent ttl keys
	ttlMin  time.Duration
	ttlMax  time.Duration
	timeout time.Duration // client-side deadline of one request
	// pause between a client's ops, at most; keeps the history (and the
	// checker's work) bounded on a small shared machine.
	think time.Duration
}

func defaultWorkload() workloadConfig {
	return workloadConfig{
		clients: 8,
		regKeys: 16,
		ackFrac: 0.08,
		ttlPut:  0.07,
		ttlGet:  0.12,
		ttlMin:  600 * time.Millisecond,
		ttlMax:  2500 * time.Millisecond,
		timeout: 1500 * time.Millisecond,
		think:   10 * time.Millisecond,
	}
}

// recorder collects completed ops from all clients.
type recorder struct {
	mu  sync.Mutex
	ops []Op
}

func (r *recorder) add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// client is one workload client: pinned to a node, or round-robin (pin < 0).
type client struct {
	id       int
	pin      int
	rr       int
	rng      *rand.Rand
	api      *apiClient
	seq      int
	acks     int
	ttls     int
	readNext string // after a failed write, the next op reads this key
	recent   []ttlKey
	// versions: the last version this client saw of each register key (0:
	// absent or not known), the If-Match of its conditional puts.
	versions map[string]uint64
	// casNext: after a read that found a register key, sometimes the next op
	// is an If-Match put of that key with the version read (a read-modify-write).
	casNext string
}

type ttlKey struct {
	key     string
	written time.Time
}

// workload runs the clients until stop is called.
type workload struct {
	cfg   workloadConfig
	nodes []*node
	start time.Time
	rec   *recorder
	stopC chan struct{}
	wg    sync.WaitGroup
}

// startWorkload starts cfg.clients clients: all but the last two are pinned to
// nodes in turn (two per node on three nodes), the last two go round-robin.
func startWorkload(cfg workloadConfig, nodes []*node, apiKey string, seed int64, start time.Time) *workload {
	w := &workload{cfg: cfg, nodes: nodes, start: start, rec: &recorder{}, stopC: make(chan struct{})}
	for i := 0; i < cfg.clients; i++ {
		pin := i % len(nodes)
		if i >= cfg.clients-2 {
			pin = -1
		}
		c := &client{id: i, pin: pin, rng: rand.New(rand.NewSource(seed*1000 + int64(i))), api: newAPIClient(apiKey, cfg.timeout), versions: map[string]uint64{}}
		w.wg.Add(1)
		go w.loop(c)
	}
	return w
}

func (w *workload) stop() []Op {
	close(w.stopC)
	w.wg.Wait()
	return w.rec.snapshot()
}

func (w *workload) since() int64 { return int64(time.Since(w.start)) }

func (w *workload) loop(c *client) {
	defer w.wg.Done()
	defer c.api.close()
	for {
		select {
		case <-w.stopC:
			return
		default:
		}
		op := w.next(c)
		n := w.target(c)
		op.Node = n.id
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.timeout)
		op.Call = w.since()
		c.api.execute(ctx, n.httpBase(), &op)
		op.Return = w.since()
		cancel()
		w.rec.add(op)
		if op.isWrite() && op.Outcome != outOK {
			c.readNext = op.Key
		}
		c.observe(op)
		if op.Class == classTTL && op.Kind == opPut {
			c.recent = append(c.recent, ttlKey{key: op.Key, written: time.Now()})
		}
		pause := time.Duration(0)
		if w.cfg.think > 0 {
			pause = time.Duration(c.rng.Int63n(int64(w.cfg.think)))
		}
		if op.Outcome != outOK {
			// A node that is down refuses at once: do not spin on it.
			pause += 50 * time.Millisecond
		}
		select {
		case <-w.stopC:
			return
		case <-time.After(pause):
		}
	}
}

func (w *workload) target(c *client) *node {
	if c.pin >= 0 {
		return w.nodes[c.pin]
	}
	c.rr++
	return w.nodes[c.rr%len(w.nodes)]
}

func classOf(key string) string {
	switch {
	case len(key) > 4 && key[:4] == "ack/":
		return classAck
	case len(key) > 4 && key[:4] == "ttl/":
		return classTTL
	default:
		return classReg
	}
}

// observe keeps the client's view of register versions up to date.
func (c *client) observe(op Op) {
	if op.Class != classReg {
		return
	}
	switch {
	case op.Outcome == outOK && op.Kind == opGet:
		c.versions[op.Key] = op.Version // 0 on a miss
		if op.Found && c.rng.Intn(3) == 0 {
			c.casNext = op.Key
		}
	case op.Outcome == outOK && op.Kind == opPut:
		c.versions[op.Key] = op.Version
	case op.Outcome == outOK && op.Kind == opDelete:
		c.versions[op.Key] = 0
	case op.Precond:
		c.versions[op.Key] = op.Version // the currentVersion of the 412
	}
}

// next chooses a client's next operation.
func (w *workload) next(c *client) Op {
	c.seq++
	value := fmt.Sprintf("c%d-%d", c.id, c.seq) // unique across the run
	if c.readNext != "" {
		key := c.readNext
		c.readNext = ""
		return Op{Client: c.id, Kind: opGet, Class: classOf(key), Key: key}
	}
	if c.casNext != "" {
		key := c.casNext
		c.casNext = ""
		if v := c.versions[key]; v != 0 {
			return Op{Client: c.id, Kind: opPut, Class: classReg, Key: key, Value: value, IfMatch: v}
		}
	}
	r := c.rng.Float64()
	cfg := w.cfg
	switch {
	case r < cfg.ackFrac:
		c.acks++
		key := fmt.Sprintf("ack/c%d/%d", c.id, c.acks)
		return Op{Client: c.id, Kind: opPut, Class: classAck, Key: key, Value: value}
	case r < cfg.ackFrac+cfg.ttlPut:
		c.ttls++
		key := fmt.Sprintf("ttl/c%d/%d", c.id, c.ttls)
		ttl := cfg.ttlMin + time.Duration(c.rng.Int63n(int64(cfg.ttlMax-cfg.ttlMin)))
		return Op{Client: c.id, Kind: opPut, Class: classTTL, Key: key, Value: value, TTLms: ttl.Milliseconds()}
	case r < cfg.ackFrac+cfg.ttlPut+cfg.ttlGet:
		// Reads spread around each key's expiry: keep keys for a while after it.
		keep := c.recent[:0]
		for _, k := range c.recent {
			if time.Since(k.written) < cfg.ttlMax+3*time.Second {
				keep = append(keep, k)
			}
		}
		c.recent = keep
		if len(c.recent) > 0 {
			k := c.recent[c.rng.Intn(len(c.recent))]
			return Op{Client: c.id, Kind: opGet, Class: classTTL, Key: k.key}
		}
	}
	key := fmt.Sprintf("k%02d", c.rng.Intn(cfg.regKeys))
	switch r2 := c.rng.Float64(); {
	case r2 < 0.45:
		return Op{Client: c.id, Kind: opGet, Class: classReg, Key: key}
	case r2 < 0.72:
		op := Op{Client: c.id, Kind: opPut, Class: classReg, Key: key, Value: value}
		if c.rng.Intn(8) == 0 {
			op.TTLms = 3600_000 // exercises the TTL path without expiring
		}
		return op
	case r2 < 0.80:
		// If-Match with the last version seen (often stale by now), now and
		// then an older one; create-only when none is known.
		v := c.versions[key]
		if v > 1 && c.rng.Intn(4) == 0 {
			v -= 1 + uint64(c.rng.Int63n(int64(v-1)))
		}
		if v == 0 {
			return Op{Client: c.id, Kind: opPut, Class: classReg, Key: key, Value: value, IfAbsent: true}
		}
		return Op{Client: c.id, Kind: opPut, Class: classReg, Key: key, Value: value, IfMatch: v}
	case r2 < 0.87:
		return Op{Client: c.id, Kind: opPut, Class: classReg, Key: key, Value: value, IfAbsent: true}
	default:
		return Op{Client: c.id, Kind: opDelete, Class: classReg, Key: key}
	}
}
