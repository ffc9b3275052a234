//go:build !linux

package pace

import "time"

// threadCPU: no thread CPU clock here; Unit.End returns its fallback.
func threadCPU() (time.Duration, bool) { return 0, false }
