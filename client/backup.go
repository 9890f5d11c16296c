package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Snapshot streams a consistent point-in-time snapshot of the whole dataset
// (GET /admin/snapshot) into w and returns the number of bytes written. The
// file carries its own checksum, verified by Restore. Attempts are retried on
// other nodes only until the first byte reaches w; after that a failure is
// returned as is and w holds a truncated copy, which the caller must
// discard. Options: Stale (serve it from the receiving node's state without
// a linearizable read point). Needs an admin key.
func (c *Client) Snapshot(ctx context.Context, w io.Writer, opts ...Option) (int64, error) {
	o, err := collect("Snapshot", optStale, opts)
	if err != nil {
		return 0, err
	}
	var n int64
	err = c.doFunc(ctx, &call{method: http.MethodGet, path: "/admin/snapshot", query: readQuery(o),
		replayable: true, streaming: true}, func(endpoint string, resp *http.Response) error {
		var err error
		n, err = io.Copy(w, resp.Body)
		if err != nil {
			return finalError{fmt.Errorf("client: snapshot from %s: after %d bytes: %w", endpoint, n, err)}
		}
		return nil
	})
	return n, err
}

// Restore replaces the whole dataset, on every node, with the snapshot read
// from r (POST /admin/restore). The server verifies the checksum first and
// rejects a corrupt or truncated file without changing anything. Restore is
// not replayable: it is retried on another node only when the failure proves
// nothing was done, and only if r is an io.Seeker (rewound to its start,
// so r must be at its start when Restore is called). A backup from another
// cluster fails with ErrClusterMismatch unless the ForceRestore option is
// given; ErrRestoreInProgress means another restore is running. Needs an
// admin key.
func (c *Client) Restore(ctx context.Context, r io.Reader, opts ...Option) error {
	o, err := collect("Restore", optForceRestore, opts)
	if err != nil {
		return err
	}
	var query url.Values
	if o.set&optForceRestore != 0 {
		query = url.Values{"force": {"true"}}
	}
	_, err = c.do(ctx, &call{method: http.MethodPost, path: "/admin/restore", stream: r, query: query,
		header: http.Header{"Content-Type": {"application/octet-stream"}}, streaming: true})
	return err
}
