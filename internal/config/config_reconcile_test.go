package config_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/config"
)

func TestReconcileSettings(t *testing.T) {
	t.Parallel()
	c, err := config.FromEnv(env(minimal()))
	require.NoError(t, err)
	require.Equal(t, 30*time.Minute, c.ReconcileAfter)
	require.Equal(t, time.Minute, c.ReconcileInterval)
	require.Equal(t, 15*time.Minute, c.WebhookCheckInterval)
	require.Equal(t, 10, c.WebhookGapThreshold)
	require.Empty(t, c.PublicURL)

	for name, value := range map[string]string{
		"WAYBILL_RECONCILE_AFTER":       "soon",
		"WAYBILL_RECONCILE_INTERVAL":    "-1s",
		"WAYBILL_PUBLIC_URL":            "ftp://x",
		"WAYBILL_WEBHOOK_GAP_THRESHOLD": "0",
		"WAYBILL_WEBHOOK_GAP_WINDOW":    "0s",
	} {
		m := minimal()
		m[name] = value
		_, err := config.FromEnv(env(m))
		require.ErrorContains(t, err, name+": ", name)
	}
	m := minimal()
	m["WAYBILL_RECONCILE_AFTER"], m["WAYBILL_RECONCILE_INTERVAL"] = "1m", "2m"
	_, err = config.FromEnv(env(m))
	require.ErrorContains(t, err, "WAYBILL_RECONCILE_INTERVAL: must not be longer than WAYBILL_RECONCILE_AFTER")
}
