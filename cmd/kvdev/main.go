// Command kvdev runs a local quorumkv cluster for development and tests:
// scripts/cluster.sh builds it and hands it every command. Run it with no
// arguments for usage; the environment it reads is documented in
// scripts/cluster.sh. The work is done by internal/devcluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/quorumkv/quorumkv/internal/benchrun"
	"github.com/quorumkv/quorumkv/internal/devcluster"
)

const usageText = `usage: %s COMMAND

  start [--tls] build kvnode, start every node not running, wait for one agreed leader;
               the peer ports always run mutual TLS with a dev CA and node
               certificates generated in <cluster dir>/certs; --tls (remembered for
               this cluster dir) also serves the HTTP API over HTTPS
  stop         stop all nodes (SIGTERM, SIGKILL after 20s); resumes paused nodes first
  status       show each node's raft state, term, applied index and leader;
               exits 1 when a node does not answer
  restart N    gracefully stop node N (1-3), start it on the same data, wait for a leader
  kill N       SIGKILL node N
  pause N      SIGSTOP node N
  resume N     SIGCONT node N
  logs N [-f]  print the last 100 lines of node N's log; -f follows it
  add N        start node N (1-9, not running, new or removed) with an empty data dir
               and --join; wait until the cluster lists it as a voter
  remove N     DELETE /cluster/nodes/nN through another node, then stop node N
               and wipe its data (a removed node cannot come back with its old state)
  bench NAME   run a benchmark procedure of internal/benchrun (session-median,
               bench-expiry, ...; NAME --help describes one); scripts/NAME.sh wraps it
`

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

// errUsage makes run print the usage and exit 2; errHelp prints it and exits 0.
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvdev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	repo := fs.String("repo", "", "the quorumkv source tree kvnode is built from (default: the directory above the working directory that holds go.mod)")
	name := fs.String("name", "kvdev", "the name to use in messages (scripts/cluster.sh passes its own)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	usage := func(rc int) int { fmt.Fprintf(stderr, usageText, *name); return rc }
	if fs.NArg() == 0 {
		return usage(2)
	}
	if *repo == "" {
		r, err := findRepo()
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", *name, err)
			return 1
		}
		*repo = r
	}
	if fs.Arg(0) == "bench" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		e := benchrun.Env{Repo: *repo, Name: *name, Getenv: getenv, Out: stdout, Err: stderr}
		return benchrun.Main(ctx, e, fs.Arg(1), fs.Args()[min(2, fs.NArg()):])
	}
	cfg, err := devcluster.FromEnv(getenv, *repo)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *name, err)
		return 2
	}
	cfg.Out, cfg.Err = stdout, stderr
	c, err := devcluster.Open(cfg)
	if err == nil {
		err = dispatch(c, fs.Args(), stderr)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "%s: %v\n", *name, err)
		return usage(2)
	case errors.Is(err, errHelp):
		return usage(0)
	}
	fmt.Fprintf(stderr, "%s: %v\n", *name, err)
	return 1
}

func dispatch(c *devcluster.Cluster, args []string, stderr io.Writer) error {
	cmd, rest := args[0], args[1:]
	node := func() (int, error) {
		n, err := strconv.Atoi(rest[0])
		if err != nil || n < 1 || n > devcluster.MaxNode || len(rest[0]) != 1 {
			return 0, fmt.Errorf("%w: expected a node number 1-9, got '%s'", errUsage, rest[0])
		}
		return n, nil
	}
	arity := func(ok bool) error {
		if !ok {
			return fmt.Errorf("%w: wrong arguments for %s", errUsage, cmd)
		}
		return nil
	}
	switch cmd {
	case "start":
		if err := arity(len(rest) == 0 || len(rest) == 1 && rest[0] == "--tls"); err != nil {
			return err
		}
		return c.Start(len(rest) == 1)
	case "stop", "status":
		if err := arity(len(rest) == 0); err != nil {
			return err
		}
		if cmd == "stop" {
			return c.Stop()
		}
		return c.PrintStatus()
	case "restart", "kill", "pause", "resume", "add", "remove":
		if err := arity(len(rest) == 1); err != nil {
			return err
		}
		n, err := node()
		if err != nil {
			return err
		}
		switch cmd {
		case "restart":
			return c.Restart(n)
		case "kill":
			return c.Kill(n)
		case "pause":
			return c.Signal(n, syscall.SIGSTOP, "paused")
		case "resume":
			return c.Signal(n, syscall.SIGCONT, "resumed")
		case "add":
			return c.Add(n)
		}
		return c.Remove(n)
	case "logs":
		if err := arity(len(rest) == 1 || len(rest) == 2 && (rest[1] == "-f" || rest[1] == "--follow")); err != nil {
			return err
		}
		n, err := node()
		if err != nil {
			return err
		}
		path, err := c.LogPath(n)
		if err != nil {
			return err
		}
		tail, err := exec.LookPath("tail")
		if err != nil {
			return fmt.Errorf("tail (coreutils) is needed to show logs: %w", err)
		}
		argv := []string{"tail", "-n", "100", path}
		if len(rest) == 2 {
			argv = []string{"tail", "-n", "100", "-f", path}
		}
		return syscall.Exec(tail, argv, os.Environ())
	case "-h", "--help", "help":
		return errHelp
	}
	return fmt.Errorf("%w: unknown command '%s'", errUsage, cmd)
}

// findRepo walks up from the working directory to the one holding go.mod
// and cmd/kvnode.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "cmd", "kvnode", "main.go")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no quorumkv source tree (cmd/kvnode) above the working directory; pass --repo")
		}
		dir = parent
	}
}
