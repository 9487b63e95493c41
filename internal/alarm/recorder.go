package alarm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/dbsqlc"
)

// flushEvery is how often a Recorder writes what it saw: at most one write per carrier and
// process per flush, however many requests dispatch and the webhook handler serve.
const flushEvery = time.Second

// maxSignatureKeys bounds the (carrier, minute) counts held between flushes. The webhook handler
// only reports configured carriers, so this is a guard, not a limit anyone should reach.
const maxSignatureKeys = 1000

// Recorder collects, in memory, what the alarms need from hot paths (each carrier call, each
// forged webhook) and writes it to Postgres once a second from Run: dispatch and the webhook
// handler never wait on it. Safe for concurrent use.
type Recorder struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	q      *dbsqlc.Queries
	now    func() time.Time

	mu   sync.Mutex
	auth map[string]*authSeen // by carrier, since the last flush
	sigs map[signatureKey]int64
}

type authSeen struct{ success, failure time.Time }

type signatureKey struct {
	carrier string
	minute  time.Time
}

// NewRecorder returns a Recorder writing through pool; now may be nil (time.Now).
func NewRecorder(pool *pgxpool.Pool, logger *slog.Logger, now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{pool: pool, logger: logger, q: dbsqlc.New(), now: now,
		auth: map[string]*authSeen{}, sigs: map[signatureKey]int64{}}
}

// CarrierAuth records that carrier accepted (ok) or refused (401/403) our credentials. It has
// the signature of dispatch.Hooks; ctx is unused because nothing is written here.
func (r *Recorder) CarrierAuth(_ context.Context, carrier string, ok bool) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.auth[carrier]
	if a == nil {
		a = &authSeen{}
		r.auth[carrier] = a
	}
	if ok {
		a.success = now
	} else {
		a.failure = now
	}
}

// resultBadSignature is webhook.ResultBadSignature, spelled out so that alarm does not depend on
// the webhook package.
const resultBadSignature = "bad_signature"

// WebhookReceived has the signature of webhook.Hooks: it counts bad signatures for the alarm and
// ignores every other result.
func (r *Recorder) WebhookReceived(carrier, result string) {
	if result == resultBadSignature {
		r.WebhookBadSignature(carrier)
	}
}

// WebhookBadSignature counts a webhook request for carrier that failed signature verification.
// Call it only for configured carriers.
func (r *Recorder) WebhookBadSignature(carrier string) {
	k := signatureKey{carrier: carrier, minute: r.now().Truncate(time.Minute)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sigs[k]; !ok && len(r.sigs) >= maxSignatureKeys {
		return
	}
	r.sigs[k]++
}

// Run flushes once a second until ctx ends, then a last time. Start it with the service and
// wait for it to return before closing the pool.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := r.Flush(ctx); err != nil {
				r.logger.ErrorContext(ctx, "alarm recorder: last flush failed", "error", err)
			}
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := r.Flush(fctx); err != nil && ctx.Err() == nil {
				r.logger.WarnContext(ctx, "alarm recorder: flush failed; will retry", "error", err)
			}
			cancel()
		}
	}
}

// Flush writes what was recorded since the last flush. What it could not write is kept for the
// next one.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	auth, sigs := r.auth, r.sigs
	r.auth, r.sigs = map[string]*authSeen{}, map[signatureKey]int64{}
	r.mu.Unlock()

	var errs []error
	for carrier, a := range auth {
		p := dbsqlc.CarrierHealthRecordParams{Carrier: carrier}
		if !a.success.IsZero() {
			p.SuccessAt = &a.success
		}
		if !a.failure.IsZero() {
			p.AuthFailureAt = &a.failure
		}
		if err := r.q.CarrierHealthRecord(ctx, r.pool, p); err != nil {
			errs = append(errs, fmt.Errorf("carrier %s: %w", carrier, err))
			r.keepAuth(carrier, a)
		}
	}
	if len(sigs) > 0 {
		p := dbsqlc.WebhookSignatureFailuresAddParams{}
		for _, k := range slices.SortedFunc(maps.Keys(sigs), compareSignatureKeys) {
			p.Carriers = append(p.Carriers, k.carrier)
			p.Minutes = append(p.Minutes, k.minute)
			p.Failures = append(p.Failures, sigs[k])
		}
		if err := r.q.WebhookSignatureFailuresAdd(ctx, r.pool, p); err != nil {
			errs = append(errs, fmt.Errorf("webhook signature failures: %w", err))
			r.keepSignatures(sigs)
		}
	}
	return errors.Join(errs...)
}

// keepAuth puts back observations that could not be written, unless newer ones came meanwhile.
func (r *Recorder) keepAuth(carrier string, a *authSeen) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.auth[carrier]
	if cur == nil {
		r.auth[carrier] = a
		return
	}
	if cur.success.Before(a.success) {
		cur.success = a.success
	}
	if cur.failure.Before(a.failure) {
		cur.failure = a.failure
	}
}

func (r *Recorder) keepSignatures(sigs map[signatureKey]int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, n := range sigs {
		r.sigs[k] += n
	}
}

// compareSignatureKeys orders the upsert's rows, so two processes flushing at once lock them in
// the same order.
func compareSignatureKeys(a, b signatureKey) int {
	return cmp.Or(strings.Compare(a.carrier, b.carrier), a.minute.Compare(b.minute))
}
