-- Queries behind /metrics and /readyz. Each scrape runs the cheap ones; see internal/metrics.

-- name: MetricsPing :one
SELECT 1::int AS ok;

-- name: MetricsJobsUnfinished :many
-- Jobs not yet finalized, by queue and state, and how long the oldest available job has waited.
-- Served by River's (state, queue, priority, scheduled_at, id) index and bounded by the backlog.
SELECT queue,
       state::text AS state,
       count(*)::bigint AS jobs,
       coalesce(extract(epoch FROM now() - min(scheduled_at) FILTER (WHERE state = 'available')), 0)::float8 AS oldest_available_seconds
FROM waybill.river_job
WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
GROUP BY queue, state;

-- name: MetricsJobsFinalized :many
-- Finalized jobs by queue and state. Bounded by River's retention (completed jobs are deleted
-- after WAYBILL_COMPLETED_JOB_RETENTION), but large on a busy system: the collector caches it.
SELECT queue, state::text AS state, count(*)::bigint AS jobs
FROM waybill.river_job
WHERE state IN ('completed', 'discarded', 'cancelled')
GROUP BY queue, state;

-- name: MetricsOrdersInFlight :many
-- Exact counts of the statuses in orders_in_flight_idx.
SELECT status, count(*)::bigint AS orders
FROM waybill.orders
WHERE status IN ('pending', 'dispatched', 'assigned', 'in_transit')
GROUP BY status;

-- name: MetricsOrdersSettled :many
-- Exact counts of every other status: a full scan, so only used while the table is small.
SELECT status, count(*)::bigint AS orders
FROM waybill.orders
WHERE status NOT IN ('pending', 'dispatched', 'assigned', 'in_transit')
GROUP BY status;

-- name: MetricsOrdersTableSize :one
-- The orders table's size on disk and the planner's row estimate (-1 before the first ANALYZE).
SELECT pg_relation_size('waybill.orders'::regclass)::bigint AS bytes,
       c.reltuples::float8 AS estimated_rows
FROM pg_catalog.pg_class c
WHERE c.oid = 'waybill.orders'::regclass;

-- name: MetricsOrdersStatusEstimate :many
-- Orders by status estimated from the planner's statistics (ANALYZE's most common values and
-- their frequencies, times the row estimate): free, and as fresh as autovacuum's last ANALYZE.
SELECT ((st.most_common_vals::text::text[])[i])::text AS status,
       (st.most_common_freqs[i] * c.reltuples)::float8 AS orders
FROM pg_catalog.pg_class c,
     pg_catalog.pg_stats st,
     generate_subscripts(st.most_common_freqs, 1) AS i
WHERE c.oid = 'waybill.orders'::regclass
  AND st.schemaname = 'waybill' AND st.tablename = 'orders' AND st.attname = 'status'
  AND c.reltuples > 0;

-- name: DeadJobCountOpen :one
-- Dead letters not yet redriven (dead_jobs_open_discarded_at_idx).
SELECT count(*)::bigint AS open FROM waybill.dead_jobs WHERE redriven_at IS NULL;
