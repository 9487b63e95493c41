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

	"github.com/waybill/waybill/internal/migrate"
)

// StartRiver makes a River client on pool with cfg (Waybill's schema and a silent logger unless
// cfg says otherwise), subscribes to the given event kinds (nil channel without any), starts it,
// and stops it when t ends, before the pool closes.
func StartRiver(t testing.TB, pool *pgxpool.Pool, cfg *river.Config, kinds ...river.EventKind) (*river.Client[pgx.Tx], <-chan *river.Event) {
	t.Helper()
	cfg.Schema = cmp.Or(cfg.Schema, migrate.Schema)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		t.Fatalf("dbtest: river client: %v", err)
	}
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
		}
	})
	return client, events
}
