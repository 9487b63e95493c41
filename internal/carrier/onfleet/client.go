package onfleet

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/truncate"
)

// Name is the carrier's name in waybill.orders.carrier.
const Name = "onfleet"

// DefaultTimeout bounds one request when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// maxResponseBody caps how much of an answer is read; a metadata query answers with whole tasks.
const maxResponseBody = 8 << 20

// Options configures a Client.
type Options struct {
	BaseURL string // e.g. https://onfleet.com/api/v2
	APIKey  string
	// Limiter is the organisation's request budget (ratelimit.Shared, across the cluster). When
	// nil, RateLimit > 0 limits this Client alone; 0 means no limit.
	Limiter   carrier.Limiter
	RateLimit float64
	// Timeout bounds each request, from sending to the last byte of the answer. Waiting for the
	// rate limiter does not count. Zero means DefaultTimeout.
	Timeout time.Duration
	Logger  *slog.Logger
	// Transport replaces the pooled transport, for tests.
	Transport http.RoundTripper
}

// Client talks to Onfleet. It is safe for concurrent use; share one per process so that every
// worker waits on the same rate limiter.
type Client struct {
	baseURL string
	auth    string
	limiter carrier.Limiter // nil: no limit
	timeout time.Duration
	http    *http.Client
	logger  *slog.Logger
}

var _ carrier.Carrier = (*Client)(nil)

// New returns a Client for opts.
func New(opts Options) *Client {
	c := &Client{
		baseURL: strings.TrimRight(opts.BaseURL, "/"),
		// Onfleet: the API key is the user name, the password is empty.
		auth:    "Basic " + base64.StdEncoding.EncodeToString([]byte(opts.APIKey+":")),
		timeout: cmp.Or(opts.Timeout, DefaultTimeout),
		logger:  opts.Logger,
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case opts.Limiter != nil:
		c.limiter = opts.Limiter
	case opts.RateLimit > 0:
		// A burst of one: Onfleet counts requests per second, so spacing them evenly never
		// overshoots, whatever the window it measures.
		c.limiter = carrier.NewLocalLimiter(opts.RateLimit)
	}
	transport := opts.Transport
	if transport == nil {
		transport = newTransport()
	}
	c.http = &http.Client{Transport: transport}
	return c
}

// newTransport keeps many idle keep-alive connections per host: dispatch runs hundreds of
// concurrent workers against one host, and benchmarks push thousands of requests a second.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// Name implements carrier.Carrier.
func (c *Client) Name() string { return Name }

// taskAnswer is the part of Onfleet's task object Waybill reads.
type taskAnswer struct {
	ID          string `json:"id"`
	TrackingURL string `json:"trackingURL"`
	TimeCreated int64  `json:"timeCreated"`
}

// CreateTask implements carrier.Carrier: POST /tasks.
func (c *Client) CreateTask(ctx context.Context, req carrier.Request) (carrier.Task, error) {
	var answer taskAnswer
	if err := c.do(ctx, http.MethodPost, "/tasks", taskBody(req), func(raw []byte) error {
		var err error
		answer, err = createdTask(raw)
		return err
	}); err != nil {
		return carrier.Task{}, err
	}
	if answer.ID == "" {
		// The task may well exist; only a lookup can tell.
		return carrier.Task{}, &carrier.Error{Carrier: Name, Class: carrier.Transient, StatusCode: http.StatusOK,
			Ambiguous: true, Message: "answer without a task id"}
	}
	return carrier.Task{ID: answer.ID, TrackingURL: answer.TrackingURL}, nil
}

// createdTask reads the id and tracking URL from POST /tasks's answer. The answer is the whole
// task, a few kilobytes of nested objects; decoding it with encoding/json (which first validates
// all of it) was a tenth of the service's CPU while dispatching, so only the two top-level
// fields are picked out. An answer that is not a JSON object is unreadable.
func createdTask(raw []byte) (taskAnswer, error) {
	if !bytes.HasPrefix(bytes.TrimLeft(raw, " \t\r\n"), []byte("{")) {
		return taskAnswer{}, errors.New("not a JSON object")
	}
	r := gjson.GetManyBytes(raw, "id", "trackingURL")
	return taskAnswer{ID: stringValue(r[0]), TrackingURL: stringValue(r[1])}, nil
}

func stringValue(r gjson.Result) string {
	if r.Type != gjson.String {
		return ""
	}
	return r.Str
}

// metadataQuery is one entry of the POST /tasks/metadata body.
type metadataQuery struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// FindTask implements carrier.Carrier: POST /tasks/metadata for the external id. Several tasks
// for one order should never happen; if they do, the earliest wins and a warning says so.
func (c *Client) FindTask(ctx context.Context, externalID string) (carrier.Task, bool, error) {
	var tasks []taskAnswer
	query := []metadataQuery{{Name: MetaExternalID, Type: "string", Value: externalID}}
	if err := c.do(ctx, http.MethodPost, "/tasks/metadata", query, func(raw []byte) error {
		return json.Unmarshal(raw, &tasks)
	}); err != nil {
		return carrier.Task{}, false, err
	}
	if len(tasks) == 0 {
		return carrier.Task{}, false, nil
	}
	slices.SortFunc(tasks, func(a, b taskAnswer) int {
		return cmp.Or(cmp.Compare(a.TimeCreated, b.TimeCreated), strings.Compare(a.ID, b.ID))
	})
	if len(tasks) > 1 {
		ids := make([]string, len(tasks))
		for i, t := range tasks {
			ids[i] = t.ID
		}
		c.logger.WarnContext(ctx, "duplicate carrier tasks for one order; keeping the earliest",
			"carrier", Name, "external_id", externalID, "task_ids", ids)
	}
	return carrier.Task{ID: tasks[0].ID, TrackingURL: tasks[0].TrackingURL}, true, nil
}

// AuthTest checks the API key: GET /auth/test.
func (c *Client) AuthTest(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/auth/test", nil, nil)
}

// do sends one request after waiting for the rate limiter and hands a 2xx answer to decode
// (when not nil). Every failure is a *carrier.Error.
func (c *Client) do(ctx context.Context, method, path string, in any, decode func(raw []byte) error) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("onfleet: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	if c.limiter != nil {
		if err := carrier.AwaitToken(ctx, c.limiter); err != nil {
			// Nothing was sent: not ambiguous.
			return &carrier.Error{Carrier: Name, Class: carrier.Transient, Message: "waiting for the rate limiter", Err: err}
		}
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return fmt.Errorf("onfleet: build %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return carrier.NoAnswer(Name, method+" "+path, err)
	}
	raw, err := carrier.ReadBody(resp.Body, maxResponseBody)
	if err != nil {
		return carrier.NoAnswer(Name, method+" "+path, fmt.Errorf("read answer (HTTP %d): %w", resp.StatusCode, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := errorFromAnswer(resp.StatusCode, resp.Header, raw, time.Now())
		if e.Class == carrier.RateLimited && c.limiter != nil {
			// The organisation is over its limit, whoever sent the rest: every instance waits.
			c.limiter.Block(ctx, cmp.Or(e.RetryAfter, time.Second))
		}
		return e
	}
	if c.limiter != nil {
		switch resp.Header.Get("X-RateLimit-Remaining") {
		case "0":
			// The next request would be refused: let the window move on first.
			c.limiter.Block(ctx, time.Second)
		case "1":
			// The budget leaves two requests of room in the carrier's window; one left means
			// requests bunched (a busy machine delays some after their tokens): pause a
			// little so the one in flight does not meet another.
			c.limiter.Block(ctx, 250*time.Millisecond)
		}
	}
	if decode == nil {
		return nil
	}
	if err := decode(raw); err != nil {
		// A 2xx we cannot read: the call may have done its work.
		return &carrier.Error{Carrier: Name, Class: carrier.Transient, StatusCode: resp.StatusCode, Ambiguous: true,
			Message: "unreadable answer: " + truncate.Runes(string(raw), 200), Err: err}
	}
	return nil
}
