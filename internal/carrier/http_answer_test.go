package carrier_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
)

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status    int
		class     carrier.ErrorClass
		ambiguous bool
	}{
		{429, carrier.RateLimited, false},
		{401, carrier.Unauthorized, false},
		{403, carrier.Unauthorized, false},
		{404, carrier.Unauthorized, false}, // wrong URL: the integration, not the order
		{405, carrier.Unauthorized, false},
		{408, carrier.Transient, false},
		{400, carrier.Rejected, false},
		{422, carrier.Rejected, false},
		{500, carrier.Transient, true},
		{503, carrier.Transient, true},
		{302, carrier.Transient, true},
	}
	for _, tt := range tests {
		class, ambiguous := carrier.ClassifyStatus(tt.status)
		require.Equal(t, tt.class, class, "HTTP %d", tt.status)
		require.Equal(t, tt.ambiguous, ambiguous, "HTTP %d", tt.status)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	require.Equal(t, 3*time.Second, carrier.RetryAfter("3", now))
	require.Equal(t, 90*time.Second, carrier.RetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
	require.Zero(t, carrier.RetryAfter("", now))
	require.Zero(t, carrier.RetryAfter("soon", now))
	require.Zero(t, carrier.RetryAfter("-5", now))
	require.Zero(t, carrier.RetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now))
}
