-- Reconciliation with the carrier (internal/reconcile) and the checks of its webhooks.

-- name: ReconcileDueOrders :many
-- Orders in flight at @carrier that neither the carrier (no history row) nor reconciliation (no
-- check) has said anything about since @before, oldest news first: the ones to look up.
-- orders_in_flight_idx keeps it to orders on their way.
SELECT o.id, o.external_id, o.carrier_ref::text AS carrier_ref, o.status, o.kind,
       coalesce(o.dispatched_at, o.created_at)::timestamptz AS dispatched_at,
       greatest(coalesce(o.dispatched_at, o.created_at), rc.checked_at, ev.last_at)::timestamptz AS last_heard_at
FROM waybill.orders o
LEFT JOIN waybill.reconcile_checks rc ON rc.order_id = o.id
LEFT JOIN LATERAL (SELECT max(e.created_at) AS last_at FROM waybill.order_events e WHERE e.order_id = o.id) ev ON true
WHERE o.status IN ('dispatched', 'assigned', 'in_transit')
  AND o.carrier = @carrier
  AND o.carrier_ref IS NOT NULL
  AND o.created_at < @before::timestamptz
  AND greatest(coalesce(o.dispatched_at, o.created_at), rc.checked_at, ev.last_at) < @before::timestamptz
ORDER BY last_heard_at, o.id
LIMIT @max_orders;

-- name: ReconcileBacklog :many
-- Per carrier, the orders in flight due for a look-up at the carrier (nothing heard since
-- @before) and when the oldest of them was last heard of: how far behind reconciliation is.
SELECT o.carrier, count(*)::bigint AS due,
       min(greatest(coalesce(o.dispatched_at, o.created_at), rc.checked_at, ev.last_at))::timestamptz AS oldest_heard_at
FROM waybill.orders o
LEFT JOIN waybill.reconcile_checks rc ON rc.order_id = o.id
LEFT JOIN LATERAL (SELECT max(e.created_at) AS last_at FROM waybill.order_events e WHERE e.order_id = o.id) ev ON true
WHERE o.status IN ('dispatched', 'assigned', 'in_transit')
  AND o.carrier_ref IS NOT NULL
  AND o.created_at < @before::timestamptz
  AND greatest(coalesce(o.dispatched_at, o.created_at), rc.checked_at, ev.last_at) < @before::timestamptz
GROUP BY o.carrier
ORDER BY o.carrier;

-- name: ReconcileCountDispatchedSince :one
-- How many of @carrier's orders were handed to it since @since: a lower bound of the tasks a
-- listing of the carrier's tasks created since then would return.
SELECT count(*)::bigint FROM waybill.orders
WHERE carrier = @carrier AND dispatched_at >= @since::timestamptz;

-- name: ReconcileRecordChecks :exec
-- Orders just looked up at the carrier, with the state it reported.
INSERT INTO waybill.reconcile_checks (order_id, checked_at, carrier_state)
SELECT unnest(@order_ids::bigint[]), @checked_at::timestamptz, unnest(@carrier_states::text[])
ON CONFLICT (order_id) DO UPDATE
SET checked_at = excluded.checked_at, carrier_state = excluded.carrier_state;

-- name: ReconcileEventInsertMany :many
-- What reconciliation learnt, as synthetic carrier events marked learnt_by 'poll', with their
-- translate jobs, in one statement: the same path as webhook intake (WebhookEventInsertMany), so
-- the same vocabulary, forward-only rule, history and notifications apply. An event stored before
-- (same carrier and key) is left alone and enqueues nothing.
WITH ev AS (
    INSERT INTO waybill.webhook_events (carrier, event_key, body, headers, source_addr, learnt_by)
    SELECT unnest(@carriers::text[]), unnest(@event_keys::text[]), unnest(@bodies::bytea[]), '{}', 'reconcile', 'poll'
    ON CONFLICT (carrier, event_key) DO NOTHING
    RETURNING id, carrier, event_key
), job AS (
    INSERT INTO waybill.river_job (args, kind, max_attempts, queue, state, priority, scheduled_at, tags)
    SELECT jsonb_build_object('webhook_event_id', ev.id, 'carrier', ev.carrier),
           'webhook_translate', 25, 'translate', 'available', 1, now(), '{reconcile}'
    FROM ev
)
SELECT id, carrier, event_key FROM ev;

-- name: CarrierWebhookCheckSave :exec
INSERT INTO waybill.carrier_webhook_checks (carrier, checked_at, url, missing, disabled, elsewhere, error)
VALUES (@carrier, @checked_at, @url, @missing, @disabled, @elsewhere, @error)
ON CONFLICT (carrier) DO UPDATE
SET checked_at = excluded.checked_at, url = excluded.url, missing = excluded.missing,
    disabled = excluded.disabled, elsewhere = excluded.elsewhere, error = excluded.error;

-- name: CarrierWebhookCheckList :many
SELECT * FROM waybill.carrier_webhook_checks ORDER BY carrier;

-- name: AlarmPollLearntChanges :many
-- Per carrier, the status changes reconciliation learnt since @since that no webhook had
-- announced (applied history rows learnt by polling), and the newest of them.
SELECT o.carrier, count(*)::bigint AS changes, max(e.created_at)::timestamptz AS last_at,
       (array_agg(DISTINCT o.external_id ORDER BY o.external_id))[1:5]::text[] AS sample_external_ids
FROM waybill.order_events e
JOIN waybill.orders o ON o.id = e.order_id
WHERE e.learnt_by = 'poll' AND e.applied AND e.created_at >= @since::timestamptz
GROUP BY o.carrier
ORDER BY o.carrier;

-- name: AlarmLastWebhookAt :one
-- When @carrier's last real webhook (not a polled event) arrived; NULL if none is kept. Scans
-- from the newest event back, past the few polled ones.
SELECT received_at FROM waybill.webhook_events
WHERE carrier = @carrier AND learnt_by = 'webhook'
ORDER BY id DESC
LIMIT 1;

-- name: AlarmLastPollChangeAt :one
-- When reconciliation last learnt a change about @carrier's orders that no webhook announced
-- (the epoch if never).
SELECT coalesce(max(e.created_at), 'epoch')::timestamptz AS last_at
FROM waybill.order_events e
JOIN waybill.orders o ON o.id = e.order_id
WHERE e.learnt_by = 'poll' AND e.applied AND o.carrier = @carrier;

-- name: OrderEventStatusRows :many
-- The status rows of these orders' histories that a new carrier event might repeat under another
-- key (learnt the other way: by webhook or by polling): rows learnt by polling of every order, and
-- every status row of the orders in @polled_order_ids (those with polled events in the batch).
SELECT order_id, status::text AS status, occurred_at, learnt_by, event_key
FROM waybill.order_events
WHERE order_id = ANY(@order_ids::bigint[]) AND learnt_by = 'poll' AND status IS NOT NULL
UNION ALL
SELECT order_id, status::text AS status, occurred_at, learnt_by, event_key
FROM waybill.order_events
WHERE order_id = ANY(@polled_order_ids::bigint[]) AND learnt_by = 'webhook' AND status IS NOT NULL;

-- name: ReconcilePipelinePending :one
-- How many translate and act jobs of these (synthetic) webhook events are not done yet; both
-- kinds are deleted when done. river_job stays small, so the scan is cheap.
SELECT count(*)::bigint FROM waybill.river_job
WHERE kind IN ('webhook_translate', 'webhook_act')
  AND state NOT IN ('completed', 'discarded', 'cancelled')
  AND (args->>'webhook_event_id')::bigint = ANY(@event_ids::bigint[]);
