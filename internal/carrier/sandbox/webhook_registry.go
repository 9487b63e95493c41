package sandbox

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// webhookDisableAfter is how many consecutive failed attempts disable a registered webhook, as
// Onfleet does.
const webhookDisableAfter = 300

// webhookCheckTimeout bounds the ?check= request that validates a webhook URL.
const webhookCheckTimeout = 10 * time.Second

// Webhook is a webhook registered with POST /webhooks, as GET /webhooks lists it. Onfleet sends
// a webhook one trigger; the sandbox signs it with the organisation's secret, like every other.
type Webhook struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	URL       string   `json:"url"`
	Trigger   int      `json:"trigger"`
	IsEnabled bool     `json:"isEnabled"`
	Count     int64    `json:"count"` // deliveries answered 200
	Threshold *float64 `json:"threshold,omitempty"`
}

// webhookRegistry holds the registered webhooks in registration order.
type webhookRegistry struct {
	mu       sync.RWMutex
	hooks    []*Webhook
	failures map[string]int // consecutive failed attempts per webhook id
}

func newWebhookRegistry() *webhookRegistry {
	return &webhookRegistry{failures: map[string]int{}}
}

func (g *webhookRegistry) list() []Webhook {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]Webhook, len(g.hooks))
	for i, h := range g.hooks {
		out[i] = *h
	}
	return out
}

// matching returns the enabled webhooks for trigger.
func (g *webhookRegistry) matching(trigger int) []Webhook {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out []Webhook
	for _, h := range g.hooks {
		if h.IsEnabled && h.Trigger == trigger {
			out = append(out, *h)
		}
	}
	return out
}

func (g *webhookRegistry) index(id string) int {
	return slices.IndexFunc(g.hooks, func(h *Webhook) bool { return h.ID == id })
}

func (g *webhookRegistry) get(id string) (Webhook, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if i := g.index(id); i >= 0 {
		return *g.hooks[i], true
	}
	return Webhook{}, false
}

// duplicate reports whether another webhook has the same URL and trigger.
func (g *webhookRegistry) duplicate(id, rawURL string, trigger int) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return slices.ContainsFunc(g.hooks, func(h *Webhook) bool { return h.ID != id && h.URL == rawURL && h.Trigger == trigger })
}

func (g *webhookRegistry) add(h Webhook) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hooks = append(g.hooks, &h)
}

// update applies change to the webhook and returns the result.
func (g *webhookRegistry) update(id string, change func(*Webhook)) (Webhook, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := g.index(id)
	if i < 0 {
		return Webhook{}, false
	}
	h := *g.hooks[i]
	change(&h)
	if h.IsEnabled && !g.hooks[i].IsEnabled {
		delete(g.failures, id)
	}
	g.hooks[i] = &h
	return h, true
}

func (g *webhookRegistry) remove(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := g.index(id)
	if i < 0 {
		return false
	}
	g.hooks = slices.Delete(g.hooks, i, i+1)
	delete(g.failures, id)
	return true
}

// record counts one delivery attempt: a success resets the failures, and the 300th failure in
// a row disables the webhook.
func (g *webhookRegistry) record(id string, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i := g.index(id)
	if i < 0 {
		return
	}
	h := *g.hooks[i]
	if ok {
		h.Count++
		delete(g.failures, id)
	} else {
		g.failures[id]++
		if g.failures[id] >= webhookDisableAfter {
			h.IsEnabled = false
		}
	}
	g.hooks[i] = &h
}

// webhookBody is POST /webhooks and PUT /webhooks/{id}: every field optional on PUT.
type webhookBody struct {
	URL       *string  `json:"url"`
	Name      *string  `json:"name"`
	Trigger   *int     `json:"trigger"`
	Threshold *float64 `json:"threshold"`
	IsEnabled *bool    `json:"isEnabled"`
}

func (s *Server) listWebhooks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.webhooks.list())
}

// createWebhook registers a webhook once its URL passes Onfleet's check: GET <url>?check=X
// answered 200 with exactly X. Plain http URLs are accepted (Onfleet wants https).
func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var body webhookBody
	if err := decodeBody(r, &body); err != nil {
		s.writeError(w, invalid(err.Error()))
		return
	}
	if body.URL == nil || body.Trigger == nil {
		s.writeError(w, invalid("url and trigger are required"))
		return
	}
	h := Webhook{ID: s.dice.id(), URL: *body.URL, Trigger: *body.Trigger, IsEnabled: true, Threshold: body.Threshold}
	if body.Name != nil {
		h.Name = *body.Name
	}
	if body.IsEnabled != nil {
		h.IsEnabled = *body.IsEnabled
	}
	if e := s.checkWebhook(r.Context(), "", h); e != nil {
		s.writeError(w, e)
		return
	}
	s.webhooks.add(h)
	s.startWebhooks()
	s.logger.InfoContext(r.Context(), "sandbox webhook registered", "webhook_id", h.ID, "url", h.URL, "trigger", h.Trigger)
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	old, ok := s.webhooks.get(id)
	if !ok {
		s.writeError(w, webhookNotFound(id))
		return
	}
	var body webhookBody
	if err := decodeBody(r, &body); err != nil {
		s.writeError(w, invalid(err.Error()))
		return
	}
	h := old
	if body.URL != nil {
		h.URL = *body.URL
	}
	if body.Name != nil {
		h.Name = *body.Name
	}
	if body.Trigger != nil {
		h.Trigger = *body.Trigger
	}
	if body.Threshold != nil {
		h.Threshold = body.Threshold
	}
	if body.IsEnabled != nil {
		h.IsEnabled = *body.IsEnabled
	}
	if h.URL != old.URL || h.Trigger != old.Trigger {
		if e := s.checkWebhook(r.Context(), id, h); e != nil {
			s.writeError(w, e)
			return
		}
	}
	h, ok = s.webhooks.update(id, func(cur *Webhook) {
		cur.URL, cur.Name, cur.Trigger, cur.Threshold, cur.IsEnabled = h.URL, h.Name, h.Trigger, h.Threshold, h.IsEnabled
	})
	if !ok {
		s.writeError(w, webhookNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// deleteWebhook answers 200 with an empty body, as Onfleet does.
func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	if !s.webhooks.remove(r.PathValue("id")) {
		s.writeError(w, webhookNotFound(r.PathValue("id")))
		return
	}
	w.WriteHeader(http.StatusOK)
}

func webhookNotFound(id string) *apiError {
	return &apiError{404, "ResourceNotFound", 1003, "The requested resource does not exist.", "webhook " + id}
}

// checkWebhook validates a webhook about to be stored (id: the one it replaces, or "").
func (s *Server) checkWebhook(ctx context.Context, id string, h Webhook) *apiError {
	if _, ok := triggerNames[h.Trigger]; !ok {
		return invalid(fmt.Sprintf("trigger %d is not an Onfleet webhook trigger", h.Trigger))
	}
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid(fmt.Sprintf("url %q is not an http(s) URL", h.URL))
	}
	if s.webhooks.duplicate(id, h.URL, h.Trigger) {
		return &apiError{400, "InvalidContent", 1004, "The values of one or more parameters break a uniqueness constraint.",
			fmt.Sprintf("a webhook for trigger %d and this url exists", h.Trigger)}
	}
	if cause := s.checkURL(ctx, u); cause != "" {
		return &apiError{400, "InvalidContent", 1008, "The webhook URL provided did not pass our validation test.", cause}
	}
	return nil
}

// checkURL sends Onfleet's validation request and returns what was wrong with the answer.
func (s *Server) checkURL(ctx context.Context, u *url.URL) string {
	value := s.dice.hex(16)
	q := u.Query()
	q.Set("check", value)
	check := *u
	check.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, webhookCheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, check.String(), nil)
	if err != nil {
		return err.Error()
	}
	resp, err := s.checkClient.Do(req)
	if err != nil {
		return "GET ?check=: " + err.Error()
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(got)) != value {
		return fmt.Sprintf("GET ?check=%s answered %d %q, not 200 with the check value", value, resp.StatusCode, got)
	}
	return ""
}
