// Package benchutil holds what the benchmarks of the concurrent structures
// share. It is imported by tests only.
package benchutil

import (
	"sync/atomic"
	"testing"
)

// Goroutines are the regimes every structure is measured in: g1 is one
// goroutine per core (GOMAXPROCS goroutines), g16 sixteen per core.
var Goroutines = []int{1, 16}

// RunG runs body on g goroutines per core, through b.RunParallel. Each
// goroutine gets its own id, counted from 1, to spread its keys.
func RunG(b *testing.B, g int, body func(id uint64, next func() bool)) {
	b.SetParallelism(g)
	var ids atomic.Uint64
	b.RunParallel(func(pb *testing.PB) { body(ids.Add(1), pb.Next) })
}
