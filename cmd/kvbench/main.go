// Command kvbench is a load generator for quorumkv's HTTP API (and, for
// comparison in the same run, etcd's v3 JSON gateway).
//
// It runs one workload for a fixed duration after a warmup, either
// closed-loop (N workers, each sending its next request when the previous one
// is answered) or open-loop (requests scheduled at a fixed rate, latency
// measured from each request's intended send time, so a stalled server is
// charged for the requests it delayed: no coordinated omission). It reports
// throughput, errors by status and error code, and latency percentiles from a
// log-bucket histogram, as a table or as JSON (-o json).
//
//	kvbench -endpoints http://127.0.0.1:8081 -workload session -c 64 -d 10s
//	kvbench -target etcd -endpoints http://127.0.0.1:23791 -workload write -c 64
//	kvbench -workload read -preload -rate 5000 -o json
//
// Exit status: 0 after a run (errors are reported, not fatal), 1 when the run
// could not be done (bad flags, preload failure), 2 on usage errors.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kvbench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b, err := newBench(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kvbench: %v\n", err)
		return 1
	}
	defer b.close()
	res, err := b.run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "kvbench: %v\n", err)
		return 1
	}
	if err := writeReport(stdout, cfg, res); err != nil {
		fmt.Fprintf(stderr, "kvbench: %v\n", err)
		return 1
	}
	return 0
}
