package generic

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/orders"
)

func fullRequest() carrier.Request {
	after := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	before := time.Date(2025, 3, 1, 17, 30, 0, 0, time.FixedZone("CET", 3600))
	return carrier.Request{
		OrderID: 42, ExternalID: "RMA 7/8", Kind: orders.KindPickup,
		Payload: orders.Payload{
			Recipient: orders.Recipient{Name: `Bob "The Builder" O'Brien`, Phone: "+442071838750", Email: "bob@example.com"},
			Address: orders.Address{Line1: "12 St James's Square", Line2: "Flat 3", City: "London", Region: "Greater London",
				PostalCode: "SW1Y 4JH", Country: "GB"},
			Notes:  "Parcel <fragile> & heavy\nUse the side door",
			Window: &orders.Window{After: &after, Before: &before},
			Items:  []orders.Item{{SKU: "KETTLE-1", Quantity: 1}, {SKU: "MUG-2", Quantity: 4}},
		},
	}
}

func minimalRequest() carrier.Request {
	return carrier.Request{
		OrderID: 7, ExternalID: "SO-1001", Kind: orders.KindDelivery,
		Payload: orders.Payload{
			Recipient: orders.Recipient{Name: "Ada Lovelace", Phone: "+14155550100"},
			Address:   orders.Address{Line1: "1 Market St", City: "San Francisco", Country: "US"},
		},
	}
}

// The example's template renders the canonical payload as Acme's request, and the answer
// becomes the task.
func TestCreateTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newAcmeServer(t)
	c := exampleCarrier(t, srv)
	require.Equal(t, "acme", c.Name())
	require.InDelta(t, 20, c.limiter.(*carrier.LocalLimiter).Limit(), 0)

	task, err := c.CreateTask(ctx, fullRequest())
	require.NoError(t, err)
	require.Equal(t, carrier.Task{ID: "dlv_0001", TrackingURL: "https://track.acme.example/dlv_0001"}, task)

	req := srv.lastRequest(t)
	require.Equal(t, http.MethodPost, req.Method)
	require.Equal(t, "/v1/deliveries", req.Path)
	require.Equal(t, "Bearer acme-test-key", req.Header.Get("Authorization"))
	require.Equal(t, "RMA 7/8", req.Header.Get("Idempotency-Key"))
	require.Equal(t, "2024-06-01", req.Header.Get("Acme-Version"))
	require.Equal(t, "application/json", req.Header.Get("Content-Type"))
	require.Equal(t, "application/json", req.Header.Get("Accept"))
	require.JSONEq(t, `{
		"reference": "RMA 7/8",
		"type": "return_pickup",
		"recipient": {"name": "Bob \"The Builder\" O'Brien", "phone": "+442071838750", "email": "bob@example.com"},
		"address": {
			"street": ["12 St James's Square", "Flat 3"],
			"city": "London", "region": "Greater London", "postcode": "SW1Y 4JH", "country": "GB"
		},
		"instructions": "Parcel <fragile> & heavy\nUse the side door",
		"window": {"start": "2025-03-01T09:00:00Z", "end": "2025-03-01T16:30:00Z"},
		"parcels": [{"sku": "KETTLE-1", "count": 1}, {"sku": "MUG-2", "count": 4}],
		"metadata": {"waybill_order_id": 42}
	}`, string(req.Body))
	require.Contains(t, string(req.Body), "<fragile> & heavy", "json does not HTML-escape")

	task, err = c.CreateTask(ctx, minimalRequest())
	require.NoError(t, err)
	require.Equal(t, "dlv_0002", task.ID)
	require.JSONEq(t, `{
		"reference": "SO-1001",
		"type": "drop_off",
		"recipient": {"name": "Ada Lovelace", "phone": "+14155550100", "email": ""},
		"address": {"street": ["1 Market St"], "city": "San Francisco", "region": "", "postcode": "", "country": "US"},
		"instructions": "",
		"parcels": [],
		"metadata": {"waybill_order_id": 7}
	}`, string(srv.lastRequest(t).Body))

	// The same order again carries the same idempotency key: Acme answers with the first task.
	task, err = c.CreateTask(ctx, minimalRequest())
	require.NoError(t, err)
	require.Equal(t, "dlv_0002", task.ID)
	require.Equal(t, 2, srv.taskCount())
}

func TestFindTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newAcmeServer(t)
	c := exampleCarrier(t, srv)

	_, ok, err := c.FindTask(ctx, "RMA 7/8")
	require.NoError(t, err)
	require.False(t, ok)
	req := srv.lastRequest(t)
	require.Equal(t, http.MethodGet, req.Method)
	require.Equal(t, "reference=RMA%207%2F8", req.Query, "the external id is percent-encoded")
	require.Equal(t, "Bearer acme-test-key", req.Header.Get("Authorization"))
	require.Empty(t, req.Header.Get("Idempotency-Key"))
	require.Empty(t, req.Header.Get("Content-Type"), "a GET sends no body")
	require.Empty(t, req.Body)

	created, err := c.CreateTask(ctx, fullRequest())
	require.NoError(t, err)
	task, ok, err := c.FindTask(ctx, "RMA 7/8")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, created, task)

	// Several matches (a carrier without idempotency, say): the first Acme lists.
	srv.addTask("RMA 7/8")
	task, ok, err = c.FindTask(ctx, "RMA 7/8")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, created.ID, task.ID)

	// {"data": null} is an empty search too; an answer without the list is not.
	srv.respondWith(http.StatusOK, `{"data": null}`)
	_, ok, err = c.FindTask(ctx, "RMA 7/8")
	require.NoError(t, err)
	require.False(t, ok)
	srv.respondWith(http.StatusOK, `{"results": []}`)
	_, _, err = c.FindTask(ctx, "RMA 7/8")
	requireClass(t, err, carrier.Transient, true, "find_task answer has no list at data")
	srv.respondWith(http.StatusOK, `{"data": [{"reference": "RMA 7/8"}]}`)
	_, _, err = c.FindTask(ctx, "RMA 7/8")
	requireClass(t, err, carrier.Transient, true, "find_task answer without a task id at id")
	// A search that 404s is a wrong URL, not "none".
	srv.respondWith(http.StatusNotFound, `{}`)
	_, _, err = c.FindTask(ctx, "RMA 7/8")
	requireClass(t, err, carrier.Unauthorized, false, "endpoint not found, check find_task.url of carrier acme")
}

// A lookup by reference answers with the task itself, or 404 for none.
func TestFindTaskByReference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newAcmeServer(t)
	c := exampleCarrier(t, srv,
		"/deliveries?reference={{.ExternalID}}", "/deliveries/by-reference/{{.ExternalID}}",
		"        list: data\n        task_id: id # within a match\n        tracking_url: tracking_url",
		"        task_id: data.id\n        tracking_url: data.tracking_url")

	_, ok, err := c.FindTask(ctx, "SO-1001")
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, "/v1/deliveries/by-reference/SO-1001", srv.lastRequest(t).Path)

	created := srv.addTask("SO-1001")
	task, ok, err := c.FindTask(ctx, "SO-1001")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, carrier.Task{ID: created.ID, TrackingURL: created.TrackingURL}, task)

	srv.respondWith(http.StatusOK, `{"data": null}`)
	_, ok, err = c.FindTask(ctx, "SO-1001")
	require.NoError(t, err)
	require.False(t, ok)
	srv.respondWith(http.StatusOK, `{"delivery": {}}`)
	_, _, err = c.FindTask(ctx, "SO-1001")
	requireClass(t, err, carrier.Transient, true, "find_task answer without a task id at data.id")
}

// A lookup may POST a body that names the external id, raw (Onfleet's metadata query is one).
func TestFindTaskByPost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newAcmeServer(t)
	c := exampleCarrier(t, srv,
		"/deliveries?reference={{.ExternalID}}\n      method: GET", "/deliveries/search\n      method: POST\n      body: '{\"reference\": {{json .ExternalID}}}'")
	created := srv.addTask(`RMA "7"/8`)
	task, ok, err := c.FindTask(ctx, `RMA "7"/8`)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, created.ID, task.ID)
	req := srv.lastRequest(t)
	require.Equal(t, "/v1/deliveries/search", req.Path)
	require.JSONEq(t, `{"reference": "RMA \"7\"/8"}`, string(req.Body))
	require.Equal(t, "application/json", req.Header.Get("Content-Type"))
	require.Empty(t, req.Header.Get("Idempotency-Key"))
}

// Without find_task there is never a task to find, and nothing is asked.
func TestFindTaskNotConfigured(t *testing.T) {
	t.Parallel()
	srv := newAcmeServer(t)
	raw := exampleYAML(t)
	start := strings.Index(raw, "    find_task:")
	end := strings.Index(raw, "    webhook:")
	c := exampleCarrier(t, srv, raw[start:end], "")
	require.Nil(t, c.cfg.find)
	_, ok, err := c.FindTask(context.Background(), "SO-1001")
	require.NoError(t, err)
	require.False(t, ok)
	require.Zero(t, srv.requestCount())
}

func requireClass(t *testing.T, err error, class carrier.ErrorClass, ambiguous bool, message string) *carrier.Error {
	t.Helper()
	var ce *carrier.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "acme", ce.Carrier)
	require.Equal(t, class, ce.Class, ce.Error())
	require.Equal(t, ambiguous, ce.Ambiguous, ce.Error())
	require.Contains(t, ce.Message, message)
	return ce
}

// Each answer maps to the class dispatch acts on, with the carrier's own words.
func TestCreateTaskErrors(t *testing.T) {
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
		{"429 with Retry-After", 429, `{"error": {"message": "slow down"}}`, []string{"Retry-After", "7"}, carrier.RateLimited, false, "slow down", 7 * time.Second},
		{"429 without", 429, ``, nil, carrier.RateLimited, false, "Too Many Requests", 0},
		{"401", 401, `{"error": {"code": "unauthorized", "message": "invalid API key"}}`, nil, carrier.Unauthorized, false, "invalid API key", 0},
		{"403", 403, `{"error": {"message": "key lacks deliveries:write"}}`, nil, carrier.Unauthorized, false, "key lacks deliveries:write", 0},
		{"404", 404, `not here`, nil, carrier.Unauthorized, false, "endpoint not found, check create_task.url of carrier acme in WAYBILL_CARRIERS_FILE: not here", 0},
		{"405", 405, ``, nil, carrier.Unauthorized, false, "endpoint not found", 0},
		{"400", 400, `{"error": {"code": "invalid_address", "message": "  address could not be geocoded "}}`, nil, carrier.Rejected, false, "address could not be geocoded", 0},
		{"422 text", 422, "phone is not a phone number\n", nil, carrier.Rejected, false, "phone is not a phone number", 0},
		{"409 empty", 409, ``, nil, carrier.Rejected, false, "Conflict", 0},
		{"400 without message", 400, `{"error": {"code": "x"}}`, nil, carrier.Rejected, false, `{"error": {"code": "x"}}`, 0},
		{"408", 408, ``, nil, carrier.Transient, false, "Request Timeout", 0},
		{"500", 500, `{"error": {"message": "boom"}}`, nil, carrier.Transient, true, "boom", 0},
		{"503", 503, `<html>maintenance</html>`, nil, carrier.Transient, true, "<html>maintenance</html>", 0},
		{"201 not JSON", 201, `<html>ok</html>`, nil, carrier.Transient, true, "unreadable answer: <html>ok</html>", 0},
		{"201 without id", 201, `{"data": {"status": "created"}}`, nil, carrier.Transient, true, "answer without a task id at data.id", 0},
		{"201 with an object for id", 201, `{"data": {"id": {"v": 1}}}`, nil, carrier.Transient, true, "answer without a task id at data.id", 0},
		{"304", 304, ``, nil, carrier.Transient, true, "Not Modified", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newAcmeServer(t)
			srv.respondWith(tt.status, tt.body, tt.header...)
			c := exampleCarrier(t, srv)
			_, err := c.CreateTask(context.Background(), minimalRequest())
			ce := requireClass(t, err, tt.class, tt.ambiguous, tt.message)
			if tt.status < 200 || tt.status > 299 {
				require.Equal(t, tt.status, ce.StatusCode)
			}
			require.Equal(t, tt.retryAfter, ce.RetryAfter)
		})
	}
}

// No answer in time, or none at all: the carrier may have acted, so the failure is ambiguous.
func TestCreateTaskNoAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := newAcmeServer(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv.setIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return true
	})
	c := exampleCarrier(t, srv, "timeout: 10s", "timeout: 100ms")
	_, err := c.CreateTask(ctx, minimalRequest())
	ce := requireClass(t, err, carrier.Transient, true, "POST create_task.url: timed out")
	require.ErrorIs(t, ce, context.DeadlineExceeded)

	// FindTask's failures are ambiguous too: the doubt it was to clear remains.
	_, _, err = c.FindTask(ctx, "SO-1001")
	requireClass(t, err, carrier.Transient, true, "GET find_task.url: timed out")

	closed := newAcmeServer(t)
	c = exampleCarrier(t, closed)
	closed.Close()
	_, err = c.CreateTask(ctx, minimalRequest())
	requireClass(t, err, carrier.Transient, true, "POST create_task.url: no answer")

	// A cancelled context waiting for the rate limiter sent nothing: not ambiguous.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = exampleCarrier(t, srv).CreateTask(cancelled, minimalRequest())
	requireClass(t, err, carrier.Transient, false, "waiting for the rate limiter")
}

// An order whose payload breaks the template (though the samples did not) can never be sent
// as it is: rejected, with nothing sent.
func TestCreateTaskUnrenderable(t *testing.T) {
	t.Parallel()
	srv := newAcmeServer(t)
	c := exampleCarrier(t, srv, `"reference": {{json .ExternalID}},`, `"reference": {{json .ExternalID}},{{if eq .ExternalID "BOOM"}}{{.Nope}}{{end}}`)
	_, err := c.CreateTask(context.Background(), minimalRequest())
	require.NoError(t, err)
	req := minimalRequest()
	req.ExternalID = "BOOM"
	_, err = c.CreateTask(context.Background(), req)
	ce := requireClass(t, err, carrier.Rejected, false, "the order cannot be rendered as the carrier's request: body: ")
	require.Contains(t, ce.Message, "can't evaluate field Nope")
	require.Equal(t, 1, srv.requestCount())
	require.False(t, errors.Is(err, context.DeadlineExceeded))
}
