package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"time"
)

// Defaults applied to zero-valued configuration fields.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultMaxFrameBytes    = 64 << 20
	DefaultDialTimeout      = 2 * time.Second
	DefaultConnsPerPeer     = 2
	DefaultWriteTimeout     = 10 * time.Second

	DefaultIdleTimeout        = 2 * time.Minute
	DefaultClientIdleTimeout  = time.Minute // below DefaultIdleTimeout: see ClientConfig.IdleTimeout
	DefaultMaxConns           = 1024
	DefaultMaxConnsPerPeer    = 128
	DefaultMaxInFlightPerConn = 256
	DefaultMaxInFlight        = 4096
)

// Config configures a Mux, the listening side of the peer port.
type Config struct {
	// BindAddr is the TCP address to listen on, e.g. "127.0.0.1:0". Required.
	BindAddr string

	// AdvertiseAddr is the address peers dial to reach this node. Raft uses it
	// as the local address, so it must be routable from every peer. Empty means
	// the listener's actual address, which lets tests bind port 0; in that case
	// the bind address must not be unspecified (0.0.0.0 or ::).
	AdvertiseAddr string

	// HandshakeTimeout bounds how long an accepted connection may take to send
	// its protocol byte, and how long a raft connection may wait for raft to
	// accept it. A silent client is disconnected after this. Default 5s.
	HandshakeTimeout time.Duration

	// MaxFrameBytes is the largest RPC frame (header included) this node accepts
	// or sends. A peer that sends a larger frame is disconnected. Default 64 MiB.
	MaxFrameBytes int

	// WriteTimeout bounds a single write of RPC responses to a peer that has
	// stopped reading; the connection is closed when it passes. Default 10s.
	WriteTimeout time.Duration

	// IdleTimeout: an RPC connection that has no request in flight and
	// delivers no bytes for this long is closed (so is one that stalls this
	// long inside a frame). Clients redial transparently; keep their
	// ClientConfig.IdleTimeout below this. Raft's connections are raft's to
	// manage. Default 2m.
	IdleTimeout time.Duration

	// MaxConns caps the accepted connections open at once (raft and RPC);
	// MaxConnsPerPeer caps them per remote IP. A connection over either cap
	// is closed as soon as it is accepted, before anything is read from it,
	// and logged (at most every 10 s). Defaults 1024 and 128.
	MaxConns        int
	MaxConnsPerPeer int

	// MaxInFlightPerConn caps the RPC requests one connection may have
	// running at once, MaxInFlight those of the whole Mux. At either cap the
	// connection's reader stops reading until a request finishes: the peer
	// is slowed by TCP flow control; nothing is refused or dropped.
	// Defaults 256 and 4096.
	MaxInFlightPerConn int
	MaxInFlight        int

	// TLS, when set, makes the peer port mutual TLS: an accepted connection
	// must complete the handshake, with a certificate from the cluster CA,
	// within HandshakeTimeout before its protocol byte is read, and raft dials
	// use TLS too. Nil means plain TCP (unauthenticated; say so in the logs).
	TLS *PeerTLS

	// Logger receives transport logs with the attribute component=transport.
	// Nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports whether the configuration is usable. Zero values are valid
// and mean "use the default".
func (c Config) Validate() error {
	var errs []error
	if c.BindAddr == "" {
		errs = append(errs, errors.New("BindAddr is required"))
	} else if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
		errs = append(errs, fmt.Errorf("BindAddr %q: %w", c.BindAddr, err))
	}
	if c.AdvertiseAddr != "" {
		if err := checkAdvertisable(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("AdvertiseAddr: %w", err))
		}
	}
	if c.HandshakeTimeout < 0 {
		errs = append(errs, errors.New("HandshakeTimeout must not be negative"))
	}
	if c.WriteTimeout < 0 {
		errs = append(errs, errors.New("WriteTimeout must not be negative"))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, errors.New("IdleTimeout must not be negative"))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"MaxConns", c.MaxConns}, {"MaxConnsPerPeer", c.MaxConnsPerPeer}, {"MaxInFlightPerConn", c.MaxInFlightPerConn}, {"MaxInFlight", c.MaxInFlight}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", f.name))
		}
	}
	if err := checkFrameBytes(c.MaxFrameBytes); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("transport: invalid config: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerPeer == 0 {
		c.MaxConnsPerPeer = DefaultMaxConnsPerPeer
	}
	if c.MaxInFlightPerConn == 0 {
		c.MaxInFlightPerConn = DefaultMaxInFlightPerConn
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	c.Logger = componentLogger(c.Logger)
	return c
}

// ClientConfig configures a Client, the dialing side of the RPC protocol.
type ClientConfig struct {
	// DialTimeout bounds connecting to a peer. Default 2s.
	DialTimeout time.Duration

	// MaxFrameBytes is the largest RPC frame (header included) the client sends
	// or accepts. A larger request fails with ErrNotSent and ErrFrameTooLarge; a
	// larger response breaks the connection. Default 64 MiB.
	MaxFrameBytes int

	// ConnsPerPeer is the number of persistent connections kept to each
	// address. Requests are pipelined on them round-robin. Default 2.
	ConnsPerPeer int

	// WriteTimeout bounds a single write to a peer that has stopped reading; the
	// connection is closed (and its requests fail with ErrConnLost) when it
	// passes. Default 10s.
	WriteTimeout time.Duration

	// IdleTimeout: a pooled connection with no call in flight that has been
	// unused this long is closed and redialed by the next call instead of
	// used, so the client never sends a request on a connection the server
	// may be closing for idleness at that moment (which would make the
	// request's outcome unknown). Keep it below the server's
	// Config.IdleTimeout. Default 1m.
	IdleTimeout time.Duration

	// TLS, when set, dials peers with mutual TLS (PeerTLS.Client).
	TLS *PeerTLS

	// Logger receives client logs with component=transport. Nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports whether the configuration is usable. Zero values are valid
// and mean "use the default". NewClient also replaces negative values with
// defaults, so calling Validate is how a caller learns about them.
func (c ClientConfig) Validate() error {
	var errs []error
	if c.DialTimeout < 0 {
		errs = append(errs, errors.New("DialTimeout must not be negative"))
	}
	if c.ConnsPerPeer < 0 {
		errs = append(errs, errors.New("ConnsPerPeer must not be negative"))
	}
	if c.WriteTimeout < 0 {
		errs = append(errs, errors.New("WriteTimeout must not be negative"))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, errors.New("IdleTimeout must not be negative"))
	}
	if err := checkFrameBytes(c.MaxFrameBytes); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("transport: invalid client config: %w", err)
	}
	return nil
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxFrameBytes <= 0 || checkFrameBytes(c.MaxFrameBytes) != nil {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.ConnsPerPeer <= 0 {
		c.ConnsPerPeer = DefaultConnsPerPeer
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultClientIdleTimeout
	}
	c.Logger = componentLogger(c.Logger)
	return c
}

func componentLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	return l.With("component", "transport")
}

func checkFrameBytes(n int) error {
	if n == 0 {
		return nil
	}
	if n < headerLen || int64(n) > math.MaxUint32 {
		return fmt.Errorf("MaxFrameBytes must be between %d and %d", headerLen, uint64(math.MaxUint32))
	}
	return nil
}

// checkAdvertisable rejects addresses a peer could not dial back.
func checkAdvertisable(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q is not advertisable (unspecified IP)", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%q has no usable port", addr)
	}
	return nil
}
