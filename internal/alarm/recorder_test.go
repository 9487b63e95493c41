package alarm

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbsqlc"
)

func TestRecorderRunFlushesAndStops(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	rec := NewRecorder(b.pool, b.cfg.Logger, nil)
	done := make(chan struct{})
	go func() { rec.Run(ctx); close(done) }()

	rec.CarrierAuth(ctx, "onfleet", true)
	require.Eventually(t, func() bool {
		h, err := dbsqlc.New().CarrierHealthList(context.Background(), b.pool)
		return err == nil && len(h) == 1 && h[0].LastSuccessAt != nil
	}, 10*time.Second, 50*time.Millisecond)

	// What is recorded just before shutdown is still written.
	rec.WebhookBadSignature("onfleet")
	cancel()
	<-done
	var failures int64
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT coalesce(sum(failures), 0) FROM waybill.webhook_signature_failures WHERE carrier = 'onfleet'`).Scan(&failures))
	require.EqualValues(t, 1, failures)
}

func TestRecorderKeepsWhatItCouldNotWrite(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec := NewRecorder(b.pool, b.cfg.Logger, b.clock.Now)
	rec.CarrierAuth(context.Background(), "onfleet", false)
	rec.WebhookBadSignature("onfleet")
	rec.WebhookBadSignature("onfleet")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, rec.Flush(cancelled))
	rec.WebhookBadSignature("onfleet")
	require.NoError(t, rec.Flush(context.Background()))

	h, err := dbsqlc.New().CarrierHealthList(context.Background(), b.pool)
	require.NoError(t, err)
	require.Len(t, h, 1)
	require.NotNil(t, h[0].LastAuthFailureAt)
	require.Nil(t, h[0].LastSuccessAt)
	rows, err := dbsqlc.New().WebhookSignatureFailuresSince(context.Background(), b.pool, b.clock.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.EqualValues(t, 3, rows[0].Failures)
}
