package onfleet

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/logtest"
	"github.com/waybill/waybill/internal/orders"
)

const testKey = "6f1b0c2e9d5c4e0b8a7f3d2c1b0a9f8e"

func testRequest() carrier.Request {
	return carrier.Request{OrderID: 1, ExternalID: "SO-1", Kind: orders.KindDelivery, Payload: orders.Payload{
		Recipient: orders.Recipient{Name: "Ada", Phone: "+14155550100"},
		Address:   orders.Address{Line1: "1 Main St", City: "Springfield", Country: "US"},
	}}
}

// newServer starts an httptest server and a Client pointed at it.
func newServer(t *testing.T, opts Options, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	opts.BaseURL = srv.URL + "/api/v2"
	opts.APIKey = testKey
	opts.Timeout = cmp.Or(opts.Timeout, 5*time.Second)
	return New(opts)
}

func requireCarrierError(t *testing.T, err error) *carrier.Error {
	t.Helper()
	var ce *carrier.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, Name, ce.Carrier)
	return ce
}

func TestCreateTask(t *testing.T) {
	t.Parallel()

	var got []byte
	c := newServer(t, Options{}, func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/tasks" || !ok || user != testKey || pass != "" ||
			r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "unexpected request", http.StatusTeapot)
			return
		}
		var err error
		if got, err = io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusTeapot)
			return
		}
		_, _ = io.WriteString(w, `{"id":"kc8SS1tzuZ~jqjlebKGrUmpe","shortId":"5f8b5c65","trackingURL":"https://onf.lt/5f8b5c65f9",
			"state":0,"timeCreated":1455072004000,"metadata":[]}`)
	})

	task, err := c.CreateTask(t.Context(), testRequest())
	require.NoError(t, err)
	require.Equal(t, carrier.Task{ID: "kc8SS1tzuZ~jqjlebKGrUmpe", TrackingURL: "https://onf.lt/5f8b5c65f9"}, task)
	want, err := json.Marshal(taskBody(testRequest()))
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(got))
	require.Equal(t, "onfleet", c.Name())
}

func TestAuthHeader(t *testing.T) {
	t.Parallel()

	var header string
	c := newServer(t, Options{}, func(w http.ResponseWriter, r *http.Request) {
		header = r.Header.Get("Authorization")
		_, _ = io.WriteString(w, `{"message":"Hello organization yAM*fDkztrT3gUcz9mNDgNOL, you have been successfully authenticated."}`)
	})
	require.NoError(t, c.AuthTest(t.Context()))
	// Independently: the key as user name, an empty password.
	require.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(testKey+":")), header)
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		class       carrier.ErrorClass
		ambiguous   bool
		message     string
		retryAfter  time.Duration
		minRetryFor time.Duration // for HTTP-date Retry-After, which depends on the clock
	}{
		{
			name:   "geocoding failure is rejected with the carrier's words",
			status: 400,
			body: `{"code":"InvalidContent","message":{"error":1011,"message":"The address could not be geocoded",
				"request":"ec76efd0-b8c0-484a-ad5f-725c5bbee869","cause":"No results for 1 UNGEOCODABLE Rd"}}`,
			class:   carrier.Rejected,
			message: "The address could not be geocoded (error 1011 InvalidContent): No results for 1 UNGEOCODABLE Rd",
		},
		{
			name:    "structured cause",
			status:  400,
			body:    `{"code":"InvalidContent","message":{"error":1010,"message":"Invalid phone number","cause":{"phone":"12"}}}`,
			class:   carrier.Rejected,
			message: `Invalid phone number (error 1010 InvalidContent): {"phone":"12"}`,
		},
		{
			name:    "not Onfleet's shape falls back to the raw body",
			status:  422,
			body:    "upstream says no",
			class:   carrier.Rejected,
			message: "upstream says no",
		},
		{
			name:    "empty body falls back to the status text",
			status:  422,
			class:   carrier.Rejected,
			message: "Unprocessable Entity",
		},
		{
			// A wrong ONFLEET_BASE_URL must not reject every order in the outbox.
			name:    "unknown endpoint is a broken integration",
			status:  404,
			class:   carrier.Unauthorized,
			message: "endpoint not found, check ONFLEET_BASE_URL: Not Found",
		},
		{
			name:   "invalid key",
			status: 401,
			body: `{"code":"InvalidCredentials","message":{"error":1102,"message":"The API key provided is invalid.",
				"request":"ec76efd0","cause":"This key does not exist or is no longer active."}}`,
			class:   carrier.Unauthorized,
			message: "The API key provided is invalid. (error 1102 InvalidCredentials): This key does not exist or is no longer active.",
		},
		{
			name:    "forbidden",
			status:  403,
			body:    `{"code":"Forbidden","message":{"error":1103,"message":"Insufficient permissions."}}`,
			class:   carrier.Unauthorized,
			message: "Insufficient permissions. (error 1103 Forbidden)",
		},
		{
			name:    "rate limited without Retry-After",
			status:  429,
			body:    `{"code":"TooManyRequests","message":{"error":2300,"message":"You have exceeded the rate limit."}}`,
			class:   carrier.RateLimited,
			message: "You have exceeded the rate limit. (error 2300 TooManyRequests)",
		},
		{
			name:       "rate limited with Retry-After seconds",
			status:     429,
			header:     map[string]string{"Retry-After": "7"},
			body:       `{"code":"TooManyRequests","message":{"error":2300,"message":"You have exceeded the rate limit."}}`,
			class:      carrier.RateLimited,
			message:    "You have exceeded the rate limit. (error 2300 TooManyRequests)",
			retryAfter: 7 * time.Second,
		},
		{
			name:        "rate limited with Retry-After date",
			status:      429,
			header:      map[string]string{"Retry-After": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)},
			class:       carrier.RateLimited,
			message:     "Too Many Requests",
			minRetryFor: 50 * time.Minute,
		},
		{
			name:      "service error is transient and ambiguous",
			status:    500,
			body:      `{"code":"InternalError","message":{"error":2500,"message":"An internal error occurred."}}`,
			class:     carrier.Transient,
			ambiguous: true,
			message:   "An internal error occurred. (error 2500 InternalError)",
		},
		{
			name:    "request timeout is transient, not a rejection",
			status:  408,
			class:   carrier.Transient,
			message: "Request Timeout",
		},
		{
			name:      "unavailable",
			status:    503,
			body:      "<html>bad gateway</html>",
			class:     carrier.Transient,
			ambiguous: true,
			message:   "<html>bad gateway</html>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newServer(t, Options{}, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			for _, call := range []func() error{
				func() error { _, err := c.CreateTask(t.Context(), testRequest()); return err },
				func() error { _, _, err := c.FindTask(t.Context(), "SO-1"); return err },
				func() error { return c.AuthTest(t.Context()) },
			} {
				ce := requireCarrierError(t, call())
				require.Equal(t, tt.class, ce.Class)
				require.Equal(t, tt.status, ce.StatusCode)
				require.Equal(t, tt.ambiguous, ce.Ambiguous)
				require.Equal(t, tt.message, ce.Message)
				if tt.minRetryFor > 0 {
					require.Greater(t, ce.RetryAfter, tt.minRetryFor)
				} else {
					require.Equal(t, tt.retryAfter, ce.RetryAfter)
				}
				require.Equal(t, tt.class, carrier.ClassOf(call()))
			}
		})
	}
}

// Only the task's own top-level id and trackingURL are read, wherever they are in the answer.
func TestCreatedTaskReadsTopLevelFields(t *testing.T) {
	t.Parallel()
	task, err := createdTask([]byte(` {"destination":{"id":"dest-id","trackingURL":"nested"},"metadata":[{"name":"id","value":"x"}],` +
		`"trackingURL":"https://onf.lt/abc\u0021","id":"kc8SS1tzuZ~jqjlebKGrUmpe","state":0}`))
	require.NoError(t, err)
	require.Equal(t, taskAnswer{ID: "kc8SS1tzuZ~jqjlebKGrUmpe", TrackingURL: "https://onf.lt/abc!"}, task)

	task, err = createdTask([]byte(`{"id":"kc8SS1tzuZ~jqjlebKGrUmpe","trackingURL":null}`))
	require.NoError(t, err)
	require.Equal(t, taskAnswer{ID: "kc8SS1tzuZ~jqjlebKGrUmpe"}, task)
}

func TestUnreadableSuccessIsAmbiguous(t *testing.T) {
	t.Parallel()

	for name, body := range map[string]string{
		"not JSON":        "<html>ok</html>",
		"no id":           `{"state":0}`,
		"id not a string": `{"id":12345,"trackingURL":"https://onf.lt/x"}`,
		"empty id":        `{"id":"","trackingURL":"https://onf.lt/x"}`,
		"array":           `[{"id":"kc8SS1tzuZ~jqjlebKGrUmpe"}]`,
		"nested id only":  `{"destination":{"id":"kc8SS1tzuZ~jqjlebKGrUmpe"}}`,
		"empty":           ``,
		"truncated no id": `{"trackingURL":"https://onf.lt/x","metad`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := newServer(t, Options{}, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, body)
			})
			_, err := c.CreateTask(t.Context(), testRequest())
			ce := requireCarrierError(t, err)
			require.Equal(t, carrier.Transient, ce.Class)
			require.True(t, ce.Ambiguous)
		})
	}
}

func TestTimeoutIsAmbiguous(t *testing.T) {
	t.Parallel()

	release := make(chan struct{})
	c := newServer(t, Options{Timeout: 100 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client hanging up
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close, which waits for handlers
	_, err := c.CreateTask(t.Context(), testRequest())
	ce := requireCarrierError(t, err)
	require.Equal(t, carrier.Transient, ce.Class)
	require.True(t, ce.Ambiguous)
	require.Zero(t, ce.StatusCode)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestSlowBodyIsAmbiguous(t *testing.T) {
	t.Parallel()

	release := make(chan struct{})
	c := newServer(t, Options{Timeout: 100 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"id":`)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	_, err := c.CreateTask(t.Context(), testRequest())
	ce := requireCarrierError(t, err)
	require.Equal(t, carrier.Transient, ce.Class)
	require.True(t, ce.Ambiguous)
}

func TestConnectionCutIsAmbiguous(t *testing.T) {
	t.Parallel()

	c := newServer(t, Options{}, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	_, err := c.CreateTask(t.Context(), testRequest())
	ce := requireCarrierError(t, err)
	require.Equal(t, carrier.Transient, ce.Class)
	require.True(t, ce.Ambiguous)
}

func TestConnectionRefusedIsTransient(t *testing.T) {
	t.Parallel()

	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := New(Options{BaseURL: url, APIKey: testKey, Timeout: time.Second})
	_, _, err := c.FindTask(t.Context(), "SO-1")
	ce := requireCarrierError(t, err)
	require.Equal(t, carrier.Transient, ce.Class)
}

func TestFindTask(t *testing.T) {
	t.Parallel()

	answers := map[string]string{
		"SO-none": `[]`,
		"SO-one":  `[{"id":"task-one","trackingURL":"https://onf.lt/one","timeCreated":1000,"metadata":[]}]`,
		"SO-dup": `[{"id":"task-late","trackingURL":"https://onf.lt/late","timeCreated":2000},
			{"id":"task-early","trackingURL":"https://onf.lt/early","timeCreated":1000}]`,
	}
	var logs logtest.Buffer
	c := newServer(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, func(w http.ResponseWriter, r *http.Request) {
		var q []metadataQuery
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/tasks/metadata" ||
			json.NewDecoder(r.Body).Decode(&q) != nil || len(q) != 1 || q[0].Name != MetaExternalID || q[0].Type != "string" {
			http.Error(w, "unexpected request", http.StatusTeapot)
			return
		}
		_, _ = io.WriteString(w, answers[q[0].Value])
	})

	_, ok, err := c.FindTask(t.Context(), "SO-none")
	require.NoError(t, err)
	require.False(t, ok)

	task, ok, err := c.FindTask(t.Context(), "SO-one")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, carrier.Task{ID: "task-one", TrackingURL: "https://onf.lt/one"}, task)
	require.NotContains(t, logs.String(), "duplicate")

	task, ok, err = c.FindTask(t.Context(), "SO-dup")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, carrier.Task{ID: "task-early", TrackingURL: "https://onf.lt/early"}, task)
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "external_id=SO-dup")
	require.Contains(t, logs.String(), "task-late")
}

// TestRateLimit counts requests that reach the server in a fixed window: with 5 requests/s
// and a burst of one, a one-second window admits at most 6 whatever the number of callers.
func TestRateLimit(t *testing.T) {
	t.Parallel()

	var hits atomic.Int64
	c := newServer(t, Options{RateLimit: 5}, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, `{}`)
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()

	var wg sync.WaitGroup
	var limited atomic.Int64
	for range 20 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := c.AuthTest(ctx); err != nil {
					limited.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	require.LessOrEqual(t, hits.Load(), int64(6))
	require.GreaterOrEqual(t, hits.Load(), int64(1))
	require.Positive(t, limited.Load(), "callers over the limit must be held back, not sent")
}

func TestNoRateLimit(t *testing.T) {
	t.Parallel()

	var hits atomic.Int64
	c := newServer(t, Options{}, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	})
	for range 50 {
		require.NoError(t, c.AuthTest(t.Context()))
	}
	require.EqualValues(t, 50, hits.Load())
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()

	c := newServer(t, Options{RateLimit: 1}, func(w http.ResponseWriter, r *http.Request) {})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.CreateTask(ctx, testRequest())
	ce := requireCarrierError(t, err)
	require.Equal(t, carrier.Transient, ce.Class)
	require.True(t, errors.Is(err, context.Canceled))
}
