package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

func TestProgressCountsWithoutRescanning(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)
	insert := func(n int) {
		t.Helper()
		for range n {
			_, err := pool.Exec(ctx, outboxInsertSQL, fmt.Sprintf("progress-%d", nextID()), orderPayload(1, testNow))
			require.NoError(t, err)
		}
	}
	dispatch := func(where string) {
		t.Helper()
		_, err := pool.Exec(ctx, `UPDATE waybill.orders SET dispatched_at = now() WHERE `+where)
		require.NoError(t, err)
	}
	var fromID int64
	insert(3) // rows before the phase do not count
	require.NoError(t, pool.QueryRow(ctx, `SELECT max(id) FROM waybill.orders`).Scan(&fromID))
	insert(10)
	p := newProgress("waybill.orders", "dispatched_at", fromID)

	read := func(wantRows, wantDone int64) {
		t.Helper()
		rows, done, err := p.read(ctx, pool)
		require.NoError(t, err)
		require.Equal(t, wantRows, rows, "rows")
		require.Equal(t, wantDone, done, "done")
	}
	read(10, 0)

	// Done in order up to the 4th, and one out of order (the 7th). The watermark passes the
	// pending rows before the 7th, keeping them as stragglers to re-read, and waits before the
	// 8th: nothing after it is done, so it only lags.
	dispatch(fmt.Sprintf("id > %d AND id <= %d OR id = %d", fromID, fromID+4, fromID+7))
	read(10, 5)
	require.Equal(t, fromID+7, p.watermark)
	require.Equal(t, []int64{fromID + 5, fromID + 6}, p.stragglers)
	read(10, 5) // reading again changes nothing
	require.Equal(t, fromID+7, p.watermark)

	insert(2)
	dispatch(fmt.Sprintf("id > %d", fromID))
	read(12, 12)
	require.Equal(t, fromID+12, p.watermark)
	require.Empty(t, p.stragglers)
	read(12, 12)

	// With room for only two stragglers the watermark stops before the third pending row.
	q := newProgress("waybill.orders", "dispatched_at", fromID+12)
	q.pass, q.keep = 10, 2
	insert(6)
	dispatch(fmt.Sprintf("id = %d OR id = %d", fromID+14, fromID+18))
	// 13, 15, 16, 17 pending; 14 and 18 done.
	rows, done, err := q.read(ctx, pool)
	require.NoError(t, err)
	require.EqualValues(t, 6, rows)
	require.EqualValues(t, 2, done)
	require.Equal(t, []int64{fromID + 13, fromID + 15}, q.stragglers)
	require.Equal(t, fromID+15, q.watermark, "stopped before the third pending row (16)")
	dispatch(fmt.Sprintf("id > %d", fromID))
	for range 3 {
		rows, done, err = q.read(ctx, pool)
		require.NoError(t, err)
	}
	require.EqualValues(t, 6, rows)
	require.EqualValues(t, 6, done)
	require.Empty(t, q.stragglers)
	require.Equal(t, fromID+18, q.watermark)
}

var (
	testNow = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	idSeq   atomic.Int64
)

func nextID() int64 { return idSeq.Add(1) }
