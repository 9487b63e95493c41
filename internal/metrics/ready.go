package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/dbsqlc"
)

// readyTimeout bounds the Postgres check: a load balancer asking /readyz must get an answer
// before its own timeout, and a Postgres this slow is as good as down.
const readyTimeout = 2 * time.Second

// Ready reports why the service cannot do its work, nil when it can: Postgres answers a query
// and River runs (riverRunning returns nil; see RiverRunning).
func Ready(ctx context.Context, pool *pgxpool.Pool, riverRunning func() error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var errs []error
	if _, err := dbsqlc.New().MetricsPing(ctx, pool); err != nil {
		errs = append(errs, fmt.Errorf("postgres: %w", err))
	}
	if riverRunning != nil {
		if err := riverRunning(); err != nil {
			errs = append(errs, fmt.Errorf("river: %w", err))
		}
	}
	return errors.Join(errs...)
}

// RiverRunning adapts a River client's Stopped method (pass client.Stopped) to Ready: an error
// before the client started and after it stopped. Call it only once Start has returned.
func RiverRunning(stopped func() <-chan struct{}) func() error {
	return func() error {
		ch := stopped()
		if ch == nil {
			return errors.New("client not started")
		}
		select {
		case <-ch:
			return errors.New("client stopped")
		default:
			return nil
		}
	}
}

// ReadyHandler serves /readyz: 200 "ok", or 503 with the reason in plain text. The reason names
// only the failing dependency and the driver's error, nothing secret.
func ReadyHandler(pool *pgxpool.Pool, riverRunning func() error, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := Ready(r.Context(), pool, riverRunning); err != nil {
			logger.WarnContext(r.Context(), "not ready", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
