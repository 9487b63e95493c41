package dbtest

import (
	"cmp"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/waybill/waybill/internal/migrate"
)

// NewRiver makes a River client on pool with cfg (nil for none) and does not start it: for tests
// that only insert, read or control jobs. Waybill's schema and a silent logger unless cfg says
// otherwise.
func NewRiver(t testing.TB, pool *pgxpool.Pool, cfg *river.Config) *river.Client[pgx.Tx] {
	t.Helper()
	if cfg == nil {
		cfg = &river.Config{}
	}
	cfg.Schema = cmp.Or(cfg.Schema, migrate.Schema)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		t.Fatalf("dbtest: river client: %v", err)
	}
	return client
}

// StartRiver makes a River client as NewRiver does, subscribes to the given event kinds (nil
// channel without any), starts it, and stops it when t ends, before the pool closes: gracefully
// within 10 s, else cancelling the jobs still running (and failing t).
//
// Cleanups run last first: what the workers need (a dispatcher, a completer) is to be started,
// and its cleanup registered, before StartRiver, so that River stops first.
func StartRiver(t testing.TB, pool *pgxpool.Pool, cfg *river.Config, kinds ...river.EventKind) (*river.Client[pgx.Tx], <-chan *river.Event) {
	t.Helper()
	client := NewRiver(t, pool, cfg)
	var events <-chan *river.Event
	if len(kinds) > 0 {
		var cancel func()
		events, cancel = client.Subscribe(kinds...)
		t.Cleanup(cancel)
	}
	if err := client.Start(context.Background()); err != nil {
		t.Fatalf("dbtest: start river: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := client.Stop(ctx); err != nil {
			t.Errorf("dbtest: stop river: %v", err)
			hardCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = client.StopAndCancel(hardCtx)
		}
	})
	return client, events
}

// FastRetry retries a failed job after 50 ms times its attempt, to keep fault tests short;
// production uses River's default (1 s, 16 s, 81 s…).
type FastRetry struct{}

// NextRetry implements river.ClientRetryPolicy.
func (FastRetry) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(time.Duration(job.Attempt) * 50 * time.Millisecond)
}
