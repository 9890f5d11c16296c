package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// clientSender sends a kv workload through the Go client (-via client), so
// the figures are those a client user gets: the client's own transport and
// pool, its request building and response decoding, its Idempotency-Key on
// every write. Each endpoint gets a Client of its own, with one endpoint, so
// that -endpoint-mode routes requests exactly as the raw mode does, and no
// retries, so that errors are counted as the raw mode counts them.
type clientSender struct {
	clients []*client.Client
	cfg     config
	ttl     []client.Option
	read    []client.Option
}

func newClientSender(cfg config) (*clientSender, error) {
	s := &clientSender{cfg: cfg}
	for _, e := range cfg.endpoints {
		c, err := client.New(client.Config{
			Endpoints:       []string{e},
			APIKey:          cfg.apiKey,
			MaxConnsPerNode: max(cfg.concurrency, cfg.preloadConcurrency),
			Timeout:         cfg.timeout,
			CallTimeout:     cfg.timeout,
			Retry:           client.NoRetry(),
			UserAgent:       "kvbench",
		})
		if err != nil {
			return nil, err
		}
		s.clients = append(s.clients, c)
	}
	if cfg.ttlSeconds > 0 {
		s.ttl = []client.Option{client.TTL(time.Duration(cfg.ttlSeconds * float64(time.Second)))}
	}
	if cfg.consistency == "stale" {
		s.read = []client.Option{client.Stale()}
	}
	return s, nil
}

func (s *clientSender) close() {
	for _, c := range s.clients {
		c.Close()
	}
}

// send performs o on key through the client of endpoint index ep.
func (s *clientSender) send(ctx context.Context, ep int, w *worker, o op, key string, keyIndex int) (outcome, string) {
	c := s.clients[ep]
	var err error
	switch o {
	case opGet:
		_, err = c.Get(ctx, key, s.read...)
	case opPut:
		var v json.RawMessage
		if s.cfg.workload == "counter" {
			v = json.RawMessage("0")
		} else {
			v = appendValue(w.body.AvailableBuffer(), keyIndex, s.cfg.valueSize)
		}
		_, err = c.Put(ctx, key, v, s.ttl...)
	case opIncr:
		_, err = c.Incr(ctx, key, s.cfg.incrBy, s.ttl...)
	}
	if err == nil {
		return outcome{}, ""
	}
	var ae *client.APIError
	switch {
	case o == opGet && errors.Is(err, client.ErrNotFound):
		return outcome{miss: true}, ""
	case errors.As(err, &ae) && ae.Status != 0:
		return outcome{errKey: statusKey(ae.Status, ae.Code)}, ""
	case errors.As(err, &ae) && ae.Err != nil:
		return outcome{errKey: transportErrorKey(ae.Err)}, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return outcome{errKey: "transport: timeout"}, err.Error()
	}
	return outcome{errKey: statusKey(http.StatusTeapot, "client: "+err.Error())}, err.Error()
}
