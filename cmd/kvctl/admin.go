package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/version"
)

func statusCommand() *command {
	return &command{
		name: "status", args: "", minArgs: 0, maxArgs: 0,
		summary: "show how the first reachable node sees the cluster",
		run: func(ctx context.Context, e *env, _ []string) error {
			st, err := e.c.Status(ctx)
			if err != nil {
				return err
			}
			if e.json {
				return writeJSON(e.io.out, st)
			}
			voters := make([]string, len(st.Voters))
			for i, v := range st.Voters {
				voters[i] = v.ID + "=" + v.Addr
			}
			leader := st.LeaderID
			if leader == "" {
				leader = "(none)"
			}
			fmt.Fprintf(e.io.out, "node     %s (%s), via %s\nleader   %s %s\nterm     %d\ncommit   %d\napplied  %d\nkeys     %d\nvoters   %s\n",
				st.NodeID, st.State, st.Endpoint, leader, st.LeaderAddr, st.Term, st.CommitIndex, st.AppliedIndex, st.Keys,
				strings.Join(voters, ", "))
			return nil
		},
	}
}

func versionCommand() *command {
	return &command{
		name: "version", args: "", minArgs: 0, maxArgs: 0,
		summary: "show kvctl's version and the version of the first reachable node",
		detail:  "kvctl's own line is printed even when no node answers. kvctl nodes shows every node's version.",
		run: func(ctx context.Context, e *env, _ []string) error {
			fmt.Fprintf(e.io.out, "kvctl    %s\n", version.Get())
			st, err := e.c.Status(ctx)
			if err != nil {
				return err
			}
			b := st.Build
			if b.Version == "" {
				fmt.Fprintf(e.io.out, "server   %s: version unknown (a build that does not report one), via %s\n", st.NodeID, st.Endpoint)
				return nil
			}
			info := version.Info{Version: b.Version, GoVersion: b.GoVersion, Revision: b.Revision, Modified: b.Modified}
			fmt.Fprintf(e.io.out, "server   %s (node %s, via %s)\n", info, st.NodeID, st.Endpoint)
			return nil
		},
	}
}

func nodesCommand() *command {
	return &command{
		name: "nodes", args: "", minArgs: 0, maxArgs: 0,
		summary: "list the cluster's servers: suffrage, leader, health, applied index, last contact",
		detail:  "-o json prints the server's node objects unchanged.",
		run: func(ctx context.Context, e *env, _ []string) error {
			nodes, err := e.c.Nodes(ctx)
			if err != nil {
				return err
			}
			if e.json {
				raws := make([]json.RawMessage, len(nodes))
				for i, n := range nodes {
					raws[i] = n.Raw
				}
				return writeJSON(e.io.out, raws)
			}
			tw := tabwriter.NewWriter(e.io.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSUFFRAGE\tLEADER\tHEALTHY\tAPPLIED\tLAST CONTACT\tVERSION\tPEER ADDR\tHTTP ADDR")
			for _, n := range nodes {
				contact := "-"
				if n.LastContactMs != nil {
					contact = fmt.Sprintf("%dms", *n.LastContactMs)
				}
				v := n.Version
				if v == "" {
					v = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", n.ID, n.Suffrage, yesNo(n.Leader), yesNo(n.Healthy),
					n.AppliedIndex, contact, v, n.PeerAddr, n.HTTPAddr)
			}
			return tw.Flush()
		},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func joinCommand() *command {
	return &command{
		name: "join", args: "ID PEER_ADDR [HTTP_ADDR]", minArgs: 2, maxArgs: 3,
		summary: "add server ID (as a non-voter, promoted once caught up); repeating it is a no-op",
		detail: "Usually kvnode --join does this itself; kvctl join is for adding a node by hand.\n" +
			"Needs an admin key.",
		run: func(ctx context.Context, e *env, args []string) error {
			req := client.JoinRequest{ID: args[0], PeerAddr: args[1]}
			if len(args) == 3 {
				req.HTTPAddr = args[2]
			}
			if err := e.c.Join(ctx, req); err != nil {
				return err
			}
			if e.json {
				return writeJSON(e.io.out, map[string]any{"joined": req.ID})
			}
			fmt.Fprintf(e.io.out, "joined %s (peer %s)\n", req.ID, req.PeerAddr)
			return nil
		},
	}
}

func removeCommand() *command {
	return &command{
		name: "remove", args: "ID", minArgs: 1, maxArgs: 1,
		summary: "remove server ID (a leader hands over leadership first; the last voter stays)",
		detail:  "Needs an admin key. Exit 3 if ID is not a member.",
		run: func(ctx context.Context, e *env, args []string) error {
			if err := e.c.Remove(ctx, args[0]); err != nil {
				return err
			}
			if e.json {
				return writeJSON(e.io.out, map[string]any{"removed": args[0]})
			}
			fmt.Fprintf(e.io.out, "removed %s\n", args[0])
			return nil
		},
	}
}

func transferCommand() *command {
	return &command{
		name: "transfer", args: "[ID]", minArgs: 0, maxArgs: 1,
		summary: "move leadership to server ID, or to one the cluster picks",
		detail:  "Needs an admin key. Not retried once a node may have acted on it.",
		run: func(ctx context.Context, e *env, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			leader, err := e.c.TransferLeader(ctx, target)
			if err != nil {
				return err
			}
			if e.json {
				return writeJSON(e.io.out, map[string]any{"leaderId": leader})
			}
			if leader == "" {
				fmt.Fprintln(e.io.out, "leadership transferred")
			} else {
				fmt.Fprintf(e.io.out, "leadership transferred to %s\n", leader)
			}
			return nil
		},
	}
}

func snapshotCommand() *command {
	var stale, force bool
	return &command{
		name: "snapshot", args: "save FILE | restore FILE", minArgs: 2, maxArgs: 2, streaming: true,
		summary: "save a consistent snapshot of the whole dataset to FILE, or replace the dataset with FILE",
		detail: "FILE - is stdout (save) or stdin (restore). save writes FILE.tmp and renames it into place\n" +
			"only once the snapshot is complete (mode 0600: it holds every value). restore replaces\n" +
			"every key on every node; the server verifies the file's checksum first and changes\n" +
			"nothing if it is corrupt or truncated, or taken from another cluster (unless --force).\n" +
			"No --timeout unless one is given. Needs an admin key.",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&stale, "stale", false, "save: serve it from the receiving node's state, without a linearizable read point")
			fs.BoolVar(&force, "force", false, "restore: accept a snapshot taken from another cluster (or an older file that names none)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			switch args[0] {
			case "save":
				return snapshotSave(ctx, e, args[1], stale)
			case "restore":
				return snapshotRestore(ctx, e, args[1], force)
			}
			return usagef("usage: kvctl snapshot save FILE | kvctl snapshot restore FILE")
		},
	}
}

func snapshotSave(ctx context.Context, e *env, file string, stale bool) error {
	var opts []client.Option
	if stale {
		opts = append(opts, client.Stale())
	}
	if file == "-" {
		_, err := e.c.Snapshot(ctx, e.io.out, opts...)
		return err
	}
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	n, err := e.c.Snapshot(ctx, f, opts...)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if e.json {
		return writeJSON(e.io.out, map[string]any{"file": file, "bytes": n})
	}
	abs, _ := filepath.Abs(file)
	fmt.Fprintf(e.io.out, "saved %d bytes to %s\n", n, abs)
	return nil
}

func snapshotRestore(ctx context.Context, e *env, file string, force bool) error {
	var r io.Reader = e.io.in
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f // an *os.File can be rewound, so a restore refused by a node without a leader is retried
	}
	var opts []client.Option
	if force {
		opts = append(opts, client.ForceRestore())
	}
	if err := e.c.Restore(ctx, r, opts...); err != nil {
		return err
	}
	if e.json {
		return writeJSON(e.io.out, map[string]any{"restored": file})
	}
	fmt.Fprintf(e.io.out, "restored the dataset from %s\n", file)
	return nil
}
