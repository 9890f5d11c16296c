package benchrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// etcdCluster is a local three-member etcd, the reference system of the
// comparisons: members eN serve clients on base+N and peers on base+10+N.
type etcdCluster struct {
	cmds             []*exec.Cmd
	endpoints        []string
	leader, follower string
}

// etcdVersion is the installed etcd's version, "?" when it does not say.
func etcdVersion() string {
	out, err := exec.Command("etcd", "--version").Output()
	if err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, "etcd Version: "); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "?"
}

// startEtcd starts three fresh members with data and logs under dir and
// waits (up to 20 s) for a leader. On error, whatever started is stopped.
func startEtcd(ctx context.Context, dir string, base int, token string) (ec *etcdCluster, err error) {
	url := func(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }
	ec = &etcdCluster{}
	defer func() {
		if err != nil {
			ec.stop()
		}
	}()
	var cluster []string
	for n := 1; n <= 3; n++ {
		cluster = append(cluster, fmt.Sprintf("e%d=%s", n, url(base+10+n)))
		ec.endpoints = append(ec.endpoints, url(base+n))
	}
	os.RemoveAll(dir)
	for n := 1; n <= 3; n++ {
		name := "e" + strconv.Itoa(n)
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			return nil, err
		}
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			return nil, err
		}
		cmd := exec.Command("etcd", "--name", name, "--data-dir", filepath.Join(dir, name, "data"),
			"--listen-client-urls", ec.endpoints[n-1], "--advertise-client-urls", ec.endpoints[n-1],
			"--listen-peer-urls", url(base+10+n), "--initial-advertise-peer-urls", url(base+10+n),
			"--initial-cluster", strings.Join(cluster, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", token, "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = logf, logf
		err = cmd.Start()
		logf.Close()
		if err != nil {
			return nil, fmt.Errorf("etcd %s: %w", name, err)
		}
		ec.cmds = append(ec.cmds, cmd)
	}
	for i := 0; i < 100 && ec.leader == ""; i++ {
		if ec.leader = etcdLeader(ctx, ec.endpoints); ec.leader == "" {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	if ec.leader == "" {
		return nil, errors.New("etcd elected no leader (member logs in " + dir + ")")
	}
	for _, u := range ec.endpoints {
		if u != ec.leader {
			ec.follower = u
			break
		}
	}
	return ec, nil
}

// stop stops every member (SIGINT, SIGKILL after 20 s) and waits for it.
func (ec *etcdCluster) stop() {
	for _, c := range ec.cmds {
		_ = c.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	ec.cmds = nil
}

// etcdLeader asks each endpoint's v3 JSON gateway for its status and returns
// the endpoint whose member is the leader, "" when none says so yet.
func etcdLeader(ctx context.Context, endpoints []string) string {
	for _, u := range endpoints {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+"/v3/maintenance/status", strings.NewReader("{}"))
		if err != nil {
			cancel()
			continue
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			continue
		}
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
		resp.Body.Close()
		cancel()
		if err == nil && st.Leader != "" && st.Header.MemberID == st.Leader {
			return u
		}
	}
	return ""
}
