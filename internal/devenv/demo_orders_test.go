package devenv

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

func TestExampleInsert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)

	stmt := ExampleInsert("SO-1001")
	require.True(t, strings.HasPrefix(stmt, "INSERT INTO waybill.orders (external_id, carrier, payload)\nVALUES ('SO-1001', 'onfleet', '{"), stmt)
	_, err := pool.Exec(ctx, stmt)
	require.NoError(t, err, "the example passes the INSERT-time validation")
	_, err = pool.Exec(ctx, ExampleInsert("O'Brien-7"))
	require.NoError(t, err, "quotes in the external_id are escaped")

	var status, name string
	var jobs int
	require.NoError(t, pool.QueryRow(ctx, "SELECT status, payload->'recipient'->>'name' FROM waybill.orders WHERE external_id = $1", "O'Brien-7").Scan(&status, &name))
	require.Equal(t, "pending", status)
	require.Equal(t, "Ada Lovelace", name)
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM waybill.river_job WHERE kind = 'dispatch_order' AND args->>'external_id' IN ('SO-1001', 'O''Brien-7')").Scan(&jobs))
	require.Equal(t, 2, jobs)
}

func TestInsertDemoOrders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := dbtest.NewPool(t)

	ids, err := InsertDemoOrders(ctx, pool, 12)
	require.NoError(t, err)
	require.Len(t, ids, 12)
	seen := map[string]bool{}
	for _, id := range ids {
		require.Regexp(t, `^DEMO-\d+-\d+$`, id)
		require.False(t, seen[id], "duplicate %s", id)
		seen[id] = true
	}

	var orders, pickups, valid, recipients, windows, jobs int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*),
		       count(*) FILTER (WHERE kind = 'pickup'),
		       count(*) FILTER (WHERE cardinality(waybill.order_payload_problems(payload)) = 0 AND status = 'pending'),
		       count(DISTINCT payload->'recipient'->>'name'),
		       count(DISTINCT payload->'window')
		FROM waybill.orders WHERE external_id = ANY($1)`, ids).Scan(&orders, &pickups, &valid, &recipients, &windows))
	require.Equal(t, 12, orders)
	require.Equal(t, 3, pickups)
	require.Equal(t, 12, valid)
	require.Greater(t, recipients, 3)
	require.Greater(t, windows, 3)
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM waybill.river_job WHERE kind = 'dispatch_order' AND args->>'external_id' = ANY($1)", ids).Scan(&jobs))
	require.Equal(t, 12, jobs, "every demo order has its dispatch job")

	none, err := InsertDemoOrders(ctx, pool, 0)
	require.NoError(t, err)
	require.Empty(t, none)
	_, err = InsertDemoOrders(ctx, pool, -1)
	require.Error(t, err)
}
