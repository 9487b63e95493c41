package bench

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// WebhooksResult is the webhook phase: signed, distinct Onfleet events about dispatched orders,
// offered at a fixed rate to POST /webhooks/onfleet.
type WebhooksResult struct {
	OfferedPerSecond float64        `json:"offered_per_second"`
	DurationSeconds  float64        `json:"duration_seconds"`
	Concurrency      int            `json:"concurrency"`
	Orders           int            `json:"orders"`
	BodyBytes        Summary        `json:"body_bytes"`
	Generator        GeneratorStats `json:"generator"`
	Accepted         int            `json:"accepted"`
	StatusCounts     map[string]int `json:"status_counts"`
	FirstError       string         `json:"first_error,omitempty"`
	// AcceptedPerSecond is 200 answers over the time from the first due send to the last answer.
	AcceptedPerSecond float64 `json:"accepted_per_second"`
	// HTTPLatencyMs is send → answer; ScheduledLatencyMs is due → answer, which also counts
	// time an event waited for a free sender (what a carrier would see).
	HTTPLatencyMs      Summary `json:"http_latency_ms"`
	ScheduledLatencyMs Summary `json:"scheduled_latency_ms"`
	Stored             int     `json:"stored"`
	Translated         int     `json:"translated"`
	// CaughtUpSeconds is from the last answer until every stored event was translated and the
	// follow-up queues were empty; negative when that did not happen before the deadline.
	CaughtUpSeconds   float64          `json:"caught_up_seconds"`
	TranslatedPerSec  float64          `json:"translated_per_second"`
	QueueBacklog      int              `json:"follow_up_jobs_left"`
	FailedJobs        int              `json:"follow_up_jobs_failed"`
	OrderEvents       int              `json:"order_events"`
	OrderStatuses     map[string]int   `json:"order_statuses"`
	ProcessingNote    string           `json:"processing_note,omitempty"`
	CPU               CPUUsage         `json:"cpu"`
	ServePeakRSSBytes int64            `json:"serve_peak_rss_bytes"`
	Postgres          PostgresActivity `json:"postgres_activity"`
	Timeline          []SecondPoint    `json:"timeline"`
}

type webhooksConfig struct {
	rate         float64
	duration     time.Duration
	concurrency  int
	clients      int
	drainTimeout time.Duration
}

func (b *runner) runWebhooks(ctx context.Context, cfg webhooksConfig) (*WebhooksResult, error) {
	res := &WebhooksResult{OfferedPerSecond: cfg.rate, DurationSeconds: cfg.duration.Seconds(),
		Concurrency: cfg.concurrency, StatusCounts: map[string]int{}}
	pacer := NewPacer(time.Time{}, cfg.rate, cfg.duration)
	want := (pacer.Total() + len(lifecycle) - 1) / len(lifecycle)
	targets, err := b.webhookTargets(ctx, want, cfg)
	if err != nil {
		return nil, err
	}
	res.Orders = len(targets)

	// Events are rendered and signed before the clock starts: the generator only sends.
	secret, _ := hex.DecodeString(b.stack.secretHex)
	bodies := make([][]byte, pacer.Total())
	sigs := make([]string, pacer.Total())
	baseMs := time.Now().UnixMilli()
	var wg sync.WaitGroup
	workers := runtime.NumCPU()
	var renderErr error
	var once sync.Once
	for w := range workers {
		wg.Go(func() {
			for e := w; e < len(bodies); e += workers {
				body, err := webhookEventFor(e, targets, baseMs)
				if err != nil {
					once.Do(func() { renderErr = err })
					return
				}
				bodies[e], sigs[e] = body, onfleetSignature(secret, body)
			}
		})
	}
	wg.Wait()
	if renderErr != nil {
		return nil, renderErr
	}
	sizes := make([]float64, len(bodies))
	for i, body := range bodies {
		sizes[i] = float64(len(body))
	}
	res.BodyBytes = Summarize(sizes)

	fromID, err := b.maxID(ctx, "waybill.webhook_events")
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{
		MaxIdleConns: cfg.concurrency, MaxIdleConnsPerHost: cfg.concurrency, MaxConnsPerHost: cfg.concurrency,
		IdleConnTimeout: time.Minute, DisableCompression: true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 15 * time.Second}
	url := b.stack.serveURL + "/webhooks/onfleet"

	t0 := time.Now().Add(200 * time.Millisecond).Truncate(100 * time.Millisecond)
	pacer = NewPacer(t0, cfg.rate, cfg.duration)
	smp := startSampler(ctx, b.pool, t0, newProgress("waybill.webhook_events", "translated_at", fromID), b.pids)
	waits := startWaitSampler(ctx, b.pool, b.db.name)
	cpu0 := takeCPU(ctx, b.pool, b.servePID(), b.sandboxPID())
	stopPerf := b.startPerf(ctx, "webhooks", cfg.duration)

	var mu sync.Mutex
	b.logger.Info("offering webhooks", "rate", cfg.rate, "duration", cfg.duration, "orders", len(targets), "concurrency", cfg.concurrency)
	run := runOpenLoop(ctx, pacer, cfg.concurrency, t0.Add(2*cfg.duration+10*time.Second), func(ctx context.Context, _, i int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[i]))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Onfleet-Signature", sigs[i])
		resp, err := client.Do(req)
		if err != nil {
			mu.Lock()
			res.StatusCounts["error"]++
			mu.Unlock()
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		mu.Lock()
		res.StatusCounts[strconv.Itoa(resp.StatusCode)]++
		mu.Unlock()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST /webhooks/onfleet: %s", resp.Status)
		}
		return nil
	})
	stopPerf()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Generator = run.generatorStats(pacer)
	res.Accepted = run.ok()
	res.FirstError = run.firstError()
	var httpLat, schedLat []float64
	lastAnswer := 0.0
	for i := range run.doneAt {
		if math.IsNaN(run.doneAt[i]) {
			continue
		}
		httpLat = append(httpLat, (run.doneAt[i]-run.sendAt[i])*1000)
		schedLat = append(schedLat, (run.doneAt[i]-pacer.Due(i).Sub(t0).Seconds())*1000)
		lastAnswer = max(lastAnswer, run.doneAt[i])
	}
	res.HTTPLatencyMs, res.ScheduledLatencyMs = Summarize(httpLat), Summarize(schedLat)
	if lastAnswer > 0 {
		res.AcceptedPerSecond = float64(res.Accepted) / lastAnswer
	}
	b.logger.Info("webhooks offered; waiting for translation and actions", "accepted", res.Accepted, "statuses", res.StatusCounts)

	// Processing: translated_at (migration 00003) on every stored event, and no follow-up job
	// (translate, act, notifications) left to run.
	res.CaughtUpSeconds = -1
	deadline := time.Now().Add(cfg.drainTimeout)
	answeredAt := t0.Add(time.Duration(lastAnswer * float64(time.Second)))
	prog := newProgress("waybill.webhook_events", "translated_at", fromID)
	for {
		stored, translated, left, failed, err := b.webhookProgress(ctx, prog)
		if err != nil {
			res.ProcessingNote = "could not read processing progress: " + err.Error()
			break
		}
		res.Stored, res.Translated, res.QueueBacklog, res.FailedJobs = stored, translated, left, failed
		if stored > 0 && translated == stored && left == 0 {
			res.CaughtUpSeconds = max(0, time.Since(answeredAt).Seconds())
			break
		}
		if stored == 0 && res.Accepted == 0 {
			res.ProcessingNote = "nothing was accepted, so nothing to process"
			break
		}
		if time.Now().After(deadline) {
			res.ProcessingNote = fmt.Sprintf("not caught up %s after the last answer", cfg.drainTimeout)
			break
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
	}
	// Exact counts: the progress reads above see a bounded window while translation lags.
	if err := b.pool.QueryRow(ctx, `SELECT count(*), count(translated_at) FROM waybill.webhook_events WHERE id > $1`, fromID).
		Scan(&res.Stored, &res.Translated); err != nil {
		res.ProcessingNote += " (count: " + err.Error() + ")"
	}
	res.CPU = cpuUsage(cpu0, takeCPU(ctx, b.pool, b.servePID(), b.sandboxPID()), time.Since(t0), b.cores)
	if ps, err := ReadProcStat(b.servePID()); err == nil {
		res.ServePeakRSSBytes = ps.PeakRSSBytes
	}
	samples := smp.finish()
	res.Postgres = waits.finish(15)
	if last, ok := lastGood(samples); ok && last.T > 0 {
		res.TranslatedPerSec = float64(last.B) / last.T
	}
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM waybill.order_events WHERE webhook_event_id > $1`, fromID).Scan(&res.OrderEvents); err != nil {
		res.ProcessingNote += " (order_events: " + err.Error() + ")"
	}
	ids := make([]int64, len(targets))
	for i, t := range targets {
		ids[i] = t.OrderID
	}
	rows, err := b.pool.Query(ctx, `SELECT status, count(*)::int FROM waybill.orders WHERE id = ANY($1) GROUP BY 1`, ids)
	if err == nil {
		res.OrderStatuses = map[string]int{}
		for rows.Next() {
			var s string
			var n int
			if rows.Scan(&s, &n) == nil {
				res.OrderStatuses[s] = n
			}
		}
		rows.Close()
	}

	n := int(math.Ceil(max(lastAnswer, cfg.duration.Seconds(), lastGoodT(samples)))) + 1
	dues := make([]float64, pacer.Total())
	for i := range dues {
		dues[i] = pacer.Due(i).Sub(t0).Seconds()
	}
	offered, sent, done := perSecond(dues, n), perSecond(run.sendAt, n), perSecond(run.doneAt, n)
	latBySecond := make([][]float64, n)
	for i, d := range run.doneAt {
		if !math.IsNaN(d) && int(run.sendAt[i]) < n {
			latBySecond[int(run.sendAt[i])] = append(latBySecond[int(run.sendAt[i])], (d-run.sendAt[i])*1000)
		}
	}
	res.Timeline = timeline(n, samples, func(p *SecondPoint) {
		s := p.Second
		p.Offered, p.Sent, p.Done = offered[s], sent[s], done[s]
		p.P50Ms, p.P99Ms = jsonFloat(math.NaN()), jsonFloat(math.NaN())
		if l := latBySecond[s]; len(l) > 0 {
			slices.Sort(l)
			p.P50Ms, p.P99Ms = jsonFloat(Percentile(l, 50)), jsonFloat(Percentile(l, 99))
		}
	})
	return res, nil
}

// webhookTargets returns up to want dispatched orders, inserting and waiting for more when the
// run has too few (webhooks mode alone).
func (b *runner) webhookTargets(ctx context.Context, want int, cfg webhooksConfig) ([]webhookOrder, error) {
	query := func() ([]webhookOrder, error) {
		rows, err := b.pool.Query(ctx, `SELECT id, external_id, carrier_ref, coalesce(tracking_url, '')
			FROM waybill.orders WHERE carrier_ref IS NOT NULL AND status = 'dispatched' ORDER BY id LIMIT $1`, want)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhookOrder, error) {
			var o webhookOrder
			return o, r.Scan(&o.OrderID, &o.ExternalID, &o.CarrierRef, &o.TrackingURL)
		})
	}
	have, err := query()
	if err != nil || len(have) >= want {
		return have, err
	}
	missing := want - len(have)
	b.logger.Info("creating dispatched orders for the webhook events", "orders", missing)
	fromID, err := b.maxID(ctx, "waybill.orders")
	if err != nil {
		return nil, err
	}
	if _, err := closedLoopInsert(ctx, b.pool, outboxInsertSQL, fmt.Sprintf("bench-wh-%d-", time.Now().Unix()), cfg.clients, 0, missing); err != nil {
		return nil, err
	}
	if err := b.waitDispatched(ctx, fromID, missing, cfg.drainTimeout); err != nil {
		return nil, err
	}
	have, err = query()
	if err != nil {
		return nil, err
	}
	if len(have) == 0 {
		return nil, fmt.Errorf("no dispatched order to send webhook events about")
	}
	return have, nil
}

func (b *runner) webhookProgress(ctx context.Context, prog *progress) (stored, translated, left, failed int, err error) {
	rows, done, err := prog.read(ctx, b.pool)
	if err != nil {
		return
	}
	stored, translated = int(rows), int(done)
	// By state first, so River's (state, queue, …) index finds the few rows: a scan of the
	// whole job table here, every poll, once cost Postgres more than the work it watched.
	err = b.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state IN ('available', 'running'))::int,
			count(*) FILTER (WHERE state IN ('retryable', 'discarded'))::int
		FROM waybill.river_job
		WHERE state IN ('available', 'running', 'retryable', 'discarded') AND queue <> 'dispatch'`).Scan(&left, &failed)
	return
}

func lastGood(samples []sample) (sample, bool) {
	for i := len(samples) - 1; i >= 0; i-- {
		if !samples[i].failed {
			return samples[i], true
		}
	}
	return sample{}, false
}

func lastGoodT(samples []sample) float64 {
	s, _ := lastGood(samples)
	return s.T
}
