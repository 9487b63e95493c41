package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/dbsqlc"
)

// Priority orders callers when the budget binds: dispatch first, polls and lookups after.
type Priority int

const (
	// High is creating tasks.
	High Priority = iota
	// Low is everything that can wait: batch polls, lookups, reconciliation.
	Low
)

// lowPromotedAfter is how long a low-priority caller stands back before it competes as high:
// a batch's poll must not starve behind a dispatch that uses the whole budget.
const lowPromotedAfter = 3 * time.Second

// Shared is one carrier's request budget across the cluster. It is safe for concurrent use.
type Shared struct {
	pool    *pgxpool.Pool
	queries *dbsqlc.Queries
	carrier string
	rate    float64
	logger  *slog.Logger
}

// NewShared returns the budget of carrier at rate requests per second (rate > 0).
func NewShared(pool *pgxpool.Pool, carrier string, rate float64, logger *slog.Logger) *Shared {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Shared{pool: pool, queries: dbsqlc.New(), carrier: carrier, rate: rate, logger: logger}
}

type patientKey struct{}

// Patient marks Low requests made with ctx as never promoted: they stand back for as long as
// dispatch waits for a token, however long that is (reconciliation pauses while dispatch needs
// the whole limit). High requests ignore it.
func Patient(ctx context.Context) context.Context {
	return context.WithValue(ctx, patientKey{}, true)
}

func isPatient(ctx context.Context) bool {
	v, _ := ctx.Value(patientKey{}).(bool)
	return v
}

// Wait blocks until the caller may send one request, or ctx ends.
func (s *Shared) Wait(ctx context.Context, p Priority) error {
	start := time.Now()
	patient := isPatient(ctx)
	for {
		low := p == Low && (patient || time.Since(start) < lowPromotedAfter)
		wait, err := s.queries.CarrierRateTake(ctx, s.pool, dbsqlc.CarrierRateTakeParams{Carrier: s.carrier, Rate: s.rate, Low: low})
		if err != nil {
			return fmt.Errorf("take a %s request token: %w", s.carrier, err)
		}
		if wait <= 0 {
			return nil
		}
		// A little jitter so that instances woken by the same refill do not all ask at once.
		d := time.Duration(wait*float64(time.Second)) + time.Duration(rand.Int64N(int64(2*time.Millisecond)))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Block stops every instance from sending for d: the carrier refused a request for its rate
// (429), or said none remain.
func (s *Shared) Block(ctx context.Context, d time.Duration) {
	if err := s.queries.CarrierRateBlock(ctx, s.pool, dbsqlc.CarrierRateBlockParams{Carrier: s.carrier, Seconds: d.Seconds()}); err != nil {
		s.logger.WarnContext(ctx, "could not share a carrier's rate-limit answer", "carrier", s.carrier, "error", err)
	}
}
