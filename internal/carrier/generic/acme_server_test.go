package generic

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// acmeServer plays the API of the fictional Acme carrier that examples/carriers.yaml declares:
// POST /v1/deliveries (bearer token, idempotency keys), GET /v1/deliveries?reference=…, the
// same search as POST /v1/deliveries/search {"reference": …}, and POST /v1/deliveries/batch.
type acmeServer struct {
	*httptest.Server

	mu        sync.Mutex
	requests  []acmeRequest
	tasks     []acmeTask
	byKey     map[string]int // Idempotency-Key → index in tasks
	batches   []int          // the size of each batch request, in order
	intercept func(w http.ResponseWriter, r *http.Request) bool
}

type acmeRequest struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

type acmeTask struct {
	ID          string `json:"id"`
	Reference   string `json:"reference"`
	TrackingURL string `json:"tracking_url"`
	Status      string `json:"status"`
}

func newAcmeServer(t testing.TB) *acmeServer {
	t.Helper()
	s := &acmeServer{byKey: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// baseURL is what ACME_BASE_URL points at.
func (s *acmeServer) baseURL() string { return s.URL + "/v1" }

// respondWith makes every request answer status with body (and header key/value pairs).
func (s *acmeServer) respondWith(status int, body string, header ...string) {
	s.setIntercept(func(w http.ResponseWriter, _ *http.Request) bool {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
		return true
	})
}

func (s *acmeServer) setIntercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.intercept = f
}

func (s *acmeServer) lastRequest(t testing.TB) acmeRequest {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NotEmpty(t, s.requests)
	return s.requests[len(s.requests)-1]
}

func (s *acmeServer) requestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *acmeServer) taskCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tasks)
}

// addTask stores a task as if created earlier.
func (s *acmeServer) addTask(reference string) acmeTask {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addTaskLocked(reference)
}

func (s *acmeServer) addTaskLocked(reference string) acmeTask {
	id := fmt.Sprintf("dlv_%04d", len(s.tasks)+1)
	task := acmeTask{ID: id, Reference: reference, TrackingURL: "https://track.acme.example/" + id, Status: "created"}
	s.tasks = append(s.tasks, task)
	return task
}

func (s *acmeServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, acmeRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	intercept := s.intercept
	s.mu.Unlock()
	if intercept != nil && intercept(w, r) {
		return
	}

	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer acme-test-key" {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error": {"code": "unauthorized", "message": "invalid API key"}}`)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/deliveries":
		var req struct {
			Reference string `json:"reference"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Reference == "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error": {"code": "invalid_request", "message": "reference is required"}}`)
			return
		}
		s.mu.Lock()
		key := r.Header.Get("Idempotency-Key")
		i, seen := s.byKey[key]
		if !seen || key == "" {
			s.addTaskLocked(req.Reference)
			i = len(s.tasks) - 1
			if key != "" {
				s.byKey[key] = i
			}
		}
		task := s.tasks[i]
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"data": task})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/deliveries",
		r.Method == http.MethodPost && r.URL.Path == "/v1/deliveries/search":
		ref := r.URL.Query().Get("reference")
		if r.Method == http.MethodPost {
			var q struct {
				Reference string `json:"reference"`
			}
			if json.Unmarshal(body, &q) != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			ref = q.Reference
		}
		s.mu.Lock()
		matches := []acmeTask{}
		for _, task := range s.tasks {
			if task.Reference == ref {
				matches = append(matches, task)
			}
		}
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"data": matches})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/deliveries/by-reference/"):
		// The lookup a carrier without search offers: the task itself, or 404.
		ref := strings.TrimPrefix(r.URL.Path, "/v1/deliveries/by-reference/")
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, task := range s.tasks {
			if task.Reference == ref {
				_ = json.NewEncoder(w).Encode(map[string]any{"data": task})
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error": {"code": "not_found", "message": "no such delivery"}}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/deliveries/batch":
		s.serveBatch(w, body)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// acmeBatchMax is the most deliveries POST /v1/deliveries/batch takes.
const acmeBatchMax = 100

// serveBatch is POST /v1/deliveries/batch {"deliveries": [ …as POST /v1/deliveries… ]}: each
// delivery created or refused on its own, the results in reverse order (as a carrier working
// in parallel may answer) for the caller to match by reference. No idempotency: a delivery sent
// twice is created twice. A delivery to Atlantis cannot be geocoded; one to Springfield is
// created with a warning.
func (s *acmeServer) serveBatch(w http.ResponseWriter, body []byte) {
	var req struct {
		Deliveries []struct {
			Reference string `json:"reference"`
			Address   struct {
				City string `json:"city"`
			} `json:"address"`
		} `json:"deliveries"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Deliveries) == 0 || len(req.Deliveries) > acmeBatchMax {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"error": {"code": "invalid_request", "message": "deliveries: 1 to %d required"}}`, acmeBatchMax)
		return
	}
	results := make([]map[string]any, 0, len(req.Deliveries))
	s.mu.Lock()
	s.batches = append(s.batches, len(req.Deliveries))
	for _, d := range req.Deliveries {
		switch {
		case d.Reference == "":
			results = append(results, map[string]any{"error": map[string]any{"code": "invalid_request", "message": "reference is required"}})
		case d.Address.City == "Atlantis":
			results = append(results, map[string]any{"reference": d.Reference,
				"error": map[string]any{"code": "invalid_address", "message": "address could not be geocoded"}})
		default:
			task := s.addTaskLocked(d.Reference)
			result := map[string]any{"reference": d.Reference, "id": task.ID, "tracking_url": task.TrackingURL, "warning": nil}
			if d.Address.City == "Springfield" {
				result["warning"] = "several cities named Springfield; matched the first"
			}
			results = append(results, result)
		}
	}
	s.mu.Unlock()
	slices.Reverse(results)
	_ = json.NewEncoder(w).Encode(map[string]any{"results": results})
}

// allRequests is every request so far.
func (s *acmeServer) allRequests() []acmeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// allTasks is every task created so far.
func (s *acmeServer) allTasks() []acmeTask {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tasks)
}

// batchSizes is the size of each batch request so far.
func (s *acmeServer) batchSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

// tasksByReference counts the tasks created for each reference.
func (s *acmeServer) tasksByReference() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := map[string]int{}
	for _, task := range s.tasks {
		n[task.Reference]++
	}
	return n
}

// exampleCarrier is the example file's acme carrier pointed at s, with changes to its YAML.
func exampleCarrier(t testing.TB, s *acmeServer, replace ...string) *Carrier {
	t.Helper()
	c, err := New(exampleConfig(t, acmeEnv(s.baseURL()), replace...), nil)
	require.NoError(t, err)
	return c
}
