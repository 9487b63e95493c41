package daemon

import (
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/config"
	"github.com/waybill/waybill/internal/reconcile"
)

// addReconcile registers reconciliation with the carriers (Onfleet's tasks read back, through
// the same client and shared rate limit as dispatch) and the periodic check of their webhooks,
// and returns their periodic jobs (run on the leader).
func addReconcile(workers *river.Workers, reg prometheus.Registerer, pool *pgxpool.Pool, cfg *config.Config,
	carriers map[string]carrier.Carrier, logger *slog.Logger,
) ([]*river.PeriodicJob, error) {
	names := make([]string, 0, len(carriers))
	for name := range carriers {
		names = append(names, name)
	}
	met, err := reconcile.NewMetrics(reg, pool, cfg.ReconcileAfter, logger, names...)
	if err != nil {
		return nil, err
	}
	rcfg := reconcile.Config{Pool: pool, Logger: logger, After: cfg.ReconcileAfter, Metrics: met}
	check := reconcile.WebhookCheckConfig{Pool: pool}
	if c, ok := carriers[onfleet.Name].(*onfleet.Client); ok {
		rcfg.Onfleet, check.Onfleet = c, c
	}
	if check.URL, err = reconcile.WebhookURL(cfg.PublicURL, onfleet.Name); err != nil {
		return nil, err
	}
	// A cycle must end well before River would rescue its job as lost in a crash.
	rcfg.Budget = min(reconcile.DefaultBudget, cfg.RescueAfter/2)
	reconcile.AddWorkers(workers, reconcile.New(rcfg), check)
	return reconcile.PeriodicJobs(cfg.ReconcileInterval, cfg.WebhookCheckInterval), nil
}
