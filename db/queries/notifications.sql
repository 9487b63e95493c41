-- name: NotificationInsert :one
-- Written by the notify workers in the transaction that completes their job.
INSERT INTO waybill.notifications (kind, outcome, skip_reason, target, subject, body, order_id, external_id, job_id, created_at)
VALUES (@kind, @outcome, sqlc.narg('skip_reason'), @target, @subject, @body, sqlc.narg('order_id'),
        sqlc.narg('external_id'), @job_id, @created_at)
RETURNING id;

-- name: NotificationListRecent :many
-- Newest first; kind filters when not null.
SELECT * FROM waybill.notifications
WHERE sqlc.narg('kind')::text IS NULL OR kind = sqlc.narg('kind')::text
ORDER BY created_at DESC, id DESC
LIMIT @max_rows;
