-- Queries of `waybill archive` (internal/archive). Each batch is selected FOR UPDATE, written to
-- a file, and deleted by id in the same transaction. Rows come out as one JSON object each, all
-- columns, so a column added later is archived without a change here.

-- name: OrderEventArchiveBatch :many
-- Order history older than the cutoff (by created_at: when Waybill recorded the event), by id.
SELECT e.id, to_jsonb(e)::text AS line
FROM waybill.order_events e
WHERE e.id > @after_id AND e.created_at < @cutoff
ORDER BY e.id
LIMIT @max_rows
FOR UPDATE;

-- name: OrderEventDeleteByIDs :execrows
DELETE FROM waybill.order_events WHERE id = ANY(@ids::bigint[]);

-- name: WebhookEventArchiveBatch :many
-- Raw webhooks older than the cutoff, by id. The body is bytea: archived as base64 (byte for
-- byte, as the signature was computed over it).
SELECT e.id,
       ((to_jsonb(e) - 'body') || jsonb_build_object('body_base64', translate(encode(e.body, 'base64'), E'\n', '')))::text AS line
FROM waybill.webhook_events e
WHERE e.id > @after_id AND e.received_at < @cutoff
ORDER BY e.id
LIMIT @max_rows
FOR UPDATE;

-- name: WebhookEventDeleteByIDs :execrows
-- order_events.webhook_event_id of newer history is set NULL by its foreign key.
DELETE FROM waybill.webhook_events WHERE id = ANY(@ids::bigint[]);

-- name: ArchiveLockTry :one
-- One archive run at a time (a session lock, held on one connection for the whole run).
SELECT pg_try_advisory_lock(7364031) AS locked;

-- name: ArchiveUnlock :exec
SELECT pg_advisory_unlock(7364031);
