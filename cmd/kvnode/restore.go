package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

// runRestore implements `kvnode restore`: it seeds an empty data dir from a
// backup file, offline, so that kvnode started on that dir holds the backup's
// data. Run it with the same file and the same --peers on every node of the
// new cluster, then start the nodes. Exit status: 0 seeded, 1 the backup or
// the data dir was refused (nothing changed), 2 bad usage. The new cluster
// adopts the backup's cluster id (it is in the seeded snapshot): restoring
// offline is how a lost cluster is rebuilt, and the rebuilt one is the same
// cluster for online restores. A backup without an id seeds a cluster that
// records a fresh one. There is no cluster to compare with, so no --force.
func runRestore(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvnode restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "backup file (from GET /admin/snapshot); required")
	dataDir := fs.String("data-dir", "", "the node's data dir, with no raft state yet; required (env KV_DATA_DIR)")
	id := fs.String("id", "n1", "this node's raft ID (env KV_ID)")
	peers := fs.String("peers", "", "voters of the new cluster `id=host:port,...`, this node included, the same on every node; empty = a single-node cluster (env KV_PEERS)")
	peerAddr := fs.String("peer-addr", "127.0.0.1:9080", "this node's peer address, used when --peers is empty (env KV_PEER_ADDR)")
	advertise := fs.String("advertise-peer-addr", "", "peer address other nodes dial, used when --peers is empty (env KV_ADVERTISE_PEER_ADDR)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kvnode restore --from FILE --data-dir DIR [--id ID] [--peers id=host:port,...]\n\n"+
			"Verifies the backup (SHA-256 and structure) and, only if it is intact, seeds DIR\n"+
			"so that kvnode started on it holds the backup's data. Restore every node of the\n"+
			"new cluster from the same file with the same --peers, then start them.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kvnode restore: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, p := range map[string]*string{"data-dir": dataDir, "id": id, "peers": peers, "peer-addr": peerAddr, "advertise-peer-addr": advertise} {
		if v := getenv("KV_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); !set[name] && v != "" {
			*p = v
		}
	}
	if *from == "" || *dataDir == "" {
		fmt.Fprintln(stderr, "kvnode restore: --from and --data-dir are required (see kvnode restore --help)")
		return 2
	}
	voters, err := parsePeers(*peers)
	if err != nil {
		fmt.Fprintf(stderr, "kvnode restore: %v\n", err)
		return 2
	}
	if len(voters) == 0 {
		addr := *advertise
		if addr == "" {
			addr = *peerAddr
		}
		voters = []store.Peer{{ID: *id, Addr: addr}}
	}

	f, err := os.Open(*from)
	if err != nil {
		fmt.Fprintf(stderr, "kvnode restore: %v\n", err)
		return 1
	}
	defer f.Close()
	info, err := store.SeedFromBackup(f, *dataDir, *id, voters)
	if err != nil {
		if errors.Is(err, store.ErrBadBackup) {
			fmt.Fprintf(stderr, "kvnode restore: %s is not an intact backup; nothing was changed: %v\n", *from, err)
		} else {
			fmt.Fprintf(stderr, "kvnode restore: nothing was changed: %v\n", err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "restored %s into %s: index %d, %d entries, %d idempotency entries, taken %s, %d bytes, sha256 %x\n",
		*from, *dataDir, info.Index, info.Entries, info.IdemEntries,
		time.UnixMilli(info.CreatedAtMs).UTC().Format(time.RFC3339), info.Size, info.SHA256)
	if info.ClusterID != "" {
		fmt.Fprintf(stdout, "cluster id %s: the new cluster continues the one the backup was taken from, and their backups restore into each other without force\n", info.ClusterID)
	} else {
		fmt.Fprintf(stdout, "the backup names no cluster (an older file); the new cluster records a new cluster id when it first elects a leader\n")
	}
	fmt.Fprintf(stdout, "start the node with --data-dir %s --id %s; voters: %s\n", *dataDir, *id, formatPeers(voters))
	return 0
}

func formatPeers(peers []store.Peer) string {
	parts := make([]string, len(peers))
	for i, p := range peers {
		parts[i] = p.ID + "=" + p.Addr
	}
	return strings.Join(parts, ",")
}
