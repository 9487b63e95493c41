package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/time/rate"

	"github.com/waybill/waybill/internal/batch"
	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/dbsqlc"
)

// MaxBodyBytes is the largest webhook body accepted; larger is 413. Onfleet's biggest bodies
// (a task with its worker) are a few kilobytes.
const MaxBodyBytes = 1 << 20

// DefaultMaxBodyReads caps the request bodies read at once; past it a request is answered 503
// (with Retry-After) before a byte of its body is read. A carrier's request holds a slot for the
// microseconds its body takes to arrive, so the cap only bites requests that promise a body and
// do not send it: they cannot hold more than this many slots, nor more memory than they send
// (at most DefaultMaxBodyReads × MaxBodyBytes).
const DefaultMaxBodyReads = 128

// maxEventKey is the longest event key stored as the carrier gave it; a longer one (a signed
// event with a huge task id) is stored as its SHA-256, which Postgres's unique index can hold.
const maxEventKey = 256

// HandlerConfig is what the intake needs.
type HandlerConfig struct {
	Pool    *pgxpool.Pool
	Sources carrier.Sources
	Logger  *slog.Logger
	Hooks   Hooks // nil: nothing counted
	// MaxBodyReads caps the bodies read at once; 0 means DefaultMaxBodyReads.
	MaxBodyReads int
}

// Handler is the webhook intake: it verifies, stores the raw event and enqueues its translation
// in one transaction (shared with concurrent requests, see Run), and answers at once. Carriers time out (Onfleet after 10 s) and disable
// slow endpoints, so nothing else happens before the answer.
type Handler struct {
	pool    *pgxpool.Pool
	sources carrier.Sources
	logger  *slog.Logger
	hooks   Hooks
	queries *dbsqlc.Queries
	storer  *batch.Batcher[newEvent, stored]
	running atomic.Bool // Run is serving storer
	// bodyReads holds one slot per body being read (see DefaultMaxBodyReads).
	bodyReads chan struct{}

	// A flood of forged requests must not flood the log: refusals are logged at this rate, and
	// the next logged one says how many went unlogged. All are counted by Hooks.
	refusalLog       *rate.Limiter
	unloggedRefusals atomic.Int64
}

// NewHandler builds the intake. Mount it as
//
//	mux.HandleFunc("GET /webhooks/onfleet", h.ServeCheck)
//	mux.HandleFunc("POST /webhooks/{carrier}", h.ServeEvent)
//
// and serve its batches with Run.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Pool == nil || cfg.Logger == nil {
		return nil, errors.New("webhook handler: Pool and Logger are required")
	}
	hooks := cfg.Hooks
	if hooks == nil {
		hooks = nopHooks{}
	}
	if cfg.MaxBodyReads <= 0 {
		cfg.MaxBodyReads = DefaultMaxBodyReads
	}
	h := &Handler{
		pool:       cfg.Pool,
		sources:    cfg.Sources,
		logger:     cfg.Logger,
		hooks:      hooks,
		queries:    dbsqlc.New(),
		refusalLog: rate.NewLimiter(rate.Every(100*time.Millisecond), 20),
		bodyReads:  make(chan struct{}, cfg.MaxBodyReads),
	}
	h.storer = batch.New(maxStoreBatch, h.storeBatch)
	return h, nil
}

// ServeCheck answers Onfleet's URL validation, GET /webhooks/onfleet?check=X: 200 with exactly X,
// for configured carriers only (404 otherwise: Waybill echoes nothing for anyone else's path).
func (h *Handler) ServeCheck(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.sources[carrierName(r)]; !ok {
		http.Error(w, "unknown carrier", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	if !q.Has("check") {
		http.Error(w, "missing check parameter", http.StatusBadRequest)
		return
	}
	// The value is echoed: plain text, never sniffed as HTML.
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, q.Get("check"))
}

// ServeEvent takes one webhook, POST /webhooks/{carrier}.
func (h *Handler) ServeEvent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := carrierName(r)
	src, ok := h.sources[name]
	if !ok {
		h.hooks.WebhookReceived(UnknownCarrierLabel, ResultUnknownCarrier)
		http.Error(w, "unknown carrier", http.StatusNotFound)
		return
	}

	// Nothing is reserved for a request before it shows a signature: without one it is refused
	// from its headers alone (Verify reports ErrUnsigned from the headers, whatever the body).
	if err := src.Verify(nil, r.Header); errors.Is(err, carrier.ErrUnsigned) {
		h.refuse(ctx, w, r, name, err)
		return
	}
	if r.ContentLength > MaxBodyBytes {
		h.hooks.WebhookReceived(name, ResultTooLarge)
		http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxBodyBytes), http.StatusRequestEntityTooLarge)
		return
	}
	select {
	case h.bodyReads <- struct{}{}:
	default:
		h.hooks.WebhookReceived(name, ResultBusy)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy, try again", http.StatusServiceUnavailable)
		return
	}
	body, err := readBody(w, r)
	<-h.bodyReads
	if err != nil {
		if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
			h.hooks.WebhookReceived(name, ResultTooLarge)
			http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxBodyBytes), http.StatusRequestEntityTooLarge)
			return
		}
		h.hooks.WebhookReceived(name, ResultError)
		http.Error(w, "could not read body", http.StatusBadRequest)
		return
	}

	if err := src.Verify(body, r.Header); err != nil {
		h.refuse(ctx, w, r, name, err)
		return
	}

	ev, err := src.Parse(body)
	if err != nil {
		h.hooks.WebhookReceived(name, ResultBadJSON)
		h.logger.WarnContext(ctx, "webhook refused: signed body is not JSON", "carrier", name, "remote_addr", remoteHost(r), "error", err)
		http.Error(w, "body is not JSON", http.StatusBadRequest)
		return
	}

	key := storedEventKey(ev.EventKey)
	id, inserted, err := h.store(ctx, name, key, body, r)
	switch {
	case err != nil:
		h.hooks.WebhookReceived(name, ResultError)
		h.logger.ErrorContext(ctx, "webhook not stored; the carrier will retry", "carrier", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	case !inserted:
		h.hooks.WebhookReceived(name, ResultDuplicate)
		h.logger.DebugContext(ctx, "webhook redelivered", "carrier", name, "event_key", key)
		w.WriteHeader(http.StatusOK)
	default:
		h.hooks.WebhookReceived(name, ResultAccepted)
		h.logger.DebugContext(ctx, "webhook accepted", "carrier", name, "webhook_event_id", id, "event_key", key)
		w.WriteHeader(http.StatusOK)
	}
}

// store inserts the raw event and, only if it is new, its translate job, in one statement
// shared with concurrent requests (see Run), and commits before returning.
func (h *Handler) store(ctx context.Context, carrier, key string, body []byte, r *http.Request) (id int64, inserted bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, false, err // the carrier hung up: store nothing, it will retry
	}
	headers, err := json.Marshal(keptHeaders(r.Header))
	if err != nil {
		return 0, false, fmt.Errorf("encode headers: %w", err)
	}
	ev := newEvent{carrier: carrier, key: key, body: body, headers: headers, sourceAddr: remoteHost(r)}
	var res stored
	alone := !h.running.Load()
	if !alone {
		res, err = h.storer.Do(ctx, ev)
		alone = errors.Is(err, batch.ErrStopped) // Run stopped before the event's batch ran
	}
	if alone { // no Run (or no more): a batch of one
		var one []stored
		if one, err = h.storeBatch(ctx, []newEvent{ev}); err == nil {
			res = one[0]
		}
	}
	if err == nil {
		err = res.err
	}
	if err != nil {
		return 0, false, fmt.Errorf("store webhook event: %w", err)
	}
	return res.id, res.inserted, nil
}

// newEvent is a verified webhook on its way into waybill.webhook_events.
type newEvent struct {
	carrier, key string
	body         []byte
	headers      []byte // JSON
	sourceAddr   string
}

// stored is what became of one newEvent: inserted with id, or a redelivery (not inserted), or
// not stored (err).
type stored struct {
	id       int64
	inserted bool
	err      error
}

// maxStoreBatch bounds one intake statement. At thousands of events a second, batches are tens.
const maxStoreBatch = 256

// storeBatch stores concurrent requests' events in one statement and one synchronous commit:
// durable before any of them is answered. Two copies of one event in the batch are one row, the
// later a redelivery. If the statement fails, each event is tried alone, so an event Postgres
// refuses fails only its own request: errors are per event (stored.err), never the batch's.
func (h *Handler) storeBatch(ctx context.Context, evs []newEvent) ([]stored, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	type identity struct{ carrier, key string }
	out := make([]stored, len(evs))
	firstOf := make(map[identity]int, len(evs))
	unique := make([]int, 0, len(evs))
	copyOf := make(map[int]int) // a later copy → the first copy in this batch
	for i, ev := range evs {
		id := identity{ev.carrier, ev.key}
		if first, ok := firstOf[id]; ok {
			copyOf[i] = first
			continue
		}
		firstOf[id] = i
		unique = append(unique, i)
	}

	insert := func(idx []int) error {
		p := dbsqlc.WebhookEventInsertManyParams{
			Carriers:    make([]string, len(idx)),
			EventKeys:   make([]string, len(idx)),
			Bodies:      make([][]byte, len(idx)),
			Headers:     make([][]byte, len(idx)),
			SourceAddrs: make([]string, len(idx)),
		}
		for j, i := range idx {
			ev := evs[i]
			p.Carriers[j], p.EventKeys[j], p.Bodies[j], p.Headers[j], p.SourceAddrs[j] = ev.carrier, ev.key, ev.body, ev.headers, ev.sourceAddr
		}
		rows, err := h.queries.WebhookEventInsertMany(ctx, h.pool, p)
		if err != nil {
			return err
		}
		for _, row := range rows {
			i := firstOf[identity{row.Carrier, row.EventKey}]
			out[i] = stored{id: row.ID, inserted: true}
		}
		return nil // the events without a row were stored before: redeliveries
	}
	if err := insert(unique); err != nil {
		if len(unique) == 1 {
			out[unique[0]].err = err
		} else {
			h.logger.WarnContext(ctx, "webhook batch not stored; storing its events one by one", "batch_size", len(unique), "error", err)
			for _, i := range unique {
				if err := insert([]int{i}); err != nil {
					out[i].err = err
				}
			}
		}
	}
	for i, first := range copyOf {
		out[i] = stored{err: out[first].err} // a redelivery of the first, unless that failed
	}
	return out, nil
}

// Run serves the intake's group commits until ctx ends: requests that arrive while a batch is
// being stored go together in the next one, one INSERT and one commit for all of them. End ctx
// only once the HTTP server has shut down. Without Run, each request stores on its own.
func (h *Handler) Run(ctx context.Context) {
	h.running.Store(true)
	defer h.running.Store(false)
	h.storer.Loop(ctx)
}

// refuse answers an unsigned or forged request: 401, nothing stored, counted, logged with its
// source address.
func (h *Handler) refuse(ctx context.Context, w http.ResponseWriter, r *http.Request, carrier string, err error) {
	h.hooks.WebhookReceived(carrier, ResultBadSignature)
	if h.refusalLog.Allow() {
		h.logger.WarnContext(ctx, "webhook refused: bad signature",
			"carrier", carrier,
			"remote_addr", remoteHost(r),
			"forwarded_for", r.Header.Get("X-Forwarded-For"),
			"user_agent", r.UserAgent(),
			"error", err,
			"unlogged_refusals_before", h.unloggedRefusals.Swap(0))
	} else {
		h.unloggedRefusals.Add(1)
	}
	http.Error(w, "invalid signature", http.StatusUnauthorized)
}

// readBody reads at most MaxBodyBytes. The buffer grows as bytes arrive, never from what
// Content-Length promises: a promise costs the sender nothing.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	return buf.Bytes(), err
}

// carrierName is the {carrier} of the path, or its last segment when mounted on a literal path
// such as POST /webhooks/onfleet.
func carrierName(r *http.Request) string {
	if name := r.PathValue("carrier"); name != "" {
		return name
	}
	return path.Base(r.URL.Path)
}

// storedEventKey is the key an event is stored and deduplicated under: the carrier's own, or
// for one longer than maxEventKey, its SHA-256 (a redelivery hashes the same).
func storedEventKey(key string) string {
	if len(key) <= maxEventKey {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256-key:" + hex.EncodeToString(sum[:])
}

// keptHeaders are the request's headers as stored with the event: everything but credentials.
func keptHeaders(h http.Header) map[string]string {
	kept := make(map[string]string, len(h))
	for name, values := range h {
		switch name {
		case "Authorization", "Proxy-Authorization", "Cookie":
			continue
		}
		kept[name] = strings.Join(values, ", ")
	}
	return kept
}

func remoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
