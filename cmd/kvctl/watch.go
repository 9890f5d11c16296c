package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/quorumkv/quorumkv/client"
)

// watchEventJSON is one line of `kvctl watch --json`.
type watchEventJSON struct {
	Type      string          `json:"type"`
	Key       string          `json:"key,omitempty"`
	Value     json.RawMessage `json:"value,omitempty"`
	Version   uint64          `json:"version,omitempty"`
	ExpiresAt *string         `json:"expiresAt"`
	Index     uint64          `json:"index"`
}

func watchCommand() *command {
	var from uint64
	var stale, progress, jsonLines bool
	var count int
	return &command{
		name: "watch", args: "[PREFIX]", minArgs: 0, maxArgs: 1, streaming: true,
		summary: "print every change to keys under PREFIX as it happens (text, or JSON lines with --json)",
		detail: "Text: INDEX TYPE KEY [VALUE] per line. --json (or -o json) prints one JSON object per line:\n" +
			"{type, key, value (set only), version, expiresAt, index}. The watch resumes on another node when\n" +
			"one fails, with no gap and no duplicate; it ends on Ctrl-C, after --count events, or on an error\n" +
			"(compacted: the history asked for is gone, watch again without --from-index).",
		flags: func(fs *flag.FlagSet) {
			fs.Uint64Var(&from, "from-index", 0, "print the changes after this log `INDEX` first (0: only changes from now)")
			fs.BoolVar(&stale, "stale", false, "start from the serving node's own state, without asking the leader")
			fs.BoolVar(&progress, "progress", false, "also print progress events (every change up to INDEX was printed)")
			fs.BoolVar(&jsonLines, "json", false, "print JSON lines (as -o json)")
			fs.IntVar(&count, "count", 0, "exit after this many change events (0: run until interrupted)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if count < 0 {
				return usagef("--count must not be negative")
			}
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			asJSON := jsonLines || e.json
			n := 0
			for ev, err := range e.c.Watch(ctx, prefix, client.WatchOptions{FromIndex: from, Stale: stale, Progress: progress}) {
				if err != nil {
					return err
				}
				if asJSON {
					b, _ := marshalJSON(watchEventJSON{Type: string(ev.Type), Key: ev.Key, Value: ev.Value,
						Version: ev.Version, ExpiresAt: expiresJSON(ev.ExpiresAt), Index: ev.Index})
					fmt.Fprintf(e.io.out, "%s\n", b)
				} else {
					switch ev.Type {
					case client.EventSet:
						fmt.Fprintf(e.io.out, "%d\tset\t%s\t%s\t%s\n", ev.Index, ev.Key, ev.Value, describeExpiry(ev.ExpiresAt))
					case client.EventProgress:
						fmt.Fprintf(e.io.out, "%d\tprogress\n", ev.Index)
					default:
						fmt.Fprintf(e.io.out, "%d\t%s\t%s\n", ev.Index, ev.Type, ev.Key)
					}
				}
				if ev.Type != client.EventProgress {
					if n++; count > 0 && n == count {
						return nil
					}
				}
			}
			return nil
		},
	}
}
