package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of POST /webhooks/{carrier}, the result label of waybill_webhooks_total.
const (
	ResultAccepted       = "accepted"        // stored, translate job enqueued (200)
	ResultDuplicate      = "duplicate"       // a redelivery of a stored event (200)
	ResultBadSignature   = "bad_signature"   // unsigned or forged (401), nothing stored
	ResultTooLarge       = "too_large"       // body over MaxBodyBytes (413)
	ResultBadJSON        = "bad_json"        // verified but not JSON (400)
	ResultUnknownCarrier = "unknown_carrier" // no such carrier configured (404)
	ResultError          = "error"           // could not store it (500; the carrier retries)
	ResultBusy           = "busy"            // too many bodies being read at once (503; the carrier retries)
)

// UnknownCarrierLabel is the carrier label of requests for carriers that are not configured:
// the path is the sender's choice and must not create label values.
const UnknownCarrierLabel = "unknown"

// Hooks let metrics and alarms watch webhook intake without this package knowing them. Calls
// must be cheap and safe for concurrent use.
type Hooks interface {
	// WebhookReceived counts one POST /webhooks/{carrier} by its Result*. The alarm on bursts
	// of bad signatures counts ResultBadSignature.
	WebhookReceived(carrier, result string)
}

type nopHooks struct{}

func (nopHooks) WebhookReceived(string, string) {}

// Metrics is a Hooks that counts waybill_webhooks_total{carrier,result}.
type Metrics struct {
	received *prometheus.CounterVec
}

// NewMetrics registers waybill_webhooks_total on reg, with every result of the given carriers
// at zero so rates work from the first scrape.
func NewMetrics(reg prometheus.Registerer, carriers ...string) (*Metrics, error) {
	m := &Metrics{received: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "waybill_webhooks_total",
		Help: "Carrier webhook requests by carrier and result (accepted, duplicate, bad_signature, too_large, bad_json, unknown_carrier, error, busy).",
	}, []string{"carrier", "result"})}
	if err := reg.Register(m.received); err != nil {
		return nil, fmt.Errorf("register webhook metrics: %w", err)
	}
	for _, c := range carriers {
		for _, r := range []string{ResultAccepted, ResultDuplicate, ResultBadSignature, ResultTooLarge, ResultBadJSON, ResultError, ResultBusy} {
			m.received.WithLabelValues(c, r)
		}
	}
	m.received.WithLabelValues(UnknownCarrierLabel, ResultUnknownCarrier)
	return m, nil
}

func (m *Metrics) WebhookReceived(carrier, result string) {
	m.received.WithLabelValues(carrier, result).Inc()
}
