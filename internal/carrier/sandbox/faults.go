package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Faults are the fault-injection settings that can change at runtime. The JSON names are the
// flag names; durations are Go duration strings ("250ms").
type Faults struct {
	RateLimit               int      `json:"rate-limit"`
	ErrorRate               float64  `json:"error-rate"`
	RateLimitRate           float64  `json:"rate-limit-rate"`
	LateRate                float64  `json:"late-rate"`
	LateDelay               Duration `json:"late-delay"`
	Latency                 Duration `json:"latency"`
	BatchDelay              Duration `json:"batch-delay"`
	BatchRejectRate         float64  `json:"batch-reject-rate"`
	BatchWarningRate        float64  `json:"batch-warning-rate"`
	BatchStuckRate          float64  `json:"batch-stuck-rate"`
	BatchLateRate           float64  `json:"batch-late-rate"`
	BatchErrorRate          float64  `json:"batch-error-rate"`
	WebhookFailureRate      float64  `json:"webhook-failure-rate"`
	WebhookDuplicateRate    float64  `json:"webhook-duplicate-rate"`
	WebhookReorderRate      float64  `json:"webhook-reorder-rate"`
	WebhooksOff             bool     `json:"webhooks-off"`
	WebhookBadSignatureRate float64  `json:"webhook-bad-signature-rate"`
}

func faultsOf(o Options) Faults {
	if o.BatchDelay == 0 {
		o.BatchDelay = DefaultBatchDelay
	}
	return Faults{
		RateLimit: o.RateLimit, ErrorRate: o.ErrorRate, RateLimitRate: o.RateLimitRate, LateRate: o.LateRate,
		LateDelay: Duration(o.LateDelay), Latency: Duration(o.Latency),
		BatchDelay: Duration(o.BatchDelay), BatchRejectRate: o.BatchRejectRate, BatchWarningRate: o.BatchWarningRate,
		BatchStuckRate: o.BatchStuckRate, BatchLateRate: o.BatchLateRate, BatchErrorRate: o.BatchErrorRate,
		WebhookFailureRate: o.WebhookFailureRate, WebhookDuplicateRate: o.WebhookDuplicateRate,
		WebhookReorderRate: o.WebhookReorderRate, WebhooksOff: o.WebhooksOff,
		WebhookBadSignatureRate: o.WebhookBadSignatureRate,
	}
}

// validate checks ranges through Options.Validate, so both report the same words.
func (f Faults) validate() error {
	return Options{
		RateLimit: f.RateLimit, ErrorRate: f.ErrorRate, RateLimitRate: f.RateLimitRate, LateRate: f.LateRate,
		LateDelay: time.Duration(f.LateDelay), Latency: time.Duration(f.Latency),
		BatchDelay: time.Duration(f.BatchDelay), BatchRejectRate: f.BatchRejectRate, BatchWarningRate: f.BatchWarningRate,
		BatchStuckRate: f.BatchStuckRate, BatchLateRate: f.BatchLateRate, BatchErrorRate: f.BatchErrorRate,
		WebhookFailureRate: f.WebhookFailureRate, WebhookDuplicateRate: f.WebhookDuplicateRate,
		WebhookReorderRate: f.WebhookReorderRate, WebhookBadSignatureRate: f.WebhookBadSignatureRate,
	}.Validate()
}

// patch applies a partial JSON update: only the fields present change; unknown fields are errors.
func (f Faults) patch(body []byte) (Faults, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return f, fmt.Errorf("body must be a JSON object: %w", err)
	}
	known, _ := json.Marshal(f)
	var names map[string]json.RawMessage
	_ = json.Unmarshal(known, &names)
	for name := range fields {
		if _, ok := names[name]; !ok {
			valid := make([]string, 0, len(names))
			for n := range names {
				valid = append(valid, n)
			}
			slices.Sort(valid)
			return f, fmt.Errorf("unknown field %q (known: %s)", name, strings.Join(valid, ", "))
		}
	}
	// Decoding over the current values changes exactly the fields present.
	if err := json.Unmarshal(body, &f); err != nil {
		return f, err
	}
	if err := f.validate(); err != nil {
		return f, err
	}
	return f, nil
}

// Duration is a time.Duration written in JSON as a Go duration string.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`durations are strings such as "250ms" or "2s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("not a duration: %q", s)
	}
	*d = Duration(v)
	return nil
}
