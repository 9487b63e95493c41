package webhook

import (
	"bytes"
	"context"
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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/time/rate"

	"github.com/waybill/waybill/internal/dbsqlc"
)

// MaxBodyBytes is the largest webhook body accepted; larger is 413. Onfleet's biggest bodies
// (a task with its worker) are a few kilobytes.
const MaxBodyBytes = 1 << 20

// HandlerConfig is what the intake needs.
type HandlerConfig struct {
	Pool    *pgxpool.Pool
	Sources Sources
	Logger  *slog.Logger
	Hooks   Hooks // nil: nothing counted
}

// Handler is the webhook intake: it verifies, stores the raw event and enqueues its translation
// in one transaction, and answers at once. Carriers time out (Onfleet after 10 s) and disable
// slow endpoints, so nothing else happens before the answer.
type Handler struct {
	pool    *pgxpool.Pool
	sources Sources
	logger  *slog.Logger
	hooks   Hooks
	queries *dbsqlc.Queries

	// A flood of forged requests must not flood the log: refusals are logged at this rate, and
	// the next logged one says how many went unlogged. All are counted by Hooks.
	refusalLog       *rate.Limiter
	unloggedRefusals atomic.Int64
}

// NewHandler builds the intake. Mount it as
//
//	mux.HandleFunc("GET /webhooks/onfleet", h.ServeCheck)
//	mux.HandleFunc("POST /webhooks/{carrier}", h.ServeEvent)
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Pool == nil || cfg.Logger == nil {
		return nil, errors.New("webhook handler: Pool and Logger are required")
	}
	hooks := cfg.Hooks
	if hooks == nil {
		hooks = nopHooks{}
	}
	return &Handler{
		pool:       cfg.Pool,
		sources:    cfg.Sources,
		logger:     cfg.Logger,
		hooks:      hooks,
		queries:    dbsqlc.New(),
		refusalLog: rate.NewLimiter(rate.Every(100*time.Millisecond), 20),
	}, nil
}

// ServeCheck answers Onfleet's URL validation, GET /webhooks/onfleet?check=X: 200 with exactly X.
func (h *Handler) ServeCheck(w http.ResponseWriter, r *http.Request) {
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
	name := r.PathValue("carrier")
	if name == "" { // mounted on a literal path such as POST /webhooks/onfleet
		name = path.Base(r.URL.Path)
	}
	src, ok := h.sources[name]
	if !ok {
		h.hooks.WebhookReceived(UnknownCarrierLabel, ResultUnknownCarrier)
		http.Error(w, "unknown carrier", http.StatusNotFound)
		return
	}

	body, err := readBody(w, r)
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

	id, inserted, err := h.store(ctx, name, ev.EventKey, body, r)
	switch {
	case err != nil:
		h.hooks.WebhookReceived(name, ResultError)
		h.logger.ErrorContext(ctx, "webhook not stored; the carrier will retry", "carrier", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	case !inserted:
		h.hooks.WebhookReceived(name, ResultDuplicate)
		h.logger.DebugContext(ctx, "webhook redelivered", "carrier", name, "event_key", ev.EventKey)
		w.WriteHeader(http.StatusOK)
	default:
		h.hooks.WebhookReceived(name, ResultAccepted)
		h.logger.DebugContext(ctx, "webhook accepted", "carrier", name, "webhook_event_id", id, "event_key", ev.EventKey)
		w.WriteHeader(http.StatusOK)
	}
}

// store inserts the raw event and, only if it is new, its translate job, in one statement.
func (h *Handler) store(ctx context.Context, carrier, key string, body []byte, r *http.Request) (id int64, inserted bool, err error) {
	headers, err := json.Marshal(keptHeaders(r.Header))
	if err != nil {
		return 0, false, fmt.Errorf("encode headers: %w", err)
	}
	id, err = h.queries.WebhookEventInsert(ctx, h.pool, dbsqlc.WebhookEventInsertParams{
		Carrier:    carrier,
		EventKey:   key,
		Body:       body,
		Headers:    headers,
		SourceAddr: remoteHost(r),
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil // a redelivery: stored before, its job enqueued then
	}
	if err != nil {
		return 0, false, fmt.Errorf("store webhook event: %w", err)
	}
	return id, true, nil
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

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, &http.MaxBytesError{Limit: MaxBodyBytes}
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead) // room to read EOF without growing
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	return buf.Bytes(), err
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
