-- Alarm state and the conditions the alarm check reads. See internal/alarm.

-- name: AlarmLock :exec
-- Serializes checks of one alarm across instances until the transaction ends: a check still
-- running on a former leader and one on the new leader must not both send.
SELECT pg_advisory_xact_lock(hashtextextended('waybill.alarm:' || @name::text, 0));

-- name: AlarmGet :one
SELECT * FROM waybill.alarms WHERE name = @name AND key = @key;

-- name: AlarmListFiring :many
SELECT * FROM waybill.alarms WHERE name = @name AND state = 'firing' ORDER BY key;

-- name: AlarmSave :exec
INSERT INTO waybill.alarms (name, key, state, first_fired_at, last_seen_at, last_notified_at, resolved_at, count,
                            notified_count, details, updated_at)
VALUES (@name, @key, @state, sqlc.narg('first_fired_at'), sqlc.narg('last_seen_at'), sqlc.narg('last_notified_at'),
        sqlc.narg('resolved_at'), @count, @notified_count, @details, @updated_at)
ON CONFLICT (name, key) DO UPDATE
SET state            = excluded.state,
    first_fired_at   = excluded.first_fired_at,
    last_seen_at     = excluded.last_seen_at,
    last_notified_at = excluded.last_notified_at,
    resolved_at      = excluded.resolved_at,
    count            = excluded.count,
    notified_count   = excluded.notified_count,
    details          = excluded.details,
    updated_at       = excluded.updated_at;

-- name: AlarmFireMany :exec
-- Starts a firing episode for each key (the silence alarm: one key per order).
INSERT INTO waybill.alarms (name, key, state, first_fired_at, last_seen_at, last_notified_at, count, notified_count, updated_at)
SELECT @name, k, 'firing', @at::timestamptz, @at::timestamptz, @at::timestamptz, 1, 1, @at::timestamptz
FROM unnest(@keys::text[]) AS k
ON CONFLICT (name, key) DO UPDATE
SET state            = 'firing',
    first_fired_at   = excluded.first_fired_at,
    last_seen_at     = excluded.last_seen_at,
    last_notified_at = excluded.last_notified_at,
    resolved_at      = NULL,
    count            = waybill.alarms.count + 1,
    notified_count   = waybill.alarms.count + 1,
    updated_at       = excluded.updated_at;

-- name: AlarmResolveMany :exec
UPDATE waybill.alarms
SET state = 'resolved', resolved_at = @at::timestamptz, updated_at = @at::timestamptz
WHERE name = @name AND key = ANY (@keys::text[]) AND state = 'firing';

-- name: AlarmDeadJobsSince :many
-- Dead letters recorded after the last one already reported, by kind: how many are still open
-- (not redriven in the meantime), the highest id seen, and a few of their orders.
SELECT kind,
       count(*) FILTER (WHERE redriven_at IS NULL)::bigint AS open,
       max(id)::bigint AS max_id,
       coalesce((array_agg(external_id ORDER BY id DESC) FILTER (WHERE external_id IS NOT NULL AND redriven_at IS NULL))[1:5], '{}')::text[] AS sample_external_ids,
       coalesce(array_agg(DISTINCT carrier) FILTER (WHERE carrier IS NOT NULL AND redriven_at IS NULL), '{}')::text[] AS carriers,
       coalesce((array_agg(reason ORDER BY id DESC) FILTER (WHERE redriven_at IS NULL))[1], '')::text AS last_reason
FROM waybill.dead_jobs
WHERE id > @after_id
GROUP BY kind
ORDER BY open DESC, kind;

-- name: AlarmPendingOrdersLate :one
-- Orders still pending that were inserted before @before: the outbox is not draining.
SELECT count(*)::bigint AS late,
       coalesce(min(created_at), @before::timestamptz)::timestamptz AS oldest_created_at,
       coalesce((SELECT array_agg(s.external_id) FROM (
           SELECT o2.external_id FROM waybill.orders o2
           WHERE o2.status = 'pending' AND o2.created_at < @before::timestamptz
           ORDER BY o2.created_at LIMIT 5) s), '{}')::text[] AS sample_external_ids
FROM waybill.orders
WHERE status = 'pending' AND created_at < @before::timestamptz;

-- name: AlarmAvailableJobsLate :many
-- Per queue, available jobs that have waited since before @before: nobody is working the queue.
SELECT queue, count(*)::bigint AS late, min(scheduled_at)::timestamptz AS oldest_scheduled_at
FROM waybill.river_job
WHERE state = 'available' AND scheduled_at < @before::timestamptz
GROUP BY queue
ORDER BY queue;

-- name: CarrierHealthRecord :exec
-- Folds a process's latest observations in; each time only moves forward.
INSERT INTO waybill.carrier_health (carrier, last_success_at, last_auth_failure_at, updated_at)
VALUES (@carrier, sqlc.narg('success_at'), sqlc.narg('auth_failure_at'), now())
ON CONFLICT (carrier) DO UPDATE
SET last_success_at      = greatest(waybill.carrier_health.last_success_at, excluded.last_success_at),
    last_auth_failure_at = greatest(waybill.carrier_health.last_auth_failure_at, excluded.last_auth_failure_at),
    updated_at           = now();

-- name: CarrierHealthList :many
SELECT * FROM waybill.carrier_health ORDER BY carrier;

-- name: WebhookSignatureFailuresAdd :exec
INSERT INTO waybill.webhook_signature_failures (carrier, minute, failures)
SELECT unnest(@carriers::text[]), unnest(@minutes::timestamptz[]), unnest(@failures::bigint[])
ON CONFLICT (carrier, minute) DO UPDATE
SET failures = waybill.webhook_signature_failures.failures + excluded.failures;

-- name: WebhookSignatureFailuresSince :many
SELECT carrier, sum(failures)::bigint AS failures, max(minute)::timestamptz AS last_minute
FROM waybill.webhook_signature_failures
WHERE minute >= @since
GROUP BY carrier
ORDER BY carrier;

-- name: WebhookSignatureFailuresPrune :execrows
DELETE FROM waybill.webhook_signature_failures WHERE minute < @before;

-- name: AlarmSilentOrders :many
-- Orders the carrier accepted before @before and has said nothing about since (no order event
-- recorded since @before), that no firing silence alarm covers yet. orders_in_flight_idx keeps
-- this to orders still on their way that are older than the silence period.
SELECT o.id, o.external_id, o.carrier, o.status, o.tracking_url, o.dispatched_at
FROM waybill.orders o
WHERE o.status IN ('dispatched', 'assigned', 'in_transit')
  AND o.created_at < @before::timestamptz
  AND coalesce(o.dispatched_at, o.created_at) < @before::timestamptz
  AND NOT EXISTS (SELECT 1 FROM waybill.order_events e WHERE e.order_id = o.id AND e.created_at >= @before::timestamptz)
  AND NOT EXISTS (SELECT 1 FROM waybill.alarms a WHERE a.name = 'silence' AND a.key = o.id::text AND a.state = 'firing')
ORDER BY o.id
LIMIT @max_orders;

-- name: AlarmSilenceEnded :many
-- Firing silence alarms whose order was heard from since @before, moved on to a final status,
-- or is gone.
SELECT a.key
FROM waybill.alarms a
LEFT JOIN waybill.orders o ON o.id = a.key::bigint -- silence keys are order ids
WHERE a.name = 'silence' AND a.state = 'firing'
  AND (o.id IS NULL
       OR o.status NOT IN ('dispatched', 'assigned', 'in_transit')
       OR EXISTS (SELECT 1 FROM waybill.order_events e WHERE e.order_id = o.id AND e.created_at >= @before::timestamptz));

-- name: AlarmStuckBatches :many
-- Per carrier, dispatch batches still unsettled that were sent before @before: the carrier's
-- batch job does not finish, or its answer was lost and the lookup does not get through.
SELECT carrier, count(*)::bigint AS batches, sum(cardinality(order_ids))::bigint AS orders,
       min(created_at)::timestamptz AS oldest_created_at,
       (array_agg(id ORDER BY id))[1:5]::bigint[] AS sample_batch_ids
FROM waybill.dispatch_batches
WHERE state <> 'finished' AND created_at < @before::timestamptz
GROUP BY carrier
ORDER BY carrier;
