package coordinator

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"

	"github.com/google/uuid"
)

// idGen stamps allocation IDs in the plan applier: UUIDv7 (RFC 9562),
// 48 bits of Unix milliseconds, a 12-bit counter within the millisecond
// (method 1 of §6.2; an overflow borrows the next millisecond), and 62
// random bits. In lowercase hex the IDs sort in the order they were
// stamped, and plans are proposed in that order, so bbolt appends new
// allocations at the end of the allocs bucket (and of each job's range
// in allocs_by_job) instead of dirtying a random page per allocation.
// The random bits keep IDs unique across servers and leader changes; a
// clock that goes back only costs the ordering, never uniqueness.
type idGen struct {
	mu     sync.Mutex
	now    func() time.Time
	lastMS uint64
	seq    uint64
}

func newIDGen(now func() time.Time) *idGen { return &idGen{now: now} }

// next returns a new ID.
func (g *idGen) next() string {
	var b [16]byte
	rand.Read(b[8:])
	g.mu.Lock()
	ms := uint64(g.now().UnixMilli())
	if ms <= g.lastMS {
		ms = g.lastMS
		g.seq++
		if g.seq > 0xfff {
			ms++
			g.seq = 0
		}
	} else {
		g.seq = 0
	}
	g.lastMS = ms
	seq := g.seq
	g.mu.Unlock()
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], ms<<16)
	copy(b[:6], t[:6])
	b[6] = 0x70 | byte(seq>>8)
	b[7] = byte(seq)
	b[8] = b[8]&0x3f | 0x80
	return uuid.UUID(b).String()
}
