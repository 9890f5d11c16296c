package store

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// handleClockPing answers a clock ping with this node's wall clock.
func (s *Store) handleClockPing(_ context.Context, req []byte) ([]byte, error) {
	if len(req) != 0 {
		return nil, errors.New("store: clock ping carries no payload")
	}
	return binary.AppendVarint([]byte{rpcFormat}, s.cfg.Clock().UnixNano()), nil
}

func decodeClockPong(b []byte) (int64, error) {
	d := decoder{b: b}
	d.format(rpcFormat)
	ns := d.varint()
	return ns, d.done()
}

// clockLoop measures every other server's clock every ClockPingInterval and
// publishes the view; one ping per peer is in flight at most, so a peer that
// does not answer delays nobody else's samples.
func (s *Store) clockLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ClockPingInterval)
	defer t.Stop()
	var pings sync.WaitGroup
	defer pings.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // runs before pings.Wait: no ping outlives the store
	for {
		if s.refreshClockConfig() {
			s.clock.mu.Lock()
			for _, srv := range s.clock.config {
				id := string(srv.ID)
				if id == s.cfg.NodeID || s.clock.inflight[id] {
					continue
				}
				s.clock.inflight[id] = true
				pings.Add(1)
				go func() {
					defer pings.Done()
					s.pingClock(ctx, id, string(srv.Address))
				}()
			}
			s.clock.mu.Unlock()
		}
		s.logClockCrossings()
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
	}
}

// refreshClockConfig reads raft's configuration into the clock view
// (forgetting servers that left); false when raft could not answer.
func (s *Store) refreshClockConfig() bool {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return false
	}
	s.clock.mu.Lock()
	defer s.clock.mu.Unlock()
	s.clock.config = f.Configuration().Servers
	for id := range s.clock.samples {
		if !inConfig(s.clock.config, id) {
			delete(s.clock.samples, id)
			delete(s.clock.outside, id)
		}
	}
	s.clock.publish(s.cfg.NodeID)
	return true
}

func inConfig(servers []raft.Server, id string) bool {
	for _, srv := range servers {
		if string(srv.ID) == id {
			return true
		}
	}
	return false
}

// pingClock takes one sample of peer id and publishes it.
func (s *Store) pingClock(ctx context.Context, id, addr string) {
	ctx, cancel := context.WithTimeout(ctx, clockPingTimeout)
	defer cancel()
	sendWall, sendMono := s.cfg.Clock(), time.Now()
	resp, err := s.rpc.Call(ctx, addr, methodClockPing, nil)
	rtt := time.Since(sendMono)
	var remote int64
	if err == nil {
		remote, err = decodeClockPong(resp)
	}
	s.clock.mu.Lock()
	defer s.clock.mu.Unlock()
	s.clock.inflight[id] = false
	if err != nil || rtt > clockPingTimeout {
		s.log.Debug("clock ping failed", "peer", id, "err", err)
		return
	}
	if prev, ok := s.clock.samples[id]; ok && prev.sent.After(sendMono) {
		return // a ping sent later has already answered
	}
	half := rtt / 2
	mid := sendWall.UnixNano() + int64(half)
	s.clock.samples[id] = clockSample{
		offset: time.Duration(remote - mid),
		err:    half,
		wallNs: mid,
		mono:   sendMono.Add(half),
		sent:   sendMono,
	}
	s.clock.publish(s.cfg.NodeID)
}

// measureClocks reads the configuration and pings every other server now,
// waiting for the answers (at most clockPingTimeout), so that a decision
// about who may lead rests on the current configuration and on samples
// taken after it was asked for, not up to a ping interval earlier.
func (s *Store) measureClocks(ctx context.Context) {
	s.refreshClockConfig()
	v := s.clock.view.Load()
	if v == nil {
		return
	}
	var wg sync.WaitGroup
	for _, p := range v.peers {
		wg.Go(func() { s.pingClock(ctx, p.id, p.addr) })
	}
	wg.Wait()
}

// logClockCrossings logs every peer, and this node, that crossed the bound
// since the last call, in either direction.
func (s *Store) logClockCrossings() {
	v := s.clock.view.Load()
	if v == nil {
		return
	}
	wall, mono := s.cfg.Clock(), time.Now()
	est := v.estimates(wall.UnixNano(), mono)
	bound := s.cfg.MaxClockOffset
	s.clock.mu.Lock()
	defer s.clock.mu.Unlock()
	for i, p := range v.peers {
		if !est[i].ok {
			continue
		}
		out := !agrees(estimate{ok: true}, est[i], bound)
		if out == s.clock.outside[p.id] {
			continue
		}
		s.clock.outside[p.id] = out
		attrs := []any{"peer", p.id, "offset_ms", ms(est[i].offset), "error_ms", ms(est[i].err), "bound", bound.String()}
		if out {
			s.log.Warn("peer clock offset beyond bound", attrs...)
		} else {
			s.log.Info("peer clock offset back within bound", attrs...)
		}
	}
	verdict := v.judge(est, bound)
	out := verdict.certain()
	if out != s.clock.outside[""] {
		s.clock.outside[""] = out
		if out {
			s.log.Error("this node's clock is outside the bound of a majority: it will not lead, stamp time or serve as a clock for reads until it agrees again",
				"reason", verdict.String(), "bound", bound.String())
		} else {
			s.log.Info("this node's clock is within bound of a majority again", "reason", verdict.String())
		}
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
