package sandbox

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxBody caps request bodies, as Onfleet caps them.
const maxBody = 1 << 20

// routeUnmatched is the stats key of requests no Onfleet route serves.
const routeUnmatched = "unmatched"

// Server is the sandbox carrier. It is safe for concurrent use.
type Server struct {
	apiKey  string
	opts    Options
	logger  *slog.Logger
	faults  atomic.Pointer[Faults]
	dice    *dice
	store   *store
	limiter *rateLimiter
	counts  requestCounts
	batch   batchCounts
	jobs    batchJobs
	jobsWG  sync.WaitGroup

	// routes are the Onfleet routes; routeCounts counts requests per route pattern (the map is
	// filled in New and only read afterwards).
	routes      []route
	routeCounts map[string]*atomic.Int64

	// secret signs every webhook: -webhook-secret, or one the sandbox made up
	// (GET /sandbox/webhook-secret tells it).
	secret      []byte
	webhooks    *webhookRegistry
	checkClient *http.Client

	// hooks runs task lifecycles and delivers webhooks; it starts with a webhook URL on the
	// command line, or with the first webhook registered (tasks created before then do not
	// move on). lifeMu guards closed, starting hooks and adding batch jobs to jobsWG, so
	// nothing starts once Close has begun.
	lifeMu sync.Mutex
	hooks  atomic.Pointer[webhookSender]
	closed bool

	// The sandbox's one organization, admin (the API key's owner) and worker.
	org, admin, worker string

	done      chan struct{}
	closeOnce sync.Once
}

type route struct {
	pattern string
	handler http.HandlerFunc
}

// New returns a sandbox. It panics on options that fail Validate, which RegisterFlags has
// already checked for the command line. Call Close to stop its goroutines.
func New(opts Options, logger *slog.Logger) *Server {
	if err := opts.Validate(); err != nil {
		panic(fmt.Sprintf("sandbox: %v", err))
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		apiKey:      opts.APIKey,
		opts:        opts,
		logger:      logger,
		dice:        newDice(opts.Seed),
		store:       newStore(),
		limiter:     newRateLimiter(nil),
		jobs:        batchJobs{jobs: map[string]*batchJob{}},
		webhooks:    newWebhookRegistry(),
		checkClient: &http.Client{Timeout: webhookCheckTimeout},
		done:        make(chan struct{}),
	}
	s.org, s.admin, s.worker = s.dice.id(), s.dice.id(), s.dice.id()
	if opts.WebhookSecret != "" {
		s.secret, _ = hex.DecodeString(opts.WebhookSecret) // checked by Validate
	} else {
		s.secret, _ = hex.DecodeString(s.dice.hex(64))
	}
	f := faultsOf(opts)
	s.faults.Store(&f)

	s.routes = []route{
		{"POST /tasks", s.createTask},
		{"POST /tasks/metadata", s.queryMetadata},
		{"POST /tasks/batch-async", s.createBatch},
		{"GET /tasks/batch/{jobId}", s.getBatch},
		{"GET /tasks/all", s.listAllTasks},
		{"GET /tasks/{id}", s.getTask},
		{"GET /auth/test", s.authTest},
		{"GET /webhooks", s.listWebhooks},
		{"POST /webhooks", s.createWebhook},
		{"PUT /webhooks/{id}", s.updateWebhook},
		{"DELETE /webhooks/{id}", s.deleteWebhook},
	}
	s.routeCounts = map[string]*atomic.Int64{routeUnmatched: new(atomic.Int64)}
	for _, rt := range s.routes {
		s.routeCounts[rt.pattern] = new(atomic.Int64)
	}

	if opts.WebhookURL != "" {
		s.startWebhooks()
	}
	return s
}

// startWebhooks starts the lifecycle and webhook goroutines, once, unless the sandbox is closed.
func (s *Server) startWebhooks() {
	s.lifeMu.Lock()
	defer s.lifeMu.Unlock()
	if s.closed || s.hooks.Load() != nil {
		return
	}
	s.hooks.Store(newWebhookSender(s, s.opts))
}

// Close stops the batch jobs and the webhook goroutines and releases late answers still
// waiting. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.lifeMu.Lock()
		s.closed = true
		s.lifeMu.Unlock()
		close(s.done)
		s.jobsWG.Wait()
		if h := s.hooks.Load(); h != nil {
			h.close()
		}
		s.checkClient.CloseIdleConnections()
	})
}

// Handler serves the Onfleet routes at the root and under /api/v2 (so ONFLEET_BASE_URL can
// look like production's), plus the sandbox's own routes under /sandbox. A path or method the
// API does not have is answered with Onfleet's JSON error (404 or 405), not Go's plain text.
func (s *Server) Handler() http.Handler {
	api := http.NewServeMux()
	for _, rt := range s.routes {
		api.HandleFunc(rt.pattern, s.onfleet(rt.pattern, rt.handler))
	}
	apiHandler := s.withJSONFallback(api)

	mux := http.NewServeMux()
	mux.Handle("/", apiHandler)
	mux.Handle("/api/v2/", http.StripPrefix("/api/v2", apiHandler))
	mux.HandleFunc("GET /track/{id}", s.trackingPage)
	mux.HandleFunc("GET /sandbox/stats", s.serveStats)
	mux.HandleFunc("GET /sandbox/tasks", s.listTasks)
	mux.HandleFunc("GET /sandbox/faults", s.getFaults)
	mux.HandleFunc("POST /sandbox/faults", s.setFaults)
	mux.HandleFunc("GET /sandbox/webhook-secret", s.getWebhookSecret)
	return mux
}

// withJSONFallback serves mux, but answers a request mux has no route for (404, or 405 for a
// path with other methods) with Onfleet's error envelope, through the same auth and rate limit
// as the routes.
func (s *Server) withJSONFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Learn what the mux would answer (its status and Allow header) without its body.
		probe := &headerProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		s.onfleet(routeUnmatched, func(w http.ResponseWriter, r *http.Request) {
			if probe.status == http.StatusMethodNotAllowed {
				if allow := probe.header.Get("Allow"); allow != "" {
					w.Header().Set("Allow", allow)
				}
				s.writeError(w, &apiError{405, "MethodNotAllowed", 1000, "The method is not allowed for the requested resource.",
					fmt.Sprintf("%s %s (allowed: %s)", r.Method, r.URL.Path, probe.header.Get("Allow"))})
				return
			}
			s.writeError(w, &apiError{404, "ResourceNotFound", 1003, "The requested resource does not exist.",
				fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
		})(w, r)
	})
}

// headerProbe records the status and headers a handler writes and drops its body.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header { return p.header }

func (p *headerProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

func (p *headerProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// Faults returns the current fault settings.
func (s *Server) Faults() Faults { return *s.faults.Load() }

// SetFaults replaces the fault settings, as POST /sandbox/faults does.
func (s *Server) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.faults.Store(&f)
	return nil
}

// onfleet wraps the Onfleet route pattern: the configured latency, Basic auth as Onfleet does
// it, then the organisation's rate limit, whose X-RateLimit-Limit and X-RateLimit-Remaining
// headers go on every answer while a limit is set.
func (s *Server) onfleet(pattern string, h http.HandlerFunc) http.HandlerFunc {
	count := s.routeCounts[pattern]
	return func(w http.ResponseWriter, r *http.Request) {
		f := s.faults.Load()
		if d := time.Duration(f.Latency); d > 0 && !s.sleep(r, d) {
			return
		}
		limit := f.RateLimit
		key, ok := apiKeyOf(r)
		switch {
		case !ok || key == "":
			s.counts.unauthorized.Add(1)
			setRateHeaders(w, limit, s.limiter.peek(limit))
			s.writeError(w, &apiError{401, "InvalidCredentials", 1100,
				"You are not currently authorized to access this service.", "Basic authentication with an API key is required."})
			return
		case s.apiKey != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.apiKey)) != 1:
			s.counts.unauthorized.Add(1)
			setRateHeaders(w, limit, s.limiter.peek(limit))
			s.writeError(w, &apiError{401, "InvalidCredentials", 1102,
				"The API key provided is invalid.", "This key does not exist or is no longer active."})
			return
		}
		count.Add(1)
		allowed, remaining := s.limiter.take(limit)
		setRateHeaders(w, limit, remaining)
		if !allowed {
			s.counts.rateLimited.Add(1)
			s.writeError(w, &apiError{429, "TooManyRequests", 2300, "You have exceeded the rate limit.",
				fmt.Sprintf("more than %d requests in one second for this organization", limit)})
			return
		}
		h(w, r)
	}
}

func setRateHeaders(w http.ResponseWriter, limit, remaining int) {
	if limit <= 0 {
		return
	}
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(limit))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
}

// apiKeyOf reads the API key from Basic auth: base64 of "key:" as most clients send it, or of
// the bare key as Onfleet's SDKs do (Onfleet accepts both).
func apiKeyOf(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "Basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	enc := strings.TrimSpace(h[len(prefix):])
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(enc); err != nil {
			return "", false
		}
	}
	key, _, _ := strings.Cut(string(raw), ":")
	return key, true
}

// sleep waits d, or less if the client goes away or the sandbox closes; it reports whether
// the whole wait passed.
func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
}

func (s *Server) createTask(w http.ResponseWriter, r *http.Request) {
	f := s.faults.Load()
	if s.dice.hit(f.ErrorRate) {
		s.counts.injectedError.Add(1)
		s.writeError(w, &apiError{503, "ServiceUnavailable", 2500, "The service is temporarily unavailable.", "injected by the sandbox"})
		return
	}
	if s.dice.hit(f.RateLimitRate) {
		s.counts.injectedRateLimit.Add(1)
		limit := f.RateLimit
		if limit <= 0 {
			limit = DefaultRateLimit
		}
		setRateHeaders(w, limit, 0)
		s.writeError(w, &apiError{429, "TooManyRequests", 2300, "You have exceeded the rate limit.", "injected by the sandbox"})
		return
	}
	var body createTaskBody
	if err := decodeBody(r, &body); err != nil {
		s.counts.rejected.Add(1)
		s.writeError(w, invalid(err.Error()))
		return
	}
	if e := body.validate(); e != nil {
		s.counts.rejected.Add(1)
		s.writeError(w, e)
		return
	}
	t := s.newTask(baseURL(r), &body)
	s.store.add(t)
	if h := s.hooks.Load(); h != nil {
		h.start(t.ID)
	}
	if s.dice.hit(f.LateRate) {
		s.counts.createdLate.Add(1)
		// The task exists; the answer comes too late for a client with a shorter timeout.
		if !s.sleep(r, time.Duration(f.LateDelay)) {
			return
		}
	} else {
		s.counts.created.Add(1)
	}
	writeJSON(w, http.StatusOK, t)
}

// newTask builds the task Onfleet would store for body; base is the address the client reached
// the sandbox at.
func (s *Server) newTask(base string, body *createTaskBody) *Task {
	now := time.Now().UnixMilli()
	id := s.dice.id()
	t := &Task{
		ID: id, TimeCreated: now, TimeLastModified: now,
		Organization: s.org, ShortID: s.dice.hex(8),
		TrackingURL: base + "/track/" + url.PathEscape(id),
		Merchant:    s.org, Executor: s.org, Creator: s.admin,
		Dependencies:   []string{},
		State:          StateUnassigned,
		CompleteAfter:  body.CompleteAfter,
		CompleteBefore: body.CompleteBefore,
		PickupTask:     body.PickupTask,
		Notes:          body.Notes,
		CompletionDetails: CompletionDetails{
			FailureReason: "NONE", Events: []CompletionEvent{}, Actions: []any{},
			FirstLocation: []float64{}, LastLocation: []float64{}, UnavailableAttachments: []any{},
		},
		Feedback:    []any{},
		Metadata:    withVisibility(body.Metadata),
		Quantity:    body.Quantity,
		ServiceTime: body.ServiceTime,
		Container:   Container{Type: "ORGANIZATION", Organization: s.org},
		Recipients:  []Recipient{},
	}
	for _, rb := range body.Recipients {
		t.Recipients = append(t.Recipients, Recipient{
			ID: s.dice.id(), Organization: s.org, TimeCreated: now, TimeLastModified: now,
			Name: rb.Name, Phone: rb.Phone, Notes: rb.Notes, SkipSMSNotifications: rb.SkipSMSNotifications,
			Metadata: []Metadata{},
		})
	}
	d := body.Destination
	addr := parseAddress(*d.Address)
	loc := d.Location
	if len(loc) != 2 {
		loc = fakeLocation(addr.Unparsed + addr.Street + addr.City + addr.Country)
	}
	t.Destination = Destination{
		ID: s.dice.id(), TimeCreated: now, TimeLastModified: now,
		Location: loc, Address: addr, Notes: d.Notes, Metadata: []Metadata{}, Warnings: []any{},
	}
	return t
}

// withVisibility copies metadata with Onfleet's default visibility, ["api"].
func withVisibility(in []Metadata) []Metadata {
	out := make([]Metadata, len(in))
	for i, m := range in {
		if len(m.Visibility) == 0 {
			m.Visibility = []string{"api"}
		}
		out[i] = m
	}
	return out
}

func (s *Server) queryMetadata(w http.ResponseWriter, r *http.Request) {
	var query []Metadata
	if err := decodeBody(r, &query); err != nil {
		s.counts.rejected.Add(1)
		s.writeError(w, invalid(err.Error()))
		return
	}
	for i, q := range query {
		if msg := q.check(); msg != "" {
			s.counts.rejected.Add(1)
			s.writeError(w, invalid(fmt.Sprintf("query[%d]: %s", i, msg)))
			return
		}
	}
	s.counts.metadataQuery.Add(1)
	tasks := s.store.match(query)
	if tasks == nil {
		tasks = []*Task{}
	}
	writeJSON(w, http.StatusOK, tasks)
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request) {
	t, ok := s.store.get(r.PathValue("id"))
	if !ok {
		s.counts.notFound.Add(1)
		s.writeError(w, &apiError{404, "ResourceNotFound", 1003, "The requested resource does not exist.", "task " + r.PathValue("id")})
		return
	}
	s.counts.getTask.Add(1)
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) authTest(w http.ResponseWriter, _ *http.Request) {
	s.counts.authTest.Add(1)
	writeJSON(w, http.StatusOK, map[string]string{
		"message": fmt.Sprintf("Hello organization %s, you have been successfully authenticated.", s.org),
	})
}

// listTasks is GET /sandbox/tasks?external_id=X: the tasks created for one order.
func (s *Server) listTasks(w http.ResponseWriter, r *http.Request) {
	ext := r.URL.Query().Get("external_id")
	if ext == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "external_id is required"})
		return
	}
	writeJSON(w, http.StatusOK, s.store.byExternalID(ext))
}

// getWebhookSecret is GET /sandbox/webhook-secret: the hex secret webhooks are signed with.
func (s *Server) getWebhookSecret(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"secret": hex.EncodeToString(s.secret)})
}

func (s *Server) getFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

// setFaults is POST /sandbox/faults: a partial update, e.g. {"error-rate":0.2,"latency":"20ms"}.
func (s *Server) setFaults(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	f, err := s.Faults().patch(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.faults.Store(&f)
	s.logger.InfoContext(r.Context(), "sandbox faults changed", "faults", string(mustJSON(f)))
	writeJSON(w, http.StatusOK, f)
}

var trackingTemplate = template.Must(template.New("track").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Task {{.ShortID}}</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:2em auto">
<h1>Task {{.ShortID}} <small>(sandbox)</small></h1>
<p><b>{{.StateName}}</b>{{with .Task.CompletionDetails.FailureReason}}{{if ne . "NONE"}} — {{.}}{{end}}{{end}}</p>
<p>{{.Task.Destination.Address.Unparsed}}</p>
<p>{{range .Task.Metadata}}{{.Name}} = {{printf "%s" .Value}}<br>{{end}}</p>
</body></html>`))

// trackingPage is where a sandbox task's trackingURL leads: its state, for demos.
func (s *Server) trackingPage(w http.ResponseWriter, r *http.Request) {
	t, ok := s.store.get(r.PathValue("id"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	state := [...]string{"Unassigned", "Assigned", "Active", "Completed"}[t.State]
	if t.State == StateCompleted && !t.CompletionDetails.Success {
		state = "Failed"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = trackingTemplate.Execute(w, struct {
		ShortID, StateName string
		Task               *Task
	}{t.ShortID, state, t})
}

// decodeBody reads a JSON request body of at most maxBody bytes.
func decodeBody(r *http.Request, v any) error { return decodeBodyLimit(r, v, maxBody) }

// decodeBodyLimit reads a JSON request body of at most limit bytes.
func decodeBodyLimit(r *http.Request, v any, limit int64) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if int64(len(b)) > limit {
		return fmt.Errorf("body over %d bytes", limit)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return nil
}

// writeError writes Onfleet's error body with a fresh request id.
func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	msg := map[string]any{"error": e.number, "message": e.message, "request": s.requestID()}
	if e.cause != "" {
		msg["cause"] = e.cause
	}
	writeJSON(w, e.status, map[string]any{"code": e.code, "message": msg})
}

// requestID looks like Onfleet's: a UUID.
func (s *Server) requestID() string {
	h := s.dice.hex(32)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(mustJSON(v))
}

// mustJSON marshals values whose types always marshal.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sandbox: marshal %T: %v", v, err))
	}
	return b
}

// baseURL is the address the client reached the sandbox at, for tracking links.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + strings.TrimSuffix(r.Host, "/")
}
