-- name: OrderFindForCarrierTask :one
-- (The order queries in this file serve only the webhook pipeline's act and translate jobs.)
-- The order a carrier event is about: the order bound to the carrier's task, else the order whose
-- external_id (or id) the task carries in its metadata and that is not bound to another task yet
-- (a webhook can arrive before dispatch has stored carrier_ref). Pass '' and 0 when unknown.
SELECT id, external_id
FROM waybill.orders
WHERE carrier = @carrier
  AND (carrier_ref = @task_id::text
       OR ((external_id = @external_id OR id = @order_id)
           AND (carrier_ref IS NULL OR carrier_ref = @task_id::text)))
-- Any carrier_ref left is the task's own: the bound order first.
ORDER BY carrier_ref IS NULL
LIMIT 1;

-- name: OrderLockForEvent :one
-- Serialises events for one order. NO KEY UPDATE: inserting order_events rows (a foreign key
-- to this row) from other transactions is not blocked.
SELECT id, external_id, carrier, kind, payload, status, status_at, tracking_url, dispatched_at
FROM waybill.orders
WHERE id = @id
FOR NO KEY UPDATE;

-- name: OrderApplyEventStatus :exec
-- Moves the order to the status an event decided, and tells listeners in the same transaction
-- (NOTIFY is delivered on commit, and only then).
WITH updated AS (
    UPDATE waybill.orders
    SET status        = @status,
        status_at     = @status_at,
        status_reason = sqlc.narg(status_reason),
        tracking_url  = coalesce(tracking_url, sqlc.narg(tracking_url)),
        updated_at    = now()
    WHERE id = @id
    RETURNING id
)
SELECT pg_notify('waybill_order_status', @notification::text) FROM updated;

-- name: OrderEventInsert :one
-- One row per distinct carrier event: a repeat returns no row.
INSERT INTO waybill.order_events (order_id, status, carrier_status, occurred_at, applied, event_key, webhook_event_id, details)
VALUES (@order_id, sqlc.narg(status), @carrier_status, @occurred_at, @applied, @event_key, sqlc.narg(webhook_event_id), @details)
ON CONFLICT (order_id, event_key) DO NOTHING
RETURNING id;

-- name: OrderEventListByOrderID :many
-- An order's history in event order.
SELECT * FROM waybill.order_events
WHERE order_id = @order_id
ORDER BY occurred_at, id;
