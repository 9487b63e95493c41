-- name: OrderFindForCarrierTasks :many
-- (The order queries in this file serve only the webhook pipeline's act and translate jobs.)
-- The orders a batch of carrier events is about, by the events' index (1-based) in the arrays:
-- the order bound to the carrier's task, else the order whose external_id (or id) the task
-- carries in its metadata and that is not bound to another task yet (a webhook can arrive before
-- dispatch has stored carrier_ref). Pass '' and 0 when unknown. Events with no order: no row.
SELECT e.idx::int AS idx, o.id, o.external_id
FROM (SELECT generate_subscripts(@carriers::text[], 1) AS idx,
             unnest(@carriers::text[])                AS carrier,
             unnest(@task_ids::text[])                AS task_id,
             unnest(@external_ids::text[])            AS external_id,
             unnest(@order_ids::bigint[])             AS order_id) e
CROSS JOIN LATERAL (
    SELECT id, external_id
    FROM waybill.orders
    WHERE carrier = e.carrier
      AND (carrier_ref = e.task_id
           OR ((external_id = e.external_id OR id = e.order_id)
               AND (carrier_ref IS NULL OR carrier_ref = e.task_id)))
    -- Any carrier_ref left is the task's own: the bound order first.
    ORDER BY carrier_ref IS NULL
    LIMIT 1
) o;

-- name: OrderLockForEvents :many
-- Serialises events for the same orders: a batch of act jobs locks all its orders, in id order so
-- that two batches never deadlock. NO KEY UPDATE: inserting order_events rows (a foreign key to
-- these rows) from other transactions is not blocked.
SELECT id, external_id, carrier, kind, payload, status, status_at, tracking_url, dispatched_at
FROM waybill.orders
WHERE id = ANY(@ids::bigint[])
ORDER BY id
FOR NO KEY UPDATE;

-- name: OrderEventKeysKnown :many
-- Which of these (order, event key) pairs the history has already: a repeated event. Read after
-- OrderLockForEvents, so no other act on these orders can add one meanwhile.
SELECT order_id, event_key
FROM waybill.order_events
WHERE (order_id, event_key) IN (SELECT unnest(@order_ids::bigint[]), unnest(@event_keys::text[]));

-- name: OrderEventInsertMany :exec
-- History rows, one per distinct carrier event ('' status: an informative event; 0: no webhook
-- event; learnt_by 'webhook' or 'poll'). A repeat is left out.
INSERT INTO waybill.order_events (order_id, status, carrier_status, occurred_at, applied, event_key, webhook_event_id, details, learnt_by)
SELECT order_id, nullif(status, ''), carrier_status, occurred_at, applied, event_key, nullif(webhook_event_id, 0), details, learnt_by
FROM (SELECT unnest(@order_ids::bigint[])          AS order_id,
             unnest(@statuses::text[])             AS status,
             unnest(@carrier_statuses::text[])     AS carrier_status,
             unnest(@occurred_ats::timestamptz[])  AS occurred_at,
             unnest(@applied::boolean[])           AS applied,
             unnest(@event_keys::text[])           AS event_key,
             unnest(@webhook_event_ids::bigint[])  AS webhook_event_id,
             unnest(@details::jsonb[])             AS details,
             unnest(@learnt_by::text[])            AS learnt_by) e
ON CONFLICT (order_id, event_key) DO NOTHING;

-- name: OrderApplyEventStatuses :exec
-- Moves orders to the statuses events decided ('' reason: none; tracking_url is kept once
-- known), and tells listeners in the same transaction, one notification per status change in the
-- order given (NOTIFY is delivered on commit, and only then).
WITH updated AS (
    UPDATE waybill.orders o
    SET status        = u.status,
        status_at     = u.status_at,
        status_reason = nullif(u.status_reason, ''),
        tracking_url  = coalesce(o.tracking_url, nullif(u.tracking_url, '')),
        updated_at    = now()
    FROM (SELECT unnest(@ids::bigint[])                AS id,
                 unnest(@statuses::text[])             AS status,
                 unnest(@status_ats::timestamptz[])    AS status_at,
                 unnest(@status_reasons::text[])       AS status_reason,
                 unnest(@tracking_urls::text[])        AS tracking_url) u
    WHERE o.id = u.id
)
SELECT pg_notify('waybill_order_status', n) FROM unnest(@notifications::text[]) AS n;

-- name: OrderEventListByOrderID :many
-- An order's history in event order.
SELECT * FROM waybill.order_events
WHERE order_id = @order_id
ORDER BY occurred_at, id;
