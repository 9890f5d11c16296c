package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// The transfer workload runs alongside the register workload in every
// scenario: clients move amounts between the accounts of a small group with
// transactions (POST /kv/txn) guarded by version checks, and read each
// group's accounts in one read-only transaction (a linearizable multi-key
// read). Checked: the group's total in every read and, after healing, on
// every node; and the whole history of each group against a porcupine model
// of the accounts (transferModel).

const (
	transferGroups   = 2
	transferAccounts = 3 // per group
	transferStart    = 100
	transferPrefix   = "acct/"
)

func accountKey(g, i int) string { return fmt.Sprintf("%sg%d/%d", transferPrefix, g, i) }

// txnRecord is one transaction of the workload, as the history records it.
type txnRecord struct {
	Client  int    `json:"client"`
	Group   int    `json:"group"`
	Node    string `json:"node"`
	Read    bool   `json:"read"` // a read of every account of the group
	Call    int64  `json:"call"`
	Return  int64  `json:"return"`
	Outcome string `json:"outcome"` // outOK, outFail, outUnknown
	Code    string `json:"code"`
	// A transfer: from and to (account positions), the versions checked and
	// the balances written. A 412 reports the current versions of the checks
	// that failed (Failed[i] for check i, 0 when that check held).
	From         int      `json:"from,omitempty"`
	To           int      `json:"to,omitempty"`
	CheckVer     []uint64 `json:"checkVer,omitempty"`
	NewBal       []int64  `json:"newBal,omitempty"`
	Precond      bool     `json:"precond,omitempty"`
	Failed       []uint64 `json:"failed,omitempty"`
	Index        uint64   `json:"index,omitempty"`
	Balances     []int64  `json:"balances,omitempty"` // a read: balances and versions
	Versions     []uint64 `json:"versions,omitempty"`
	BadTotalSeen bool     `json:"badTotal,omitempty"`
}

type transferWorkload struct {
	nodes []*node
	start time.Time
	mu    sync.Mutex
	recs  []txnRecord
	stopC chan struct{}
	wg    sync.WaitGroup
	setup error
}

// startTransfers creates the accounts (retrying until it succeeds or 30 s
// pass) and starts two clients per group, the first pinned to a node, the
// second going round-robin.
func startTransfers(nodes []*node, apiKey string, seed int64, start time.Time) *transferWorkload {
	w := &transferWorkload{nodes: nodes, start: start, stopC: make(chan struct{})}
	api := newAPIClient(apiKey, 2*time.Second)
	defer api.close()
	var ops []map[string]any
	for g := range transferGroups {
		for i := range transferAccounts {
			ops = append(ops, map[string]any{"op": "put", "key": accountKey(g, i), "value": transferStart})
		}
	}
	body, _ := json.Marshal(map[string]any{"ops": ops})
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := api.doWith(ctx, http.MethodPost, nodes[attempt%len(nodes)].httpBase()+"/kv/txn", body, map[string]string{"Idempotency-Key": "chaos-accounts"})
		cancel()
		if err == nil && resp.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			w.setup = fmt.Errorf("creating the accounts: %v %d %s", err, resp.status, resp.body)
			return w
		}
		time.Sleep(200 * time.Millisecond)
	}
	for c := range 2 * transferGroups {
		w.wg.Add(1)
		go w.loop(c, c%transferGroups, newAPIClient(apiKey, 1500*time.Millisecond), rand.New(rand.NewSource(seed*7919+int64(c))))
	}
	return w
}

func (w *transferWorkload) stop() []txnRecord {
	close(w.stopC)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]txnRecord(nil), w.recs...)
}

func (w *transferWorkload) since() int64 { return int64(time.Since(w.start)) }

func (w *transferWorkload) loop(c, g int, api *apiClient, rng *rand.Rand) {
	defer w.wg.Done()
	defer api.close()
	var last *txnRecord // the last successful read of the group
	for n := 0; ; n++ {
		select {
		case <-w.stopC:
			return
		default:
		}
		nd := w.nodes[c%len(w.nodes)]
		if c >= transferGroups {
			nd = w.nodes[n%len(w.nodes)]
		}
		rec := txnRecord{Client: c, Group: g, Node: nd.id}
		if last == nil || rng.Intn(3) == 0 {
			rec.Read = true
		} else {
			rec.From = rng.Intn(transferAccounts)
			rec.To = (rec.From + 1 + rng.Intn(transferAccounts-1)) % transferAccounts
			amt := int64(1 + rng.Intn(20))
			rec.CheckVer = []uint64{last.Versions[rec.From], last.Versions[rec.To]}
			rec.NewBal = []int64{last.Balances[rec.From] - amt, last.Balances[rec.To] + amt}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		rec.Call = w.since()
		executeTxn(ctx, api, nd.httpBase(), &rec)
		rec.Return = w.since()
		cancel()
		w.mu.Lock()
		w.recs = append(w.recs, rec)
		w.mu.Unlock()
		switch {
		case rec.Read && rec.Outcome == outOK:
			r := rec
			last = &r
		case !rec.Read:
			last = nil // read again before the next transfer
		}
		pause := time.Duration(rng.Int63n(int64(15 * time.Millisecond)))
		if rec.Outcome != outOK && !rec.Precond {
			pause += 50 * time.Millisecond
		}
		select {
		case <-w.stopC:
			return
		case <-time.After(pause):
		}
	}
}

// txnBody is the request of rec.
func (rec *txnRecord) body() []byte {
	var b map[string]any
	if rec.Read {
		var ops []map[string]any
		for i := range transferAccounts {
			ops = append(ops, map[string]any{"op": "get", "key": accountKey(rec.Group, i)})
		}
		b = map[string]any{"ops": ops}
	} else {
		from, to := accountKey(rec.Group, rec.From), accountKey(rec.Group, rec.To)
		b = map[string]any{
			"checks": []map[string]any{{"key": from, "version": rec.CheckVer[0]}, {"key": to, "version": rec.CheckVer[1]}},
			"ops":    []map[string]any{{"op": "put", "key": from, "value": rec.NewBal[0]}, {"op": "put", "key": to, "value": rec.NewBal[1]}},
		}
	}
	out, _ := json.Marshal(b)
	return out
}

// executeTxn sends rec and records its outcome: a transfer that may have
// reached a node and got no definite answer is unknown.
func executeTxn(ctx context.Context, api *apiClient, base string, rec *txnRecord) {
	resp, err := api.do(ctx, http.MethodPost, base+"/kv/txn", rec.body())
	if err != nil {
		rec.Code, rec.Outcome = transportError(err), outFail
		var oe *net.OpError
		if !rec.Read && !(errors.As(err, &oe) && oe.Op == "dial") {
			rec.Outcome = outUnknown
		}
		return
	}
	rec.Code = strconv.Itoa(resp.status) + " " + resp.code
	switch {
	case resp.status == http.StatusOK:
		var env struct {
			Data struct {
				Index   uint64 `json:"index"`
				Results []struct {
					Found   bool            `json:"found"`
					Value   json.RawMessage `json:"value"`
					Version uint64          `json:"version"`
				} `json:"results"`
			} `json:"data"`
		}
		if json.Unmarshal(resp.body, &env) != nil || len(env.Data.Results) != map[bool]int{true: transferAccounts, false: 2}[rec.Read] {
			rec.Code += " undecodable"
			rec.Outcome = map[bool]string{true: outFail, false: outUnknown}[rec.Read]
			return
		}
		rec.Outcome, rec.Index = outOK, env.Data.Index
		if rec.Read {
			for _, r := range env.Data.Results {
				n, _ := strconv.ParseInt(string(r.Value), 10, 64)
				if !r.Found {
					n = -1 << 40 // a missing account: the model and the total reject it
				}
				rec.Balances, rec.Versions = append(rec.Balances, n), append(rec.Versions, r.Version)
			}
		}
	case resp.status == http.StatusPreconditionFailed && resp.code == "txn_check_failed":
		var env struct {
			Error struct {
				FailedChecks []struct {
					Position       int     `json:"position"`
					CurrentVersion *uint64 `json:"currentVersion"`
				} `json:"failedChecks"`
			} `json:"error"`
		}
		json.Unmarshal(resp.body, &env)
		rec.Outcome, rec.Precond, rec.Failed = outFail, true, make([]uint64, 2)
		for _, f := range env.Error.FailedChecks {
			if f.Position >= 0 && f.Position < 2 && f.CurrentVersion != nil {
				rec.Failed[f.Position] = *f.CurrentVersion
			}
		}
	case rec.Read, resp.code == "no_leader" || resp.code == "shutting_down" || resp.status/100 == 4:
		rec.Outcome = outFail
	default:
		rec.Outcome = outUnknown
	}
}

// transferReport is what the scenario report says about the workload.
type transferReport struct {
	Txns       int      `json:"txns"`      // transactions invoked
	OK         int      `json:"ok"`        // transfers and reads that succeeded
	Conflicts  int      `json:"conflicts"` // transfers refused by a version check (412)
	Unknown    int      `json:"unknown"`
	Reads      int      `json:"reads"`      // successful reads, each total checked
	NodeChecks int      `json:"nodeChecks"` // group totals read on each node after healing
	Linear     string   `json:"linearizable"`
	LinearOps  int      `json:"linearOps"`
	LinearSec  float64  `json:"linearSec"` // how long porcupine took
	Problems   []string `json:"problems,omitempty"`
}

// transferCheckLimit is porcupine's time limit on the transfer history. A
// transfer with an unknown outcome (a timeout, a 5xx) may be placed at any
// point after its call, so the search grows quickly with their number; the
// disk-fault scenarios leave 25-60 of them. One minute, while the other
// packages' tests shared the CPU, once ended without a verdict ("Unknown",
// which fails the scenario as it should); the time porcupine took is in
// the report.
const transferCheckLimit = 3 * time.Minute

// checkTransfers checks every read's totals and the porcupine model, then
// reads every group on every node.
func checkTransfers(ctx context.Context, api *apiClient, nodes []*node, w *transferWorkload, recs []txnRecord) transferReport {
	var r transferReport
	if w.setup != nil {
		r.Problems = append(r.Problems, w.setup.Error())
		return r
	}
	want := int64(transferAccounts * transferStart)
	for _, rec := range recs {
		r.Txns++
		switch {
		case rec.Outcome == outOK:
			r.OK++
		case rec.Precond:
			r.Conflicts++
		case rec.Outcome == outUnknown:
			r.Unknown++
		}
		if rec.Read && rec.Outcome == outOK {
			r.Reads++
			if s := sumOf(rec.Balances); s != want {
				r.Problems = append(r.Problems, fmt.Sprintf("client %d read group %d on %s at index %d: total %d, want %d (%v)", rec.Client, rec.Group, rec.Node, rec.Index, s, want, rec.Balances))
			}
		}
	}
	h := transferHistory(recs)
	r.LinearOps = len(h)
	t0 := time.Now()
	res := porcupine.CheckOperationsTimeout(transferModel, h, transferCheckLimit)
	r.LinearSec = time.Since(t0).Seconds()
	r.Linear = string(res)
	if res != porcupine.Ok {
		r.Problems = append(r.Problems, "porcupine on the transfer history: "+string(res))
	}
	for _, n := range nodes {
		for g := range transferGroups {
			rec := txnRecord{Read: true, Group: g}
			for attempt := 0; attempt < 20; attempt++ {
				cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				executeTxn(cctx, api, n.httpBase(), &rec)
				cancel()
				if rec.Outcome == outOK || ctx.Err() != nil {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			r.NodeChecks++
			switch {
			case rec.Outcome != outOK:
				r.Problems = append(r.Problems, fmt.Sprintf("%s: could not read group %d after healing: %s", n.id, g, rec.Code))
			case sumOf(rec.Balances) != want:
				r.Problems = append(r.Problems, fmt.Sprintf("%s: group %d totals %d after healing, want %d (%v)", n.id, g, sumOf(rec.Balances), want, rec.Balances))
			}
		}
	}
	return r
}

func sumOf(xs []int64) (n int64) {
	for _, x := range xs {
		n += x
	}
	return n
}

// acctState is the model's view of one account: its balance, its version
// (0: not known, after a transfer of unknown outcome, until an answer
// reveals it) and the floor every later version is above (versions are raft
// indexes, growing in linearization order).
type acctState struct {
	Bal   int64
	Ver   uint64
	Floor uint64
}

// groupState is a group's accounts. It is an array, so porcupine can compare
// states with ==.
type groupState [transferAccounts]acctState

func (a acctState) mayMatch(v uint64) bool { return a.Ver == v || (a.Ver == 0 && v > a.Floor) }

// learn checks a reported version against the account and records it.
func (a acctState) learn(v uint64) (bool, acctState) {
	if a.Ver != 0 {
		return v == a.Ver, a
	}
	if v <= a.Floor {
		return false, a
	}
	a.Ver, a.Floor = v, v
	return true, a
}

// transferModel: a group of accounts, partitioned by group. A read must see
// every balance and version as the state has them; a transfer applies only
// when both checked versions match, and writes both balances at one new
// version above every earlier one; a 412 must be justified by a check whose
// reported current version is the account's and differs from the checked
// one; a transfer of unknown outcome may apply (when its checks may hold)
// or never (its return is at infinity).
var transferModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byGroup := map[int][]porcupine.Operation{}
		for _, op := range history {
			g := op.Input.(txnRecord).Group
			byGroup[g] = append(byGroup[g], op)
		}
		var groups []int
		for g := range byGroup {
			groups = append(groups, g)
		}
		sort.Ints(groups)
		var out [][]porcupine.Operation
		for _, g := range groups {
			out = append(out, byGroup[g])
		}
		return out
	},
	Init: func() interface{} {
		var s groupState
		for i := range s {
			s[i] = acctState{Bal: transferStart}
		}
		return s
	},
	Step: func(state, input, output interface{}) (bool, interface{}) {
		return transferStep(state.(groupState), output.(txnRecord))
	},
	DescribeOperation: func(_, output interface{}) string {
		r := output.(txnRecord)
		if r.Read {
			return fmt.Sprintf("c%d read -> %v v%v", r.Client, r.Balances, r.Versions)
		}
		return fmt.Sprintf("c%d move %d->%d if v%v: set %v -> %s %s idx %d failed %v", r.Client, r.From, r.To, r.CheckVer, r.NewBal, r.Outcome, r.Code, r.Index, r.Failed)
	},
	DescribeState: func(state interface{}) string { return fmt.Sprint(state.(groupState)) },
}

func transferStep(s groupState, r txnRecord) (bool, groupState) {
	if r.Read {
		for i := range s {
			if r.Balances[i] != s[i].Bal {
				return false, s
			}
			ok, a := s[i].learn(r.Versions[i])
			if !ok {
				return false, s
			}
			s[i] = a
		}
		return true, s
	}
	f, t := s[r.From], s[r.To]
	mayApply := f.mayMatch(r.CheckVer[0]) && t.mayMatch(r.CheckVer[1])
	switch {
	case r.Outcome == outUnknown:
		if !mayApply {
			return true, s
		}
		floor := max(r.CheckVer[0], r.CheckVer[1], f.Floor, t.Floor)
		s[r.From] = acctState{Bal: r.NewBal[0], Floor: floor}
		s[r.To] = acctState{Bal: r.NewBal[1], Floor: floor}
		return true, s
	case r.Precond:
		failedOne := false
		for i, pos := range []int{r.From, r.To} {
			cur := r.Failed[i]
			if cur == 0 {
				continue // this check held, or the answer did not say
			}
			failedOne = true
			if cur == r.CheckVer[i] {
				return false, s
			}
			ok, a := s[pos].learn(cur)
			if !ok {
				return false, s
			}
			s[pos] = a
		}
		return failedOne, s
	}
	// Applied at r.Index.
	if !mayApply || r.Index <= max(f.Floor, t.Floor) {
		return false, s
	}
	s[r.From] = acctState{Bal: r.NewBal[0], Ver: r.Index, Floor: r.Index}
	s[r.To] = acctState{Bal: r.NewBal[1], Ver: r.Index, Floor: r.Index}
	return true, s
}

// transferHistory converts the records: failed reads and failed transfers
// (other than a 412) saw or did nothing and are dropped; a transfer of
// unknown outcome returns after everything else.
func transferHistory(recs []txnRecord) []porcupine.Operation {
	var end int64
	for _, r := range recs {
		end = max(end, r.Return)
	}
	infinity := end + int64(time.Hour)
	var h []porcupine.Operation
	for _, r := range recs {
		if r.Outcome == outFail && !r.Precond {
			continue
		}
		ret := r.Return
		if r.Outcome == outUnknown {
			ret = infinity
		}
		h = append(h, porcupine.Operation{ClientId: r.Client, Input: txnRecord{Group: r.Group}, Call: r.Call, Output: r, Return: ret})
	}
	return h
}

func (r transferReport) text() string {
	s := fmt.Sprintf("   transfers: %d txns (ok %d, 412 %d, unknown %d); %d reads' totals checked, %d node totals after healing; porcupine %d ops in %.1fs: %s",
		r.Txns, r.OK, r.Conflicts, r.Unknown, r.Reads, r.NodeChecks, r.LinearOps, r.LinearSec, r.Linear)
	if len(r.Problems) > 0 {
		s += "\n     " + strings.Join(r.Problems, "\n     ")
	}
	return s + "\n"
}
