package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/orders"
)

const apiKey = "sandbox-test-key"

type testBundle struct {
	sandbox *Server
	url     string
	client  *onfleet.Client
}

// setup serves a sandbox over httptest and points the real Onfleet adapter at it.
func setup(t *testing.T, opts Options, timeout time.Duration) *testBundle {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = apiKey
	}
	sb := New(opts, nil)
	srv := httptest.NewServer(sb.Handler())
	// Cleanups run last-in first-out: close the sandbox first so late answers stop waiting.
	t.Cleanup(srv.Close)
	t.Cleanup(sb.Close)
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	return &testBundle{
		sandbox: sb,
		url:     srv.URL,
		client:  onfleet.New(onfleet.Options{BaseURL: srv.URL + "/api/v2", APIKey: opts.APIKey, Timeout: timeout}),
	}
}

func order(externalID string) carrier.Request {
	after := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	return carrier.Request{OrderID: 11, ExternalID: externalID, Kind: orders.KindPickup, Payload: orders.Payload{
		Recipient: orders.Recipient{Name: "Ada Lovelace", Phone: "+1 415 555 0100"},
		Address:   orders.Address{Line1: "2695 E Katella Ave", Line2: "Suite 4", City: "Anaheim", Region: "CA", PostalCode: "92806", Country: "US"},
		Notes:     "Ring twice",
		Window:    &orders.Window{After: &after},
		Items:     []orders.Item{{SKU: "SKU-1", Quantity: 2}},
	}}
}

func (b *testBundle) get(t *testing.T, path string, out any) int {
	t.Helper()
	resp, err := http.Get(b.url + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, out), string(body))
	}
	return resp.StatusCode
}

func (b *testBundle) post(t *testing.T, path, key, body string) (int, []byte) {
	t.Helper()
	status, _, raw := b.do(t, http.MethodPost, path, key, body)
	return status, raw
}

func (b *testBundle) stats(t *testing.T) Stats {
	t.Helper()
	var st Stats
	require.Equal(t, http.StatusOK, b.get(t, "/sandbox/stats", &st))
	return st
}

func (b *testBundle) setFaults(t *testing.T, patch string) {
	t.Helper()
	status, body := b.post(t, "/sandbox/faults", "", patch)
	require.Equal(t, http.StatusOK, status, string(body))
}

func requireClass(t *testing.T, err error, class carrier.ErrorClass, status int, ambiguous bool) *carrier.Error {
	t.Helper()
	var ce *carrier.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, class, ce.Class, ce.Error())
	require.Equal(t, status, ce.StatusCode)
	require.Equal(t, ambiguous, ce.Ambiguous)
	return ce
}

func TestCreateFindGet(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, 0)
	ctx := t.Context()

	require.NoError(t, b.client.AuthTest(ctx))

	created, err := b.client.CreateTask(ctx, order("SO-1"))
	require.NoError(t, err)
	require.Len(t, created.ID, 24)
	require.Equal(t, b.url+"/track/"+url.PathEscape(created.ID), created.TrackingURL)

	found, ok, err := b.client.FindTask(ctx, "SO-1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, created, found)

	_, ok, err = b.client.FindTask(ctx, "SO-unknown")
	require.NoError(t, err)
	require.False(t, ok)

	// The task has Onfleet's shape, read as raw JSON so field names are checked too.
	var task map[string]any
	require.Equal(t, http.StatusUnauthorized, b.get(t, "/tasks/"+url.PathEscape(created.ID), nil)) // no key
	req, _ := http.NewRequest(http.MethodGet, b.url+"/api/v2/tasks/"+url.PathEscape(created.ID), nil)
	req.SetBasicAuth(apiKey, "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&task))

	require.Equal(t, created.ID, task["id"])
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{8}$`), task["shortId"])
	require.Equal(t, created.TrackingURL, task["trackingURL"])
	require.EqualValues(t, 0, task["state"])
	require.Equal(t, true, task["pickupTask"])
	require.InDelta(t, float64(time.Now().UnixMilli()), task["timeCreated"], float64(time.Minute.Milliseconds()))
	require.EqualValues(t, time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC).UnixMilli(), task["completeAfter"])
	require.Nil(t, task["completeBefore"])
	require.Equal(t, "Ring twice\nItems: 2× SKU-1", task["notes"])
	require.Equal(t, []any{
		map[string]any{"name": "waybill_external_id", "type": "string", "value": "SO-1", "visibility": []any{"api"}},
		map[string]any{"name": "waybill_order_id", "type": "number", "value": float64(11), "visibility": []any{"api"}},
	}, task["metadata"])
	dest := task["destination"].(map[string]any)
	require.Equal(t, map[string]any{
		"number": "2695", "street": "E Katella Ave", "city": "Anaheim", "state": "CA", "postalCode": "92806",
		"country": "US", "apartment": "Suite 4", "name": "Ada Lovelace",
		"unparsed": "2695 E Katella Ave, Anaheim, CA 92806, US",
	}, dest["address"])
	require.Len(t, dest["location"], 2)
	recipients := task["recipients"].([]any)
	require.Len(t, recipients, 1)
	require.Equal(t, "Ada Lovelace", recipients[0].(map[string]any)["name"])
	require.Equal(t, "+1 415 555 0100", recipients[0].(map[string]any)["phone"])
	details := task["completionDetails"].(map[string]any)
	require.Equal(t, false, details["success"])
	require.Equal(t, "NONE", details["failureReason"])

	var listed []Task
	require.Equal(t, http.StatusOK, b.get(t, "/sandbox/tasks?external_id=SO-1", &listed))
	require.Len(t, listed, 1)
	require.Equal(t, created.ID, listed[0].ID)
	require.Equal(t, http.StatusBadRequest, b.get(t, "/sandbox/tasks", nil))

	st := b.stats(t)
	require.EqualValues(t, 1, st.TasksCreated)
	require.EqualValues(t, 1, st.ExternalIDs)
	require.Empty(t, st.DuplicatedExternalIDs)
	require.Equal(t, RequestStats{Created: 1, MetadataQuery: 2, GetTask: 1, AuthTest: 1, Unauthorized: 1}, st.Requests)

	// The tracking link leads somewhere.
	page, err := http.Get(created.TrackingURL)
	require.NoError(t, err)
	defer page.Body.Close()
	html, _ := io.ReadAll(page.Body)
	require.Equal(t, http.StatusOK, page.StatusCode)
	require.Contains(t, string(html), "Unassigned")
}

func TestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, 0)

	wrong := onfleet.New(onfleet.Options{BaseURL: b.url, APIKey: "wrong-key", Timeout: 5 * time.Second})
	_, err := wrong.CreateTask(t.Context(), order("SO-1"))
	ce := requireClass(t, err, carrier.Unauthorized, 401, false)
	require.Contains(t, ce.Message, "error 1102 InvalidCredentials")

	status, body := b.post(t, "/tasks", "", `{}`)
	require.Equal(t, http.StatusUnauthorized, status)
	require.JSONEq(t, `{"code":"InvalidCredentials","message":{"error":1100,
		"message":"You are not currently authorized to access this service.",
		"cause":"Basic authentication with an API key is required.","request":`+requestIDOf(t, body)+`}}`, string(body))

	// Without a configured key, any non-empty key is accepted.
	open := New(Options{}, nil)
	t.Cleanup(open.Close)
	srv := httptest.NewServer(open.Handler())
	t.Cleanup(srv.Close)
	anyKey := onfleet.New(onfleet.Options{BaseURL: srv.URL, APIKey: "whatever"})
	require.NoError(t, anyKey.AuthTest(t.Context()))
	require.EqualValues(t, 0, b.stats(t).TasksCreated)
}

func requestIDOf(t *testing.T, body []byte) string {
	var e struct {
		Message struct {
			Request string `json:"request"`
		} `json:"message"`
	}
	require.NoError(t, json.Unmarshal(body, &e))
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`, e.Message.Request)
	return `"` + e.Message.Request + `"`
}

func TestValidation(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, 0)

	ungeocodable := order("SO-geo")
	ungeocodable.Payload.Address.Line1 = "1 Ungeocodable Road"
	_, err := b.client.CreateTask(t.Context(), ungeocodable)
	ce := requireClass(t, err, carrier.Rejected, 400, false)
	require.Contains(t, ce.Message, "The address could not be geocoded (error 1011 InvalidContent)")

	badPhone := order("SO-phone")
	badPhone.Payload.Recipient.Phone = "call me"
	_, err = b.client.CreateTask(t.Context(), badPhone)
	ce = requireClass(t, err, carrier.Rejected, 400, false)
	require.Contains(t, ce.Message, "Invalid phone number (error 1010 InvalidContent)")

	for name, body := range map[string]string{
		"no destination":       `{"recipients":[{"name":"A","phone":"+14155550100"}]}`,
		"no recipient phone":   `{"destination":{"address":{"unparsed":"1 Main St, Springfield, US"}},"recipients":[{"name":"A"}]}`,
		"malformed":            `{"destination":`,
		"metadata type":        `{"destination":{"address":{"unparsed":"1 Main St, X, US"}},"metadata":[{"name":"waybill_order_id","type":"number","value":"11"}]}`,
		"window backwards":     `{"destination":{"address":{"unparsed":"1 Main St, X, US"}},"completeAfter":2000,"completeBefore":1000}`,
		"address without city": `{"destination":{"address":{"street":"Main St"}}}`,
	} {
		status, raw := b.post(t, "/tasks", apiKey, body)
		require.Equal(t, http.StatusBadRequest, status, name)
		var e struct {
			Code    string `json:"code"`
			Message struct {
				Error   int    `json:"error"`
				Message string `json:"message"`
				Cause   string `json:"cause"`
			} `json:"message"`
		}
		require.NoError(t, json.Unmarshal(raw, &e), name)
		require.Equal(t, "InvalidContent", e.Code, name)
		require.NotZero(t, e.Message.Error, name)
		require.NotEmpty(t, e.Message.Cause, name)
	}

	st := b.stats(t)
	require.EqualValues(t, 0, st.TasksCreated)
	require.EqualValues(t, 8, st.Requests.Rejected)
}

func TestInjectedFaults(t *testing.T) {
	t.Parallel()

	t.Run("error rate answers 503 without creating", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Options{ErrorRate: 1}, 0)
		_, err := b.client.CreateTask(t.Context(), order("SO-1"))
		requireClass(t, err, carrier.Transient, 503, true)
		_, ok, err := b.client.FindTask(t.Context(), "SO-1")
		require.NoError(t, err)
		require.False(t, ok)
		st := b.stats(t)
		require.EqualValues(t, 0, st.TasksCreated)
		require.EqualValues(t, 1, st.Requests.InjectedError)
	})

	t.Run("rate limit answers 429 with error 2300 without creating", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Options{RateLimitRate: 1}, 0)
		_, err := b.client.CreateTask(t.Context(), order("SO-1"))
		ce := requireClass(t, err, carrier.RateLimited, 429, false)
		require.Contains(t, ce.Message, "error 2300")
		st := b.stats(t)
		require.EqualValues(t, 0, st.TasksCreated)
		require.EqualValues(t, 1, st.Requests.InjectedRateLimit)
	})

	t.Run("late answer: the client gives up, the task exists, FindTask finds it", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Options{LateRate: 1, LateDelay: 10 * time.Second}, 200*time.Millisecond)
		_, err := b.client.CreateTask(t.Context(), order("SO-late"))
		requireClass(t, err, carrier.Transient, 0, true)

		task, ok, err := b.client.FindTask(t.Context(), "SO-late")
		require.NoError(t, err)
		require.True(t, ok)
		require.Len(t, task.ID, 24)
		st := b.stats(t)
		require.EqualValues(t, 1, st.TasksCreated)
		require.EqualValues(t, 1, st.Requests.CreatedLate)
		require.Empty(t, st.DuplicatedExternalIDs)
	})

	t.Run("latency longer than the client timeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Options{Latency: 10 * time.Second}, 100*time.Millisecond)
		err := b.client.AuthTest(t.Context())
		requireClass(t, err, carrier.Transient, 0, true)
	})

	t.Run("faults change at runtime", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Options{}, 0)
		b.setFaults(t, `{"error-rate": 1}`)
		_, err := b.client.CreateTask(t.Context(), order("SO-1"))
		requireClass(t, err, carrier.Transient, 503, true)

		b.setFaults(t, `{"error-rate": 0, "rate-limit-rate": 1, "latency": "1ms"}`)
		_, err = b.client.CreateTask(t.Context(), order("SO-1"))
		requireClass(t, err, carrier.RateLimited, 429, false)

		b.setFaults(t, `{"rate-limit-rate": 0}`)
		_, err = b.client.CreateTask(t.Context(), order("SO-1"))
		require.NoError(t, err)

		var f Faults
		require.Equal(t, http.StatusOK, b.get(t, "/sandbox/faults", &f))
		require.Equal(t, Faults{Latency: Duration(time.Millisecond), BatchDelay: Duration(DefaultBatchDelay)}, f)
		require.Equal(t, f, b.sandbox.Faults())

		for _, bad := range []string{`{"error-rate": 2}`, `{"latency": "-1s"}`, `{"latency": 5}`, `{"typo-rate": 0.1}`, `[]`} {
			status, body := b.post(t, "/sandbox/faults", "", bad)
			require.Equal(t, http.StatusBadRequest, status, bad)
			require.Contains(t, string(body), `"error"`)
		}
		require.Equal(t, f, b.sandbox.Faults(), "a rejected update changes nothing")
		require.Error(t, b.sandbox.SetFaults(Faults{LateRate: -1}))
	})
}

// TestStatsExactUnderConcurrency creates every order twice from many goroutines, with injected
// errors on the side, and checks every count to the unit.
func TestStatsExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{ErrorRate: 0.3, Seed: 42}, 0)

	const orders, workers = 150, 16
	jobs := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for range workers {
		wg.Go(func() {
			for ext := range jobs {
				// Retry injected errors until the task is created: each job creates exactly one.
				for {
					_, err := b.client.CreateTask(t.Context(), order(ext))
					if err == nil {
						break
					}
					if carrier.ClassOf(err) != carrier.Transient {
						t.Errorf("unexpected error: %v", err)
						return
					}
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	for i := range orders * 2 {
		jobs <- fmt.Sprintf("SO-%d", i%orders)
	}
	close(jobs)
	wg.Wait()

	st := b.stats(t)
	require.EqualValues(t, 2*orders, st.TasksCreated)
	require.EqualValues(t, 2*orders, st.Requests.Created)
	require.EqualValues(t, failed, st.Requests.InjectedError)
	require.Positive(t, failed)
	require.EqualValues(t, orders, st.ExternalIDs)
	require.Len(t, st.DuplicatedExternalIDs, orders)
	require.Equal(t, "SO-0", st.DuplicatedExternalIDs[0])

	var listed []Task
	require.Equal(t, http.StatusOK, b.get(t, "/sandbox/tasks?external_id=SO-7", &listed))
	require.Len(t, listed, 2)
	require.NotEqual(t, listed[0].ID, listed[1].ID)

	// FindTask still answers with one of them (the earliest) when there are two.
	task, ok, err := b.client.FindTask(t.Context(), "SO-7")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, listed[0].ID, task.ID)
}

// TestMetadataQuery covers queries other than the external id, which scan.
func TestMetadataQuery(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, 0)
	for _, ext := range []string{"SO-a", "SO-b"} {
		_, err := b.client.CreateTask(t.Context(), order(ext))
		require.NoError(t, err)
	}
	status, raw := b.post(t, "/tasks/metadata", apiKey, `[{"name":"waybill_order_id","type":"number","value":11}]`)
	require.Equal(t, http.StatusOK, status)
	var tasks []Task
	require.NoError(t, json.Unmarshal(raw, &tasks))
	require.Len(t, tasks, 2)

	status, raw = b.post(t, "/tasks/metadata", apiKey,
		`[{"name":"waybill_order_id","type":"number","value":11},{"name":"waybill_external_id","type":"string","value":"SO-b"}]`)
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, json.Unmarshal(raw, &tasks))
	require.Len(t, tasks, 1)

	status, raw = b.post(t, "/tasks/metadata", apiKey, `[{"name":"waybill_order_id","type":"string","value":"11"}]`)
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `[]`, string(raw))

	status, _ = b.post(t, "/tasks/metadata", apiKey, `[{"name":"x","type":"weird","value":1}]`)
	require.Equal(t, http.StatusBadRequest, status)
}

// TestSeedIsDeterministic: the same seed and the same sequence of requests give the same ids
// and the same fault decisions.
func TestSeedIsDeterministic(t *testing.T) {
	t.Parallel()

	run := func() []string {
		b := setup(t, Options{ErrorRate: 0.5, Seed: 99}, 0)
		var out []string
		for i := range 20 {
			task, err := b.client.CreateTask(t.Context(), order(fmt.Sprintf("SO-%d", i)))
			if err != nil {
				out = append(out, carrier.ClassOf(err).String())
				continue
			}
			out = append(out, task.ID)
		}
		return out
	}
	first := run()
	require.Equal(t, first, run())
	require.Contains(t, first, "transient")
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, 0)
	req, _ := http.NewRequest(http.MethodGet, b.url+"/tasks/nope", nil)
	req.SetBasicAuth(apiKey, "")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	raw, _ := io.ReadAll(resp.Body)
	require.True(t, bytes.Contains(raw, []byte(`"code":"ResourceNotFound"`)), string(raw))
	require.EqualValues(t, 1, b.stats(t).Requests.NotFound)
}

// BenchmarkCreateTask measures create throughput through the adapter over loopback, the way
// benchmarks drive the sandbox: go test -run=^$ -bench=CreateTask ./internal/carrier/sandbox
func BenchmarkCreateTask(b *testing.B) {
	sb := New(Options{APIKey: apiKey}, nil)
	defer sb.Close()
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	client := onfleet.New(onfleet.Options{BaseURL: srv.URL, APIKey: apiKey})
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.CreateTask(context.Background(), order(fmt.Sprintf("SO-%d", n.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// TestIDsWithOnfleetCharacters: Onfleet ids contain '*' and '~'; they must work in paths,
// escaped or not.
func TestIDsWithOnfleetCharacters(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{}, 0)
	var id string
	for i := 0; id == "" && i < 200; i++ {
		task, err := b.client.CreateTask(t.Context(), order(fmt.Sprintf("SO-%d", i)))
		require.NoError(t, err)
		if strings.ContainsAny(task.ID, "*~") {
			id = task.ID
		}
	}
	require.NotEmpty(t, id)
	for _, path := range []string{"/api/v2/tasks/" + url.PathEscape(id), "/api/v2/tasks/" + id, "/tasks/" + id} {
		req, err := http.NewRequest(http.MethodGet, b.url+path, nil)
		require.NoError(t, err)
		req.SetBasicAuth(apiKey, "")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var task Task
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&task))
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Equal(t, id, task.ID, path)
	}
}
