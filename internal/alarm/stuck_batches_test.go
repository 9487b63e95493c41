package alarm

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

func TestStuckBatchesAlarm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	orderID, _ := dbtest.InsertOrder(t, b.pool, dbtest.Order{ExternalID: "SO-STUCK"})
	var batchID int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO waybill.dispatch_batches (carrier, order_ids, external_ids, created_at)
		VALUES ('onfleet', ARRAY[$1::bigint], ARRAY['SO-STUCK'], $2) RETURNING id`, orderID, b.clock.Now()).Scan(&batchID))

	// Younger than BatchStuckAfter (default 5m): fine.
	b.clock.Advance(4 * time.Minute)
	b.check(t)
	require.Empty(t, b.slackJobs(t, NameStuckBatches))

	b.clock.Advance(2 * time.Minute)
	b.check(t)
	b.check(t)
	msgs := b.slackJobs(t, NameStuckBatches)
	require.Len(t, msgs, 1)
	require.Equal(t, "onfleet dispatch batches unsettled for more than 5m", msgs[0].Title)
	require.Contains(t, msgs[0].Text, "1 batches (1 orders) sent to onfleet have no outcome yet")
	require.Equal(t, "onfleet", msgs[0].Fields["Carrier"])

	_, err := b.pool.Exec(ctx, `UPDATE waybill.dispatch_batches SET state = 'finished', settled_by = 'lookup', results = '{}' WHERE id = $1`, batchID)
	require.NoError(t, err)
	b.check(t)
	msgs = b.slackJobs(t, NameStuckBatches)
	require.Len(t, msgs, 2)
	require.Equal(t, "onfleet dispatch batches settled", msgs[1].Title)
}
