//go:build !unix

package bench

import "time"

// ProcessCPU is not measured on this system: zero.
func ProcessCPU() time.Duration { return 0 }
