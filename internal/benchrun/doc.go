// Package benchrun runs the repository's benchmark procedures: it starts the
// clusters (through internal/devcluster or a source tree's
// scripts/cluster.sh) and reference systems they compare against, drives
// cmd/kvbench against them, and turns kvbench's JSON reports into the tables
// and figures the scripts under scripts/ print. `kvdev bench NAME` is its
// command line; each scripts/NAME.sh is a wrapper that builds kvdev and
// hands it its arguments, so the commands cited in BENCHMARKS.md and
// docs/performance.md keep working with the same environment variables.
//
// Why a package driven from kvdev rather than more kvbench flags: kvbench
// measures one load against endpoints it is given and knows nothing about
// starting processes; the procedures here start and stop clusters, sample
// node CPU and metrics, and compare rounds, which is what kvdev (the
// development launcher) already owns. kvbench stays a separate process per
// row, as it was under the bash scripts, so each row gets a fresh client and
// the JSON report of every row is kept as it was.
package benchrun
