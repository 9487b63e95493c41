package sandbox

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Defaults for Options.
const (
	DefaultWebhookStep    = time.Second
	DefaultWebhookWorkers = 32
	DefaultSeed           = 1
	// DefaultRateLimit is Onfleet's limit: 20 requests a second per organisation.
	DefaultRateLimit = 20
	// DefaultBatchDelay is how long an async batch job waits before it creates its tasks.
	DefaultBatchDelay = 500 * time.Millisecond
)

// Options configures the sandbox. Rates are fractions of requests (or webhook events) in [0, 1].
// The fault fields (every field but APIKey, the WebhookURL/Secret/Step/Workers and Seed) can
// also be changed at runtime with POST /sandbox/faults.
type Options struct {
	// APIKey, when set, is the only key accepted; otherwise any non-empty key is.
	APIKey string

	// RateLimit is the organisation's limit in requests per second, counted over every Onfleet
	// route and every key in any one-second window; over it the answer is 429 (error 2300).
	// 0 means no limit. The command line's default is DefaultRateLimit, as at Onfleet; the
	// zero Options has none, so Go tests opt in.
	RateLimit int

	// ErrorRate answers 503 without creating the task.
	ErrorRate float64
	// RateLimitRate answers 429 (Onfleet error 2300) without creating the task.
	RateLimitRate float64
	// LateRate creates the task, then waits LateDelay before answering, so a client with a
	// shorter timeout gives up on a task that exists.
	LateRate  float64
	LateDelay time.Duration
	// Latency is added to every answer of the Onfleet routes.
	Latency time.Duration

	// BatchDelay is how long an async batch job (POST /tasks/batch-async) stays pending before
	// it creates its tasks; 0 means DefaultBatchDelay.
	BatchDelay time.Duration
	// BatchRejectRate refuses a fraction of the tasks of a batch (error 1011, address could not
	// be geocoded): the job completes with errors. A task whose destination address (unparsed)
	// or notes contain RejectMarker is always refused, on POST /tasks too.
	BatchRejectRate float64
	// BatchWarningRate creates a fraction of the tasks of a batch with warnings: they are in
	// newTasksWithWarnings, not in newTasks. WarningMarker does it for one task.
	BatchWarningRate float64
	// BatchStuckRate makes a fraction of jobs never finish: their tasks are created, the job
	// stays "processing" and no taskBatchCreateJobCompleted webhook is sent.
	BatchStuckRate float64
	// BatchLateRate creates the job, then answers only after LateDelay.
	BatchLateRate float64
	// BatchErrorRate creates the job (it runs to the end), then answers 503.
	BatchErrorRate float64

	// WebhookURL, when set, receives signed Onfleet webhooks as each created task walks
	// taskCreated → taskAssigned → taskStarted → taskCompleted (or a failure).
	WebhookURL string
	// WebhookSecret is the hex secret the webhooks are signed with (required with WebhookURL).
	WebhookSecret string
	// WebhookStep is the mean time between two lifecycle steps of a task (jittered ±50%).
	WebhookStep time.Duration
	// WebhookFailureRate ends a task in failure: taskCompleted with success=false, or taskFailed.
	WebhookFailureRate float64
	// WebhookDuplicateRate delivers an event a second time, after the task's next event.
	WebhookDuplicateRate float64
	// WebhookReorderRate delivers an event after the task's next event instead of before it.
	WebhookReorderRate float64
	// WebhookWorkers bounds concurrent webhook deliveries.
	WebhookWorkers int
	// WebhooksOff stops every webhook delivery; tasks still walk their lifecycle, so their
	// state can be read back with GET /tasks/{id} and GET /tasks/all.
	WebhooksOff bool
	// WebhookBadSignatureRate signs a fraction of webhook events with a wrong key.
	WebhookBadSignatureRate float64

	// Seed makes every random choice (faults, ids, jitter) reproducible for one arrival order.
	Seed int64
}

// Validate reports every option out of range, naming the flag.
func (o Options) Validate() error {
	var errs []error
	for _, r := range []struct {
		flag string
		v    float64
	}{
		{"error-rate", o.ErrorRate}, {"rate-limit-rate", o.RateLimitRate}, {"late-rate", o.LateRate},
		{"webhook-failure-rate", o.WebhookFailureRate}, {"webhook-duplicate-rate", o.WebhookDuplicateRate},
		{"webhook-reorder-rate", o.WebhookReorderRate}, {"webhook-bad-signature-rate", o.WebhookBadSignatureRate},
		{"batch-reject-rate", o.BatchRejectRate}, {"batch-warning-rate", o.BatchWarningRate},
		{"batch-stuck-rate", o.BatchStuckRate}, {"batch-late-rate", o.BatchLateRate}, {"batch-error-rate", o.BatchErrorRate},
	} {
		if err := checkRate(r.v); err != nil {
			errs = append(errs, fmt.Errorf("-%s: %w", r.flag, err))
		}
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"late-delay", o.LateDelay}, {"latency", o.Latency}, {"webhook-step", o.WebhookStep}, {"batch-delay", o.BatchDelay}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("-%s: must not be negative, not %s", d.flag, d.v))
		}
	}
	if o.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("-rate-limit: must not be negative (0 lifts the limit), not %d", o.RateLimit))
	}
	if o.WebhookWorkers < 0 {
		errs = append(errs, fmt.Errorf("-webhook-workers: must not be negative, not %d", o.WebhookWorkers))
	}
	if o.WebhookURL != "" {
		if u, err := url.Parse(o.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("-webhook-url: must be an http(s) URL, not %q", o.WebhookURL))
		}
		if o.WebhookSecret == "" {
			errs = append(errs, errors.New("-webhook-secret: required with -webhook-url (webhooks are signed)"))
		}
	}
	if o.WebhookSecret != "" {
		if err := checkSecret(o.WebhookSecret); err != nil {
			errs = append(errs, fmt.Errorf("-webhook-secret: %w", err))
		}
	}
	return errors.Join(errs...)
}

func checkRate(v float64) error {
	if !(v >= 0 && v <= 1) { // also catches NaN
		return fmt.Errorf("must be a fraction between 0 and 1, not %v", v)
	}
	return nil
}

func checkSecret(s string) error {
	if b, err := hex.DecodeString(s); err != nil || len(b) == 0 {
		return errors.New("must be hex, as Onfleet shows webhook secrets")
	}
	return nil
}

// RegisterFlags defines the sandbox's flags on fs and returns the Options they fill. Each flag is
// checked as it is parsed, so fs.Parse reports a bad value with the flag's name; Validate checks
// the combinations.
func RegisterFlags(fs *flag.FlagSet) *Options {
	o := &Options{
		RateLimit: DefaultRateLimit, BatchDelay: DefaultBatchDelay,
		WebhookStep: DefaultWebhookStep, WebhookWorkers: DefaultWebhookWorkers, Seed: DefaultSeed,
	}
	fs.StringVar(&o.APIKey, "api-key", "", "the only API key accepted (default: any non-empty key)")
	fs.Func("rate-limit", fmt.Sprintf("requests/s per organisation over every Onfleet route, as Onfleet enforces it; 0 = no limit (default %d)", DefaultRateLimit), func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("must be a whole number of requests per second, 0 for no limit, not %q", s)
		}
		o.RateLimit = n
		return nil
	})
	fs.Var((*rateValue)(&o.ErrorRate), "error-rate", "fraction of task creations answered 503, without creating")
	fs.Var((*rateValue)(&o.RateLimitRate), "rate-limit-rate", "fraction of task creations answered 429 (error 2300), without creating")
	fs.Var((*rateValue)(&o.LateRate), "late-rate", "fraction of task creations answered only after -late-delay (the task exists)")
	fs.Var((*durationValue)(&o.LateDelay), "late-delay", "how long a late answer waits, e.g. 30s")
	fs.Var((*durationValue)(&o.Latency), "latency", "added to every answer, e.g. 20ms")
	fs.Var((*durationValue)(&o.BatchDelay), "batch-delay", "how long an async batch job stays pending before it creates its tasks")
	fs.Var((*rateValue)(&o.BatchRejectRate), "batch-reject-rate", "fraction of the tasks of a batch refused (error 1011); a task whose address or notes contain "+RejectMarker+" always is")
	fs.Var((*rateValue)(&o.BatchWarningRate), "batch-warning-rate", "fraction of the tasks of a batch created with warnings; "+WarningMarker+" in address or notes does it for one")
	fs.Var((*rateValue)(&o.BatchStuckRate), "batch-stuck-rate", "fraction of batch jobs that never finish (their tasks are created)")
	fs.Var((*rateValue)(&o.BatchLateRate), "batch-late-rate", "fraction of batch requests answered only after -late-delay (the job exists)")
	fs.Var((*rateValue)(&o.BatchErrorRate), "batch-error-rate", "fraction of batch requests answered 503 after the job was created")
	fs.StringVar(&o.WebhookURL, "webhook-url", "", "where to send signed webhooks of every trigger, besides those registered with POST /webhooks (default: none)")
	fs.Func("webhook-secret", "hex secret to sign webhooks with (X-Onfleet-Signature, HMAC-SHA512)", func(s string) error {
		if err := checkSecret(s); err != nil {
			return err
		}
		o.WebhookSecret = s
		return nil
	})
	fs.Var((*durationValue)(&o.WebhookStep), "webhook-step", "mean time between lifecycle steps of a task, jittered ±50%")
	fs.Var((*rateValue)(&o.WebhookFailureRate), "webhook-failure-rate", "fraction of tasks that end failed")
	fs.Var((*rateValue)(&o.WebhookDuplicateRate), "webhook-duplicate-rate", "fraction of webhook events delivered twice")
	fs.Var((*rateValue)(&o.WebhookReorderRate), "webhook-reorder-rate", "fraction of webhook events delivered after the next one")
	fs.IntVar(&o.WebhookWorkers, "webhook-workers", DefaultWebhookWorkers, "concurrent webhook deliveries")
	fs.BoolVar(&o.WebhooksOff, "webhooks-off", false, "send no webhooks at all (tasks still move on; read them back with GET /tasks)")
	fs.Var((*rateValue)(&o.WebhookBadSignatureRate), "webhook-bad-signature-rate", "fraction of webhook events signed with a wrong key")
	fs.Int64Var(&o.Seed, "seed", DefaultSeed, "seed for every random choice")
	return o
}

// rateValue is a flag holding a fraction in [0, 1].
type rateValue float64

func (r *rateValue) String() string { return strconv.FormatFloat(float64(*r), 'g', -1, 64) }

func (r *rateValue) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("must be a fraction between 0 and 1, not %q", s)
	}
	if err := checkRate(v); err != nil {
		return err
	}
	*r = rateValue(v)
	return nil
}

// durationValue is a flag holding a non-negative duration.
type durationValue time.Duration

func (d *durationValue) String() string { return time.Duration(*d).String() }

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("must be a non-negative duration such as 250ms or 2s, not %q", s)
	}
	*d = durationValue(v)
	return nil
}
