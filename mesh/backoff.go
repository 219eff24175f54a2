package mesh

import (
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Redial and resubscribe backoff: capped, jittered, exponential.
const (
	minBackoff = 100 * time.Millisecond
	// maxBackoff caps the wait between attempts at 1.5 x 2 s = 3 s: a healed
	// partition is redialed within this.
	maxBackoff = 2 * time.Second
	// An address that has not answered for slowAfter is dialed at most
	// every 1.5 x slowBackoff: a member may announce addresses that never
	// answer (or a node be gone for days), and the mesh must not spend
	// itself dialing them; a partition that long still heals within that.
	slowAfter   = time.Minute
	slowBackoff = 40 * time.Second
)

// NewBackoff returns the backoff of one redial or resubscribe loop.
func NewBackoff() *backoff.ExponentialBackOff {
	return &backoff.ExponentialBackOff{InitialInterval: minBackoff, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: maxBackoff}
}
