// Package kubernetes holds the Kubernetes manifests for a three-node quorumkv
// cluster (a StatefulSet, its Services and a PodDisruptionBudget; see
// README.md) and the test that checks their structure. No Kubernetes runs in
// CI, so the test parses every manifest strictly and checks what a cluster
// would only reveal at run time: names and selectors that must agree, probe
// paths and ports, that every KV_ variable is a kvnode flag, and that the
// bootstrap peer list matches the replicas and their DNS names.
package kubernetes
