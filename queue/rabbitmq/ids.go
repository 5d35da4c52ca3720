package rabbitmq

import (
	"math/rand/v2"
	"sync"
	"time"
)

// idEpoch is the start of message ids' time: 2024-01-01 UTC.
var idEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ids makes message and dead-letter ids: 41 bits of milliseconds since
// idEpoch (69 years), 10 bits naming this process (random), 12 bits of
// sequence. They grow in this process, roughly in time across processes,
// and two processes collide only when they drew the same 10 bits and make
// an id in the same millisecond with the same sequence. The wall clock is
// read, not the injected one: an id orders sends, it decides nothing.
type ids struct {
	mu     sync.Mutex
	node   int64
	lastMS int64
	seq    int64
}

func newIDs() *ids { return &ids{node: rand.Int64N(1 << 10)} }

func (g *ids) next() int64 {
	ms := time.Since(idEpoch).Milliseconds()
	g.mu.Lock()
	defer g.mu.Unlock()
	if ms <= g.lastMS {
		// The same millisecond (or the clock stepped back): the next
		// sequence number, borrowing the next millisecond when full.
		ms = g.lastMS
		g.seq++
		if g.seq == 1<<12 {
			ms, g.seq = ms+1, 0
		}
	} else {
		g.seq = 0
	}
	g.lastMS = ms
	return ms<<22 | g.node<<12 | g.seq
}
