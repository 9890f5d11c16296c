package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/pki"
)

// runCerts implements `kvnode certs`: a development CA and node certificates.
func runCerts(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvnode certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "certs", "directory to write ca.pem, ca-key.pem, <node>.pem and <node>-key.pem into")
	nodes := fs.String("nodes", "n1,n2,n3", "comma-separated node names (each certificate also names itself)")
	hosts := fs.String("hosts", "", "extra comma-separated DNS names or IPs every node certificate is valid for (localhost, 127.0.0.1 and ::1 are always included)")
	days := fs.Int("days", 365, "validity in days")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kvnode certs --out DIR --nodes n1,n2,n3 [--hosts h1,10.0.0.5]\n\nGenerates a development cluster CA and one certificate per node, valid for\npeer mutual TLS (--peer-ca/--peer-cert/--peer-key) and for HTTPS\n(--tls-cert/--tls-key). For production, issue certificates from your own CA.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *days < 1 {
		fmt.Fprintln(stderr, "kvnode certs: --days must be at least 1")
		return 2
	}
	names := splitList(*nodes)
	if err := pki.WriteDevSet(*out, names, splitList(*hosts), time.Duration(*days)*24*time.Hour); err != nil {
		fmt.Fprintf(stderr, "kvnode certs: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote a development CA and certificates for %s to %s\n", strings.Join(names, ", "), *out)
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
