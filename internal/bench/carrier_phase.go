package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// CarrierResult is dispatch against a carrier that enforces Onfleet's limit (20 requests/s per
// organisation), with two `waybill serve` sharing the default limit (18/s) through Postgres.
type CarrierResult struct {
	Instances    int             `json:"instances"`
	Webhook      bool            `json:"batch_webhook_registered"`
	CarrierLimit int             `json:"carrier_limit_requests_per_second"`
	Low          CarrierLoad     `json:"low_rate"`
	Steady       CarrierLoad     `json:"steady"`
	Bulk         CarrierLoad     `json:"bulk"`
	Sandbox      json.RawMessage `json:"sandbox_stats"`
}

// CarrierLoad is one load of the carrier phase.
type CarrierLoad struct {
	What     string  `json:"what"`
	Orders   int     `json:"orders"`
	Seconds  float64 `json:"seconds_to_all_dispatched"`
	P50      float64 `json:"insert_to_dispatched_p50_seconds"`
	P99      float64 `json:"insert_to_dispatched_p99_seconds"`
	Requests int64   `json:"carrier_requests"`
	Refused  int64   `json:"refused_for_rate"`
	// PerOrder is carrier requests per order; OrdersPerRequest is orders dispatched per second
	// per request per second allowed (18).
	PerOrder         float64 `json:"carrier_requests_per_order"`
	OrdersPerSecond  float64 `json:"orders_dispatched_per_second"`
	OrdersPerAllowed float64 `json:"orders_per_second_per_allowed_request_per_second"`
	Duplicates       int64   `json:"duplicated_external_ids"`
}

type carrierConfig struct {
	lowRate, steadyRate     float64
	lowFor, steadyFor       time.Duration
	bulk                    int
	carrierLimit, instances int
	limit                   float64 // Waybill's ONFLEET_RATE_LIMIT
	drainTimeout            time.Duration
	// webhook registers Onfleet's batch-completed webhook (trigger 19) with the sandbox, as
	// `waybill carriers register` does in production; without it, batches are settled by polls.
	webhook bool
}

// runCarrier measures dispatch at the carrier's real limit: a lone order at a time (latency),
// a steady load one-row INSERT at a time, and a bulk INSERT of many orders in one statement.
// It runs its own sandbox (enforcing the limit) and instances, and stops them at the end.
func (b *runner) runCarrier(ctx context.Context, cfg carrierConfig) (*CarrierResult, error) {
	res := &CarrierResult{Instances: cfg.instances, CarrierLimit: cfg.carrierLimit, Webhook: cfg.webhook}
	if err := b.stack.stopServe(); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	sbBin := b.stack.sandboxBin()
	sb, err := startProcess("waybill sandbox (limited)", sbBin, []string{"sandbox", "--addr", addr,
		"--rate-limit", fmt.Sprint(cfg.carrierLimit), "--latency", "20ms", "--webhook-secret", b.stack.secretHex}, benchEnv(), filepath.Join(b.opts.OutDir, "carrier-sandbox.log"))
	if err != nil {
		return nil, err
	}
	defer sb.stop(10 * time.Second) //nolint:errcheck // best effort at the end
	sandboxURL := "http://" + addr
	if err := sb.waitHTTP(ctx, sandboxURL+"/sandbox/stats", 30*time.Second); err != nil {
		return nil, err
	}
	for i := range cfg.instances {
		httpAddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		env := benchEnv("DATABASE_URL="+b.db.url, "WAYBILL_HTTP_ADDR="+httpAddr, "ONFLEET_BASE_URL="+sandboxURL,
			"ONFLEET_API_KEY=waybill-bench", fmt.Sprintf("ONFLEET_RATE_LIMIT=%g", cfg.limit), "WAYBILL_LOG_LEVEL=warn",
			"ONFLEET_WEBHOOK_SECRET="+b.stack.secretHex)
		p, err := startProcess(fmt.Sprintf("waybill serve %d", i), b.bin, []string{"serve"}, append(env, b.opts.ServeEnv...),
			filepath.Join(b.opts.OutDir, fmt.Sprintf("carrier-serve-%d.log", i)))
		if err != nil {
			return nil, err
		}
		defer p.stop(30 * time.Second) //nolint:errcheck // best effort at the end
		if err := p.waitHTTP(ctx, "http://"+httpAddr+"/readyz", 60*time.Second); err != nil {
			return nil, err
		}
		if i == 0 && cfg.webhook {
			if err := registerWebhook(ctx, sandboxURL, "http://"+httpAddr+"/webhooks/onfleet", 19); err != nil {
				return nil, err
			}
		}
	}

	load := func(what string, insert func() (int, error)) (CarrierLoad, error) {
		l := CarrierLoad{What: what}
		before, err := limitedStats(ctx, sandboxURL)
		if err != nil {
			return l, err
		}
		fromID, err := b.maxID(ctx, "waybill.orders")
		if err != nil {
			return l, err
		}
		start := time.Now()
		n, err := insert()
		l.Orders = n
		if err != nil {
			return l, err
		}
		if err := b.waitDispatched(ctx, fromID, n, cfg.drainTimeout); err != nil {
			return l, err
		}
		l.Seconds = time.Since(start).Seconds()
		after, err := limitedStats(ctx, sandboxURL)
		if err != nil {
			return l, err
		}
		l.Requests = after.requests() - before.requests()
		l.Refused = after.Requests.RateLimited - before.Requests.RateLimited
		l.Duplicates = int64(len(after.Duplicated))
		if err := b.pool.QueryRow(ctx, `
			SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - created_at)), 0),
			       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM dispatched_at - created_at)), 0)
			FROM waybill.orders WHERE id > $1`, fromID).Scan(&l.P50, &l.P99); err != nil {
			return l, err
		}
		l.PerOrder = float64(l.Requests) / float64(max(n, 1))
		l.OrdersPerSecond = float64(n) / l.Seconds
		l.OrdersPerAllowed = l.OrdersPerSecond / cfg.limit
		b.logger.Info("carrier load done", "what", what, "orders", n, "seconds", fmt.Sprintf("%.1f", l.Seconds),
			"p99", fmt.Sprintf("%.2fs", l.P99), "requests", l.Requests, "refused", l.Refused)
		return l, nil
	}
	paced := func(prefix string, rate float64, d time.Duration) func() (int, error) {
		return func() (int, error) {
			n := int(rate * d.Seconds())
			start := time.Now()
			for i := range n {
				if err := sleepCtx(ctx, time.Until(start.Add(time.Duration(float64(i)/rate*float64(time.Second))))); err != nil {
					return i, err
				}
				if _, err := b.pool.Exec(ctx, outboxInsertSQL, fmt.Sprintf("%s%d", prefix, i), orderPayload(i, time.Now())); err != nil {
					return i, err
				}
			}
			return n, nil
		}
	}
	stamp := time.Now().Unix()
	b.logger.Info("carrier: lone orders", "rate", cfg.lowRate, "for", cfg.lowFor)
	if res.Low, err = load(fmt.Sprintf("%g order/s for %s", cfg.lowRate, cfg.lowFor), paced(fmt.Sprintf("carrier-low-%d-", stamp), cfg.lowRate, cfg.lowFor)); err != nil {
		return res, fmt.Errorf("low rate: %w", err)
	}
	b.logger.Info("carrier: steady load", "rate", cfg.steadyRate, "for", cfg.steadyFor)
	if res.Steady, err = load(fmt.Sprintf("%g orders/s for %s, one-row INSERTs", cfg.steadyRate, cfg.steadyFor), paced(fmt.Sprintf("carrier-steady-%d-", stamp), cfg.steadyRate, cfg.steadyFor)); err != nil {
		return res, fmt.Errorf("steady: %w", err)
	}
	b.logger.Info("carrier: bulk insert", "orders", cfg.bulk)
	if res.Bulk, err = load(fmt.Sprintf("%d orders in one INSERT", cfg.bulk), func() (int, error) {
		_, err := b.pool.Exec(ctx, `INSERT INTO waybill.orders (external_id, carrier, payload)
			SELECT $1 || g, 'onfleet', $2::jsonb FROM generate_series(1, $3::int) g`,
			fmt.Sprintf("carrier-bulk-%d-", stamp), orderPayload(0, time.Now()), cfg.bulk)
		return cfg.bulk, err
	}); err != nil {
		return res, fmt.Errorf("bulk: %w", err)
	}
	raw, _ := limitedStats(ctx, sandboxURL)
	res.Sandbox, _ = json.Marshal(raw)
	return res, nil
}

// limitedSandboxStats is the part of the sandbox's stats the carrier phase reads.
type limitedSandboxStats struct {
	TasksCreated int64            `json:"tasks_created"`
	Duplicated   []string         `json:"duplicated_external_ids"`
	ByRoute      map[string]int64 `json:"requests_by_route"`
	Requests     struct {
		RateLimited int64 `json:"rate_limited"`
	} `json:"requests"`
	Batch json.RawMessage `json:"batch"`
}

func (s limitedSandboxStats) requests() int64 {
	var n int64
	for _, c := range s.ByRoute {
		n += c
	}
	return n
}

func limitedStats(ctx context.Context, sandboxURL string) (limitedSandboxStats, error) {
	var s limitedSandboxStats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sandboxURL+"/sandbox/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("sandbox stats: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(raw, &s)
}

// registerWebhook registers one trigger's webhook with the sandbox, as Onfleet's POST /webhooks.
func registerWebhook(ctx context.Context, sandboxURL, target string, trigger int) error {
	body := fmt.Sprintf(`{"url":%q,"name":"waybill-bench","trigger":%d}`, target, trigger)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, sandboxURL+"/webhooks", strings.NewReader(body))
	req.SetBasicAuth("waybill-bench", "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("register webhook: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("register webhook: %s: %s", resp.Status, msg)
	}
	return nil
}
