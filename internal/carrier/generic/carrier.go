package generic

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/truncate"
)

// DefaultTimeout bounds one request when Config.Timeout is zero; WAYBILL_CARRIER_TIMEOUT's
// default.
const DefaultTimeout = 10 * time.Second

// maxResponseBody caps how much of an answer is read.
const maxResponseBody = 8 << 20

// compiledCarrier is a checked Config, ready to run.
type compiledCarrier struct {
	create       *compiledRequest
	find         *compiledRequest // nil: the carrier has no lookup
	batch        *compiledBatch   // nil: one order per request
	errorMessage Path
	webhook      *compiledWebhook
	vocabulary   carrier.Vocabulary
}

// Carrier is a carrier declared in the carriers file. It is safe for concurrent use; share one
// per process so every worker waits on the same rate limiter.
type Carrier struct {
	name    string
	cfg     *compiledCarrier
	limiter carrier.Limiter // nil: no limit
	timeout time.Duration
	http    *http.Client
	logger  *slog.Logger
	source  *Source
}

// Every Carrier is a carrier.SyncBatchCarrier; without create_batch its MaxBatch is 1, which
// dispatch reads as "no batches".
var _ carrier.SyncBatchCarrier = (*Carrier)(nil)

// New builds the carrier cfg declares. cfg must come from LoadFile or Parse.
func New(cfg Config, logger *slog.Logger) (*Carrier, error) {
	if cfg.compiled == nil {
		return nil, fmt.Errorf("generic carrier %q: the Config was not read by LoadFile or Parse", cfg.Name)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Carrier{
		name:    cfg.Name,
		cfg:     cfg.compiled,
		timeout: cmp.Or(cfg.Timeout, DefaultTimeout),
		http:    &http.Client{Transport: newTransport()},
		logger:  logger,
		source:  &Source{name: cfg.Name, cfg: cfg.compiled.webhook, vocabulary: cfg.compiled.vocabulary},
	}
	switch {
	case cfg.Limiter != nil:
		c.limiter = cfg.Limiter
	case cfg.RateLimit > 0:
		// A burst of one spaces requests evenly, whatever window the carrier measures.
		c.limiter = carrier.NewLocalLimiter(cfg.RateLimit)
	}
	switch {
	case c.cfg.find == nil && c.cfg.create.idempotencyHeader == "":
		logger.Warn("carrier has neither find_task nor create_task.idempotency_header: "+
			"a retry after a timeout may create a second task for an order",
			"carrier", cfg.Name)
	case c.cfg.find == nil && c.cfg.batch != nil:
		// The idempotency header carries one order's key; a batch request has none.
		logger.Warn("carrier has create_batch but no find_task: after a batch request times out, "+
			"its orders are sent again, and the carrier may create a second task for each one it had created "+
			"unless it refuses a second task for the same reference",
			"carrier", cfg.Name)
	}
	return c, nil
}

// newTransport keeps many idle keep-alive connections: dispatch runs hundreds of concurrent
// workers against one host.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// Name implements carrier.Carrier.
func (c *Carrier) Name() string { return c.name }

// WebhookSource reads this carrier's webhooks, for carrier.NewSources.
func (c *Carrier) WebhookSource() *Source { return c.source }

// CreateTask implements carrier.Carrier: the create_task request.
func (c *Carrier) CreateTask(ctx context.Context, req carrier.Request) (carrier.Task, error) {
	r := c.cfg.create
	status, doc, err := c.do(ctx, r, req)
	if err != nil {
		return carrier.Task{}, err
	}
	if status < 200 || status > 299 {
		return carrier.Task{}, c.answerError(r, status, doc)
	}
	id, ok := r.taskID.Text(doc.value)
	if !ok || id == "" {
		// The task may well exist; only a lookup (or the idempotency key) can tell.
		return carrier.Task{}, &carrier.Error{Carrier: c.name, Class: carrier.Transient, StatusCode: status, Ambiguous: true,
			Message: fmt.Sprintf("answer without a task id at %s: %s", r.taskID, truncate.Runes(string(doc.raw), 200))}
	}
	tracking, _ := r.trackingURL.Text(doc.value)
	return carrier.Task{ID: id, TrackingURL: tracking}, nil
}

// FindTask implements carrier.Carrier: the find_task request. Without one, there is never a
// task to find.
func (c *Carrier) FindTask(ctx context.Context, externalID string) (carrier.Task, bool, error) {
	r := c.cfg.find
	if r == nil {
		return carrier.Task{}, false, nil
	}
	status, doc, err := c.do(ctx, r, carrier.Request{ExternalID: externalID})
	if err != nil {
		return carrier.Task{}, false, err
	}
	if status == http.StatusNotFound && r.list.IsZero() {
		return carrier.Task{}, false, nil // a lookup by reference: no such task
	}
	if status < 200 || status > 299 {
		return carrier.Task{}, false, c.answerError(r, status, doc)
	}
	unexpected := func(format string, args ...any) error {
		// The doubt the lookup was meant to clear is still there.
		return &carrier.Error{Carrier: c.name, Class: carrier.Transient, StatusCode: status, Ambiguous: true,
			Message: fmt.Sprintf(format, args...) + ": " + truncate.Runes(string(doc.raw), 200)}
	}

	task := doc.value
	if !r.list.IsZero() {
		v, ok := r.list.Lookup(doc.value)
		list, isList := v.([]any)
		if !ok || (!isList && v != nil) {
			return carrier.Task{}, false, unexpected("find_task answer has no list at %s", r.list)
		}
		if len(list) == 0 {
			return carrier.Task{}, false, nil
		}
		if len(list) > 1 {
			ids := make([]string, len(list))
			for i, m := range list {
				ids[i], _ = r.taskID.Text(m)
			}
			c.logger.WarnContext(ctx, "several carrier tasks for one order; keeping the first the carrier listed",
				"carrier", c.name, "external_id", externalID, "task_ids", ids)
		}
		task = list[0]
	} else if r.taskID.HitsNull(task) {
		return carrier.Task{}, false, nil // {"data": null}: none
	}
	id, ok := r.taskID.Text(task)
	if !ok || id == "" {
		return carrier.Task{}, false, unexpected("find_task answer without a task id at %s", r.taskID)
	}
	tracking, _ := r.trackingURL.Text(task)
	return carrier.Task{ID: id, TrackingURL: tracking}, true, nil
}

// answer is a carrier's answer body, raw and, when it is JSON, decoded.
type answer struct {
	raw        []byte
	value      any           // nil when not JSON
	retryAfter time.Duration // from Retry-After, on a non-2xx answer
}

// do renders and sends one request after waiting for the rate limiter. A 2xx answer that is not
// JSON, and a request that got no (complete) answer, are *carrier.Error; any other answer is
// returned for the caller to judge.
func (c *Carrier) do(ctx context.Context, r *compiledRequest, req carrier.Request) (int, answer, error) {
	target, body, err := r.render(req)
	if err != nil {
		return 0, answer{}, &carrier.Error{Carrier: c.name, Class: carrier.Rejected, Message: unrenderable(err), Err: err}
	}
	var idempotencyKey string
	if r.idempotencyHeader != "" {
		idempotencyKey = req.ExternalID
	}
	return c.send(ctx, r, target, body, idempotencyKey)
}

// unrenderable is the reason an order whose payload breaks a template is refused. The
// templates were checked with sample orders at start, so this order's payload is what breaks
// them: it can never be sent as it is.
func unrenderable(err error) string {
	return "the order cannot be rendered as the carrier's request: " + err.Error()
}

// send makes one rendered request after waiting for the rate limiter, with idempotencyKey in
// r's idempotency header when both are set. Its answers are judged as do's.
func (c *Carrier) send(ctx context.Context, r *compiledRequest, target string, body []byte, idempotencyKey string) (int, answer, error) {
	if c.limiter != nil {
		if err := carrier.AwaitToken(ctx, c.limiter); err != nil {
			// Nothing was sent: not ambiguous.
			return 0, answer{}, &carrier.Error{Carrier: c.name, Class: carrier.Transient, Message: "waiting for the rate limiter", Err: err}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(r.timeout, c.timeout))
	defer cancel()
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(ctx, r.method, target, reader)
	if err != nil {
		return 0, answer{}, &carrier.Error{Carrier: c.name, Class: carrier.Rejected, Message: "build request: " + err.Error(), Err: err}
	}
	hreq.Header = r.header.Clone()
	if hreq.Header.Get("Accept") == "" {
		hreq.Header.Set("Accept", "application/json")
	}
	if body != nil && hreq.Header.Get("Content-Type") == "" {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if r.idempotencyHeader != "" && idempotencyKey != "" {
		hreq.Header.Set(r.idempotencyHeader, idempotencyKey)
	}

	resp, err := c.http.Do(hreq)
	if err != nil {
		return 0, answer{}, carrier.NoAnswer(c.name, r.method+" "+r.field+".url", err)
	}
	raw, err := carrier.ReadBody(resp.Body, maxResponseBody)
	if err != nil {
		return 0, answer{}, carrier.NoAnswer(c.name, r.method+" "+r.field+".url", fmt.Errorf("read answer (HTTP %d): %w", resp.StatusCode, err))
	}
	a := answer{raw: raw}
	a.value, err = decodeJSON(raw)
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	if ok && err != nil {
		// A 2xx we cannot read: the call may have done its work.
		return resp.StatusCode, a, &carrier.Error{Carrier: c.name, Class: carrier.Transient, StatusCode: resp.StatusCode, Ambiguous: true,
			Message: "unreadable answer: " + truncate.Runes(string(raw), 200), Err: err}
	}
	if !ok {
		a.retryAfter = carrier.RetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return resp.StatusCode, a, nil
}

// answerError turns a non-2xx answer into a *carrier.Error of the class dispatch acts on.
func (c *Carrier) answerError(r *compiledRequest, status int, a answer) *carrier.Error {
	e := &carrier.Error{Carrier: c.name, StatusCode: status, Message: c.answerMessage(status, a)}
	e.Class, e.Ambiguous = carrier.ClassifyStatus(status)
	if e.Class == carrier.RateLimited {
		e.RetryAfter = a.retryAfter
	}
	if carrier.EndpointMissing(status) {
		e.Message = fmt.Sprintf("endpoint not found, check %s.url of carrier %s in WAYBILL_CARRIERS_FILE: %s", r.field, c.name, e.Message)
	}
	return e
}

// answerMessage is the carrier's own words: the text at error_message, else the body.
func (c *Carrier) answerMessage(status int, a answer) string {
	if msg, ok := c.cfg.errorMessage.Text(a.value); ok && strings.TrimSpace(msg) != "" {
		return truncate.Runes(strings.TrimSpace(msg), 1000)
	}
	if s := strings.TrimSpace(string(a.raw)); s != "" {
		return truncate.Runes(s, 500)
	}
	return http.StatusText(status)
}
