package store

import (
	"context"
	"fmt"
)

// authorizePeer decides whether an RPC that changes the cluster or its data
// may run: only over a connection Config.PeerAuth vouches for as a member,
// or, in insecure mode (AllowUnauthenticatedPeers), over any. Read-only
// RPCs (read index, node info, node stats) do not ask. This is the seam between the store
// and whatever authenticates the peer port: the transport puts the
// connection's identity in the handler's context and PeerAuth reads it.
// Which member may ask for what is decided elsewhere; this only keeps
// strangers out.
func (s *Store) authorizePeer(ctx context.Context, method uint8) error {
	if s.cfg.PeerAuth != nil {
		if _, ok := s.cfg.PeerAuth(ctx); ok {
			return nil
		}
	}
	if s.cfg.AllowUnauthenticatedPeers {
		return nil
	}
	s.log.Warn("refused a request from an unauthenticated peer connection", "method", method)
	return fmt.Errorf("%w: method %d needs a member's authenticated connection", ErrPeerUnauthenticated, method)
}
