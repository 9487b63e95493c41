-- name: WebhookEventInsert :one
-- The intake's insert. A redelivery (same carrier and event key) returns no row, and then no
-- translate job is enqueued.
INSERT INTO waybill.webhook_events (carrier, event_key, body, headers, source_addr)
VALUES (@carrier, @event_key, @body, @headers, @source_addr)
ON CONFLICT (carrier, event_key) DO NOTHING
RETURNING id;

-- name: WebhookEventGetByID :one
SELECT * FROM waybill.webhook_events WHERE id = @id;

-- name: WebhookEventRecordOutcome :execrows
-- What the translate job made of the event. Only once: a rescued job that runs again finds the
-- outcome already set and changes nothing.
UPDATE waybill.webhook_events
SET outcome        = @outcome::text,
    outcome_detail = sqlc.narg(outcome_detail),
    order_id       = sqlc.narg(order_id),
    translated_at  = now()
WHERE id = @id AND outcome IS NULL;

-- name: WebhookEventListQuarantined :many
-- Quarantined events, newest first, for ops.
SELECT id, carrier, event_key, outcome_detail, order_id, received_at
FROM waybill.webhook_events
WHERE outcome = 'quarantined'
ORDER BY received_at DESC
LIMIT @max_rows;
