-- name: OrderInsert :one
-- The intake's insert: a repeat of an existing external_id returns no row (the caller then
-- compares contents), and ON CONFLICT rows get no dispatch job (see the outbox trigger).
INSERT INTO waybill.orders (external_id, carrier, kind, payload)
VALUES (@external_id, @carrier, @kind, @payload)
ON CONFLICT (external_id) DO NOTHING
RETURNING *;

-- name: OrderGetByExternalID :one
SELECT * FROM waybill.orders WHERE external_id = @external_id;

-- name: OrderPayloadEquals :one
-- Whether a resubmitted payload is the stored one, compared as jsonb: key order and spacing
-- aside, and numbers by value however large or precise (1e400, 2^53 + 1).
SELECT payload = @payload::jsonb AS same FROM waybill.orders WHERE external_id = @external_id;

-- name: OrderGetByID :one
SELECT * FROM waybill.orders WHERE id = @id;

-- name: OrderMarkDispatchedMany :many
-- Records the carrier's answers for a batch of dispatched orders and ends their dispatch jobs, in
-- one statement. A carrier webhook may already have moved an order past dispatched, so status
-- only moves from pending, and what is already known is kept.
-- The jobs are deleted rather than marked completed: the order row is the record of the dispatch,
-- and a third version of each job row (with all of River's indexes) plus its later deletion by
-- River's cleaner was a measured share of the cost per order. Only running jobs go: one rescued
-- meanwhile runs again, finds carrier_ref set and ends without calling the carrier. state is
-- compared as text so that the jobs are found by id: when statistics have seen few running
-- jobs, a plain state = 'running' sends the generic plan to River's (state, …) index, which
-- holds an entry for every running version not yet vacuumed.
-- With @keep (WAYBILL_KEEP_FINISHED_JOBS) the jobs are completed instead, for River UI.
WITH ended_jobs AS (
    DELETE FROM waybill.river_job
    WHERE NOT @keep::boolean AND id = ANY(@job_ids::bigint[]) AND state::text = 'running'
), completed_jobs AS (
    UPDATE waybill.river_job SET state = 'completed', finalized_at = now()
    WHERE @keep::boolean AND id = ANY(@job_ids::bigint[]) AND state::text = 'running'
)
UPDATE waybill.orders o
SET status        = CASE WHEN o.status = 'pending' THEN 'dispatched' ELSE o.status END,
    status_at     = CASE WHEN o.status = 'pending' THEN now() ELSE o.status_at END,
    carrier_ref   = coalesce(o.carrier_ref, u.carrier_ref),
    tracking_url  = coalesce(o.tracking_url, nullif(u.tracking_url, '')),
    dispatched_at = coalesce(o.dispatched_at, now()),
    updated_at    = now()
FROM (SELECT unnest(@ids::bigint[])           AS id,
             unnest(@carrier_refs::text[])  AS carrier_ref,
             unnest(@tracking_urls::text[]) AS tracking_url) u
WHERE o.id = u.id
RETURNING o.id, o.created_at, o.dispatched_at;

-- name: OrderMarkRejected :execrows
-- The carrier refused the order for good (bad address, bad phone…).
UPDATE waybill.orders
SET status = 'rejected', status_reason = @reason, status_at = now(), updated_at = now()
WHERE id = @id AND status = 'pending';

-- name: CarrierEnsure :exec
-- Keeps waybill.carriers in step with the service's configuration.
INSERT INTO waybill.carriers (name)
SELECT unnest(@names::text[])
ON CONFLICT (name) DO NOTHING;

-- name: OrderGetForDispatchMany :many
-- What dispatch workers need, for a batch of them at once, with the unfinished carrier batch an
-- order sits in (0 for none): such an order is settled, never sent again. Only the orders of
-- @check_ids are looked for in batches: a job on its first run (no earlier attempt, snooze or
-- error) cannot have sent its order, and the lookup was most of dispatch's Postgres time.
SELECT o.id, o.kind, o.payload, o.status, o.status_reason, o.carrier_ref, o.tracking_url,
       CASE WHEN o.id = ANY(@check_ids::bigint[]) THEN
           coalesce((SELECT b.id FROM waybill.dispatch_batches b
                     WHERE b.state <> 'finished' AND b.order_ids @> ARRAY[o.id]
                     ORDER BY b.id DESC LIMIT 1), 0)
       ELSE 0 END::bigint AS batch_id
FROM waybill.orders o
WHERE o.id = ANY(@ids::bigint[]);

-- name: DispatchBatchFinishAnswered :exec
-- Batches of one whose order the completer records in the same transaction.
UPDATE waybill.dispatch_batches
SET state = 'finished', settled_by = 'answer', finished_at = now()
WHERE id = ANY(@ids::bigint[]) AND state <> 'finished';
