-- name: DeadJobListOpen :many
-- Open dead letters (not redriven), newest first, optionally of one kind and since a time.
SELECT id, job_id, kind, queue, state, errors, attempts, reason, order_id, external_id, carrier, discarded_at
FROM waybill.dead_jobs
WHERE redriven_at IS NULL
  AND (sqlc.narg('kind')::text IS NULL OR kind = sqlc.narg('kind')::text)
  AND (sqlc.narg('since')::timestamptz IS NULL OR discarded_at >= sqlc.narg('since')::timestamptz)
ORDER BY discarded_at DESC, id DESC
LIMIT @max_rows;

-- name: DeadJobOpenJobIDs :many
-- The job ids `waybill dead redrive --all [--kind K]` redrives.
SELECT job_id
FROM waybill.dead_jobs
WHERE redriven_at IS NULL
  AND (sqlc.narg('kind')::text IS NULL OR kind = sqlc.narg('kind')::text)
ORDER BY job_id;

-- name: DeadJobListByJobID :many
-- Every death of one job, first first.
SELECT * FROM waybill.dead_jobs WHERE job_id = @job_id ORDER BY id;

-- name: DeadJobRedriveVia :exec
-- Names the redrive's caller for the rest of the transaction (waybill.redrive reads it).
SELECT set_config('waybill.redrive_via', @via::text, true);

-- name: DeadJobRedrive :many
-- See waybill.redrive in 00004_dead_jobs.sql for the outcomes.
SELECT r.job_id::bigint AS job_id,
       coalesce(r.kind, '')::text AS kind,
       coalesce(r.order_id, 0)::bigint AS order_id,
       coalesce(r.external_id, '')::text AS external_id,
       r.outcome::text AS outcome,
       coalesce(r.detail, '')::text AS detail
FROM waybill.redrive(@job_ids::bigint[], @redriven_by::text) r;
