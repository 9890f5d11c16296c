package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
)

// The membership methods (methods.go). Those that change membership run only
// for an authenticated member (peerguard.go), checked before the request is
// read; the read-only ones answer anyone who reaches the port.

// serveJoin serves methodJoin: a join, or a member registering its own HTTP
// address.
func (s *Store) serveJoin(ctx context.Context, req []byte) ([]byte, error) {
	if err := s.authorizePeer(ctx, methodJoin); err != nil {
		return encodeAdminResponse(err, nil), nil
	}
	jr, register, err := decodeJoinRequest(req)
	if err != nil {
		return nil, fmt.Errorf("store: bad join request: %w", err)
	}
	var body []byte
	err = jr.validate()
	if err == nil {
		err = s.asLeader(func() error {
			if err := s.authorizeJoinRPC(ctx, jr, register); err != nil { // peerauth.go
				return err
			}
			a, err := s.joinAsLeader(ctx, jr, register)
			body = []byte{byte(a)}
			return err
		})
	}
	return encodeAdminResponse(err, body), nil
}

// serveRemove serves methodRemove.
func (s *Store) serveRemove(ctx context.Context, req []byte) ([]byte, error) {
	return s.serveIDChange(ctx, methodRemove, req, s.removeAsLeader)
}

// serveTransfer serves methodTransfer.
func (s *Store) serveTransfer(ctx context.Context, req []byte) ([]byte, error) {
	return s.serveIDChange(ctx, methodTransfer, req, s.transferAsLeader)
}

func (s *Store) serveIDChange(ctx context.Context, method uint8, req []byte, change func(context.Context, string) error) ([]byte, error) {
	if err := s.authorizePeer(ctx, method); err != nil {
		return encodeAdminResponse(err, nil), nil
	}
	id, err := decodeIDRequest(req)
	if err != nil {
		return nil, fmt.Errorf("store: bad membership request: %w", err)
	}
	err = s.asLeader(func() error { return change(ctx, id) })
	return encodeAdminResponse(err, nil), nil
}

// serveNodeInfo serves methodNodeInfo: this node's ID, HTTP address and
// applied index.
func (s *Store) serveNodeInfo(context.Context, []byte) ([]byte, error) {
	return encodeNodeInfo(s.cfg.NodeID, s.cfg.HTTPAddr, s.fsm.AppliedIndex(), s.localBuild()), nil
}

// serveNodeStats serves methodNodeStats: the leader's view of every node.
func (s *Store) serveNodeStats(context.Context, []byte) ([]byte, error) {
	var body []byte
	err := s.asLeader(func() error {
		body = encodeNodeStats(s.localLeaderView())
		return nil
	})
	return encodeAdminResponse(err, body), nil
}

// encodeAdminResponse: format byte 1, the error's status and sentinel number
// (wireerror.go), uvarint len(message), message, then the method's body.
func encodeAdminResponse(err error, body []byte) []byte {
	w := toWire(err)
	b := []byte{rpcFormat, byte(w.status), w.kind}
	b = appendString(b, w.msg)
	return append(b, body...)
}

// decodeAdminResponse returns the body of a successful answer, or the error
// it carries.
func decodeAdminResponse(b []byte) ([]byte, error) {
	d := decoder{b: b}
	d.format(rpcFormat)
	w := wireError{status: rpcStatus(d.byte()), kind: d.byte(), msg: d.string()}
	if d.err != nil {
		return nil, fmt.Errorf("%w: malformed membership answer: %v", ErrOutcomeUnknown, d.err)
	}
	if err := w.err(); err != nil {
		return nil, err
	}
	return d.b, nil
}

// encodeJoinRequest: format byte 1, mode (0 join, 1 register own address),
// then uvarint-length-prefixed id, peer address and HTTP address.
func encodeJoinRequest(r JoinRequest, register bool) []byte {
	b := []byte{rpcFormat, flag(register)}
	for _, s := range []string{r.ID, r.PeerAddr, r.HTTPAddr} {
		b = appendString(b, s)
	}
	return b
}

func decodeJoinRequest(b []byte) (JoinRequest, bool, error) {
	d := decoder{b: b}
	d.format(rpcFormat)
	mode := d.byte()
	r := JoinRequest{ID: d.string(), PeerAddr: d.string(), HTTPAddr: d.string()}
	if d.err == nil && mode > 1 {
		d.err = fmt.Errorf("unsupported mode %d", mode)
	}
	if err := d.done(); err != nil {
		return JoinRequest{}, false, err
	}
	return r, mode == 1, nil
}

// encodeIDRequest: format byte 1, uvarint-length-prefixed server id.
func encodeIDRequest(id string) []byte {
	return appendString([]byte{rpcFormat}, id)
}

func decodeIDRequest(b []byte) (string, error) {
	d := decoder{b: b}
	d.format(rpcFormat)
	id := d.string()
	if err := d.done(); err != nil {
		return "", err
	}
	return id, nil
}

// nodeInfo is one node's answer to the leader's probe.
type nodeInfo struct {
	id       string
	httpAddr string
	applied  uint64
	build    Build // zero from a node that predates it
}

// encodeNodeInfo: format byte 1, id, HTTP address, uvarint applied index,
// then the build section (build.go), which older decoders leave unread.
func encodeNodeInfo(id, httpAddr string, applied uint64, build Build) []byte {
	b := appendString([]byte{rpcFormat}, id)
	b = appendString(b, httpAddr)
	b = binary.AppendUvarint(b, applied)
	return appendBuild(b, build)
}

// decodeNodeInfo ignores bytes after the fields it knows: a node of a later
// build may say more about itself.
func decodeNodeInfo(b []byte) (nodeInfo, error) {
	d := decoder{b: b}
	d.format(rpcFormat)
	n := nodeInfo{id: d.string(), httpAddr: d.string(), applied: d.uvarint()}
	if d.err == nil && len(d.b) > 0 {
		n.build = d.build()
	}
	return n, d.err
}

// nodeStat is the leader's view of one node.
type nodeStat struct {
	applied     uint64
	lastContact time.Duration
	healthy     bool
	build       Build // zero when unknown
}

// encodeNodeStats: uvarint count, then per node: uvarint-prefixed id,
// uvarint applied, uvarint last contact in ms, healthy byte. Then, unread by
// builds that predate it, a uvarint count of builds and per node its
// uvarint-prefixed id and build section (build.go).
func encodeNodeStats(stats map[string]nodeStat) []byte {
	b := binary.AppendUvarint(nil, uint64(len(stats)))
	for id, st := range stats {
		b = appendString(b, id)
		b = binary.AppendUvarint(b, st.applied)
		b = binary.AppendUvarint(b, uint64(st.lastContact.Milliseconds()))
		b = append(b, flag(st.healthy))
	}
	b = binary.AppendUvarint(b, uint64(len(stats)))
	for id, st := range stats {
		b = appendString(b, id)
		b = appendBuild(b, st.build)
	}
	return b
}

func decodeNodeStats(b []byte) (map[string]nodeStat, error) {
	d := decoder{b: b}
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		return nil, errShort
	}
	out := make(map[string]nodeStat, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		id := d.string()
		st := nodeStat{applied: d.uvarint(), lastContact: time.Duration(d.uvarint()) * time.Millisecond, healthy: d.byte() != 0}
		out[id] = st
	}
	if d.err != nil || len(d.b) == 0 {
		return out, d.err
	}
	builds := d.uvarint()
	for i := uint64(0); i < builds && d.err == nil; i++ {
		id := d.string()
		b := d.build()
		if st, ok := out[id]; ok && d.err == nil {
			st.build = b
			out[id] = st
		}
	}
	return out, d.err
}
