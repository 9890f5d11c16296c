package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// completeCommand is the hidden command the completion scripts call: kvctl
// __complete WORD... prints the candidates for the last WORD (possibly
// empty), one a line, or completeFiles when a file name is expected. All the
// knowledge lives here, so bash, zsh and fish complete alike and the
// scripts stay a few lines each.
const completeCommand = "__complete"

// completeFiles asks the shell for its own file-name completion.
const completeFiles = ":files"

// fileFlags take a file name.
var fileFlags = map[string]bool{"--cacert": true, "--cert": true, "--key": true, "--api-key-file": true}

// subcommands are the fixed first arguments of some commands.
var subcommands = map[string][]string{
	"snapshot":   {"save", "restore", "verify"},
	"completion": {"bash", "zsh", "fish"},
	"help":       nil, // filled in init: the command names
}

func init() {
	for _, c := range commands {
		subcommands["help"] = append(subcommands["help"], c.name)
	}
}

// complete prints the candidates for words[len(words)-1], given the words
// before it (the command line after "kvctl").
func complete(w io.Writer, words []string) {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	if len(before) > 0 && fileFlags[before[len(before)-1]] {
		fmt.Fprintln(w, completeFiles)
		return
	}
	var name string
	var pos []string // positional words before cur, after the command name
	for i := 0; i < len(before); i++ {
		b := before[i]
		if strings.HasPrefix(b, "-") {
			if !strings.Contains(b, "=") && flagTakesValue(strings.TrimLeft(b, "-"), name) {
				i++ // skip the flag's value
			}
			continue
		}
		if name == "" {
			name = b
		} else {
			pos = append(pos, b)
		}
	}
	var cands []string
	switch {
	case strings.HasPrefix(cur, "-"):
		cands = flagNames(name)
	case name == "":
		cands = append(cands, "completion", "help")
		for _, c := range commands {
			cands = append(cands, c.name)
		}
	case len(pos) == 0 && subcommands[name] != nil:
		cands = subcommands[name]
	case name == "snapshot" && len(pos) == 1:
		fmt.Fprintln(w, completeFiles)
		return
	}
	sort.Strings(cands)
	for _, c := range cands {
		if strings.HasPrefix(c, cur) {
			fmt.Fprintln(w, c)
		}
	}
}

// commandFlags is the flag set of command name (globals included; name ""
// for the globals alone).
func commandFlags(name string) *flag.FlagSet {
	var g globals
	fs := flag.NewFlagSet("kvctl", flag.ContinueOnError)
	g.register(fs)
	if c := findCommand(name); c != nil && c.flags != nil {
		c.flags(fs)
	}
	return fs
}

func flagTakesValue(flagName, command string) bool {
	f := commandFlags(command).Lookup(flagName)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

func flagNames(command string) []string {
	var names []string
	commandFlags(command).VisitAll(func(f *flag.Flag) {
		if len(f.Name) > 1 {
			names = append(names, "--"+f.Name)
		}
	})
	return names
}

// runCompletion prints the completion script for the shell in args.
func runCompletion(sio stdio, args []string) int {
	if len(args) != 1 {
		return fail(sio, false, usagef("usage: kvctl completion bash|zsh|fish"))
	}
	script, ok := completionScripts[args[0]]
	if !ok {
		return fail(sio, false, usagef("completion: unknown shell %q; want bash, zsh or fish", args[0]))
	}
	fmt.Fprint(sio.out, script)
	return exitOK
}

var completionScripts = map[string]string{
	"bash": `# kvctl completion for bash: source <(kvctl completion bash)
_kvctl() {
	local IFS=$'\n' cur=${COMP_WORDS[COMP_CWORD]}
	local out
	out=$("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return
	if [[ $out == ":files" ]]; then
		COMPREPLY=($(compgen -f -- "$cur"))
	else
		COMPREPLY=($out)
	fi
}
complete -o default -F _kvctl kvctl
`,
	"zsh": `#compdef kvctl
# kvctl completion for zsh: source <(kvctl completion zsh), after compinit
_kvctl() {
	local -a cands
	cands=("${(@f)$(${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	if [[ ${cands[1]} == ":files" ]]; then
		_files
	else
		compadd -a cands
	fi
}
compdef _kvctl kvctl
`,
	"fish": `# kvctl completion for fish: kvctl completion fish | source
function __kvctl_complete
	set -l out (kvctl __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)
	if test "$out" = ":files"
		__fish_complete_path (commandline -ct)
	else
		printf '%s\n' $out
	end
end
complete -c kvctl -f -a '(__kvctl_complete)'
`,
}
