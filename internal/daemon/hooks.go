package daemon

import (
	"context"

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

// BatchStuck counts a carrier batch job that did not finish in time; the tracker has logged it
// and settles it by a lookup, and the stuck-batch alarm tells Slack.
func (h dispatchHooks) BatchStuck(_ context.Context, carrier string, _ int64) {
	h.Metrics.BatchStuck(carrier)
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
