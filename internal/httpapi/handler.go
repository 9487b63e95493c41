package httpapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/waybill/waybill/internal/orders"
)

// maxOrderBody bounds an intake request; a canonical order is a few KiB.
const maxOrderBody = 1 << 20

// DefaultRequestTimeout bounds each intake request (POST and GET /v1/orders): a producer gets 503
// with Retry-After rather than waiting on a Postgres that does not answer.
const DefaultRequestTimeout = 10 * time.Second

// retryAfterSeconds is what a 503 asks the producer to wait before trying again.
const retryAfterSeconds = 5

// maxExternalID is the longest external_id an order can have (see waybill.orders).
const maxExternalID = 200

// WebhookHandler receives carrier webhooks (internal/webhook).
type WebhookHandler interface {
	ServeCheck(w http.ResponseWriter, r *http.Request)
	ServeEvent(w http.ResponseWriter, r *http.Request)
}

// Deps are what the handler serves. Nil optional parts answer 404 with a reason.
type Deps struct {
	Orders      *orders.Store
	IntakeToken string // empty: POST /v1/orders answers 401 to everyone
	Logger      *slog.Logger
	// Ready reports why the service cannot serve (nil when it can) for /readyz. The error is
	// logged; the answer shows only its PublicReason (see metrics.NotReadyError), if it has one.
	Ready    func(ctx context.Context) error
	Metrics  http.Handler
	Webhooks WebhookHandler
	// RiverUI is mounted at /riverui/, already behind admin auth (see BasicAuth); nil when no
	// admin credentials are configured. NewHandler adds cross-origin and framing protection.
	RiverUI http.Handler
	// RequestTimeout bounds each intake request; 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
}

type api struct{ Deps }

// NewHandler lists every route Waybill serves.
func NewHandler(d Deps) http.Handler {
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = DefaultRequestTimeout
	}
	a := &api{d}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("POST /v1/orders", a.requireToken(a.bounded(a.createOrder)))
	mux.HandleFunc("GET /v1/orders/{external_id}", a.requireToken(a.bounded(a.getOrder)))
	if d.Metrics != nil {
		mux.Handle("GET /metrics", d.Metrics)
	}
	if d.Webhooks != nil {
		mux.HandleFunc("GET /webhooks/{carrier}", d.Webhooks.ServeCheck)
		mux.HandleFunc("POST /webhooks/{carrier}", d.Webhooks.ServeEvent)
	}
	if d.RiverUI != nil {
		mux.Handle("/riverui/", AdminPage(d.RiverUI))
	} else {
		mux.HandleFunc("/riverui/", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusNotFound, errorBody{Error: "River UI is off: set WAYBILL_ADMIN_USER and WAYBILL_ADMIN_PASSWORD"})
		})
	}
	return mux
}

// readyz is unauthenticated: the answer names the failing dependency only ("database
// unreachable"), never a host, user or database name; the detail goes to the log.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	w.Header().Set("Cache-Control", "no-store")
	if err := a.Ready(ctx); err != nil {
		reason := "not ready"
		var public interface{ PublicReason() string }
		if errors.As(err, &public) {
			reason = public.PublicReason()
		}
		a.Logger.WarnContext(ctx, "not ready", "reason", reason, "error", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": reason})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// bounded gives an intake request its deadline (RequestTimeout): past it, the database work is
// abandoned and the producer gets 503 with Retry-After (see writeError).
func (a *api) bounded(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.RequestTimeout)
		defer cancel()
		next(w, r.WithContext(ctx))
	}
}

type createOrderRequest struct {
	ExternalID string          `json:"external_id"`
	Carrier    string          `json:"carrier"`
	Kind       orders.Kind     `json:"kind"`
	Payload    json.RawMessage `json:"payload"`
}

// orderResponse is the order as the API shows it; the payload stays with the producer.
type orderResponse struct {
	ExternalID   string        `json:"external_id"`
	Carrier      string        `json:"carrier"`
	Kind         orders.Kind   `json:"kind"`
	Status       orders.Status `json:"status"`
	StatusReason string        `json:"status_reason,omitempty"`
	CarrierRef   string        `json:"carrier_ref,omitempty"`
	TrackingURL  string        `json:"tracking_url,omitempty"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
	DispatchedAt *time.Time    `json:"dispatched_at,omitempty"`
}

func newOrderResponse(o orders.Order) orderResponse {
	return orderResponse{
		ExternalID: o.ExternalID, Carrier: o.Carrier, Kind: o.Kind, Status: o.Status,
		StatusReason: o.StatusReason, CarrierRef: o.CarrierRef, TrackingURL: o.TrackingURL,
		CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt, DispatchedAt: o.DispatchedAt,
	}
}

func (a *api) createOrder(w http.ResponseWriter, r *http.Request) {
	var req createOrderRequest
	if err := decodeJSON(w, r, maxOrderBody, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	var problems []orders.Problem
	switch {
	case strings.TrimSpace(req.ExternalID) == "":
		problems = append(problems, orders.Problem{Field: "external_id", Problem: "required non-empty string"})
	case strings.ContainsRune(req.ExternalID, 0):
		problems = append(problems, orders.Problem{Field: "external_id", Problem: "must not contain NUL characters"})
	}
	if req.Carrier == "" {
		problems = append(problems, orders.Problem{Field: "carrier", Problem: "required, e.g. onfleet"})
	}
	if len(req.Payload) == 0 || string(req.Payload) == "null" {
		problems = append(problems, orders.Problem{Field: "payload", Problem: "required object"})
	}
	if problems != nil {
		a.writeError(w, r, &orders.ValidationError{Problems: problems})
		return
	}
	order, created, err := a.Orders.Create(r.Context(), orders.NewOrder{
		ExternalID: req.ExternalID, Carrier: req.Carrier, Kind: req.Kind, Payload: req.Payload,
	})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		a.Logger.InfoContext(r.Context(), "order accepted", "order_id", order.ID, "external_id", order.ExternalID, "carrier", order.Carrier)
	}
	writeJSON(w, status, newOrderResponse(order))
}

func (a *api) getOrder(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("external_id")
	// No order has an id Postgres cannot even hold as text: not found, without asking it.
	if !utf8.ValidString(id) || strings.ContainsRune(id, 0) || utf8.RuneCountInString(id) > maxExternalID {
		a.writeError(w, r, orders.ErrNotFound)
		return
	}
	order, err := a.Orders.GetByExternalID(r.Context(), id)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newOrderResponse(order))
}

// requireToken checks the intake bearer token in constant time.
func (a *api) requireToken(next http.HandlerFunc) http.HandlerFunc {
	want := []byte("Bearer " + a.IntakeToken)
	return func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if a.IntakeToken == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="waybill"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "missing or wrong bearer token"})
			return
		}
		next(w, r)
	}
}

// AdminPage protects an admin UI (River UI) that a browser holding cached Basic credentials
// visits: state-changing requests from another origin are refused (403; Go's
// CrossOriginProtection, which reads Sec-Fetch-Site and Origin), and no other site may frame it.
func AdminPage(next http.Handler) http.Handler {
	protected := http.NewCrossOriginProtection().Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		w.Header().Set("X-Frame-Options", "DENY")
		protected.ServeHTTP(w, r)
	})
}

// BasicAuth guards admin pages (River UI) with WAYBILL_ADMIN_USER / WAYBILL_ADMIN_PASSWORD.
func BasicAuth(user, password string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		userOK := subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(p), []byte(password)) == 1
		if !ok || !userOK || !passOK {
			w.Header().Set("WWW-Authenticate", `Basic realm="waybill admin", charset="UTF-8"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type errorBody struct {
	Error  string           `json:"error"`
	Fields []orders.Problem `json:"fields,omitempty"`
}

// requestError is a client mistake found before the order reached the store.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// writeError is the one place errors become HTTP answers. Internal errors are logged, never
// echoed.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		verr  *orders.ValidationError
		rerr  *requestError
		pgErr *pgconn.PgError
	)
	switch {
	case errors.As(err, &rerr):
		writeJSON(w, rerr.status, errorBody{Error: rerr.msg})
	case errors.As(err, &verr):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid order", Fields: verr.Problems})
	case errors.Is(err, orders.ErrNotFound):
		writeJSON(w, http.StatusNotFound, errorBody{Error: err.Error()})
	case errors.Is(err, orders.ErrConflict):
		writeJSON(w, http.StatusConflict, errorBody{Error: err.Error()})
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22"):
		// A data exception: Postgres refused a value of the request (a NUL character, an
		// unsupported Unicode escape in the payload…). The message names the problem, not data.
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid order: " + pgErr.Message})
	case databaseUnavailable(err):
		a.Logger.WarnContext(r.Context(), "request failed: database unavailable", "method", r.Method, "error", err)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "database unavailable; try again later"})
	default:
		a.Logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
	}
}

// databaseUnavailable reports whether err means Postgres could not be reached or did not answer
// in time, rather than a bug: the request deadline passed, a connection could not be made or was
// lost, or the server is shutting down, starting or full.
func databaseUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || pgconn.Timeout(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "53300", "57P01", "57P02", "57P03", "57014": // too many connections, shutdowns, query cancelled
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08") // connection exception
	}
	var (
		connErr *pgconn.ConnectError
		netErr  net.Error
	)
	return errors.As(err, &connErr) || errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err)
}

func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mediaType, _, err := mime.ParseMediaType(ct)
		if err != nil || mediaType != "application/json" {
			return &requestError{http.StatusUnsupportedMediaType, "Content-Type must be application/json"}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &requestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", limit)}
		}
		if databaseUnavailable(err) { // the request deadline passed while reading
			return &requestError{http.StatusRequestTimeout, "body not received in time"}
		}
		return &requestError{http.StatusBadRequest, "could not read body"}
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD, or pass it on in raw values.
	if !utf8.Valid(body) {
		return &requestError{http.StatusBadRequest, "body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &orders.ValidationError{Problems: []orders.Problem{{Field: "body", Problem: "malformed JSON: " + err.Error()}}} // 400 with fields, like every 400
	}
	if dec.More() {
		return &requestError{http.StatusBadRequest, "malformed JSON: one object expected"}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
