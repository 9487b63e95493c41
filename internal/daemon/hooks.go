package daemon

import (
	"github.com/waybill/waybill/internal/alarm"
	"github.com/waybill/waybill/internal/metrics"
)

// dispatchHooks lets dispatch report to metrics (requests, latency) and to the alarm recorder
// (carrier credentials) through one dispatch.Hooks.
type dispatchHooks struct {
	*metrics.Metrics
	*alarm.Recorder
}
