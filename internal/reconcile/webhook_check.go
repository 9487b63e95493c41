package reconcile

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/waybill/waybill/internal/carrier/onfleet"
	"github.com/waybill/waybill/internal/dbsqlc"
)

// OnfleetTriggers are the Onfleet webhook triggers Waybill needs registered: the lifecycle
// triggers of its vocabulary that change an order's status, and taskBatchCreateJobCompleted
// (19), by which dispatch learns a batch's results sooner than by polling.
var OnfleetTriggers = []int{6, 9, 10, 0, 3, 4, 8, 19}

// WebhookManager manages Onfleet's webhooks (*onfleet.Client).
type WebhookManager interface {
	ListWebhooks(ctx context.Context) ([]onfleet.Webhook, error)
	CreateWebhook(ctx context.Context, name, url string, trigger int) (onfleet.Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
}

// Trigger states in a WebhookReport.
const (
	TriggerOK        = "ok"        // an enabled webhook calls this service
	TriggerMissing   = "missing"   // no webhook calls this service
	TriggerDisabled  = "disabled"  // this service's webhook is disabled (Onfleet: 300 failed deliveries)
	TriggerElsewhere = "elsewhere" // a Waybill webhook path on another URL calls, not this service
)

// TriggerReport is one needed trigger's registration.
type TriggerReport struct {
	Trigger int
	Name    string
	State   string
	// Webhooks are the carrier's webhooks for this trigger that call this service (or, when
	// elsewhere, the Waybill paths they call instead).
	Webhooks []onfleet.Webhook
}

// WebhookReport is what a carrier has registered for this service.
type WebhookReport struct {
	Carrier string
	// URL is the webhook URL expected ("" when unknown: any URL whose path is
	// /webhooks/<carrier> counts as this service's).
	URL      string
	Triggers []TriggerReport
	// Ours are the carrier's webhooks that call this service, other triggers included.
	Ours []onfleet.Webhook
}

// Problems lists the triggers that are not ok, by state.
func (r WebhookReport) Problems() (missing, disabled, elsewhere []string) {
	missing, disabled, elsewhere = []string{}, []string{}, []string{}
	for _, t := range r.Triggers {
		switch t.State {
		case TriggerMissing:
			missing = append(missing, t.Name)
		case TriggerDisabled:
			disabled = append(disabled, t.Name)
		case TriggerElsewhere:
			elsewhere = append(elsewhere, t.Name)
		}
	}
	return missing, disabled, elsewhere
}

// OK reports whether every needed trigger has an enabled webhook calling this service.
func (r WebhookReport) OK() bool {
	m, d, e := r.Problems()
	return len(m)+len(d)+len(e) == 0
}

// WebhookURL is the URL a carrier's webhooks must call: base (WAYBILL_PUBLIC_URL, or what the
// operator gave) with /webhooks/<carrier> appended unless it is already there. "" stays "".
func WebhookURL(base, carrier string) (string, error) {
	base = strings.TrimSpace(base)
	if base == "" {
		return "", nil
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL", base)
	}
	path := "/webhooks/" + carrier
	if !strings.HasSuffix(strings.TrimRight(u.Path, "/"), path) {
		u.Path = strings.TrimRight(u.Path, "/") + path
	}
	return u.String(), nil
}

// CheckOnfleetWebhooks lists Onfleet's webhooks (GET /webhooks: one request) and reports, for
// each trigger Waybill needs, whether a webhook calls wantURL ("" = any URL with the path
// /webhooks/onfleet), is disabled, points elsewhere or is missing.
func CheckOnfleetWebhooks(ctx context.Context, api WebhookManager, wantURL string) (WebhookReport, error) {
	hooks, err := api.ListWebhooks(ctx)
	if err != nil {
		return WebhookReport{}, err
	}
	rep := WebhookReport{Carrier: onfleet.Name, URL: wantURL}
	for _, h := range hooks {
		if callsUs(h.URL, wantURL, onfleet.Name) {
			rep.Ours = append(rep.Ours, h)
		}
	}
	for _, trig := range OnfleetTriggers {
		tr := TriggerReport{Trigger: trig, Name: onfleet.Triggers[trig], State: TriggerMissing}
		var ours, other []onfleet.Webhook
		for _, h := range hooks {
			switch {
			case h.Trigger != trig:
			case callsUs(h.URL, wantURL, onfleet.Name):
				ours = append(ours, h)
			case isWaybillPath(h.URL, onfleet.Name):
				other = append(other, h)
			}
		}
		switch {
		case slices.ContainsFunc(ours, func(h onfleet.Webhook) bool { return !h.Disabled() }):
			tr.State, tr.Webhooks = TriggerOK, ours
		case len(ours) > 0:
			tr.State, tr.Webhooks = TriggerDisabled, ours
		case len(other) > 0:
			tr.State, tr.Webhooks = TriggerElsewhere, other
		}
		rep.Triggers = append(rep.Triggers, tr)
	}
	return rep, nil
}

// RegisterOnfleetWebhooks makes every needed trigger call wantURL: it creates a webhook for each
// missing or elsewhere trigger (POST /webhooks, one per trigger; Onfleet checks the URL with
// ?check= first), and replaces each disabled one (DELETE, then POST: Onfleet's update does not
// document re-enabling). It returns the report after, and the webhooks it created.
func RegisterOnfleetWebhooks(ctx context.Context, api WebhookManager, wantURL string) (WebhookReport, []onfleet.Webhook, error) {
	if wantURL == "" {
		return WebhookReport{}, nil, fmt.Errorf("register webhooks: the URL to register is required")
	}
	rep, err := CheckOnfleetWebhooks(ctx, api, wantURL)
	if err != nil {
		return rep, nil, err
	}
	var created []onfleet.Webhook
	for _, t := range rep.Triggers {
		if t.State == TriggerOK {
			continue
		}
		if t.State == TriggerDisabled {
			for _, h := range t.Webhooks {
				if err := api.DeleteWebhook(ctx, h.ID); err != nil {
					return rep, created, fmt.Errorf("delete disabled webhook %s (%s): %w", h.ID, t.Name, err)
				}
			}
		}
		h, err := api.CreateWebhook(ctx, "waybill "+t.Name, wantURL, t.Trigger)
		if err != nil {
			return rep, created, fmt.Errorf("create webhook for %s: %w", t.Name, err)
		}
		created = append(created, h)
	}
	after, err := CheckOnfleetWebhooks(ctx, api, wantURL)
	return after, created, err
}

// SaveWebhookReport records a check for the carrier_webhooks alarm; checkErr, when not nil, is
// recorded instead of the findings (the alarm keeps its state when a check could not be made).
func SaveWebhookReport(ctx context.Context, pool *pgxpool.Pool, carrier string, rep WebhookReport, checkErr error, at time.Time) error {
	p := dbsqlc.CarrierWebhookCheckSaveParams{Carrier: carrier, CheckedAt: at, Url: rep.URL,
		Missing: []string{}, Disabled: []string{}, Elsewhere: []string{}}
	if checkErr != nil {
		p.Error = checkErr.Error()
	} else {
		p.Missing, p.Disabled, p.Elsewhere = rep.Problems()
	}
	return dbsqlc.New().CarrierWebhookCheckSave(ctx, pool, p)
}

// callsUs reports whether a webhook URL is this service's: wantURL exactly (ignoring a trailing
// slash), or, when wantURL is unknown, any URL whose path is /webhooks/<carrier>.
func callsUs(raw, wantURL, carrier string) bool {
	if wantURL == "" {
		return isWaybillPath(raw, carrier)
	}
	return strings.TrimRight(raw, "/") == strings.TrimRight(wantURL, "/")
}

func isWaybillPath(raw, carrier string) bool {
	u, err := url.Parse(raw)
	return err == nil && strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/webhooks/"+carrier)
}
