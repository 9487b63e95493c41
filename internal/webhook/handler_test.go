package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/carrier/onfleet/onfleettest"
	"github.com/waybill/waybill/internal/dbtest"
	"github.com/waybill/waybill/internal/migrate"
)

type testBundle struct {
	pool     *pgxpool.Pool
	dbURL    string
	client   *river.Client[pgx.Tx]
	mux      *http.ServeMux
	hooks    *recordingHooks
	handler  *Handler
	pipeline *Pipeline
	inserted *insertedJobs
}

type setupOpts struct {
	// work starts River with the translate and act workers; otherwise the client only inserts.
	work     bool
	callback bool
	secrets  []string
}

func setup(t *testing.T, opts setupOpts) *testBundle {
	t.Helper()
	ctx := context.Background()
	pool, dbURL := dbtest.NewPool(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.secrets == nil {
		opts.secrets = []string{onfleettest.Secret}
	}
	sources := onfleetSources(t, opts.secrets...)

	inserted := &insertedJobs{args: map[string][][]byte{}}
	cfg := &river.Config{
		Logger: logger,
		// The notify workers are another package's: their jobs are only inserted here.
		SkipUnknownJobCheck: true,
		TestOnly:            true,
		// Finished translate and act jobs are deleted: count them as River inserts them.
		Middleware: []rivertype.Middleware{river.JobInsertMiddlewareFunc(inserted.record)},
	}
	runCtx, stopRunning := context.WithCancel(ctx)
	var running sync.WaitGroup
	t.Cleanup(func() { stopRunning(); running.Wait() }) // after River stops: cleanups run last first
	pipeline, err := NewPipeline(Deps{Pool: pool, Sources: sources, Logger: logger, CallbackEnabled: opts.callback})
	require.NoError(t, err)
	var client *river.Client[pgx.Tx]
	if opts.work {
		workers := river.NewWorkers()
		require.NoError(t, pipeline.Add(workers))
		running.Go(func() { pipeline.Run(runCtx) })
		cfg.Workers = workers
		cfg.Queues = Queues(10)
		cfg.FetchCooldown = 5 * time.Millisecond
		cfg.FetchPollInterval = 20 * time.Millisecond
		client, _ = dbtest.StartRiver(t, pool, cfg)
	} else {
		client = dbtest.NewRiver(t, pool, cfg)
	}

	hooks := &recordingHooks{counts: map[string]int{}}
	h, err := NewHandler(HandlerConfig{Pool: pool, Sources: sources, Logger: logger, Hooks: hooks})
	require.NoError(t, err)
	running.Go(func() { h.Run(runCtx) })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /webhooks/onfleet", h.ServeCheck)
	mux.HandleFunc("POST /webhooks/{carrier}", h.ServeEvent)
	return &testBundle{pool: pool, dbURL: dbURL, client: client, mux: mux, hooks: hooks,
		handler: h, pipeline: pipeline, inserted: inserted}
}

// insertedJobs records the args of every job River inserts, by kind.
type insertedJobs struct {
	mu   sync.Mutex
	args map[string][][]byte
}

func (j *insertedJobs) record(ctx context.Context, many []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	res, err := doInner(ctx)
	if err == nil {
		j.mu.Lock()
		defer j.mu.Unlock()
		for _, p := range many {
			j.args[p.Kind] = append(j.args[p.Kind], p.EncodedArgs)
		}
	}
	return res, err
}

func (j *insertedJobs) of(kind string) [][]byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.args[kind]
}

// post sends a webhook as Onfleet would, signed with onfleettest.Secret unless sig says otherwise
// ("-" for no signature header).
func (b *testBundle) post(t *testing.T, carrier string, body []byte, sig string) *httptest.ResponseRecorder {
	t.Helper()
	return b.serve(b.request(t, carrier, body, sig))
}

// request builds a signed webhook request (sig "" signs with the test secret, "-" sends none).
// Tests that deliver concurrently build requests first, on the test goroutine, then serve them.
func (b *testBundle) request(t *testing.T, carrier string, body []byte, sig string) *http.Request {
	t.Helper()
	if sig == "" {
		sig = onfleettest.Sign(t, onfleettest.Secret, body)
	}
	req := httptest.NewRequest(http.MethodPost, "/webhooks/"+carrier, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Onfleet-Webhooks")
	if sig != "-" {
		req.Header.Set(onfleet.SignatureHeader, sig)
	}
	return req
}

// serve runs one request through the handler; safe off the test goroutine.
func (b *testBundle) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	b.mux.ServeHTTP(rec, req)
	return rec
}

func (b *testBundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func (b *testBundle) jobs(t *testing.T, kind string) int {
	t.Helper()
	return b.count(t, "SELECT count(*) FROM waybill.river_job WHERE kind = $1", kind)
}

type recordingHooks struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *recordingHooks) WebhookReceived(carrier, result string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[carrier+"/"+result]++
}

func (h *recordingHooks) get(carrier, result string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[carrier+"/"+result]
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestServeCheck(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	for _, check := range []string{"aB3xY9", "a value with spaces & symbols <b>", ""} {
		req := httptest.NewRequest(http.MethodGet, "/webhooks/onfleet?check="+urlQueryEscape(check), nil)
		rec := httptest.NewRecorder()
		b.mux.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, check, rec.Body.String())
		require.Equal(t, "text/plain; charset=utf-8", rec.Header().Get("Content-Type"))
	}

	rec := httptest.NewRecorder()
	b.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/webhooks/onfleet", nil))
	require.Equal(t, http.StatusBadRequest, rec.Code)
}

func urlQueryEscape(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", "&", "%26", "<", "%3C", ">", "%3E", "+", "%2B").Replace(s)
}

func TestServeEventStoresVerifiedEventAndEnqueuesTranslation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := context.Background()

	body := onfleettest.Fixture(t, "task_started")
	rec := b.post(t, "onfleet", body, "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	var (
		id      int64
		carrier string
		key     string
		stored  []byte
		headers map[string]string
		addr    string
		outcome *string
	)
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id, carrier, event_key, body, headers, source_addr, outcome FROM waybill.webhook_events`).
		Scan(&id, &carrier, &key, &stored, &headers, &addr, &outcome))
	require.Equal(t, "onfleet", carrier)
	require.Equal(t, "txiK2xHBIaUwAKB~BJrjscKu:0:1613004361894", key)
	require.Equal(t, body, stored, "the raw body, byte for byte")
	require.Equal(t, onfleettest.Sign(t, onfleettest.Secret, body), headers["X-Onfleet-Signature"])
	require.Equal(t, "Onfleet-Webhooks", headers["User-Agent"])
	require.Equal(t, "192.0.2.1", addr) // httptest's RemoteAddr
	require.Nil(t, outcome)

	job := rivertest.RequireInserted(ctx, t, riverpgxv5.New(b.pool), TranslateArgs{}, &rivertest.RequireInsertedOpts{Schema: migrate.Schema, Queue: QueueTranslate})
	require.Equal(t, TranslateArgs{WebhookEventID: id, Carrier: "onfleet"}, job.Args)
	require.Equal(t, 1, b.hooks.get("onfleet", ResultAccepted))
}

// The translate job is enqueued in the intake's own transaction (rivertest's Tx assertion sees
// it before commit), and a rolled-back intake leaves neither row nor job.
func TestStoreIsOneTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := context.Background()

	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	id, err := b.client.InsertTx(ctx, tx, TranslateArgs{WebhookEventID: 1, Carrier: "onfleet"}, nil)
	require.NoError(t, err)
	rivertest.RequireInsertedTx[*riverpgxv5.Driver](ctx, t, tx, TranslateArgs{}, &rivertest.RequireInsertedOpts{Schema: migrate.Schema, Queue: QueueTranslate})
	require.NotNil(t, id)
	require.NoError(t, tx.Rollback(ctx))

	// A request whose context is cancelled mid-store commits nothing.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	req := httptest.NewRequestWithContext(cancelled, http.MethodPost, "/webhooks/onfleet", bytes.NewReader(onfleettest.Fixture(t, "task_started")))
	req.Header.Set(onfleet.SignatureHeader, onfleettest.Sign(t, onfleettest.Secret, onfleettest.Fixture(t, "task_started")))
	rec := httptest.NewRecorder()
	b.mux.ServeHTTP(rec, req)
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.Zero(t, b.count(t, "SELECT count(*) FROM waybill.webhook_events"))
	require.Zero(t, b.jobs(t, TranslateArgs{}.Kind()))
	require.Equal(t, 1, b.hooks.get("onfleet", ResultError))
}

func TestServeEventDuplicateIsOneRowOneJob(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	body := onfleettest.Fixture(t, "task_failed")
	for range 3 {
		require.Equal(t, http.StatusOK, b.post(t, "onfleet", body, "").Code)
	}
	// Onfleet's identity of an event is taskId, triggerId and time: the same event re-serialised
	// (other whitespace) is still a redelivery.
	compact := onfleettest.Derive(t, body, map[string]any{})
	require.NotEqual(t, body, compact)
	require.Equal(t, http.StatusOK, b.post(t, "onfleet", compact, "").Code)

	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM waybill.webhook_events"))
	require.Equal(t, 1, b.jobs(t, TranslateArgs{}.Kind()))
	require.Equal(t, 1, b.hooks.get("onfleet", ResultAccepted))
	require.Equal(t, 3, b.hooks.get("onfleet", ResultDuplicate))

	// Another time is another event.
	require.Equal(t, http.StatusOK, b.post(t, "onfleet", onfleettest.Derive(t, body, map[string]any{"time": 1613004460071}), "").Code)
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM waybill.webhook_events"))
	require.Equal(t, 2, b.jobs(t, TranslateArgs{}.Kind()))
}

// Concurrent requests share one statement and one commit: two copies of an event in one batch
// are one row (the later a redelivery), and an event Postgres refuses fails only its own request.
func TestStoreBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	ctx := context.Background()

	ev := func(key string) newEvent {
		return newEvent{carrier: "onfleet", key: key, body: []byte(`{}`), headers: []byte(`{}`), sourceAddr: "192.0.2.1"}
	}
	res, err := b.handler.storeBatch(ctx, []newEvent{ev("k1"), ev("k1"), ev("k2"), ev("bad\x00key"), ev("k2"), ev("bad\x00key")})
	require.NoError(t, err)
	require.Len(t, res, 6)
	require.True(t, res[0].inserted)
	require.NoError(t, res[0].err)
	require.Equal(t, stored{}, res[1], "a copy in the same batch is a redelivery")
	require.True(t, res[2].inserted)
	require.Error(t, res[3].err, "Postgres refuses a NUL in text")
	require.Equal(t, stored{}, res[4])
	require.Error(t, res[5].err, "a copy of a refused event is refused too, not a redelivery")
	require.NotEqual(t, res[0].id, res[2].id)

	var keys []string
	rows, err := b.pool.Query(ctx, `SELECT event_key FROM waybill.webhook_events ORDER BY event_key`)
	require.NoError(t, err)
	keys, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"k1", "k2"}, keys)
	require.Equal(t, 2, b.jobs(t, TranslateArgs{}.Kind()))

	// Stored by an earlier batch: a redelivery, nothing new.
	res, err = b.handler.storeBatch(ctx, []newEvent{ev("k2"), ev("k3")})
	require.NoError(t, err)
	require.Equal(t, stored{}, res[0])
	require.True(t, res[1].inserted)
	require.Equal(t, 3, b.jobs(t, TranslateArgs{}.Kind()))
}

// Under a flood of concurrent requests with duplicates, each distinct event is one row and one
// job, and each request is answered as accepted or duplicate.
func TestServeEventConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	base := onfleettest.Fixture(t, "task_started")
	var bodies [][]byte
	for i := range 50 {
		body := onfleettest.Derive(t, base, map[string]any{"time": 1613004361894 + i})
		bodies = append(bodies, body, body, body)
	}
	codes := make(chan int, len(bodies))
	var wg sync.WaitGroup
	for _, body := range bodies {
		req := b.request(t, "onfleet", body, "")
		wg.Go(func() { codes <- b.serve(req).Code })
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		require.Equal(t, http.StatusOK, code)
	}
	require.Equal(t, 50, b.count(t, "SELECT count(*) FROM waybill.webhook_events"))
	require.Equal(t, 50, b.jobs(t, TranslateArgs{}.Kind()))
	require.Equal(t, 50, b.hooks.get("onfleet", ResultAccepted))
	require.Equal(t, 100, b.hooks.get("onfleet", ResultDuplicate))
}

func TestServeEventRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})

	body := onfleettest.Fixture(t, "task_completed")
	tests := []struct {
		name    string
		carrier string
		body    []byte
		sig     string
		code    int
		result  string
	}{
		{"unsigned", "onfleet", body, "-", http.StatusUnauthorized, ResultBadSignature},
		{"empty signature", "onfleet", body, " ", http.StatusUnauthorized, ResultBadSignature},
		{"forged", "onfleet", body, onfleettest.Sign(t, onfleettest.Other, body), http.StatusUnauthorized, ResultBadSignature},
		{"replayed signature on a changed body", "onfleet", onfleettest.Derive(t, body, map[string]any{"time": 1}), onfleettest.Sign(t, onfleettest.Secret, body), http.StatusUnauthorized, ResultBadSignature},
		{"unsigned non-JSON", "onfleet", []byte("not json"), "-", http.StatusUnauthorized, ResultBadSignature},
		{"signed non-JSON", "onfleet", []byte("not json"), "", http.StatusBadRequest, ResultBadJSON},
		{"signed empty body", "onfleet", []byte{}, "", http.StatusBadRequest, ResultBadJSON},
		{"over 1 MiB", "onfleet", bytes.Repeat([]byte(" "), MaxBodyBytes+1), "", http.StatusRequestEntityTooLarge, ResultTooLarge},
		{"unknown carrier", "fedex", body, "", http.StatusNotFound, ResultUnknownCarrier},
	}
	for _, tt := range tests {
		before := b.hooks.get(labelFor(tt.carrier), tt.result)
		rec := b.post(t, tt.carrier, tt.body, tt.sig)
		require.Equal(t, tt.code, rec.Code, tt.name)
		require.Equal(t, before+1, b.hooks.get(labelFor(tt.carrier), tt.result), tt.name)
	}
	require.Zero(t, b.count(t, "SELECT count(*) FROM waybill.webhook_events"), "nothing refused is stored")
	require.Zero(t, b.jobs(t, TranslateArgs{}.Kind()))

	// Exactly 1 MiB is fine (here: valid JSON padded with spaces).
	big := append(bytes.Clone(body), bytes.Repeat([]byte(" "), MaxBodyBytes-len(body))...)
	require.Equal(t, http.StatusOK, b.post(t, "onfleet", big, "").Code)

	// A body larger than announced is cut at the limit too.
	huge := bytes.Repeat([]byte(" "), 2*MaxBodyBytes)
	req := httptest.NewRequest(http.MethodPost, "/webhooks/onfleet", io.NopCloser(bytes.NewReader(huge)))
	req.ContentLength = -1
	req.Header.Set(onfleet.SignatureHeader, onfleettest.Sign(t, onfleettest.Secret, huge))
	rec := httptest.NewRecorder()
	b.mux.ServeHTTP(rec, req)
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
}

func labelFor(carrier string) string {
	if carrier == "onfleet" {
		return carrier
	}
	return UnknownCarrierLabel
}

// Rotation: while ONFLEET_WEBHOOK_SECRET holds the old and the new secret, both verify.
func TestServeEventRotation(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{secrets: []string{onfleettest.Other, onfleettest.Secret}})

	created := onfleettest.Fixture(t, "task_created")
	started := onfleettest.Fixture(t, "task_started")
	require.Equal(t, http.StatusOK, b.post(t, "onfleet", created, onfleettest.Sign(t, onfleettest.Other, created)).Code)
	require.Equal(t, http.StatusOK, b.post(t, "onfleet", started, onfleettest.Sign(t, onfleettest.Secret, started)).Code)
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM waybill.webhook_events"))
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, "onfleet")
	require.NoError(t, err)
	m.WebhookReceived("onfleet", ResultAccepted)
	m.WebhookReceived("onfleet", ResultAccepted)
	m.WebhookReceived("onfleet", ResultBadSignature)

	families, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, families, 1)
	require.Equal(t, "waybill_webhooks_total", families[0].GetName())
	got := map[string]float64{}
	for _, metric := range families[0].GetMetric() {
		labels := map[string]string{}
		for _, l := range metric.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		got[fmt.Sprintf("%s/%s", labels["carrier"], labels["result"])] = metric.GetCounter().GetValue()
	}
	require.Equal(t, 2.0, got["onfleet/accepted"])
	require.Equal(t, 1.0, got["onfleet/bad_signature"])
	require.Contains(t, got, "onfleet/duplicate") // present at zero from the start
	require.Contains(t, got, "unknown/unknown_carrier")

	_, err = NewMetrics(reg, "onfleet")
	require.Error(t, err, "registering twice is a wiring mistake")
}

// BenchmarkServeEvent measures intake: verify, parse, insert the event and its translate job in
// one statement. Run with -cpu 2 to see what two cores take.
func BenchmarkServeEvent(b *testing.B) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbtest.NewDatabase(b))
	require.NoError(b, err)
	cfg.MaxConns = 16
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(b, err)
	defer pool.Close()
	sources := onfleetSources(b, onfleettest.Secret)
	h, err := NewHandler(HandlerConfig{Pool: pool, Sources: sources, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)

	base := onfleettest.Fixture(b, "task_completed")
	var seq atomic.Int64
	// Carriers send concurrently: many requests in flight per core, as on a server.
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := bytes.Replace(base, []byte(`"time": 1686611636796`), fmt.Appendf(nil, `"time": %d`, 1686611636796+seq.Add(1)), 1)
			req := httptest.NewRequest(http.MethodPost, "/webhooks/onfleet", bytes.NewReader(body))
			req.SetPathValue("carrier", "onfleet")
			req.Header.Set(onfleet.SignatureHeader, onfleettest.Sign(b, onfleettest.Secret, body))
			rec := httptest.NewRecorder()
			h.ServeEvent(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// Mounted on a literal path instead of {carrier}, the carrier is the last path segment.
func TestServeEventOnLiteralRoute(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	h, err := NewHandler(HandlerConfig{Pool: b.pool, Sources: onfleetSources(t, onfleettest.Secret), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/onfleet", h.ServeEvent)

	body := onfleettest.Fixture(t, "task_assigned")
	req := httptest.NewRequest(http.MethodPost, "/webhooks/onfleet", bytes.NewReader(body))
	req.Header.Set(onfleet.SignatureHeader, onfleettest.Sign(t, onfleettest.Secret, body))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM waybill.webhook_events WHERE carrier = 'onfleet'"))
}

func onfleetSources(t testing.TB, secrets ...string) carrier.Sources {
	t.Helper()
	src, err := onfleet.NewSource(secrets)
	require.NoError(t, err)
	sources, err := carrier.NewSources(src)
	require.NoError(t, err)
	return sources
}
