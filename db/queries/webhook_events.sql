-- name: WebhookEventInsertMany :many
-- The intake's one statement, for a batch of concurrent requests (group commit): the raw events
-- and, only for those that are new, their translate jobs, atomically, in one round trip and one
-- commit. A redelivery (same carrier and event key, stored before or by a concurrent batch)
-- returns no row and enqueues nothing; the caller sends each event key at most once per batch.
-- The job rows are what River's InsertTx would write for webhook.TranslateArgs (kind, queue and
-- args must match internal/webhook/jobs.go; internal/migrate/river_contract_test.go checks the
-- row against River's own insert); without a NOTIFY, translate workers find them by
-- polling, as dispatch workers find the outbox's jobs.
WITH ev AS (
    INSERT INTO waybill.webhook_events (carrier, event_key, body, headers, source_addr)
    SELECT unnest(@carriers::text[]), unnest(@event_keys::text[]), unnest(@bodies::bytea[]),
           unnest(@headers::jsonb[]), unnest(@source_addrs::text[])
    ON CONFLICT (carrier, event_key) DO NOTHING
    RETURNING id, carrier, event_key
), job AS (
    INSERT INTO waybill.river_job (args, kind, max_attempts, queue, state, priority, scheduled_at, tags)
    SELECT jsonb_build_object('webhook_event_id', ev.id, 'carrier', ev.carrier),
           'webhook_translate', 25, 'translate', 'available', 1, now(), '{}'
    FROM ev
)
SELECT id, carrier, event_key FROM ev;

-- name: WebhookEventGetMany :many
-- The stored events a batch of translate jobs is about.
SELECT id, carrier, event_key, body, outcome, learnt_by
FROM waybill.webhook_events
WHERE id = ANY(@ids::bigint[]);

-- name: WebhookEventRecordOutcomes :many
-- What the translate jobs made of their events ('' detail and 0 order: none). Only once per event:
-- a rescued job that runs again finds the outcome already set and changes nothing; the ids
-- returned are the events recorded now, whose act jobs are to be enqueued.
UPDATE waybill.webhook_events e
SET outcome        = u.outcome,
    outcome_detail = nullif(u.outcome_detail, ''),
    order_id       = nullif(u.order_id, 0),
    translated_at  = now()
FROM (SELECT unnest(@ids::bigint[])             AS id,
             unnest(@outcomes::text[])          AS outcome,
             unnest(@outcome_details::text[])   AS outcome_detail,
             unnest(@order_ids::bigint[])       AS order_id) u
WHERE e.id = u.id AND e.outcome IS NULL
RETURNING e.id;

-- name: WebhookJobDeleteRunning :exec
-- Ends a batch of the pipeline's translate or act jobs in the transaction that did their work.
-- The rows go rather than stay as completed: the event's outcome and the order's history are the
-- record, and a completed version of each job row (with all of River's indexes) plus its later
-- deletion by River's cleaner were a measured share of the cost per event. A job no longer running
-- (River gave up waiting for it, or a rescued copy ended it) is left as it is. The state is
-- compared as text so that the rows are found by id: River's (state, …) index keeps an entry for
-- every past running version until vacuum, and the plan that scanned it (chosen when statistics
-- saw no running job) cost more than all the rest of the batch.
-- With @keep (WAYBILL_KEEP_FINISHED_JOBS, for newcomers in `waybill dev`) they are completed
-- instead, so River UI shows them until River's cleaner deletes them.
WITH deleted AS (
    DELETE FROM waybill.river_job
    WHERE NOT @keep::boolean AND id = ANY(@ids::bigint[]) AND state::text = 'running'
)
UPDATE waybill.river_job SET state = 'completed', finalized_at = now()
WHERE @keep::boolean AND id = ANY(@ids::bigint[]) AND state::text = 'running';
