package daemon

import (
	"github.com/waybill/waybill/internal/alarm"
	"github.com/waybill/waybill/internal/metrics"
	"github.com/waybill/waybill/internal/webhook"
)

// dispatchHooks lets dispatch report to metrics (requests, latency) and to the alarm recorder
// (carrier credentials) through one dispatch.Hooks.
type dispatchHooks struct {
	*metrics.Metrics
	*alarm.Recorder
}

// webhookHooks counts webhook requests for /metrics and feeds bad signatures to the alarm.
type webhookHooks struct {
	metrics  *webhook.Metrics
	recorder *alarm.Recorder
}

func (h webhookHooks) WebhookReceived(carrier, result string) {
	h.metrics.WebhookReceived(carrier, result)
	h.recorder.WebhookReceived(carrier, result)
}
