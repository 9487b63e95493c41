-- name: DispatchBatchInsert :one
-- Recorded before the carrier request goes out.
INSERT INTO waybill.dispatch_batches (carrier, order_ids, external_ids)
VALUES (@carrier, @order_ids::bigint[], @external_ids::text[])
RETURNING id;

-- name: DispatchBatchSubmitted :exec
-- The carrier accepted an async job: its id, as soon as it is known.
UPDATE waybill.dispatch_batches
SET state = 'submitted', carrier_job_id = @carrier_job_id, submitted_at = now()
WHERE id = @id AND state = 'sending';

-- name: DispatchBatchFailed :exec
-- An ambiguous failure: the batch stays unfinished until it is settled.
UPDATE waybill.dispatch_batches SET error = @error WHERE id = @id AND state <> 'finished';

-- name: DispatchBatchGet :one
SELECT id, carrier, state, order_ids, external_ids, carrier_job_id, results, settled_by, error,
       created_at, submitted_at
FROM waybill.dispatch_batches WHERE id = @id;

-- name: DispatchBatchGetByJobID :one
SELECT id, state, order_ids FROM waybill.dispatch_batches WHERE carrier = @carrier AND carrier_job_id = @carrier_job_id;

-- name: DispatchBatchClaimLookup :execrows
-- One instance at a time looks a batch up at the carrier; a claim older than @stale_seconds is
-- taken over (its holder died or gave up).
UPDATE waybill.dispatch_batches
SET lookup_at = now()
WHERE id = @id AND state <> 'finished'
  AND (lookup_at IS NULL OR lookup_at < now() - make_interval(secs => @stale_seconds::float8));

-- name: DispatchBatchFinish :many
-- Settles a batch in one statement: the batch gets a summary of its results (counts; each
-- order's own outcome is on the order), each created order becomes
-- dispatched (as the single-order path records it), each refused order rejected with the
-- carrier's words, and the jobs of the orders this statement dispatched that wait in this
-- process (@job_ids, for @job_order_ids) end: deleted, or completed with @keep. Returns the
-- orders it changed; no row at all when another instance settled the batch first (read its
-- results instead: their jobs end when they run).
WITH finished AS (
    UPDATE waybill.dispatch_batches b
    SET state = 'finished', results = @summary::jsonb, settled_by = @settled_by, finished_at = now()
    WHERE b.id = @batch_id::bigint AND b.state <> 'finished'
    RETURNING b.id
), outcome AS (
    SELECT o.id,
           r.value->>'task_id'      AS task_id,
           r.value->>'tracking_url' AS tracking_url,
           r.value->>'error'        AS error
    FROM finished
    CROSS JOIN LATERAL jsonb_each(@results::jsonb) r
    JOIN waybill.orders o ON o.external_id = r.key
    WHERE o.id = ANY(@order_ids::bigint[])
), updated AS (
    UPDATE waybill.orders o
    SET status        = CASE WHEN o.status <> 'pending' THEN o.status
                             WHEN u.task_id IS NOT NULL THEN 'dispatched' ELSE 'rejected' END,
        status_reason = CASE WHEN o.status = 'pending' AND u.task_id IS NULL THEN u.error ELSE o.status_reason END,
        status_at     = CASE WHEN o.status = 'pending' THEN now() ELSE o.status_at END,
        carrier_ref   = coalesce(o.carrier_ref, u.task_id),
        tracking_url  = coalesce(o.tracking_url, nullif(u.tracking_url, '')),
        dispatched_at = CASE WHEN u.task_id IS NOT NULL THEN coalesce(o.dispatched_at, now()) ELSE o.dispatched_at END,
        updated_at    = now()
    FROM outcome u
    WHERE o.id = u.id
    RETURNING o.id, o.status, o.created_at, o.dispatched_at, o.carrier_ref
), waiting AS (
    SELECT j.job_id
    FROM (SELECT unnest(@job_ids::bigint[]) AS job_id, unnest(@job_order_ids::bigint[]) AS order_id) j
    JOIN updated ON updated.id = j.order_id AND updated.carrier_ref IS NOT NULL
), ended_jobs AS (
    DELETE FROM waybill.river_job
    WHERE NOT @keep::boolean AND id IN (SELECT job_id FROM waiting) AND state::text = 'running'
), completed_jobs AS (
    UPDATE waybill.river_job SET state = 'completed', finalized_at = now()
    WHERE @keep::boolean AND id IN (SELECT job_id FROM waiting) AND state::text = 'running'
)
SELECT id, status, created_at, dispatched_at, carrier_ref FROM updated;

-- name: DispatchBatchFinishSingle :exec
-- A batch of one whose order was recorded by the dispatch completer, or that was never sent.
UPDATE waybill.dispatch_batches
SET state = 'finished', settled_by = @settled_by, results = @results::jsonb, finished_at = now()
WHERE id = @id AND state <> 'finished';

-- name: CarrierRateTake :one
SELECT waybill.carrier_rate_take(@carrier, @rate::float8, @low::boolean)::float8 AS wait_seconds;

-- name: CarrierRateBlock :exec
SELECT waybill.carrier_rate_block(@carrier, @seconds::float8);

-- name: OrderEventInsertDispatchWarning :exec
-- A task created with a warning (e.g. a doubtful address): kept in the order's history.
INSERT INTO waybill.order_events (order_id, status, carrier_status, occurred_at, applied, event_key, details)
VALUES (@order_id, 'dispatched', 'taskCreatedWithWarnings', now(), false, 'dispatch-warning:' || @batch_id::bigint,
        jsonb_build_object('warning', @warning::text, 'batch_id', @batch_id::bigint))
ON CONFLICT (order_id, event_key) DO NOTHING;

-- name: DispatchBatchOutcomes :many
-- What a settled batch did to each of its orders, as the orders now say: a task reference means
-- created, rejected means refused, anything else was not created and goes out again.
SELECT id, (carrier_ref IS NOT NULL)::boolean AS created, status, coalesce(status_reason, '')::text AS status_reason
FROM waybill.orders
WHERE id = ANY(@ids::bigint[]);
