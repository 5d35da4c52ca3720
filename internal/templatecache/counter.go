package templatecache

import (
	"math/rand/v2"
	"runtime"
	"sync/atomic"
)

// counter is a striped counter for the hit path: each Add goes to a random
// stripe of its own cache line, so parallel hits do not fight over one word.
// (xsync.Counter does the same but takes and puts a sync.Pool token on each
// Add, which costs more than the add on the hit path.)
type counter struct {
	stripes []stripe
	mask    uint32
}

type stripe struct {
	n atomic.Uint64
	_ [56]byte // the rest of a 64-byte cache line
}

func newCounter() *counter {
	n := 1
	for n < 2*runtime.GOMAXPROCS(0) {
		n <<= 1
	}
	return &counter{stripes: make([]stripe, n), mask: uint32(n - 1)}
}

// Inc adds one. rand.Uint32 reads the per-thread generator of the runtime:
// no lock, no shared write.
func (c *counter) Inc() { c.stripes[rand.Uint32()&c.mask].n.Add(1) }

// Value sums the stripes; concurrent Incs may or may not be in it.
func (c *counter) Value() uint64 {
	var v uint64
	for i := range c.stripes {
		v += c.stripes[i].n.Load()
	}
	return v
}
