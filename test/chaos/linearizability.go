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
	Kind  string
	Key   string
	Value string
}

type regOutput struct {
	Unknown bool // the write's outcome is unknown: it may or may not have happened
	Found   bool
	Value   string
	Version uint64
	Created bool
	Deleted bool
}

// regState is one key's state. Version 0 means "not known" (after a write of
// unknown outcome, until a read reveals it).
type regState struct {
	Exists  bool
	Value   string
	Version uint64
}

// registerModel is a single-key register with versions, partitioned by key.
// It checks more than values: a PUT answers 201 only on a missing key, a DELETE
// reports whether a key was there, versions of successive writes grow and a
// read returns the version of the write it observed.
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
		s, in, out := state.(regState), input.(regInput), output.(regOutput)
		switch in.Kind {
		case opGet:
			if out.Found != s.Exists || (out.Found && out.Value != s.Value) {
				return false, s
			}
			if out.Found && s.Version != 0 && out.Version != s.Version {
				return false, s
			}
			if out.Found {
				s.Version = out.Version
			}
			return true, s
		case opPut:
			if out.Unknown {
				return true, regState{Exists: true, Value: in.Value}
			}
			if out.Created == s.Exists || (s.Version != 0 && out.Version <= s.Version) {
				return false, s
			}
			return true, regState{Exists: true, Value: in.Value, Version: out.Version}
		case opDelete:
			if out.Unknown {
				return true, regState{}
			}
			return out.Deleted == s.Exists, regState{}
		}
		return false, s
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(regInput), output.(regOutput)
		switch {
		case in.Kind == opGet && out.Found:
			return fmt.Sprintf("get(%s) -> %s v%d", in.Key, out.Value, out.Version)
		case in.Kind == opGet:
			return fmt.Sprintf("get(%s) -> not found", in.Key)
		case out.Unknown:
			return fmt.Sprintf("%s(%s, %s) -> unknown", in.Kind, in.Key, in.Value)
		case in.Kind == opPut:
			return fmt.Sprintf("put(%s, %s) -> v%d created=%v", in.Key, in.Value, out.Version, out.Created)
		default:
			return fmt.Sprintf("delete(%s) -> deleted=%v", in.Key, out.Deleted)
		}
	},
	DescribeState: func(state interface{}) string {
		s := state.(regState)
		if !s.Exists {
			return "(absent)"
		}
		return fmt.Sprintf("%s v%d", s.Value, s.Version)
	},
}

// porcupineHistory converts the register ops: failed ops are dropped (a failed
// read saw nothing, a failed write certainly did not happen); a write of
// unknown outcome returns after every other op, so it may take effect at any
// point after its call, or never.
func porcupineHistory(ops []Op) []porcupine.Operation {
	var end int64
	for _, o := range ops {
		end = max(end, o.Return)
	}
	infinity := end + int64(time.Hour)
	var h []porcupine.Operation
	for _, o := range ops {
		if o.Class != classReg || o.Outcome == outFail {
			continue
		}
		out := regOutput{Unknown: o.Outcome == outUnknown, Found: o.Found, Value: o.Got, Version: o.Version, Created: o.Created, Deleted: o.Deleted}
		ret := o.Return
		if out.Unknown {
			ret = infinity
		}
		h = append(h, porcupine.Operation{ClientId: o.Client, Input: regInput{Kind: o.Kind, Key: o.Key, Value: o.Value}, Call: o.Call, Output: out, Return: ret})
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
