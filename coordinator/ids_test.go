package coordinator

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// IDs sort in the order they were stamped: within a millisecond, past
// 4096 of them in one millisecond, and when the clock steps back.
func TestIDGenSortsInStampOrder(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	g := newIDGen(func() time.Time { return now })
	var ids []string
	for i := range 10_000 {
		switch i {
		case 5000:
			now = now.Add(time.Millisecond)
		case 7000:
			now = now.Add(-time.Hour) // the clock went back
		case 9000:
			now = now.Add(2 * time.Hour)
		}
		ids = append(ids, g.next())
	}
	if !slices.IsSorted(ids) {
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("id %d %s does not sort after %s", i, ids[i], ids[i-1])
			}
		}
	}
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatal("duplicate IDs")
	}
	for _, id := range []string{ids[0], ids[4097], ids[9999]} {
		if len(id) != 36 || id[14] != '7' || !strings.ContainsRune("89ab", rune(id[19])) || id[8] != '-' || id[23] != '-' {
			t.Fatalf("%s is not a UUIDv7", id)
		}
	}
	// The timestamp is the clock's, in the first 48 bits.
	if ids[0][:13] != "018bcfe5-6800" {
		t.Fatalf("id %s does not start with the timestamp 1700000000000 (018bcfe56800)", ids[0])
	}
}
