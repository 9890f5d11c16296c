package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"sort"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
)

// regInput and regOutput are the porcupine model's operation values.
type regInput struct {
	Kind     string
	Key      string
	Value    string
	IfMatch  uint64 // put: If-Match: "<IfMatch>" when not 0
	IfAbsent bool   // put: If-None-Match: *
}

type regOutput struct {
	Unknown bool // the write's outcome is unknown: it may or may not have happened
	Precond bool // a conditional put answered 412; Version is the currentVersion it reported
	Code    string
	Found   bool
	Value   string
	Version uint64
	Created bool
	Deleted bool
}

// regState is one key's state. Version is the live value's version, or 0 when
// it is not known (a write of unknown outcome, until an answer reveals it) or
// the key is absent. Floor is the highest version known to be taken on this
// path, so every later write's version is above it (versions are raft indexes:
// they grow in linearization order, across deletes too); Floor >= Version.
type regState struct {
	Exists  bool
	Value   string
	Version uint64
	Floor   uint64
}

// written is the state after a write of value with a known version.
func (s regState) written(value string, version uint64) regState {
	return regState{Exists: true, Value: value, Version: version, Floor: version}
}

// writtenUnknown is the state after a write of value whose version is not
// known, only that it is above floor.
func (s regState) writtenUnknown(value string, floor uint64) regState {
	return regState{Exists: true, Value: value, Floor: max(s.Floor, floor)}
}

// learn checks a version v the server reported for the live value (a read, or
// a 412's currentVersion) against the state, and records it when it was not
// known.
func (s regState) learn(v uint64) (bool, regState) {
	if s.Version != 0 {
		return v == s.Version, s
	}
	if v <= s.Floor {
		return false, s
	}
	s.Version, s.Floor = v, v
	return true, s
}

// mayMatch reports whether If-Match v can hold in s: the key is live at
// version v (or at a version not known, above the floor, which v may be).
func (s regState) mayMatch(v uint64) bool {
	return s.Exists && (s.Version == v || (s.Version == 0 && v > s.Floor))
}

// registerModel is a single-key register with versions, partitioned by key.
// It checks more than values: a PUT answers 201 only on a missing key, a DELETE
// reports whether a key was there, versions of successive writes grow and a
// read returns the version of the write it observed. Conditional PUTs are
// modelled exactly: If-Match v succeeds only on a live key at version v,
// If-None-Match: * only on an absent key; a 412 wrote nothing but must be
// justified by the state (a version_mismatch by an absent key or another
// version, which must be the current one; an already_exists by a live key).
// A write of unknown outcome is applied when its condition may hold; the
// case in which it had no effect is covered by its return at infinity (a
// no-op can be linearized after everything else).
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(regInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return regState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		return regStep(state.(regState), input.(regInput), output.(regOutput))
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(regInput), output.(regOutput)
		cond := ""
		switch {
		case in.IfMatch != 0:
			cond = fmt.Sprintf(" if-match v%d", in.IfMatch)
		case in.IfAbsent:
			cond = " if-none-match *"
		}
		switch {
		case in.Kind == opGet && out.Found:
			return fmt.Sprintf("get(%s) -> %s v%d", in.Key, out.Value, out.Version)
		case in.Kind == opGet:
			return fmt.Sprintf("get(%s) -> not found", in.Key)
		case out.Unknown:
			return fmt.Sprintf("%s(%s, %s%s) -> unknown", in.Kind, in.Key, in.Value, cond)
		case out.Precond:
			return fmt.Sprintf("put(%s, %s%s) -> 412 %s current v%d", in.Key, in.Value, cond, out.Code, out.Version)
		case in.Kind == opPut:
			return fmt.Sprintf("put(%s, %s%s) -> v%d created=%v", in.Key, in.Value, cond, out.Version, out.Created)
		default:
			return fmt.Sprintf("delete(%s) -> deleted=%v", in.Key, out.Deleted)
		}
	},
	DescribeState: func(state interface{}) string {
		s := state.(regState)
		if !s.Exists {
			return fmt.Sprintf("(absent) floor v%d", s.Floor)
		}
		if s.Version == 0 {
			return fmt.Sprintf("%s v? (> v%d)", s.Value, s.Floor)
		}
		return fmt.Sprintf("%s v%d", s.Value, s.Version)
	},
}

// regStep is the model's transition: whether output is a legal answer to
// input in state s, and the state after it.
func regStep(s regState, in regInput, out regOutput) (bool, regState) {
	switch in.Kind {
	case opGet:
		if out.Found != s.Exists || (out.Found && out.Value != s.Value) {
			return false, s
		}
		if out.Found {
			return s.learn(out.Version)
		}
		return true, s
	case opPut:
		switch {
		case in.IfMatch != 0:
			switch {
			case out.Unknown && s.mayMatch(in.IfMatch):
				return true, s.writtenUnknown(in.Value, in.IfMatch)
			case out.Unknown:
				return true, s
			case out.Precond:
				if out.Code != "412 version_mismatch" || (s.Exists && s.Version == in.IfMatch) {
					return false, s
				}
				if !s.Exists {
					return out.Version == 0, s
				}
				if out.Version == in.IfMatch {
					return false, s
				}
				return s.learn(out.Version)
			}
			if !s.mayMatch(in.IfMatch) || out.Created || out.Version <= max(s.Floor, in.IfMatch) {
				return false, s
			}
			return true, s.written(in.Value, out.Version)
		case in.IfAbsent:
			switch {
			case out.Unknown && !s.Exists:
				return true, s.writtenUnknown(in.Value, 0)
			case out.Unknown:
				return true, s
			case out.Precond:
				if out.Code != "412 already_exists" || !s.Exists {
					return false, s
				}
				return s.learn(out.Version)
			}
			if s.Exists || !out.Created || out.Version <= s.Floor {
				return false, s
			}
			return true, s.written(in.Value, out.Version)
		}
		if out.Unknown {
			return true, s.writtenUnknown(in.Value, 0)
		}
		if out.Created == s.Exists || out.Version <= s.Floor {
			return false, s
		}
		return true, s.written(in.Value, out.Version)
	case opDelete:
		next := regState{Floor: s.Floor}
		if out.Unknown {
			return true, next
		}
		return out.Deleted == s.Exists, next
	}
	return false, s
}

// porcupineHistory converts the register ops: failed ops are dropped (a failed
// read saw nothing, a failed write certainly did not happen) except a
// conditional put's 412, which wrote nothing but says the condition was false
// at some point within the call; a write of unknown outcome returns after
// every other op, so it may take effect at any point after its call, or never.
func porcupineHistory(ops []Op) []porcupine.Operation {
	var end int64
	for _, o := range ops {
		end = max(end, o.Return)
	}
	infinity := end + int64(time.Hour)
	var h []porcupine.Operation
	for _, o := range ops {
		if o.Class != classReg || (o.Outcome == outFail && !o.Precond) {
			continue
		}
		out := regOutput{Unknown: o.Outcome == outUnknown, Precond: o.Precond, Found: o.Found, Value: o.Got, Version: o.Version, Created: o.Created, Deleted: o.Deleted}
		if o.Precond {
			out.Code = o.Code
		}
		ret := o.Return
		if out.Unknown {
			ret = infinity
		}
		h = append(h, porcupine.Operation{ClientId: o.Client, Input: regInput{Kind: o.Kind, Key: o.Key, Value: o.Value, IfMatch: o.IfMatch, IfAbsent: o.IfAbsent}, Call: o.Call, Output: out, Return: ret})
	}
	return h
}

// linResult is what the checker subprocess reports.
type linResult struct {
	Result    string  `json:"result"` // Ok, Illegal, Unknown (time limit), or error
	Ops       int     `json:"ops"`
	Keys      int     `json:"keys"`
	Seconds   float64 `json:"seconds"`
	HTMLPath  string  `json:"html,omitempty"`
	Error     string  `json:"error,omitempty"`
	PeakHeapM uint64  `json:"peakHeapMiB"`
}

const (
	checkEnv       = "QKV_CHAOS_CHECK_DIR"   // set in the checker subprocess: the work dir
	checkLimitEnv  = "QKV_CHAOS_CHECK_LIMIT" // porcupine's time limit
	checkMemoryMiB = 3072                    // hard cap on the subprocess's heap
)

// checkLinearizable runs porcupine on ops in a subprocess (this test binary,
// re-executed; see TestMain) with a time limit and a memory cap, so a
// pathological history cannot take the test process down. On Illegal the
// subprocess writes porcupine's visualisation to dir/linearizability.html.
func checkLinearizable(ops []Op, dir string, limit time.Duration) linResult {
	b, err := json.Marshal(ops)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "history.json"), b, 0o644)
	}
	if err != nil {
		return linResult{Result: "error", Error: err.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), checkEnv+"="+dir, checkLimitEnv+"="+limit.String(),
		fmt.Sprintf("GOMEMLIMIT=%dMiB", checkMemoryMiB*2/3))
	out, err := cmd.CombinedOutput()
	var res linResult
	if b, rerr := os.ReadFile(filepath.Join(dir, "lin-result.json")); rerr == nil && json.Unmarshal(b, &res) == nil {
		return res
	}
	return linResult{Result: "error", Error: fmt.Sprintf("checker subprocess: %v: %s", err, out)}
}

// runCheckerSubprocess is the subprocess's main: read the history, check it,
// write the result. Returns the exit code.
func runCheckerSubprocess(dir string) int {
	limit, err := time.ParseDuration(os.Getenv(checkLimitEnv))
	if err != nil {
		limit = time.Minute
	}
	var peak atomic.Uint64
	go watchMemory(&peak)
	res := linResult{Result: "error"}
	write := func() int {
		res.PeakHeapM = peak.Load() >> 20
		b, _ := json.Marshal(res)
		if err := os.WriteFile(filepath.Join(dir, "lin-result.json"), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		return 0
	}
	b, err := os.ReadFile(filepath.Join(dir, "history.json"))
	var ops []Op
	if err == nil {
		err = json.Unmarshal(b, &ops)
	}
	if err != nil {
		res.Error = err.Error()
		return write()
	}
	h := porcupineHistory(ops)
	res.Ops = len(h)
	res.Keys = len(registerModel.Partition(h))
	start := time.Now()
	r := porcupine.CheckOperationsTimeout(registerModel, h, limit)
	res.Result = string(r)
	if r == porcupine.Illegal {
		// Run again, verbosely, for the visualisation of the failing key(s).
		_, info := porcupine.CheckOperationsVerbose(registerModel, h, limit)
		p := filepath.Join(dir, "linearizability.html")
		if err := porcupine.VisualizePath(registerModel, info, p); err == nil {
			res.HTMLPath = p
		} else {
			res.Error = "visualisation: " + err.Error()
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return write()
}

// watchMemory kills the checker when its heap passes checkMemoryMiB.
func watchMemory(peak *atomic.Uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	for {
		metrics.Read(s)
		v := s[0].Value.Uint64()
		if v > peak.Load() {
			peak.Store(v)
		}
		if v > checkMemoryMiB<<20 {
			fmt.Fprintf(os.Stderr, "linearizability checker: heap %d MiB over the %d MiB limit\n", v>>20, checkMemoryMiB)
			os.Exit(3)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
