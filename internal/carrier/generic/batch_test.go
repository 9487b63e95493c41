package generic

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
)

// batchRequests are orders for one batch: plain, refused by Acme, created with a warning.
func batchRequests() []carrier.Request {
	plain := minimalRequest()
	refused := minimalRequest()
	refused.OrderID, refused.ExternalID, refused.Payload.Address.City = 8, "SO-1002", "Atlantis"
	warned := fullRequest()
	warned.Payload.Address.City = "Springfield"
	return []carrier.Request{plain, refused, warned}
}

// The example's create_batch is read as declared.
func TestParseCreateBatch(t *testing.T) {
	t.Parallel()
	cfg := exampleConfig(t, acmeEnv("https://acme.test/v1"))
	b := cfg.compiled.batch
	require.NotNil(t, b)
	require.Equal(t, "https://acme.test/v1/deliveries/batch", b.url)
	require.Equal(t, http.MethodPost, b.request.method)
	require.Equal(t, 100, b.max)
	require.Equal(t, `"deliveries"`, string(b.itemsKey))
	require.Equal(t, 30*time.Second, b.request.timeout)
	require.Equal(t, "Bearer acme-test-key", b.request.header.Get("Authorization"), "create_task's credential")
	require.Equal(t, "2024-06-01", b.request.header.Get("Acme-Version"), "and headers")
	require.Empty(t, b.request.idempotencyHeader, "one order's key means nothing for a batch")
	require.Equal(t, []string{"results", "reference", "id", "tracking_url", "error.message", "warning"}, []string{
		b.results.String(), b.reference.String(), b.taskID.String(), b.trackingURL.String(), b.errorText.String(), b.warning.String(),
	})

	c, err := New(cfg, nil)
	require.NoError(t, err)
	require.Equal(t, 100, c.MaxBatch())

	// The least create_batch declares, with its own headers and a list for a body.
	doc := strings.Replace(minimalCarrier, "    webhook:", `    create_batch:
      url: https://api.beta.example/tasks/bulk
      method: put
      max: 2
      headers: {X-Bulk: "yes"}
      response: {reference: ref, task_id: id, error: problem}
    webhook:`, 1)
	cfgs, err := Parse([]byte(doc), getenv(betaEnv))
	require.NoError(t, err)
	b = cfgs[0].compiled.batch
	require.Equal(t, http.MethodPut, b.request.method)
	require.Nil(t, b.itemsKey)
	require.True(t, b.results.IsZero())
	require.Zero(t, b.request.timeout)
	require.Equal(t, "k", b.request.header.Get("X-Api-Key"))
	require.Equal(t, "yes", b.request.header.Get("X-Bulk"))
	require.Empty(t, cfgs[0].compiled.create.header.Get("X-Bulk"), "create_task's headers are not changed")

	// Without create_batch a carrier sends every order alone.
	cfgs, err = Parse([]byte(minimalCarrier), getenv(betaEnv))
	require.NoError(t, err)
	require.Nil(t, cfgs[0].compiled.batch)
	c, err = New(cfgs[0], nil)
	require.NoError(t, err)
	require.Equal(t, 1, c.MaxBatch(), "dispatch reads 1 as no batches")
}

// create_batch without find_task is warned about at start: after a timeout, the batch's orders
// are sent again without a lookup.
func TestCreateBatchWithoutFindTaskWarns(t *testing.T) {
	t.Parallel()
	raw := exampleYAML(t)
	findTask := raw[strings.Index(raw, "    find_task:"):strings.Index(raw, "    # Optional: a request that creates many")]
	for _, tt := range []struct {
		name    string
		replace []string
		want    string
	}{
		{"with find_task", nil, ""},
		{"without find_task", []string{findTask, ""}, "carrier has create_batch but no find_task"},
		{"without find_task nor idempotency", []string{findTask, "", "idempotency_header: Idempotency-Key", ""}, "carrier has neither find_task nor create_task.idempotency_header"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			_, err := New(exampleConfig(t, acmeEnv(""), tt.replace...), slog.New(slog.NewTextHandler(&logs, nil)))
			require.NoError(t, err)
			if tt.want == "" {
				require.Empty(t, logs.String())
				return
			}
			require.Contains(t, logs.String(), tt.want)
			require.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), "one warning says it")
		})
	}
}

// One request carries every order, each rendered by create_task.body; Acme's results, in
// another order than the request's, are matched to orders by reference.
func TestCreateBatchSync(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newAcmeServer(t)
	c := exampleCarrier(t, srv)
	reqs := batchRequests()

	res, err := c.CreateBatchSync(ctx, 77, reqs)
	require.NoError(t, err)
	require.Equal(t, carrier.BatchResult{
		Created: map[string]carrier.CreatedTask{
			"SO-1001": {Task: carrier.Task{ID: "dlv_0001", TrackingURL: "https://track.acme.example/dlv_0001"}},
			"RMA 7/8": {Task: carrier.Task{ID: "dlv_0002", TrackingURL: "https://track.acme.example/dlv_0002"},
				Warning: "several cities named Springfield; matched the first"},
		},
		Refused: map[string]string{"SO-1002": "address could not be geocoded"},
	}, res)
	require.Equal(t, []int{3}, srv.batchSizes())

	sent := srv.lastRequest(t)
	require.Equal(t, http.MethodPost, sent.Method)
	require.Equal(t, "/v1/deliveries/batch", sent.Path)
	require.Equal(t, "Bearer acme-test-key", sent.Header.Get("Authorization"))
	require.Equal(t, "2024-06-01", sent.Header.Get("Acme-Version"))
	require.Equal(t, "application/json", sent.Header.Get("Content-Type"))
	require.Empty(t, sent.Header.Get("Idempotency-Key"))
	var body struct {
		Deliveries []json.RawMessage `json:"deliveries"`
	}
	require.NoError(t, json.Unmarshal(sent.Body, &body))
	require.Len(t, body.Deliveries, 3)
	// Each delivery is what create_task sends for the same order.
	for i, req := range reqs {
		_, err := c.CreateTask(ctx, req)
		require.NoError(t, err)
		require.JSONEq(t, string(srv.lastRequest(t).Body), string(body.Deliveries[i]))
	}
}

// Each result is read on its own: refused, created, ignored without a reference of the batch,
// or absent (not created, to be sent again).
func TestCreateBatchSyncResults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name    string
		replace []string // in the example file
		answer  string
		want    carrier.BatchResult
	}{
		{
			name: "out of order, one refused, one absent",
			answer: `{"results": [
				{"reference": "SO-1002", "id": null, "error": {"code": "invalid_address", "message": "no such street"}},
				{"reference": "RMA 7/8", "id": "dlv_2", "tracking_url": "https://t/2", "warning": "doubtful address", "error": null}]}`,
			want: carrier.BatchResult{
				Created: map[string]carrier.CreatedTask{"RMA 7/8": {Task: carrier.Task{ID: "dlv_2", TrackingURL: "https://t/2"}, Warning: "doubtful address"}},
				Refused: map[string]string{"SO-1002": "no such street"},
			},
		},
		{
			name: "results without a reference of the batch are ignored",
			answer: `{"results": [
				{"id": "dlv_9", "tracking_url": "https://t/9"},
				{"reference": null, "error": {"message": "bad"}},
				{"reference": "SO-9999", "id": "dlv_8"},
				{"reference": {"v": "SO-1001"}, "id": "dlv_7"},
				{"reference": "SO-1001", "id": 12345}]}`,
			want: carrier.BatchResult{
				Created: map[string]carrier.CreatedTask{"SO-1001": {Task: carrier.Task{ID: "12345"}}},
				Refused: map[string]string{},
			},
		},
		{
			name: "a result with neither task id nor error was not created",
			answer: `{"results": [
				{"reference": "SO-1001", "id": "", "error": {"message": "  "}},
				{"reference": "SO-1002", "status": "queued", "error": {"message": null}},
				{"reference": "RMA 7/8", "id": "dlv_3"}]}`,
			want: carrier.BatchResult{
				Created: map[string]carrier.CreatedTask{"RMA 7/8": {Task: carrier.Task{ID: "dlv_3"}}},
				Refused: map[string]string{},
			},
		},
		{
			name: "the first result for an order wins, and created wins over refused",
			answer: `{"results": [
				{"reference": "SO-1001", "error": {"message": "duplicate"}},
				{"reference": "SO-1001", "id": "dlv_1"},
				{"reference": "SO-1001", "id": "dlv_1b"},
				{"reference": "SO-1002", "error": {"message": "first"}},
				{"reference": "SO-1002", "error": {"message": "second"}}]}`,
			want: carrier.BatchResult{
				Created: map[string]carrier.CreatedTask{"SO-1001": {Task: carrier.Task{ID: "dlv_1"}}},
				Refused: map[string]string{"SO-1002": "first"},
			},
		},
		{
			name:    "an error object kept as JSON; the answer is the list",
			replace: []string{"results: results #", "#", "error: error.message", "error: error", "warning: warning", "warning: notes"},
			answer: `[{"reference": "SO-1002", "error": {"code": "invalid_address", "fields": ["city"]}},
				{"reference": "SO-1001", "id": "dlv_1", "error": false, "notes": ["check <gate>", "ring"]},
				{"reference": "RMA 7/8", "id": "dlv_3", "notes": {}}]`,
			want: carrier.BatchResult{
				Created: map[string]carrier.CreatedTask{
					"SO-1001": {Task: carrier.Task{ID: "dlv_1"}, Warning: `["check <gate>","ring"]`},
					"RMA 7/8": {Task: carrier.Task{ID: "dlv_3"}},
				},
				Refused: map[string]string{"SO-1002": `{"code":"invalid_address","fields":["city"]}`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newAcmeServer(t)
			srv.respondWith(http.StatusOK, tt.answer)
			c := exampleCarrier(t, srv, tt.replace...)
			res, err := c.CreateBatchSync(ctx, 1, batchRequests())
			require.NoError(t, err)
			require.Equal(t, tt.want, res)
		})
	}
}

// A failure concerns the whole request, classified as for one task; an ambiguous one may
// have created tasks, so dispatch looks them up.
func TestCreateBatchSyncErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		body       string
		header     []string
		class      carrier.ErrorClass
		ambiguous  bool
		message    string
		retryAfter time.Duration
	}{
		{"400", 400, `{"error": {"code": "invalid_request", "message": "deliveries: 1 to 100 required"}}`, nil, carrier.Rejected, false, "deliveries: 1 to 100 required", 0},
		{"422 text", 422, "too large\n", nil, carrier.Rejected, false, "too large", 0},
		{"401", 401, `{"error": {"message": "invalid API key"}}`, nil, carrier.Unauthorized, false, "invalid API key", 0},
		{"404", 404, ``, nil, carrier.Unauthorized, false, "endpoint not found, check create_batch.url of carrier acme", 0},
		{"429", 429, `{"error": {"message": "slow down"}}`, []string{"Retry-After", "3"}, carrier.RateLimited, false, "slow down", 3 * time.Second},
		{"500", 500, `{"error": {"message": "boom"}}`, nil, carrier.Transient, true, "boom", 0},
		{"503", 503, `<html>maintenance</html>`, nil, carrier.Transient, true, "<html>maintenance</html>", 0},
		{"200 not JSON", 200, `<html>ok</html>`, nil, carrier.Transient, true, "unreadable answer", 0},
		{"200 without the list", 200, `{"data": []}`, nil, carrier.Transient, true, "batch answer has no list at results", 0},
		{"200 with an object for the list", 200, `{"results": {"SO-1001": {"id": "dlv_1"}}}`, nil, carrier.Transient, true, "batch answer has no list at results", 0},
		{"200 with an empty list", 200, `{"results": []}`, nil, carrier.Transient, true, "batch answer has no result whose reference is a reference it was sent", 0},
		{"200 naming no order of the batch", 200, `{"results": [{"ref": "SO-1001", "id": "dlv_1"}]}`, nil, carrier.Transient, true, "check create_batch.response", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newAcmeServer(t)
			srv.respondWith(tt.status, tt.body, tt.header...)
			c := exampleCarrier(t, srv)
			res, err := c.CreateBatchSync(context.Background(), 1, batchRequests())
			ce := requireClass(t, err, tt.class, tt.ambiguous, tt.message)
			require.Equal(t, tt.status, ce.StatusCode)
			require.Equal(t, tt.retryAfter, ce.RetryAfter)
			require.Zero(t, res)
		})
	}
}

// No answer within create_batch.timeout (its own, longer or shorter than the carrier's): the
// tasks may exist.
func TestCreateBatchSyncNoAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newAcmeServer(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v1/deliveries/batch" {
			return false
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return true
	})
	c := exampleCarrier(t, srv, "timeout: 30s", "timeout: 100ms")
	start := time.Now()
	_, err := c.CreateBatchSync(ctx, 1, batchRequests())
	ce := requireClass(t, err, carrier.Transient, true, "POST create_batch.url: timed out")
	require.ErrorIs(t, ce, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second, "create_batch.timeout, not the carrier's 10s")
	// create_task keeps the carrier's timeout.
	_, err = c.CreateTask(ctx, minimalRequest())
	require.NoError(t, err)

	closed := newAcmeServer(t)
	c = exampleCarrier(t, closed)
	closed.Close()
	_, err = c.CreateBatchSync(ctx, 1, batchRequests())
	requireClass(t, err, carrier.Transient, true, "POST create_batch.url: no answer")

	// A cancelled context waiting for the rate limiter sent nothing: not ambiguous.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = exampleCarrier(t, srv).CreateBatchSync(cancelled, 1, batchRequests())
	requireClass(t, err, carrier.Transient, false, "waiting for the rate limiter")
}

// An order whose payload breaks the template is refused without being sent; the others go.
func TestCreateBatchSyncUnrenderable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newAcmeServer(t)
	c := exampleCarrier(t, srv, `"reference": {{json .ExternalID}},`, `"reference": {{json .ExternalID}},{{if eq .ExternalID "BOOM"}}{{.Nope}}{{end}}`)
	boom := minimalRequest()
	boom.ExternalID = "BOOM"
	reqs := append(batchRequests(), boom)

	res, err := c.CreateBatchSync(ctx, 1, reqs)
	require.NoError(t, err)
	require.Len(t, res.Created, 2)
	require.Contains(t, res.Refused["BOOM"], "the order cannot be rendered as the carrier's request: body: ")
	require.Contains(t, res.Refused["BOOM"], "can't evaluate field Nope")
	require.Equal(t, "address could not be geocoded", res.Refused["SO-1002"])
	require.Equal(t, []int{3}, srv.batchSizes())
	require.NotContains(t, string(srv.lastRequest(t).Body), "BOOM")

	// None can be rendered: nothing is sent.
	res, err = c.CreateBatchSync(ctx, 2, []carrier.Request{boom})
	require.NoError(t, err)
	require.Empty(t, res.Created)
	require.Len(t, res.Refused, 1)
	require.Equal(t, 1, srv.requestCount())
}

// A carrier without create_batch refuses a batch as a whole (dispatch, reading MaxBatch 1,
// never sends one), so each order would go out alone.
func TestCreateBatchSyncNotConfigured(t *testing.T) {
	t.Parallel()
	srv := newAcmeServer(t)
	raw := exampleYAML(t)
	section := raw[strings.Index(raw, "    # Optional: a request that creates many"):strings.Index(raw, "    webhook:")]
	c := exampleCarrier(t, srv, section, "")
	require.Equal(t, 1, c.MaxBatch())
	_, err := c.CreateBatchSync(context.Background(), 1, batchRequests())
	requireClass(t, err, carrier.Rejected, false, "declares no create_batch")
	require.Zero(t, srv.requestCount())
}
