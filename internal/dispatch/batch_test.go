package dispatch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier/sandbox"
	"github.com/waybill/waybill/internal/dbtest"
)

// requireOneTaskPerOrder checks, from the sandbox's records and the orders table, that every
// order has exactly one task and records it.
func requireOneTaskPerOrder(t *testing.T, b *testBundle, n int) {
	t.Helper()
	stats := b.sandbox.Stats()
	require.Empty(t, stats.DuplicatedExternalIDs)
	require.EqualValues(t, n, stats.TasksCreated)
	var orders, refs int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT carrier_ref) FROM waybill.orders WHERE status = 'dispatched' AND tracking_url IS NOT NULL`).Scan(&orders, &refs))
	require.Equal(t, n, orders)
	require.Equal(t, n, refs)
}

func carrierRequests(s sandbox.Stats) int64 {
	var n int64
	for _, c := range s.RequestsByRoute {
		n += c
	}
	return n
}

// Under load, requests follow the rate limit, not the number of orders: a bulk insert goes out
// in batches of up to 500 against a carrier that enforces 20 requests/s.
func TestDispatchBatchesAtCarrierLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{
		sandbox:   sandbox.Options{RateLimit: 20, BatchDelay: 100 * time.Millisecond, Seed: 7},
		rateLimit: 18,
		workers:   2000,
	})
	const n = 5000
	dbtest.InsertMany(t, b.pool, "BULK", n, dbtest.Order{})

	waitFor(t, b.pool, n, 60*time.Second, `SELECT count(*) FROM waybill.orders WHERE status = 'dispatched'`)
	waitFor(t, b.pool, 0, 10*time.Second, `SELECT count(*) FROM waybill.river_job WHERE kind = 'dispatch_order'`)
	requireOneTaskPerOrder(t, b, n)
	stats := b.sandbox.Stats()
	requests := carrierRequests(stats)
	t.Logf("%d orders in %d carrier requests (%v), %d refused for rate", n, requests, stats.RequestsByRoute, stats.Requests.RateLimited)
	creates := stats.RequestsByRoute["POST /tasks/batch-async"] + stats.RequestsByRoute["POST /tasks"]
	require.LessOrEqual(t, float64(creates)/n, 0.01, "requests that create tasks, per order")
	// Polls come on top, as the jobs' timing on a busy machine dictates; with the batch webhook
	// registered (the e2e test) they mostly do not happen.
	require.LessOrEqual(t, float64(requests)/n, 0.03, "carrier requests per order, polls included")
	require.LessOrEqual(t, float64(stats.Requests.RateLimited), 0.01*float64(requests)+1, "at most 1%% refused for rate")
	waitFor(t, b.pool, 0, 5*time.Second, `SELECT count(*) FROM waybill.dispatch_batches WHERE state <> 'finished'`)
}

// A lone order goes out at once, with the single-task call: no batch, no added wait.
func TestDispatchLoneOrderGoesAlone(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{sandbox: sandbox.Options{RateLimit: 20}, rateLimit: 18})
	dbtest.InsertOrders(t, b.pool, "LONE", 1, dbtest.Order{})
	waitFor(t, b.pool, 1, 10*time.Second, `SELECT count(*) FROM waybill.orders WHERE status = 'dispatched'`)
	stats := b.sandbox.Stats()
	require.EqualValues(t, 1, stats.RequestsByRoute["POST /tasks"])
	require.Zero(t, stats.Batch.Jobs)
	waitFor(t, b.pool, 1, 5*time.Second, `SELECT count(*) FROM waybill.dispatch_batches WHERE state = 'finished' AND settled_by = 'answer' AND cardinality(order_ids) = 1`)
}

// Each order of a batch keeps its own outcome: refused ones are rejected with the carrier's
// words and end as their own dead letter; one created with a warning is dispatched and the
// warning kept in its history; the rest are dispatched.
func TestDispatchBatchOutcomesPerOrder(t *testing.T) {
	t.Parallel()
	// One request at a time, each taking 50 ms: while the first order goes out alone, all the
	// others queue and leave together in the next request.
	b := setup(t, setupOpts{
		sandbox:  sandbox.Options{BatchDelay: 50 * time.Millisecond, Latency: 50 * time.Millisecond, Seed: 3},
		workers:  500,
		inFlight: 1,
	})
	const n = 300
	bad := strings.Replace(dbtest.Payload, "1 Main St", "1 Main St "+sandbox.RejectMarker, 1)
	warn := strings.Replace(dbtest.Payload, "1 Main St", "1 Main St "+sandbox.WarningMarker, 1)
	// One statement: the jobs are enqueued together, and the two marked orders sit in the middle
	// of them, so they ride in a batch with others (only a lone order goes out by itself).
	_, err := b.pool.Exec(context.Background(),
		`INSERT INTO waybill.orders (external_id, carrier, payload)
		 SELECT CASE g WHEN $2::int / 2 THEN 'MIX-BAD' WHEN $2::int / 2 + 1 THEN 'MIX-WARN' ELSE 'MIX-' || g END, 'onfleet',
		        CASE g WHEN $2::int / 2 THEN $3::jsonb WHEN $2::int / 2 + 1 THEN $4::jsonb ELSE $1::jsonb END
		 FROM generate_series(1, $2::int + 2) g`, dbtest.Payload, n, bad, warn)
	require.NoError(t, err)

	waitFor(t, b.pool, n+1, 30*time.Second, `SELECT count(*) FROM waybill.orders WHERE status = 'dispatched'`)
	waitFor(t, b.pool, 1, 10*time.Second, `SELECT count(*) FROM waybill.orders WHERE external_id = 'MIX-BAD' AND status = 'rejected' AND status_reason LIKE '%1011%'`)
	waitFor(t, b.pool, 1, 10*time.Second, `SELECT count(*) FROM waybill.dead_jobs WHERE external_id = 'MIX-BAD'`)
	waitFor(t, b.pool, 1, 10*time.Second, `SELECT count(*) FROM waybill.dead_jobs`)
	stats := b.sandbox.Stats()
	require.Empty(t, stats.DuplicatedExternalIDs)
	require.EqualValues(t, n+1, stats.TasksCreated)
	require.Positive(t, stats.Batch.TasksRefused, "the refused order went in a batch")
	require.EqualValues(t, 1, stats.Batch.TasksWithWarnings)
	waitFor(t, b.pool, 1, 5*time.Second, `SELECT count(*) FROM waybill.order_events e JOIN waybill.orders o ON o.id = e.order_id
		WHERE o.external_id = 'MIX-WARN' AND o.status = 'dispatched' AND e.carrier_status = 'taskCreatedWithWarnings' AND e.details->>'warning' <> ''`)
}

// A batch request whose answer is lost (the job was created, then 503) is settled by one
// metadata lookup per batch: nothing created twice, nothing lost.
func TestDispatchBatchAmbiguousAnswerIsLookedUp(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{
		sandbox:  sandbox.Options{BatchDelay: 50 * time.Millisecond, BatchErrorRate: 1, Latency: 20 * time.Millisecond, Seed: 5},
		workers:  500,
		inFlight: 1, // the orders queue behind the first request and go out in batches
	})
	const n = 400
	dbtest.InsertMany(t, b.pool, "AMB", n, dbtest.Order{})
	waitFor(t, b.pool, n, 40*time.Second, `SELECT count(*) FROM waybill.orders WHERE status = 'dispatched'`)
	requireOneTaskPerOrder(t, b, n)
	stats := b.sandbox.Stats()
	require.Positive(t, stats.Batch.JobsFailedAnswer)
	var lookups int64
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM waybill.dispatch_batches WHERE settled_by = 'lookup'`).Scan(&lookups))
	require.Positive(t, lookups)
	require.LessOrEqual(t, stats.Requests.MetadataQuery, lookups+int64(stats.RequestsByRoute["POST /tasks"]),
		"one lookup per batch, not one per order")
}

// A job that never finishes is settled by a lookup after StuckAfter and reported.
func TestDispatchBatchStuckJobIsSettled(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{
		sandbox:    sandbox.Options{BatchDelay: 50 * time.Millisecond, BatchStuckRate: 1, Latency: 20 * time.Millisecond, Seed: 9},
		workers:    500,
		inFlight:   1, // the orders queue behind the first request and go out in batches
		stuckAfter: 2 * time.Second,
	})
	const n = 200
	dbtest.InsertMany(t, b.pool, "STUCK", n, dbtest.Order{})
	waitFor(t, b.pool, n, 40*time.Second, `SELECT count(*) FROM waybill.orders WHERE status = 'dispatched'`)
	requireOneTaskPerOrder(t, b, n)
	require.Positive(t, b.sandbox.Stats().Batch.JobsStuck)
	require.Positive(t, b.hooks.count("stuck"))
	var settled int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM waybill.dispatch_batches WHERE settled_by = 'lookup' AND carrier_job_id IS NOT NULL`).Scan(&settled))
	require.Positive(t, settled)
}
