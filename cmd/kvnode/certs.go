package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/pki"
)

// runCerts implements `kvnode certs`: a development CA and node certificates
// carrying each node's member identity, or (--add) more node certificates
// from the CA already in --out. It needs no shell, so a FROM scratch image
// can run it (docker-compose.yml's certs service, the Kubernetes script).
func runCerts(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvnode certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "certs", "directory to write ca.pem, ca-key.pem, <node>.pem and <node>-key.pem into")
	nodes := fs.String("nodes", "n1,n2,n3", "comma-separated node ids (each certificate carries quorumkv://<cluster-name>/node/<id> and names the id as a host)")
	hosts := fs.String("hosts", "", "extra comma-separated DNS names or IPs every node certificate is valid for (localhost, 127.0.0.1 and ::1 are always included)")
	cluster := fs.String("cluster-name", "", "the cluster the certificates are for: must equal the nodes' --cluster-name (default $KV_CLUSTER_NAME, else \""+pki.DefaultClusterName+"\")")
	add := fs.Bool("add", false, "issue certificates for --nodes from the CA already in --out (ca.pem, ca-key.pem) instead of creating a CA; existing node files are not overwritten")
	ifMissing := fs.Bool("if-missing", false, "do nothing (exit 0) when --out already holds ca.pem: for one-shot jobs that run at every start")
	days := fs.Int("days", 365, "validity in days")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kvnode certs --out DIR --nodes n1,n2,n3 [--cluster-name NAME] [--hosts h1,10.0.0.5] [--add] [--if-missing]\n\n"+
			"Generates a development cluster CA and one certificate per node, valid for\n"+
			"peer mutual TLS (--peer-ca/--peer-cert/--peer-key) and for HTTPS\n"+
			"(--tls-cert/--tls-key). The CA key is written next to them: for production,\n"+
			"issue certificates from your own CA (see the README's security section).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kvnode certs: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *days < 1 {
		fmt.Fprintln(stderr, "kvnode certs: --days must be at least 1")
		return 2
	}
	if *cluster == "" {
		*cluster = getenv("KV_CLUSTER_NAME")
	}
	if *cluster == "" {
		*cluster = pki.DefaultClusterName
	}
	if *add && *ifMissing {
		fmt.Fprintln(stderr, "kvnode certs: --add and --if-missing do not combine")
		return 2
	}
	names := splitList(*nodes)
	validFor := time.Duration(*days) * 24 * time.Hour
	var err error
	switch {
	case *add:
		err = pki.AddNodes(*out, *cluster, names, splitList(*hosts), validFor)
	case *ifMissing && fileExists(filepath.Join(*out, "ca.pem")):
		fmt.Fprintf(stdout, "%s already holds a CA; nothing written\n", *out)
		return 0
	default:
		err = pki.WriteDevSet(*out, *cluster, names, splitList(*hosts), validFor)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kvnode certs: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote certificates for %s of cluster %q to %s\n", strings.Join(names, ", "), *cluster, *out)
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

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
