-- name: WebhookEventInsert :one
-- The intake's one statement: the raw event and, only if it is new, its translate job, atomically
-- and in one round trip (four with a transaction and River's InsertTx, which capped intake near
-- 1,000 events/s). A redelivery (same carrier and event key) returns no row and enqueues nothing.
-- The job row is what River's InsertTx would write for webhook.TranslateArgs (kind, queue and
-- args must match internal/webhook/jobs.go); without a NOTIFY, translate workers find it by
-- polling, as dispatch workers find the outbox's jobs.
WITH ev AS (
    INSERT INTO waybill.webhook_events (carrier, event_key, body, headers, source_addr)
    VALUES (@carrier, @event_key, @body, @headers, @source_addr)
    ON CONFLICT (carrier, event_key) DO NOTHING
    RETURNING id, carrier
), job AS (
    INSERT INTO waybill.river_job (args, kind, max_attempts, queue, state, priority, scheduled_at, tags)
    SELECT jsonb_build_object('webhook_event_id', ev.id, 'carrier', ev.carrier),
           'webhook_translate', 25, 'translate', 'available', 1, now(), '{}'
    FROM ev
)
SELECT id FROM ev;

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
