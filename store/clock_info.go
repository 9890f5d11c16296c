package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PeerClock is one server's clock as this node measures it.
type PeerClock struct {
	// Measured is false when no sample was ever taken (then the rest is zero).
	Measured bool
	// Offset is the server's clock minus this node's; Error bounds the
	// measurement (half its round trip); Age is the time since the sample.
	Offset, Error, Age time.Duration
	// WithinBound: the server's clock agrees with a majority of the voters
	// within MaxClockOffset, as far as this node's samples show (for this
	// node itself: the node's own verdict).
	WithinBound bool
}

// clockInfo returns this node's view of every server's clock, by ID.
func (s *Store) clockInfo() map[string]PeerClock {
	out := map[string]PeerClock{}
	v := s.clock.view.Load()
	if v == nil {
		return out
	}
	wall, mono := s.cfg.Clock(), time.Now()
	est := v.estimates(wall.UnixNano(), mono)
	out[s.cfg.NodeID] = PeerClock{Measured: true, WithinBound: v.judge(est, s.cfg.MaxClockOffset).ok}
	for i, p := range v.peers {
		if !p.has {
			out[p.id] = PeerClock{}
			continue
		}
		out[p.id] = PeerClock{
			Measured:    true,
			Offset:      p.sample.at(wall.UnixNano(), mono),
			Error:       p.sample.err,
			Age:         mono.Sub(p.sample.mono),
			WithinBound: v.peerWithin(i, est, s.cfg.MaxClockOffset),
		}
	}
	return out
}

// clockCollector exports this node's clock view when Prometheus scrapes.
type clockCollector struct {
	s                     *Store
	offset, errDesc, with *prometheus.Desc
}

func newClockCollector(s *Store) *clockCollector {
	return &clockCollector{
		s: s,
		offset: prometheus.NewDesc("quorumkv_clock_offset_seconds",
			"Measured offset of each other server's clock from this node's (positive: the peer is ahead), corrected for steps of this node's clock since the sample.",
			[]string{"peer"}, nil),
		errDesc: prometheus.NewDesc("quorumkv_clock_offset_error_seconds",
			"Error bound of quorumkv_clock_offset_seconds (half the measuring round trip).",
			[]string{"peer"}, nil),
		with: prometheus.NewDesc("quorumkv_clock_within_bound",
			"1 when this node's clock agrees with a majority of the voters within --max-clock-offset (it may lead and stamp time), else 0.",
			nil, nil),
	}
}

func (c *clockCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.offset
	ch <- c.errDesc
	ch <- c.with
}

func (c *clockCollector) Collect(ch chan<- prometheus.Metric) {
	within := 0.0
	for id, pc := range c.s.clockInfo() {
		if id == c.s.cfg.NodeID {
			if pc.WithinBound {
				within = 1
			}
			continue
		}
		if pc.Measured {
			ch <- prometheus.MustNewConstMetric(c.offset, prometheus.GaugeValue, pc.Offset.Seconds(), id)
			ch <- prometheus.MustNewConstMetric(c.errDesc, prometheus.GaugeValue, pc.Error.Seconds(), id)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.with, prometheus.GaugeValue, within)
}
