package generic

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// acmeServer plays the API of the fictional Acme carrier that examples/carriers.yaml declares:
// POST /v1/deliveries (bearer token, idempotency keys), GET /v1/deliveries?reference=…, and the
// same search as POST /v1/deliveries/search {"reference": …}.
type acmeServer struct {
	*httptest.Server

	mu        sync.Mutex
	requests  []acmeRequest
	tasks     []acmeTask
	byKey     map[string]int // Idempotency-Key → index in tasks
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
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// exampleCarrier is the example file's acme carrier pointed at s, with changes to its YAML.
func exampleCarrier(t testing.TB, s *acmeServer, replace ...string) *Carrier {
	t.Helper()
	c, err := New(exampleConfig(t, acmeEnv(s.baseURL()), replace...), nil)
	require.NoError(t, err)
	return c
}
