package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func minimal() map[string]string {
	return map[string]string{
		"DATABASE_URL":    "postgres://root@127.0.0.1:5432/test",
		"ONFLEET_API_KEY": "key",
	}
}

func TestFromEnvDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.FromEnv(env(minimal()))
	require.NoError(t, err)
	require.Equal(t, ":8080", c.HTTPAddr)
	require.Equal(t, "https://onfleet.com/api/v2", c.OnfleetBaseURL)
	require.InDelta(t, 18.0, c.OnfleetRateLimit, 0)
	require.Equal(t, 5*time.Minute, c.BacklogAlertAfter)
	require.Equal(t, 24*time.Hour, c.SilenceAlertAfter)
	require.Less(t, c.JobTimeout, c.RescueAfter)
	require.LessOrEqual(t, c.RescueAfter, 2*time.Minute, "orders in flight at a crash must be rescued within 2 minutes")
}

func TestFromEnvValues(t *testing.T) {
	t.Parallel()
	m := minimal()
	m["ONFLEET_RATE_LIMIT"] = "0"
	m["ONFLEET_BASE_URL"] = "http://127.0.0.1:8081/"
	m["ONFLEET_WEBHOOK_SECRET"] = "AABBcc, 0011"
	m["WAYBILL_BACKLOG_ALERT_AFTER"] = "90s"
	c, err := config.FromEnv(env(m))
	require.NoError(t, err)
	require.Zero(t, c.OnfleetRateLimit)
	require.Equal(t, "http://127.0.0.1:8081", c.OnfleetBaseURL)
	require.Equal(t, []string{"AABBcc", "0011"}, c.OnfleetWebhookSecret)
	require.Equal(t, 90*time.Second, c.BacklogAlertAfter)
}

func TestFromEnvNamesTheBadVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		set    map[string]string
		unset  []string
		wantIn []string
	}{
		{name: "missing required", unset: []string{"DATABASE_URL", "ONFLEET_API_KEY"}, wantIn: []string{"DATABASE_URL: required", "ONFLEET_API_KEY: required"}},
		{name: "database URL scheme", set: map[string]string{"DATABASE_URL": "mysql://x@y/z"}, wantIn: []string{"DATABASE_URL: scheme"}},
		{name: "rate not a number", set: map[string]string{"ONFLEET_RATE_LIMIT": "fast"}, wantIn: []string{"ONFLEET_RATE_LIMIT"}},
		{name: "negative rate", set: map[string]string{"ONFLEET_RATE_LIMIT": "-1"}, wantIn: []string{"ONFLEET_RATE_LIMIT"}},
		{name: "duration", set: map[string]string{"WAYBILL_BACKLOG_ALERT_AFTER": "5 minutes"}, wantIn: []string{"WAYBILL_BACKLOG_ALERT_AFTER"}},
		{name: "zero duration", set: map[string]string{"WAYBILL_SILENCE_ALERT_AFTER": "0s"}, wantIn: []string{"WAYBILL_SILENCE_ALERT_AFTER"}},
		{name: "secret not hex", set: map[string]string{"ONFLEET_WEBHOOK_SECRET": "not-hex"}, wantIn: []string{"ONFLEET_WEBHOOK_SECRET"}},
		{name: "three secrets", set: map[string]string{"ONFLEET_WEBHOOK_SECRET": "aa,bb,cc"}, wantIn: []string{"ONFLEET_WEBHOOK_SECRET: at most two"}},
		{name: "admin user without password", set: map[string]string{"WAYBILL_ADMIN_USER": "ops"}, wantIn: []string{"WAYBILL_ADMIN_PASSWORD"}},
		{name: "callback without secret", set: map[string]string{"WAYBILL_CALLBACK_URL": "https://monolith/hook"}, wantIn: []string{"WAYBILL_CALLBACK_SECRET"}},
		{name: "smtp scheme", set: map[string]string{"SMTP_URL": "http://mail:25"}, wantIn: []string{"SMTP_URL: scheme"}},
		{name: "slack not a URL", set: map[string]string{"SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, wantIn: []string{"SLACK_WEBHOOK_URL"}},
		{name: "rescue shorter than timeout", set: map[string]string{"WAYBILL_RESCUE_AFTER": "10s", "WAYBILL_JOB_TIMEOUT": "30s"}, wantIn: []string{"WAYBILL_RESCUE_AFTER"}},
		{name: "workers", set: map[string]string{"WAYBILL_DISPATCH_WORKERS": "0"}, wantIn: []string{"WAYBILL_DISPATCH_WORKERS"}},
		{name: "log level", set: map[string]string{"WAYBILL_LOG_LEVEL": "loud"}, wantIn: []string{"WAYBILL_LOG_LEVEL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := minimal()
			for k, v := range tt.set {
				m[k] = v
			}
			for _, k := range tt.unset {
				delete(m, k)
			}
			_, err := config.FromEnv(env(m))
			require.Error(t, err)
			for _, w := range tt.wantIn {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}
