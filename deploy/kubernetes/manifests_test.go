package kubernetes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// manifests is everything in this directory, decoded.
type manifests struct {
	services      []service
	statefulSets  []statefulSet
	pdbs          []podDisruptionBudget
	netpols       []networkPolicy
	kustomization *kustomization
	files         []string // the manifest files, kustomization.yaml excluded
}

// load decodes every document of every *.yaml file here, strictly.
func load(t *testing.T) manifests {
	t.Helper()
	paths, err := filepath.Glob("*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests found: %v", err)
	}
	var m manifests
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if path != "kustomization.yaml" {
			m.files = append(m.files, path)
		}
		docs := yaml.NewDecoder(bytes.NewReader(raw))
		for i := 0; ; i++ {
			var node yaml.Node
			if err := docs.Decode(&node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: document %d: %v", path, i, err)
			}
			var h header
			if err := node.Decode(&h); err != nil {
				t.Fatalf("%s: document %d: %v", path, i, err)
			}
			where := fmt.Sprintf("%s: document %d (%s)", path, i, h.Kind)
			switch h.Kind {
			case "Service":
				m.services = append(m.services, strict[service](t, where, &node))
			case "StatefulSet":
				m.statefulSets = append(m.statefulSets, strict[statefulSet](t, where, &node))
			case "PodDisruptionBudget":
				m.pdbs = append(m.pdbs, strict[podDisruptionBudget](t, where, &node))
			case "NetworkPolicy":
				m.netpols = append(m.netpols, strict[networkPolicy](t, where, &node))
			case "Kustomization":
				k := strict[kustomization](t, where, &node)
				m.kustomization = &k
			default:
				t.Fatalf("%s: unexpected kind %q (teach this test about it)", where, h.Kind)
			}
			if want := map[string]string{"Service": "v1", "StatefulSet": "apps/v1", "PodDisruptionBudget": "policy/v1",
				"NetworkPolicy": "networking.k8s.io/v1", "Kustomization": "kustomize.config.k8s.io/v1beta1"}[h.Kind]; h.APIVersion != want {
				t.Errorf("%s: apiVersion %q, want %q", where, h.APIVersion, want)
			}
		}
	}
	return m
}

// strict decodes node into a T, rejecting fields T does not have.
func strict[T any](t *testing.T, where string, node *yaml.Node) T {
	t.Helper()
	raw, err := yaml.Marshal(node)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	var v T
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return v
}

func TestManifests(t *testing.T) {
	m := load(t)

	if m.kustomization == nil {
		t.Fatal("no kustomization.yaml")
	}
	if got, want := slices.Sorted(slices.Values(m.kustomization.Resources)), slices.Sorted(slices.Values(m.files)); !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, want every manifest here: %v", got, want)
	}
	if len(m.statefulSets) != 1 || len(m.pdbs) != 1 || len(m.services) != 2 {
		t.Fatalf("want 1 StatefulSet, 1 PodDisruptionBudget, 2 Services; have %d, %d, %d", len(m.statefulSets), len(m.pdbs), len(m.services))
	}
	sts, pdb := m.statefulSets[0], m.pdbs[0]
	var headless, client *service
	for i := range m.services {
		if m.services[i].Spec.ClusterIP == "None" {
			headless = &m.services[i]
		} else {
			client = &m.services[i]
		}
	}
	if headless == nil || client == nil {
		t.Fatal("want one headless Service (clusterIP: None) and one client Service")
	}

	// The StatefulSet and its pods.
	spec := sts.Spec
	if spec.Replicas != 3 {
		t.Errorf("replicas %d, want 3", spec.Replicas)
	}
	if spec.ServiceName != headless.Metadata.Name {
		t.Errorf("serviceName %q, want the headless Service %q", spec.ServiceName, headless.Metadata.Name)
	}
	if spec.PodManagementPolicy != "Parallel" {
		t.Errorf("podManagementPolicy %q: with OrderedReady the first pod waits forever to be ready, since readiness needs a quorum", spec.PodManagementPolicy)
	}
	if !headless.Spec.PublishNotReadyAddresses {
		t.Error("headless Service must publish not-ready addresses: peers must resolve each other before a leader exists")
	}
	podLabels := spec.Template.Metadata.Labels
	for what, sel := range map[string]map[string]string{
		"StatefulSet selector":         spec.Selector.MatchLabels,
		"PodDisruptionBudget selector": pdb.Spec.Selector.MatchLabels,
		"headless Service selector":    headless.Spec.Selector,
		"client Service selector":      client.Spec.Selector,
	} {
		if len(sel) == 0 || !selects(sel, podLabels) {
			t.Errorf("%s %v does not select the pod labels %v", what, sel, podLabels)
		}
	}
	if len(spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(spec.Template.Spec.Containers))
	}
	c := spec.Template.Spec.Containers[0]
	env := envValues(t, c.Env)

	// Ports: names resolve, and agree with the addresses kvnode listens on.
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	httpPort, peerPort := addrPort(t, "KV_HTTP_ADDR", env["KV_HTTP_ADDR"]), addrPort(t, "KV_PEER_ADDR", env["KV_PEER_ADDR"])
	if ports["http"] != httpPort || ports["peer"] != peerPort {
		t.Errorf("container ports %v, want http=%d (KV_HTTP_ADDR) and peer=%d (KV_PEER_ADDR)", ports, httpPort, peerPort)
	}
	for _, svc := range m.services {
		for _, p := range svc.Spec.Ports {
			if got := resolvePort(p.TargetPort, ports); got == 0 || (p.Name == "http" && got != httpPort) || (p.Name == "peer" && got != peerPort) {
				t.Errorf("Service %s port %s: targetPort %v resolves to %d", svc.Metadata.Name, p.Name, p.TargetPort, got)
			}
		}
	}

	// Probes: ready on /readyz, alive on /healthz, both on the HTTP port.
	for _, p := range []struct {
		name  string
		probe *probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe on %s", p.name, p.path)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || resolvePort(p.probe.HTTPGet.Port, ports) != httpPort {
			t.Errorf("%s: GET %s on port %v, want %s on %d", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port, p.path, httpPort)
		}
	}

	// The disruption budget keeps a quorum.
	if min, ok := pdb.Spec.MinAvailable.(int); !ok || min != spec.Replicas/2+1 {
		t.Errorf("PodDisruptionBudget minAvailable %v, want a quorum of %d replicas: %d", pdb.Spec.MinAvailable, spec.Replicas, spec.Replicas/2+1)
	}

	// Storage: the claim is mounted where KV_DATA_DIR points.
	if len(spec.VolumeClaimTemplates) != 1 || len(c.VolumeMounts) < 1 ||
		c.VolumeMounts[0].Name != spec.VolumeClaimTemplates[0].Metadata.Name || c.VolumeMounts[0].MountPath != env["KV_DATA_DIR"] {
		t.Errorf("want one volume claim mounted at KV_DATA_DIR %q; have claims %v, mounts %v", env["KV_DATA_DIR"], spec.VolumeClaimTemplates, c.VolumeMounts)
	}

	// Security: non-root, read-only root file system, key from a Secret.
	pod := spec.Template.Spec.SecurityContext
	if pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot || pod.RunAsUser == nil || *pod.RunAsUser == 0 || pod.FSGroup == nil {
		t.Error("pod securityContext: want runAsNonRoot, a non-zero runAsUser and an fsGroup (so the volume is writable)")
	}
	sc := c.SecurityContext
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("container securityContext: want readOnlyRootFilesystem, no privilege escalation, all capabilities dropped")
	}
	for _, e := range c.Env {
		if e.Name == "KV_API_KEY" && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Error("KV_API_KEY must come from a Secret (valueFrom.secretKeyRef), never a literal")
		}
	}

	checkPeerTLS(t, spec.Template.Spec, c, env)
	checkEnvAreFlags(t, c.Env)
	checkPeers(t, sts, headless.Metadata.Name, c.Env, peerPort)
	checkAdvertisedHTTP(t, sts, headless.Metadata.Name, c.Env, httpPort)
	checkMemoryLimit(t, c)
	if len(m.netpols) != 1 {
		t.Fatalf("want 1 NetworkPolicy, have %d", len(m.netpols))
	}
	checkNetworkPolicy(t, m.netpols[0], podLabels, ports, peerPort, httpPort)
}

// checkAdvertisedHTTP: each pod advertises its HTTP API under its stable DNS
// name (GET /cluster/nodes would otherwise list 0.0.0.0).
func checkAdvertisedHTTP(t *testing.T, sts statefulSet, headless string, env []envVar, httpPort int) {
	t.Helper()
	for i := range sts.Spec.Replicas {
		pod := fmt.Sprintf("%s-%d", sts.Metadata.Name, i)
		vars := expandEnv(t, env, map[string]string{"metadata.name": pod, "metadata.namespace": "ns1"})
		want := fmt.Sprintf("http://%s.%s.ns1.svc:%d", pod, headless, httpPort)
		if vars["KV_ADVERTISE_HTTP_ADDR"] != want {
			t.Errorf("pod %s: KV_ADVERTISE_HTTP_ADDR %q, want %q", pod, vars["KV_ADVERTISE_HTTP_ADDR"], want)
		}
	}
}

// checkMemoryLimit: the container has a memory limit, and GOMEMLIMIT is
// derived from it (resourceFieldRef) and stays below it.
func checkMemoryLimit(t *testing.T, c container) {
	t.Helper()
	limit := c.Resources.Limits["memory"]
	if limit == "" {
		t.Fatal("the container has no memory limit")
	}
	mib, ok := map[string]int64{"Mi": 1, "Gi": 1024}[limit[len(limit)-2:]]
	n, err := strconv.ParseInt(limit[:len(limit)-2], 10, 64)
	if !ok || err != nil {
		t.Fatalf("memory limit %q: this test reads Mi or Gi", limit)
	}
	limitMiB := n * mib
	var ref string
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil {
			r := e.ValueFrom.ResourceFieldRef
			if r.Resource != "limits.memory" || r.ContainerName != c.Name || r.Divisor != "1Mi" {
				t.Errorf("env %s: resourceFieldRef %+v, want limits.memory of %s in 1Mi", e.Name, *r, c.Name)
			}
			ref = e.Name
		}
	}
	if ref == "" {
		t.Fatal("no env variable reads the memory limit (resourceFieldRef limits.memory)")
	}
	gomem := envValues(t, c.Env)["GOMEMLIMIT"]
	expanded := strings.ReplaceAll(gomem, "$("+ref+")", strconv.FormatInt(limitMiB, 10))
	bytes, ok := strings.CutSuffix(expanded, "B")
	v, err := strconv.ParseInt(bytes, 10, 64)
	if !ok || err != nil {
		t.Fatalf("GOMEMLIMIT %q (%q with the limit): want a byte count derived from $(%s)", gomem, expanded, ref)
	}
	if frac := float64(v) / float64(limitMiB<<20); frac < 0.85 || frac >= 1 {
		t.Errorf("GOMEMLIMIT %s is %.0f %% of the %s limit: want some room below it, not much", expanded, 100*frac, limit)
	}
}

// checkNetworkPolicy: the policy covers the pods; the peer port admits only
// the StatefulSet's pods, from this namespace; the HTTP port stays reachable.
func checkNetworkPolicy(t *testing.T, np networkPolicy, podLabels map[string]string, ports map[string]int, peerPort, httpPort int) {
	t.Helper()
	if !selects(np.Spec.PodSelector.MatchLabels, podLabels) || len(np.Spec.PodSelector.MatchLabels) == 0 {
		t.Errorf("NetworkPolicy podSelector %v does not select the pods %v", np.Spec.PodSelector.MatchLabels, podLabels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
		t.Error("NetworkPolicy policyTypes must include Ingress")
	}
	peerRules, httpOpen := 0, false
	for i, rule := range np.Spec.Ingress {
		admitsPeer, admitsHTTP := len(rule.Ports) == 0, len(rule.Ports) == 0 // no ports: every port
		for _, p := range rule.Ports {
			port := resolvePort(p.Port, ports)
			if port == 0 {
				t.Errorf("ingress rule %d: port %v is not a container port", i, p.Port)
			}
			admitsPeer = admitsPeer || port == peerPort
			admitsHTTP = admitsHTTP || port == httpPort
		}
		if admitsHTTP && len(rule.From) == 0 {
			httpOpen = true
		}
		if !admitsPeer {
			continue
		}
		peerRules++
		if len(rule.From) == 0 {
			t.Errorf("ingress rule %d admits the peer port from anywhere", i)
		}
		for _, from := range rule.From {
			if from.IPBlock != nil || from.NamespaceSelector != nil || from.PodSelector == nil ||
				len(from.PodSelector.MatchLabels) == 0 || !selects(from.PodSelector.MatchLabels, podLabels) {
				t.Errorf("ingress rule %d admits the peer port from %+v: want only the StatefulSet's pods (podSelector %v)", i, from, podLabels)
			}
		}
	}
	if peerRules == 0 {
		t.Error("no ingress rule admits the peer port: the nodes could not reach each other")
	}
	if !httpOpen {
		t.Error("no ingress rule admits clients to the HTTP port")
	}
}

// TestServiceMonitor checks the optional ServiceMonitor: it selects the
// headless Service (every pod, ready or not) and scrapes /metrics on its
// HTTP port with the API key from a Secret.
func TestServiceMonitor(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("monitoring", "servicemonitor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var node yaml.Node
	if err := yaml.Unmarshal(raw, &node); err != nil {
		t.Fatal(err)
	}
	sm := strict[serviceMonitor](t, "servicemonitor.yaml", &node)
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Kind != "ServiceMonitor" {
		t.Fatalf("%s %s", sm.APIVersion, sm.Kind)
	}
	m := load(t)
	var matched []string
	for _, svc := range m.services {
		if selects(sm.Spec.Selector.MatchLabels, svc.Metadata.Labels) {
			matched = append(matched, svc.Metadata.Name)
			if svc.Spec.ClusterIP != "None" {
				t.Errorf("the ServiceMonitor selects %s, which lists ready pods only", svc.Metadata.Name)
			}
			hasPort := false
			for _, p := range svc.Spec.Ports {
				for _, e := range sm.Spec.Endpoints {
					hasPort = hasPort || p.Name == e.Port
				}
			}
			if !hasPort {
				t.Errorf("Service %s has no port named as the ServiceMonitor's endpoints", svc.Metadata.Name)
			}
		}
	}
	if len(matched) != 1 {
		t.Fatalf("the ServiceMonitor selects %v, want exactly the headless Service", matched)
	}
	for _, e := range sm.Spec.Endpoints {
		if e.Path != "/metrics" || e.Port != "http" || e.Authorization == nil || e.Authorization.Credentials.Name == "" {
			t.Errorf("endpoint %+v: want /metrics on port http with a bearer key from a Secret", e)
		}
	}
}

// checkEnvAreFlags: every KV_ variable must be a kvnode flag, or kvnode would
// ignore it silently. The flags are read from `kvnode --help`.
func checkEnvAreFlags(t *testing.T, env []envVar) {
	t.Helper()
	flags := kvnodeFlags(t)
	for _, e := range env {
		if strings.HasPrefix(e.Name, "KV_") && !flags[e.Name] {
			t.Errorf("env %s is not a kvnode flag (kvnode --help lists %v)", e.Name, slices.Sorted(maps.Keys(flags)))
		}
	}
}

// checkPeers: KV_PEERS names every replica by its pod name with its stable DNS
// name under the headless Service, and each pod's KV_ID and
// KV_ADVERTISE_PEER_ADDR expand to its own entry.
func checkPeers(t *testing.T, sts statefulSet, headless string, env []envVar, peerPort int) {
	t.Helper()
	const ns = "some-namespace"
	for i := range sts.Spec.Replicas {
		podName := fmt.Sprintf("%s-%d", sts.Metadata.Name, i)
		vars := expandEnv(t, env, map[string]string{"metadata.name": podName, "metadata.namespace": ns})
		peers := map[string]string{}
		var order []string
		for _, entry := range strings.Split(vars["KV_PEERS"], ",") {
			id, addr, ok := strings.Cut(entry, "=")
			if !ok {
				t.Fatalf("KV_PEERS entry %q is not id=host:port", entry)
			}
			peers[id] = addr
			order = append(order, id)
		}
		var want []string
		for j := range sts.Spec.Replicas {
			want = append(want, fmt.Sprintf("%s-%d", sts.Metadata.Name, j))
		}
		if !slices.Equal(order, want) {
			t.Fatalf("KV_PEERS ids %v, want the pod names %v (one per replica)", order, want)
		}
		for id, addr := range peers {
			if wantAddr := net.JoinHostPort(fmt.Sprintf("%s.%s.%s.svc", id, headless, ns), strconv.Itoa(peerPort)); addr != wantAddr {
				t.Errorf("KV_PEERS %s=%s, want the pod's stable DNS name %s", id, addr, wantAddr)
			}
		}
		if vars["KV_ID"] != podName || vars["KV_ADVERTISE_PEER_ADDR"] != peers[podName] {
			t.Errorf("pod %s: KV_ID %q, KV_ADVERTISE_PEER_ADDR %q; want %q and its KV_PEERS address %q",
				podName, vars["KV_ID"], vars["KV_ADVERTISE_PEER_ADDR"], podName, peers[podName])
		}
	}
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandEnv evaluates the container's environment as the kubelet does:
// fieldRef values from fields, and $(VAR) replaced by a variable defined
// earlier in the list (a later or unknown one stays as written, which this
// test treats as an error).
func expandEnv(t *testing.T, env []envVar, fields map[string]string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, e := range env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			v, ok := fields[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				t.Fatalf("env %s: fieldRef %q not known to this test", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			vars[e.Name] = v
		case e.ValueFrom != nil:
			vars[e.Name] = "(from " + e.Name + " source)"
		default:
			vars[e.Name] = varRef.ReplaceAllStringFunc(e.Value, func(ref string) string {
				name := varRef.FindStringSubmatch(ref)[1]
				v, ok := vars[name]
				if !ok {
					t.Errorf("env %s refers to $(%s), which is not defined before it", e.Name, name)
				}
				return v
			})
		}
	}
	return vars
}

// envValues returns the literal values of env, unexpanded.
func envValues(t *testing.T, env []envVar) map[string]string {
	t.Helper()
	vals := map[string]string{}
	for _, e := range env {
		if _, dup := vals[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		vals[e.Name] = e.Value
	}
	return vals
}

// kvnodeFlags builds kvnode and returns the environment variable of every
// flag `kvnode --help` lists (KV_ plus the name upper-cased, - as _).
func kvnodeFlags(t *testing.T) map[string]bool {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kvnode")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/kvnode").CombinedOutput(); err != nil {
		t.Fatalf("go build kvnode: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("kvnode --help: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags["KV_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
	}
	if !flags["KV_HTTP_ADDR"] || !flags["KV_PEERS"] {
		t.Fatalf("could not read the flags from kvnode --help:\n%s", out)
	}
	return flags
}

// selects reports whether every label of sel is on labels.
func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// resolvePort turns a port name or number into a container port, 0 if unknown.
func resolvePort(p any, named map[string]int) int {
	switch p := p.(type) {
	case int:
		return p
	case string:
		return named[p]
	}
	return 0
}

func addrPort(t *testing.T, name, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: %v", name, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("%s %q: %v", name, addr, err)
	}
	return n
}

// checkPeerTLS: the peer port runs mutual TLS from the Secret peer-certs.sh
// creates, read-only, each pod using the certificate named after itself, and
// nothing turns it off.
func checkPeerTLS(t *testing.T, pod podSpec, c container, env map[string]string) {
	t.Helper()
	if _, ok := env["KV_INSECURE_PEER"]; ok {
		t.Error("KV_INSECURE_PEER must not be set: the peer port must be authenticated")
	}
	var dir string
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == peerSecret {
				if !m.ReadOnly {
					t.Errorf("the %s Secret must be mounted readOnly", peerSecret)
				}
				if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
					t.Errorf("the %s Secret's defaultMode must give others no access", peerSecret)
				}
				dir = m.MountPath
			}
		}
	}
	if dir == "" {
		t.Fatalf("no volume mounts the Secret %s", peerSecret)
	}
	want := map[string]string{
		"KV_PEER_CA":   dir + "/ca.pem",
		"KV_PEER_CERT": dir + "/$(POD_NAME).pem",
		"KV_PEER_KEY":  dir + "/$(POD_NAME)-key.pem",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q (the file peer-certs.sh writes for the pod)", k, env[k], v)
		}
	}
	if env["KV_CLUSTER_NAME"] != scriptClusterName(t) {
		t.Errorf("KV_CLUSTER_NAME %q differs from the cluster name peer-certs.sh issues certificates for (%q)", env["KV_CLUSTER_NAME"], scriptClusterName(t))
	}
}
