package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// handleMembershipRPC serves the methods above; ok is false for any other.
// The methods that change membership run only for an authenticated member
// (peerguard.go); the read-only ones answer anyone who reaches the port.
func (s *Store) handleMembershipRPC(ctx context.Context, method uint8, req []byte) (resp []byte, ok bool, err error) {
	switch method {
	case methodJoin, methodRemove, methodTransfer:
		if err := s.authorizePeer(ctx, method); err != nil {
			return encodeAdminResponse(err, nil), true, nil
		}
	}
	switch method {
	case methodJoin:
		jr, register, err := decodeJoinRequest(req)
		if err != nil {
			return nil, true, fmt.Errorf("store: bad join request: %w", err)
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
		return encodeAdminResponse(err, body), true, nil
	case methodRemove, methodTransfer:
		id, err := decodeIDRequest(req)
		if err != nil {
			return nil, true, fmt.Errorf("store: bad membership request: %w", err)
		}
		err = s.asLeader(func() error {
			if method == methodRemove {
				return s.removeAsLeader(ctx, id)
			}
			return s.transferAsLeader(ctx, id)
		})
		return encodeAdminResponse(err, nil), true, nil
	case methodNodeInfo:
		return encodeNodeInfo(s.cfg.NodeID, s.cfg.HTTPAddr, s.fsm.AppliedIndex()), true, nil
	case methodNodeStats:
		var body []byte
		err := s.asLeader(func() error {
			body = encodeNodeStats(s.localLeaderView())
			return nil
		})
		return encodeAdminResponse(err, body), true, nil
	}
	return nil, false, nil
}

// adminErrors are the sentinels a membership answer carries by number.
// Index 0 means none (use the rpc status); never renumber.
var adminErrors = []error{nil, ErrNodeNotFound, ErrLastVoter, ErrNodeConflict, ErrNotVoter,
	ErrTransferFailed, ErrInvalidNode, ErrNoLeader, ErrTimeout, ErrPeerUnauthenticated, ErrClockOffset}

// encodeAdminResponse: format byte 1, rpc status, sentinel number, uvarint
// len(message), message, then the method's body.
func encodeAdminResponse(err error, body []byte) []byte {
	kind := 0
	for i, e := range adminErrors[1:] {
		if errors.Is(err, e) {
			kind = i + 1
			break
		}
	}
	msg := errString(err)
	b := []byte{rpcFormat, byte(statusOf(err)), byte(kind)}
	b = binary.AppendUvarint(b, uint64(len(msg)))
	b = append(b, msg...)
	return append(b, body...)
}

func decodeAdminResponse(b []byte) ([]byte, error) {
	d := decoder{b: b}
	if v := d.byte(); v != rpcFormat && d.err == nil {
		return nil, fmt.Errorf("%w: membership answer in unsupported format %d", ErrOutcomeUnknown, v)
	}
	st := rpcStatus(d.byte())
	kind := int(d.byte())
	msg := string(d.bytes())
	if d.err != nil {
		return nil, fmt.Errorf("%w: malformed membership answer: %v", ErrOutcomeUnknown, d.err)
	}
	if kind > 0 && kind < len(adminErrors) {
		return nil, fmt.Errorf("%w: leader: %s", adminErrors[kind], msg)
	}
	if err := statusError(st, msg); err != nil {
		return nil, err
	}
	return d.b, nil
}

// encodeJoinRequest: format byte 1, mode (0 join, 1 register own address),
// then uvarint-length-prefixed id, peer address and HTTP address.
func encodeJoinRequest(r JoinRequest, register bool) []byte {
	b := []byte{rpcFormat, flag(register)}
	for _, s := range []string{r.ID, r.PeerAddr, r.HTTPAddr} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeJoinRequest(b []byte) (JoinRequest, bool, error) {
	d := decoder{b: b}
	if v := d.byte(); v != rpcFormat {
		return JoinRequest{}, false, fmt.Errorf("unsupported format %d", v)
	}
	mode := d.byte()
	r := JoinRequest{ID: string(d.bytes()), PeerAddr: string(d.bytes()), HTTPAddr: string(d.bytes())}
	switch {
	case d.err != nil:
		return JoinRequest{}, false, d.err
	case mode > 1:
		return JoinRequest{}, false, fmt.Errorf("unsupported mode %d", mode)
	case len(d.b) != 0:
		return JoinRequest{}, false, errors.New("trailing bytes")
	}
	return r, mode == 1, nil
}

func encodeIDRequest(id string) []byte {
	b := []byte{rpcFormat}
	b = binary.AppendUvarint(b, uint64(len(id)))
	return append(b, id...)
}

func decodeIDRequest(b []byte) (string, error) {
	d := decoder{b: b}
	if v := d.byte(); v != rpcFormat {
		return "", fmt.Errorf("unsupported format %d", v)
	}
	id := string(d.bytes())
	if d.err == nil && len(d.b) != 0 {
		return "", errors.New("trailing bytes")
	}
	return id, d.err
}

// nodeInfo is one node's answer to the leader's probe.
type nodeInfo struct {
	id       string
	httpAddr string
	applied  uint64
}

func encodeNodeInfo(id, httpAddr string, applied uint64) []byte {
	b := []byte{rpcFormat}
	b = binary.AppendUvarint(b, uint64(len(id)))
	b = append(b, id...)
	b = binary.AppendUvarint(b, uint64(len(httpAddr)))
	b = append(b, httpAddr...)
	return binary.AppendUvarint(b, applied)
}

func decodeNodeInfo(b []byte) (nodeInfo, error) {
	d := decoder{b: b}
	if v := d.byte(); v != rpcFormat {
		return nodeInfo{}, fmt.Errorf("unsupported format %d", v)
	}
	n := nodeInfo{id: string(d.bytes()), httpAddr: string(d.bytes()), applied: d.uvarint()}
	return n, d.err
}

// nodeStat is the leader's view of one node.
type nodeStat struct {
	applied     uint64
	lastContact time.Duration
	healthy     bool
}

// encodeNodeStats: uvarint count, then per node: uvarint-prefixed id,
// uvarint applied, uvarint last contact in ms, healthy byte.
func encodeNodeStats(stats map[string]nodeStat) []byte {
	b := binary.AppendUvarint(nil, uint64(len(stats)))
	for id, st := range stats {
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		b = binary.AppendUvarint(b, st.applied)
		b = binary.AppendUvarint(b, uint64(st.lastContact.Milliseconds()))
		b = append(b, flag(st.healthy))
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
		id := string(d.bytes())
		st := nodeStat{applied: d.uvarint(), lastContact: time.Duration(d.uvarint()) * time.Millisecond, healthy: d.byte() != 0}
		out[id] = st
	}
	return out, d.err
}
