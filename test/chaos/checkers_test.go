package chaos

import (
	"testing"
	"time"
)

// TestCheckTTL runs the TTL window model on hand-made histories.
func TestCheckTTL(t *testing.T) {
	start := time.UnixMilli(1_000_000)
	ms := func(v int64) int64 { return v * int64(time.Millisecond) }
	put := func(outcome string, call, ret, expiresAtMs int64) Op {
		return Op{Kind: opPut, Class: classTTL, Key: "ttl/c0/1", Value: "v", TTLms: 1000, Call: ms(call), Return: ms(ret), Outcome: outcome, ExpiresAt: expiresAtMs}
	}
	get := func(call, ret int64, found bool, expiresAtMs int64) Op {
		o := Op{Kind: opGet, Class: classTTL, Key: "ttl/c0/1", Call: ms(call), Return: ms(ret), Outcome: outOK, Found: found, ExpiresAt: expiresAtMs}
		if found {
			o.Got = "v"
		}
		return o
	}
	E := start.UnixMilli() + 1005 // written at 0..10 ms with a 1 s TTL
	cases := []struct {
		name                        string
		ops                         []Op
		resurrect, early, badStamps int
	}{
		{"visible then expired", []Op{put(outOK, 0, 10, E), get(500, 510, true, E), get(1100, 1110, false, 0)}, 0, 0, 0},
		{"read after expiry finds it", []Op{put(outOK, 0, 10, E), get(1100, 1110, true, E)}, 1, 0, 0},
		{"miss before expiry", []Op{put(outOK, 0, 10, E), get(500, 510, false, 0)}, 0, 1, 0},
		{"found again after a miss", []Op{put(outOK, 0, 10, E), get(990, 1010, false, 0), get(1000, 1002, true, E), get(1050, 1060, false, 0)}, 0, 0, 0},
		{"stamp far from ttl", []Op{put(outOK, 0, 10, E+500)}, 0, 0, 1},
		// A write of unknown outcome may take effect after a miss (here a paused
		// node applied it late, with a later stamp): not a resurrection.
		{"unknown write applied late", []Op{put(outUnknown, 0, 1500, 0), get(1600, 1610, false, 0), get(2600, 2610, true, start.UnixMilli()+3500)}, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := checkTTL(tc.ops, start, 0, 0, nil)
			if len(rep.Resurrections) != tc.resurrect || len(rep.EarlyExpiries) != tc.early || len(rep.BadStamps) != tc.badStamps {
				t.Fatalf("got resurrections %v, early %v, bad stamps %v", rep.Resurrections, rep.EarlyExpiries, rep.BadStamps)
			}
		})
	}
	// Within the cluster's clock bound the windows widen by it...
	b := maxClockOffset
	rep := checkTTL([]Op{put(outOK, 0, 10, E+400), get(950, 960, false, 0), get(1100, 1110, true, E+400)}, start, -b, b, nil)
	if len(rep.Resurrections)+len(rep.EarlyExpiries)+len(rep.BadStamps) != 0 {
		t.Fatalf("offset case: %+v", rep)
	}
	// ...and no further: a leader whose clock is 20 minutes ahead stamps an
	// expiry 20 minutes late, and judges the key expired 20 minutes early.
	jump := clockJump.Milliseconds()
	rep = checkTTL([]Op{put(outOK, 0, 10, E+jump), get(400, 410, false, 0)}, start, -b, b, nil)
	if len(rep.BadStamps) != 1 || len(rep.EarlyExpiries) != 1 {
		t.Fatalf("a clock 20 minutes off must be caught: %+v", rep)
	}
}
