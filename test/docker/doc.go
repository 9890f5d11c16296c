// Package docker tests the container deployment end to end: it builds the
// image with scripts/docker-build.sh on this machine's Docker engine, starts
// the three-node cluster of docker-compose.yml under a project name of its
// own, drives the HTTP API of every node through the ports published on
// 127.0.0.1, kills the leader's container, and removes everything it created.
//
// The test needs docker and docker-compose (v1.29 or later) and a reachable
// daemon; it fails, rather than skips, when they are missing, because CI
// machines have them. It is skipped only with -short.
package docker
