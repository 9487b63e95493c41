package sandbox

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRegisterFlags(t *testing.T) {
	t.Parallel()

	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	opts := RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{
		"-api-key", "k", "-error-rate", "0.1", "-rate-limit-rate", "0.2", "-late-rate", "0.3", "-late-delay", "2s",
		"-latency", "5ms", "-webhook-url", "http://127.0.0.1:8080/webhooks/onfleet", "-webhook-secret", "a1b2",
		"-webhook-step", "250ms", "-webhook-failure-rate", "0.4", "-webhook-duplicate-rate", "0.5",
		"-webhook-reorder-rate", "1", "-webhook-workers", "4", "-seed", "7",
		"-rate-limit", "0", "-batch-delay", "50ms", "-batch-reject-rate", "0.05", "-batch-warning-rate", "0.06",
		"-batch-stuck-rate", "0.07", "-batch-late-rate", "0.08", "-batch-error-rate", "0.09",
		"-webhooks-off", "-webhook-bad-signature-rate", "0.1",
	}))
	require.Equal(t, Options{
		APIKey: "k", ErrorRate: 0.1, RateLimitRate: 0.2, LateRate: 0.3, LateDelay: 2 * time.Second,
		Latency: 5 * time.Millisecond, WebhookURL: "http://127.0.0.1:8080/webhooks/onfleet", WebhookSecret: "a1b2",
		WebhookStep: 250 * time.Millisecond, WebhookFailureRate: 0.4, WebhookDuplicateRate: 0.5,
		WebhookReorderRate: 1, WebhookWorkers: 4, Seed: 7,
		RateLimit: 0, BatchDelay: 50 * time.Millisecond, BatchRejectRate: 0.05, BatchWarningRate: 0.06,
		BatchStuckRate: 0.07, BatchLateRate: 0.08, BatchErrorRate: 0.09, WebhooksOff: true, WebhookBadSignatureRate: 0.1,
	}, *opts)
	require.NoError(t, opts.Validate())
}

func TestRegisterFlagsDefaults(t *testing.T) {
	t.Parallel()

	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	opts := RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	require.Equal(t, Options{
		RateLimit: DefaultRateLimit, BatchDelay: DefaultBatchDelay,
		WebhookStep: DefaultWebhookStep, WebhookWorkers: DefaultWebhookWorkers, Seed: DefaultSeed,
	}, *opts)
	require.Equal(t, 20, opts.RateLimit, "Onfleet's limit is enforced unless lifted")
	require.NoError(t, opts.Validate())
}

func TestRegisterFlagsRejectsBadValues(t *testing.T) {
	t.Parallel()

	for _, args := range [][]string{
		{"-error-rate", "1.5"},
		{"-rate-limit-rate", "-0.1"},
		{"-late-rate", "NaN"},
		{"-webhook-failure-rate", "half"},
		{"-late-delay", "-1s"},
		{"-latency", "soon"},
		{"-webhook-step", "-5ms"},
		{"-webhook-secret", "not-hex"},
		{"-rate-limit", "-1"},
		{"-rate-limit", "fast"},
		{"-batch-reject-rate", "2"},
		{"-batch-delay", "-1s"},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			RegisterFlags(fs)
			err := fs.Parse(args)
			require.ErrorContains(t, err, args[0])
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"webhook url without secret", Options{WebhookURL: "http://x/hook"}, "-webhook-secret: required with -webhook-url"},
		{"webhook url not http", Options{WebhookURL: "ftp://x/hook", WebhookSecret: "aa"}, "-webhook-url"},
		{"rate out of range", Options{WebhookReorderRate: 2}, "-webhook-reorder-rate"},
		{"negative duration", Options{LateDelay: -time.Second}, "-late-delay"},
		{"negative workers", Options{WebhookWorkers: -1}, "-webhook-workers"},
		{"negative rate limit", Options{RateLimit: -1}, "-rate-limit"},
		{"batch rate out of range", Options{BatchStuckRate: 1.5}, "-batch-stuck-rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.ErrorContains(t, tt.opts.Validate(), tt.want)
			require.Panics(t, func() { New(tt.opts, nil) })
		})
	}
}
