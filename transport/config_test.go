package transport

import (
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{BindAddr: "127.0.0.1:0"}, true},
		{"all set", Config{BindAddr: ":7000", AdvertiseAddr: "node1.internal:7000", HandshakeTimeout: time.Second, MaxFrameBytes: 1 << 20, WriteTimeout: time.Second}, true},
		{"no bind", Config{}, false},
		{"bad bind", Config{BindAddr: "localhost"}, false},
		{"unspecified advertise", Config{BindAddr: ":0", AdvertiseAddr: "0.0.0.0:7000"}, false},
		{"advertise without port", Config{BindAddr: ":0", AdvertiseAddr: "10.0.0.1:0"}, false},
		{"advertise without host", Config{BindAddr: ":0", AdvertiseAddr: ":7000"}, false},
		{"negative handshake", Config{BindAddr: ":0", HandshakeTimeout: -1}, false},
		{"negative write timeout", Config{BindAddr: ":0", WriteTimeout: -1}, false},
		{"frame below header", Config{BindAddr: ":0", MaxFrameBytes: headerLen - 1}, false},
		{"negative frame", Config{BindAddr: ":0", MaxFrameBytes: -5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestClientConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  ClientConfig
		ok   bool
	}{
		{"zero", ClientConfig{}, true},
		{"set", ClientConfig{DialTimeout: time.Second, MaxFrameBytes: 4096, ConnsPerPeer: 4, WriteTimeout: time.Second}, true},
		{"negative dial", ClientConfig{DialTimeout: -1}, false},
		{"negative conns", ClientConfig{ConnsPerPeer: -1}, false},
		{"tiny frame", ClientConfig{MaxFrameBytes: 3}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestListenRejectsUnadvertisableAddress(t *testing.T) {
	checkNoLeaks(t)
	m, err := Listen(Config{BindAddr: "0.0.0.0:0", Logger: testLogger(t)})
	if err == nil {
		m.Close()
		t.Fatal("Listen on 0.0.0.0 without AdvertiseAddr succeeded")
	}
}
