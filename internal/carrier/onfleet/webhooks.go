package onfleet

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// Webhook is a webhook registered at Onfleet, as GET /webhooks lists it. Onfleet sends each
// webhook one trigger. IsEnabled is nil when the answer does not say: whether and how Onfleet's
// list shows a webhook it disabled (after 300 failed deliveries) is not documented; the sandbox
// answers isEnabled, and an absent field is read as "not known to be disabled".
type Webhook struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	URL       string   `json:"url"`
	Trigger   int      `json:"trigger"`
	IsEnabled *bool    `json:"isEnabled,omitempty"`
	Count     *int64   `json:"count,omitempty"`
	Threshold *float64 `json:"threshold,omitempty"`
}

// Disabled reports whether Onfleet says the webhook is disabled.
func (w Webhook) Disabled() bool { return w.IsEnabled != nil && !*w.IsEnabled }

// ListWebhooks lists the organisation's webhooks: GET /webhooks.
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	var hooks []Webhook
	err := c.do(ctx, http.MethodGet, "/webhooks", nil, func(raw []byte) error {
		return json.Unmarshal(raw, &hooks)
	})
	return hooks, err
}

// CreateWebhook registers url for one trigger: POST /webhooks. Onfleet first checks the URL with
// GET url?check=X, which Waybill's /webhooks/{carrier} answers.
func (c *Client) CreateWebhook(ctx context.Context, name, rawURL string, trigger int) (Webhook, error) {
	var h Webhook
	body := map[string]any{"url": rawURL, "name": name, "trigger": trigger}
	err := c.do(ctx, http.MethodPost, "/webhooks", body, func(raw []byte) error {
		return json.Unmarshal(raw, &h)
	})
	return h, err
}

// DeleteWebhook removes a webhook: DELETE /webhooks/{id}.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/webhooks/"+url.PathEscape(id), nil, nil)
}
